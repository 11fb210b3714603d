"""Security basics: TLS/SASL settings reach every Kafka client, the web port binds only
the configured address, and no secret from the settings shows up in events, dead
letters, web pages or logs.

Already covered elsewhere (not repeated here): kafka-python config pass-through
(tests/test_settings.py), the SASL password never reaching the logs of a Faust
worker (tests/ops/test_prometheus_scrape.py, tests/ops/test_logging.py), and
webhook signatures (tests/responders/test_sinks.py: verification, tampering,
rotation; tests/responders/test_integration.py: signed deliveries).
"""

from __future__ import annotations

import ast
import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import certifi
import orjson
import pytest

from streams.settings import Settings
from streams.synth import surge_stream
from tests.kafka_support import PROJECT, SecureKafka, WorkerFactory, free_port
from tests.malformed import malformed
from tests.reliability.support import metrics_text, summary, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.reliability, pytest.mark.ci]

PASSWORD = "pw-7f3a9c1e-never-print"
CLIENT_CLASSES = {
    "KafkaProducer",
    "KafkaConsumer",
    "KafkaAdminClient",
    "AIOKafkaProducer",
    "AIOKafkaConsumer",
    "AIOKafkaAdminClient",
    "AIOKafkaClient",
}
SECURITY_SOURCES = ("aiokafka_config(", "kafka_python_config(", "_common(")
#: Client constructions that may ignore the security settings, and why.
EXEMPT: dict[str, str] = {}


def secure_settings() -> Settings:
    return Settings(
        kafka_bootstrap="127.0.0.1:1",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="cw-user",
        kafka_sasl_password=PASSWORD,
        kafka_ssl_cafile=certifi.where(),
    )


class Recorder:
    """Stands in for a Kafka client class: records the keyword arguments."""

    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Recorder.calls.append((type(self).__name__, kwargs))

    async def start(self) -> None:
        pass

    def subscribe(self, *args: Any, **kwargs: Any) -> None:
        pass

    def list_topics(self) -> list[str]:
        return []

    def create_topics(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def check_secure(kw: dict[str, Any], where: str) -> None:
    assert kw.get("security_protocol") == "SASL_SSL", (where, kw)
    assert kw.get("sasl_mechanism") == "SCRAM-SHA-512", (where, kw)
    assert kw.get("sasl_plain_username") == "cw-user", (where, kw)
    assert kw.get("sasl_plain_password") == PASSWORD, (where, kw)
    # TLS: aiokafka takes an SSLContext, kafka-python the CA file.
    assert isinstance(kw.get("ssl_context"), ssl.SSLContext) or kw.get("ssl_cafile") == (
        certifi.where()
    ), (where, kw)


def test_security_settings_reach_every_kafka_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    import streams.fastpath as fastpath
    import streams.kafka_util as kafka_util
    import streams.recovery as recovery
    from streams.app import create_app

    s = secure_settings()
    checked: list[str] = []

    # Faust's producer, consumer and topic admin all take credentials_to_aiokafka_auth(...)
    # of the app's broker_credentials.
    app = create_app(s)
    check_secure(
        dict(credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context)),
        "faust app",
    )
    checked.append("faust")

    for mod, names in (
        (recovery, ["AIOKafkaConsumer"]),
        (fastpath, ["AIOKafkaProducer", "AIOKafkaConsumer"]),
        (kafka_util, ["KafkaProducer", "KafkaConsumer", "KafkaAdminClient"]),
    ):
        for name in names:
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, type(name, (Recorder,), {}))
    monkeypatch.setattr(kafka_util, "wait_reachable", lambda *a, **k: None)
    Recorder.calls = []

    recovery.Recovery(s)._consumer()
    if hasattr(fastpath, "IngestService"):

        async def start_ingest() -> None:
            svc = fastpath.IngestService(s, None, {}, lambda dead: None)  # type: ignore[arg-type]
            await svc.on_start()

        asyncio.run(start_ingest())
    kafka_util.producer(s)
    kafka_util.consumer(s, "t")
    kafka_util.ensure_topics(s)
    for name, kw in Recorder.calls:
        check_secure(kw, name)
        checked.append(name)
    summary("security-clients", clients=len(checked), insecure=0, checked="/".join(checked))
    assert {"AIOKafkaConsumer", "KafkaProducer", "KafkaConsumer", "KafkaAdminClient"} <= set(
        checked
    )


def test_every_kafka_client_in_the_code_gets_the_security_settings() -> None:
    """A static check: each construction of a Kafka client in streams/ passes
    ``**`` keyword arguments built from the security-aware helpers."""
    offenders: list[str] = []
    for path in sorted((PROJECT / "streams").rglob("*.py")):
        rel = path.relative_to(PROJECT).as_posix()
        if rel in EXEMPT:
            continue
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body = ast.get_source_segment(path.read_text(), fn) or ""
            for call in ast.walk(fn):
                if not isinstance(call, ast.Call):
                    continue
                name = getattr(call.func, "id", getattr(call.func, "attr", ""))
                if name not in CLIENT_CLASSES:
                    continue
                splats = [k for k in call.keywords if k.arg is None]
                if not splats or not any(src in body for src in SECURITY_SOURCES):
                    offenders.append(f"{rel}:{call.lineno} {name}")
    summary("security-static", offenders=len(offenders), exempt=len(EXEMPT))
    assert not offenders, offenders


def connectable(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def http_ok(host: str, port: int, path: str = "/health") -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=3) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def test_web_port_binds_only_the_configured_address(workers: WorkerFactory) -> None:
    # 127.0.0.1 (the default): not reachable on another loopback address.
    w = workers.start(web_host="127.0.0.1")
    assert http_ok("127.0.0.1", w.web_port)
    leak1 = connectable("127.0.0.2", w.web_port)
    w.stop()

    # 127.0.0.2: reachable there, not on 127.0.0.1.
    port = free_port()
    env = workers.env(
        web_host="127.0.0.2", web_port=str(port), data_dir=str(workers.tmp / "w-127-0-0-2")
    )
    log = workers.tmp / "w-127-0-0-2.log"
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"],
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=PROJECT,
        )
    try:
        up = wait_until(lambda: http_ok("127.0.0.2", port), 90, 0.5)
        leak2 = connectable("127.0.0.1", port)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    summary(
        "web-bind",
        bound_127_0_0_1_reachable_on_127_0_0_2=leak1,
        bound_127_0_0_2_up=up,
        bound_127_0_0_2_reachable_on_127_0_0_1=leak2,
    )
    assert not leak1
    assert up, log.read_text(errors="replace")[-3000:]
    assert not leak2


SECRETS = {
    "webhook_secret": "hook-secret-93ad",
    "webhook_url": "http://127.0.0.1:9/hooks/token-c0ffee77",
    "slack_webhook_url": "http://127.0.0.1:9/services/T000/B000/slack-tok-1e2f",
    "pagerduty_routing_key": "pd-routing-4411aa",
    "alertmanager_url": "http://am-user:am-pass-88bb@127.0.0.1:9/api/v2/alerts",
}


def test_no_secret_in_events_dead_letters_pages_or_logs(
    kafka_secure: SecureKafka, tmp_path: Path
) -> None:
    # Over a real SASL_SSL listener, so the SASL password is in use, not only set;
    # the same run checks that the worker does its whole job there.
    workers = WorkerFactory(
        kafka_secure.bootstrap,
        tmp_path,
        settings=kafka_secure.settings(),
        client=kafka_secure.kafka_python(),
    )
    secrets = {**SECRETS, "kafka_sasl_password": kafka_secure.password}
    try:
        w = workers.start(**SECRETS)
        brands = ["acme", "globex", "initech", "umbrella", "hooli"]
        mentions = surge_stream(brands, 10_000, surge_brand="initech", seed=11)
        bad = malformed(24)
        records = [(m["brand"].encode(), orjson.dumps(m)) for m in mentions]
        records += [(k, v) for k, v, _ in bad]
        workers.produce(workers.topic("raw"), records)
        assert wait_until(lambda: sum(w.get("/stats")["brands"].values()) >= len(mentions), 180, 1)
        events = workers.consume(workers.topic("events"), idle=8, timeout=90)
        dead = workers.consume(workers.topic("deadletter"), until=len(bad), timeout=60)
        scored = workers.consume(workers.topic("scored"), until=len(mentions), timeout=60)
        blobs: dict[str, bytes] = {
            "events": b"\n".join(bytes(e.value) for e in events),
            "event headers": b"\n".join(repr(e.headers).encode() for e in events),
            "dead letters": b"\n".join(repr(d.headers).encode() for d in dead),
            "/stats": orjson.dumps(w.get("/stats")),
            "/ready": orjson.dumps(w.get("/ready")),
            "/health": orjson.dumps(w.get("/health")),
            "/metrics": metrics_text(w).encode(),
        }
        counted = w.get("/stats")["brands"]
    finally:
        workers.stop_all()
    blobs["log"] = Path(w.log).read_bytes()  # with the shutdown's lines
    leaks = [
        (where, name)
        for where, blob in blobs.items()
        for name, value in secrets.items()
        if value.encode() in blob or value.split("@")[0].split(":")[-1].encode() in blob
    ]
    summary(
        "no-secrets",
        sent=len(records),
        events=len(events),
        deadletters=len(dead),
        places=len(blobs),
        leaks=len(leaks),
    )
    assert counted == dict(Counter(m["brand"] for m in mentions))
    assert len(scored) == len(mentions) and len(dead) == len(bad)
    opened = [orjson.loads(e.value) for e in events]
    assert any(e["brand"] == "initech" and e["status"] == "opened" for e in opened), (
        "no crisis event: the check would prove nothing"
    )
    assert not leaks, leaks
