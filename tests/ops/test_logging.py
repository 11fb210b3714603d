"""streams/logging_json.py: JSON lines with context, and no secret in any format."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest

from streams.logging_json import (
    JsonFormatter,
    RedactingFormatter,
    Redactor,
    logging_config,
    secret_values,
)
from streams.settings import Settings

SECRET = "Hunter2-Sasl-Password"


def settings(fmt: str) -> Settings:
    return Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="cw",
        kafka_sasl_password=SECRET,
        pagerduty_routing_key="R0UTINGKEY123",
        log_format=fmt,  # type: ignore[arg-type]
    )


def test_secret_values_come_from_the_settings() -> None:
    vals = secret_values(settings("json"))
    assert SECRET in vals and "R0UTINGKEY123" in vals
    assert "cw" not in vals


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_secret_in_any_log_format(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    s = settings(fmt)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(logging_config(s, "debug"))
        log = logging.getLogger("crisiswatch.test")
        log.debug("settings %r", s)
        log.info("client config %s", s.kafka_python_config())
        log.warning("dsn kafka://cw:%s@broker:9093", SECRET)
        log.info("ctx", extra={"password": SECRET, "detail": {"sasl_plain_password": SECRET}})
        try:
            raise RuntimeError(f"login failed with {SECRET}")
        except RuntimeError:
            log.exception("boom")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    out = capsys.readouterr().out
    assert "client config" in out and "boom" in out
    assert SECRET not in out
    assert "R0UTINGKEY123" not in out
    if fmt == "json":
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert len(lines) == 5
        boom = lines[-1]
        assert boom["level"] == "error" and "RuntimeError" in boom["exc"]
        assert lines[3]["password"] == "***"
        assert {"ts", "level", "logger", "message", "app", "host", "pid"} <= set(boom)


def test_json_formatter_keeps_context_and_types() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(Redactor(), {"app": "cw"}))
    log = logging.getLogger("crisiswatch.test.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("dead letter", extra={"partition": 3, "offset": 17, "stage": "ingest"})
    finally:
        log.removeHandler(handler)
    doc = json.loads(stream.getvalue())
    assert doc["partition"] == 3 and doc["offset"] == 17 and doc["stage"] == "ingest"
    assert doc["level"] == "warning" and doc["app"] == "cw"
    assert doc["ts"].endswith("+00:00")


def test_redactor_leaves_ordinary_text_alone() -> None:
    r = Redactor([SECRET])
    text = "ApiVersionResponse(api_key=0, min_version=1) brand=acme offset=12"
    assert r.redact(text) == text
    assert r.redact("url https://user:pa55@host/x") == "url https://user:***@host/x"
    f = RedactingFormatter("%(message)s", redactor=r)
    rec = logging.LogRecord("x", logging.INFO, "x", 1, "pw %s", (SECRET,), None)
    assert f.format(rec) == "pw ***"


def test_faust_merges_our_config_and_keeps_its_level() -> None:
    cfg = logging_config(settings("json"))
    assert cfg["merge"] is True and "level" not in cfg["root"]
