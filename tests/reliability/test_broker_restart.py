"""Single broker restarted mid-stream (durable log dirs): the worker resumes by itself, nothing lost.

A private single-node broker (own state folder, free port) so the shared
session broker is untouched. Two faults while the worker is counting: the
broker is SIGKILLed (unclean: page cache survives, the log is recovered on
start) and later stopped cleanly; each time it is started again on the same
data directory. The same worker process must carry on without a restart and
count every mention exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from streams.synth import surge_stream
from tests.kafka_support import WorkerFactory
from tests.reliability.support import (
    LocalKafka,
    counted,
    dead_letter_reasons,
    loss,
    send_checked,
    summary,
    wait_counts,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.reliability]

BRANDS = [f"brand{i:02d}" for i in range(12)]
N = 30_000


@pytest.mark.timeout(420)
def test_broker_restart_mid_stream_loses_nothing(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "kafka")
    kafka.start()
    factory = WorkerFactory(kafka.bootstrap, tmp_path)
    t_start = time.monotonic()
    try:
        w = factory.start(checkpoint_seconds="2")
        pid = w.proc.pid
        mentions = surge_stream(BRANDS, N, surge_brand="brand03", seed=7, duration_s=12 * 3600)
        values = [orjson.dumps(m) for m in mentions]
        want = Counter(m["brand"] for m in mentions)
        records = [(m["brand"].encode(), v) for m, v in zip(mentions, values, strict=True)]

        sent: list[int] = []
        errors: list[BaseException] = []

        def produce() -> None:
            try:
                sent.append(send_checked(kafka.bootstrap, factory.topic("raw"), records, pause=0.3))
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()

        downtimes: list[float] = []
        faults = 0
        for fraction, how in ((0.2, "kill"), (0.55, "stop")):
            assert wait_until(lambda f=fraction: counted(w) >= f * N, 240), (
                f"worker never reached {fraction:.0%} before the fault: {w.log_text()[-3000:]}"
            )
            t0 = time.monotonic()
            kafka.kill() if how == "kill" else kafka.stop()
            faults += 1
            time.sleep(3)  # the broker stays down a while, clients see connection errors
            kafka.start()
            downtimes.append(time.monotonic() - t0)
            assert w.alive(), w.log_text()[-3000:]

        producer.join(300)
        assert not errors, errors
        assert sent == [N], sent
        got = wait_counts(w, want, timeout=240)
        lost, extra = loss(want, got)
        summary(
            "broker-restart",
            sent=N,
            faults=faults,
            lost=lost,
            deadlettered=dead_letter_reasons(factory) if lost else "-",
            extra=extra,
            counted=sum(got.values()),
            downtime_s="/".join(f"{d:.1f}" for d in downtimes),
            worker_restarts=0 if w.alive() and w.proc.pid == pid else 1,
            elapsed_s=f"{time.monotonic() - t_start:.0f}",
        )
        assert w.alive(), f"worker died: {w.log_text()[-3000:]}"
        assert lost == 0 and extra == 0, {b: (want[b], got.get(b)) for b in want}
        assert got == dict(want)
    finally:
        factory.stop_all()
        kafka.stop()
