"""Single broker restarted mid-stream (durable log dirs): the worker resumes by itself, nothing lost.

A private single-node broker (own state folder, free port) so the shared
session broker is untouched. Two faults while the worker is counting: the
broker is SIGKILLed (unclean: page cache survives, the log is recovered on
start) and later stopped cleanly; each time it is started again on the same
data directory. The same worker process must carry on without a restart and
count every mention exactly once.

The kill comes just after the worker caught up with a first burst, and the
broker stays down longer than the idle flush wait: the partitions then look
idle and caught up from cached highwater marks, which once made the idle
flush close every bucket up to wall-clock time and dead-letter the rest of
the replay as late.
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

pytestmark = [pytest.mark.kafka, pytest.mark.reliability, pytest.mark.ci]

BRANDS = [f"brand{i:02d}" for i in range(12)]
N = 30_000
IDLE_FLUSH_S = 6


@pytest.mark.timeout(420)
def test_broker_restart_mid_stream_loses_nothing(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "kafka")
    kafka.start()
    factory = WorkerFactory(kafka.bootstrap, tmp_path)
    t_start = time.monotonic()
    try:
        w = factory.start(checkpoint_seconds="2", idle_flush_seconds=str(IDLE_FLUSH_S))
        pid = w.proc.pid
        mentions = surge_stream(BRANDS, N, surge_brand="brand03", seed=7, duration_s=12 * 3600)
        values = [orjson.dumps(m) for m in mentions]
        want = Counter(m["brand"] for m in mentions)
        records = [(m["brand"].encode(), v) for m, v in zip(mentions, values, strict=True)]

        sent: list[int] = []
        errors: list[BaseException] = []

        def produce(part: list[tuple[bytes, bytes]]) -> threading.Thread:
            def run() -> None:
                try:
                    sent.append(
                        send_checked(kafka.bootstrap, factory.topic("raw"), part, pause=0.3)
                    )
                except BaseException as exc:  # reported by the main thread
                    errors.append(exc)

            t = threading.Thread(target=run, daemon=True)
            t.start()
            return t

        downtimes: list[float] = []
        faults = 0

        # Fault 1: SIGKILL while the worker has just caught up with everything
        # sent (a replay between two bursts), down for longer than the idle
        # flush wait. Nothing may close by wall clock meanwhile: the rest of
        # the replay comes after the outage.
        first = int(0.4 * N)
        produce(records[:first]).join(300)
        assert wait_until(lambda: counted(w) >= first, 240, 0.1), w.log_text()[-3000:]
        t0 = time.monotonic()
        kafka.kill()
        faults += 1
        time.sleep(2.5 * IDLE_FLUSH_S)
        kafka.start()
        downtimes.append(time.monotonic() - t0)
        assert w.alive(), w.log_text()[-3000:]

        # Fault 2: a clean stop while records are flowing (batches in flight).
        producer = produce(records[first:])
        assert wait_until(lambda: counted(w) >= 0.7 * N, 240), w.log_text()[-3000:]
        t0 = time.monotonic()
        kafka.stop()
        faults += 1
        time.sleep(3)  # the broker stays down a while, clients see connection errors
        kafka.start()
        downtimes.append(time.monotonic() - t0)
        assert w.alive(), w.log_text()[-3000:]

        producer.join(300)
        assert not errors, errors
        assert sum(sent) == N, sent
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
