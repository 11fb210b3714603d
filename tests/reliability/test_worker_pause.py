"""A worker frozen past its session timeout (SIGSTOP, as a long GC pause or a stalled VM),
then thawed: it must not go on with detect state that misses what the other worker counted.

While the frozen member is out of the groups, the other one takes its
partitions and counts their envelopes. On waking, the frozen worker rejoins;
Faust's sticky assignor tends to hand it its old partitions back, and the
engines it kept for them lack the envelopes counted meanwhile. Such an
engine is rebuilt from the checkpoint plus a replay, found either by the jump
in envelope offsets at the next envelope or, when no envelope comes (the
input may have ended meanwhile), by the group's committed offset being past
what the worker counted. Counts across both workers must be exact.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.kafka_support import WorkerFactory
from tests.reliability.support import (
    assigned,
    group_progress,
    live_surge,
    loss,
    owns_all,
    send_checked,
    stats,
    summary,
    wait_until,
    work_topics,
)

pytestmark = [pytest.mark.kafka, pytest.mark.reliability, pytest.mark.ci]

BRANDS = [f"brand{i:02d}" for i in range(16)]
N = 40_000
PARTITIONS = 4


@pytest.mark.timeout(480)
def test_worker_frozen_past_its_session_rejoins_without_stale_state(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    factory = WorkerFactory(kafka_bootstrap, tmp_path)
    t_start = time.monotonic()
    try:
        a = factory.start(checkpoint_seconds="2", partitions=str(PARTITIONS))
        b = factory.start(checkpoint_seconds="2", partitions=str(PARTITIONS))
        raw = factory.topic("raw")
        assert wait_until(lambda: bool(assigned(a)) and bool(assigned(b)), 120, 0.5)
        mentions = live_surge(BRANDS, N, surge_brand="brand05", seed=12)
        want = Counter(m["brand"] for m in mentions)
        records = [(m["brand"].encode(), orjson.dumps(m)) for m in mentions]
        sent: list[int] = []
        errors: list[BaseException] = []

        def produce() -> None:
            try:
                sent.append(send_checked(kafka_bootstrap, raw, records, pause=0.2))
            except BaseException as exc:
                errors.append(exc)

        def merged() -> dict[str, int]:
            out: Counter[str] = Counter()
            for w in (a, b):
                out.update(stats(w).get("brands", {}))
            return dict(out)

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        assert wait_until(lambda: sum(merged().values()) >= 0.3 * N, 240, 0.5)

        # Freeze the member with more detect partitions until the other owns everything.
        frozen, other = (
            (a, b)
            if sum(not s.startswith(raw) for s in assigned(a))
            >= sum(not s.startswith(raw) for s in assigned(b))
            else (b, a)
        )
        in_play = work_topics(a, b)
        had = {s for s in assigned(frozen) if not s.startswith(raw)}
        t_freeze = time.monotonic()
        os.killpg(frozen.proc.pid, signal.SIGSTOP)
        try:
            took_over = wait_until(lambda: owns_all(other, in_play, PARTITIONS), 120, 0.25)
            # Let the other worker count envelopes of the frozen one's partitions.
            time.sleep(4)
        finally:
            os.killpg(frozen.proc.pid, signal.SIGCONT)
        frozen_s = time.monotonic() - t_freeze

        producer.join(300)
        assert not errors, errors
        # Both members settle, the thawed one back in the groups.
        rejoined = wait_until(lambda: bool(assigned(frozen)) and bool(assigned(other)), 120, 0.5)
        got: dict[str, int] = {}
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            got = merged()
            if got == dict(want):
                break
            time.sleep(0.5)
        lost, extra = loss(want, got)
        back = {s for s in assigned(frozen) if not s.startswith(raw)}
        log_text = frozen.log_text()
        rebuilt = log_text.count("were counted elsewhere; restoring") + log_text.count(
            "another member counted it meanwhile; restoring"
        )
        app_id = factory.env()["CRISISWATCH_APP_ID"]
        progress = (
            {
                "ingest": group_progress(kafka_bootstrap, f"{app_id}-ingest", raw, PARTITIONS),
                "detect": group_progress(
                    kafka_bootstrap, app_id, f"{app_id}-scored-batches", PARTITIONS
                ),
            }
            if lost
            else "-"
        )
        summary(
            "worker-pause",
            sent=sum(sent),
            faults=1,
            lost=lost,
            extra=extra,
            frozen_s=f"{frozen_s:.1f}",
            got_back=len(had & back),
            rebuilt=rebuilt,
            progress=progress,
            elapsed_s=f"{time.monotonic() - t_start:.0f}",
        )
        assert took_over, (assigned(other), other.log_text()[-3000:])
        assert rejoined, frozen.log_text()[-3000:]
        assert a.alive() and b.alive()
        assert sent == [N]
        assert lost == 0 and extra == 0, {k: (want[k], got.get(k)) for k in want}
    finally:
        for w in factory.workers:
            if w.alive():
                os.killpg(w.proc.pid, signal.SIGCONT)
        factory.stop_all()
