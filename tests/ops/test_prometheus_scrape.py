"""A real Prometheus scrapes a real worker on the real broker; its counters match what was produced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from tests.kafka_support import WorkerFactory
from tests.ops.prom import PROMETHEUS, Prometheus, start_prometheus
from tests.ops.test_dashboards import dashboard_queries_for_prometheus

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed"),
]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "crisiswatch.rules.yml"
BRANDS = ["acme", "globex", "initech"]
SECRET = "Sup3r-Secret-Sasl-Pa55"


@pytest.fixture
def prom_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "prom"
    d.mkdir()
    yield d


def test_prometheus_counts_what_the_worker_processed(
    workers: WorkerFactory, prom_dir: Path
) -> None:
    w = workers.start(
        log_format="json",
        metrics_interval_seconds="1",
        metrics_brand_labels="true",
        metrics_faust_sensor="true",
    )
    prom: Prometheus = start_prometheus(prom_dir, [f"127.0.0.1:{w.web_port}"], rule_files=(RULES,))
    try:
        _check(workers, w.web_port, prom)
    finally:
        prom.stop()
    assert w.alive(), w.log_text()[-3000:]
    # Structured logs: every line the worker wrote after start-up is one JSON object.
    lines = [ln for ln in w.log_text().splitlines() if ln.startswith("{")]
    assert len(lines) > 10
    docs = [orjson.loads(ln) for ln in lines]
    assert {"ts", "level", "logger", "message", "app"} <= set(docs[0])
    dead = [d for d in docs if d["message"].startswith("dead letter")]
    assert dead and {"stage", "reason_class", "partition", "offset"} <= set(dead[0])


def _check(workers: WorkerFactory, web_port: int, prom: Prometheus) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    n_valid = 300
    valid = [
        orjson.dumps(
            {"id": f"m{i}", "brand": BRANDS[i % 3], "text": "I love it", "created_at": now}
        )
        for i in range(n_valid)
    ]
    invalid_json = [b'{"id": "bad%d", "brand": ' % i for i in range(7)]
    not_object = [b"[1, 2, %d]" % i for i in range(5)]
    schema = [orjson.dumps({"id": f"s{i}", "brand": "acme", "text": "x"}) for i in range(9)]
    n_invalid = len(invalid_json) + len(not_object) + len(schema)
    records: list[tuple[bytes | None, bytes]] = [
        (orjson.loads(v)["brand"].encode(), v) for v in valid
    ]
    records += [(b"acme", v) for v in (*invalid_json, *not_object, *schema)]
    workers.produce(workers.topic("raw"), records)

    prom.wait_for('up{job="crisiswatch"}', lambda v: v == 1, timeout=30)
    eq = lambda want: lambda v: v == want  # noqa: E731
    prom.wait_for(
        'sum(crisiswatch_records_processed_total{stage="ingest",result="scored"})', eq(n_valid)
    )
    prom.wait_for('sum(crisiswatch_dead_letters_total{stage="ingest"})', eq(n_invalid))
    prom.wait_for(
        'sum(crisiswatch_records_consumed_total{stage="ingest"})', eq(n_valid + n_invalid)
    )
    prom.wait_for(
        'sum(crisiswatch_records_processed_total{stage="detect",result="counted"})', eq(n_valid)
    )
    # Reason classes, not free text.
    by_reason = {
        r["metric"]["reason"]: float(r["value"][1])
        for r in prom.query('crisiswatch_dead_letters_total{stage="ingest"} > 0')
    }
    assert by_reason == {
        "invalid_json": len(invalid_json),
        "not_object": len(not_object),
        "schema": len(schema),
    }
    prom.wait_for(
        f'sum(crisiswatch_records_produced_total{{topic="{workers.topic("deadletter")}"}})',
        eq(n_invalid),
    )
    prom.wait_for('sum(crisiswatch_event_to_processed_seconds_count{stage="ingest"})', eq(n_valid))
    # Lag per partition: 4 raw + 4 scored partitions, all caught up.
    prom.wait_for("count(crisiswatch_consumer_lag_records)", eq(8))
    prom.wait_for("sum(crisiswatch_consumer_lag_records)", eq(0))
    prom.wait_for("crisiswatch_brands_known", eq(len(BRANDS)))
    prom.wait_for("sum(crisiswatch_brand_mentions_total)", eq(n_valid))
    assert prom.scalar('count(crisiswatch_build_info{version!=""})') == 1
    assert prom.scalar('count(crisiswatch_model_info{detector!=""})') == 1
    # Faust's own sensor (opt-in) shares /metrics.
    assert (prom.scalar("sum(crisiswatch_faust_messages_received_total)") or 0) >= n_valid
    # The alert rules load into a real server and evaluate without errors.
    deadline = time.monotonic() + 20
    while True:
        groups = prom.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r.get("health") == "ok" for r in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(0.5)
    assert {r["name"] for r in rules if r["type"] == "alerting"} >= {
        "CrisiswatchWorkerDown",
        "CrisiswatchDeadLetterRateHigh",
    }
    # Every dashboard query parses and evaluates on a real server, and the
    # panels of the core families return data.
    # rate() needs two samples in its window.
    prom.wait_for('count_over_time(up{job="crisiswatch"}[1m])', lambda v: (v or 0) >= 3)
    empty = []
    for expr in dashboard_queries_for_prometheus():
        if not prom.query(expr) and "responder" not in expr and "bucket_close" not in expr:
            empty.append(expr)
    assert not [e for e in empty if "records_consumed" in e or "consumer_lag" in e], (
        empty,
        prom.query('up{job="crisiswatch"}[1m]'),
        prom.query("scrape_duration_seconds"),
        prom.log_tail(),
    )
    # Nothing fires on a healthy pipeline with no crisis.
    firing = [a for a in prom.api("alerts")["alerts"] if a["state"] == "firing"]
    assert firing == [], firing


_LEAKY_WORKER = """
import logging, faust
from streams.app import create_app
from streams.settings import load_settings

settings = load_settings()


class Worker(faust.Worker):
    async def on_first_start(self) -> None:
        await super().on_first_start()  # logging is configured from here on
        # What a careless library or a future change might log.
        log = logging.getLogger("careless")
        log.warning("settings %r", settings)
        log.warning("client config %s", settings.kafka_python_config())
        log.info("connecting", extra={"sasl_password": settings.kafka_sasl_password})
        try:
            raise RuntimeError(f"auth failed for {settings.kafka_sasl_password}")
        except RuntimeError:
            log.exception("login")


Worker(create_app(settings), loglevel="debug", quiet=True).execute_from_commandline()
"""


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_sasl_password_never_reaches_the_logs(workers: WorkerFactory, fmt: str) -> None:
    """A Faust worker with SASL settings at debug level; the broker is PLAINTEXT,
    so the client fails to authenticate and the worker stops with an error."""
    import subprocess
    import sys

    from tests.kafka_support import PROJECT, free_port

    env = workers.env(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="crisiswatch",
        kafka_sasl_password=SECRET,
        log_level="debug",
        log_format=fmt,
        web_port=str(free_port()),
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _LEAKY_WORKER],
            env=env,
            cwd=PROJECT,
            capture_output=True,
            timeout=12,
        )
        out = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"") + (exc.stderr or b"")
    text = out.decode(errors="replace")
    # The real failure (SASL against a PLAINTEXT listener) was logged, and so was the bait.
    assert "IllegalSaslStateError" in text, text[-3000:]
    assert "client config" in text and "auth failed for ***" in text, text[-3000:]
    assert text.count("\n") > 20, text
    assert SECRET not in text, text[-3000:]
