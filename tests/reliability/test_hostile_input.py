"""Hostile input at volume (hypothesis-generated): zero crashes, every bad record
dead-lettered with a reason, every good one counted once.

The stream is live (created_at within the last 3 hours of the wall clock), as
production is. The hostile cases (see tests/reliability/hostile.py) are mixed
into it after the first good mentions of every partition. Mentions with an
ancient created_at are valid per the schema but their bucket closed long ago:
the detect stage dead-letters them with a reason starting ``late`` (counted as
dead-lettered, not lost). Re-delivered ids are counted once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import orjson
import pytest

from streams.synth import surge_stream
from tests.kafka_support import Worker, WorkerFactory
from tests.reliability.hostile import generate, mix
from tests.reliability.support import loss, send_checked, summary, wait_counts

pytestmark = [pytest.mark.kafka, pytest.mark.reliability, pytest.mark.ci]

BRANDS = [f"brand{i:02d}" for i in range(12)]
N_GOOD = 20_000
N_HOSTILE = 1_500


class Watch(threading.Thread):
    """Polls /health: the worker must stay alive and keep answering."""

    def __init__(self, w: Worker) -> None:
        super().__init__(daemon=True)
        self.w = w
        self.stop_event = threading.Event()
        self.died = False
        self.max_unresponsive = 0.0

    def run(self) -> None:
        last_ok = time.monotonic()
        while not self.stop_event.is_set():
            if not self.w.alive():
                self.died = True
                return
            try:
                self.w.get("/health")
                last_ok = time.monotonic()
            except (OSError, ValueError):
                self.max_unresponsive = max(self.max_unresponsive, time.monotonic() - last_ok)
            self.stop_event.wait(0.5)


def headers(msg: Any) -> dict[str, bytes]:
    return {k: bytes(v or b"") for k, v in msg.headers or ()}


@pytest.mark.timeout(420)
def test_hostile_input_never_crashes_and_every_record_is_accounted_for(
    workers: WorkerFactory,
) -> None:
    t_start = time.monotonic()
    hostile = generate(BRANDS, N_HOSTILE)
    now = time.time()
    good = surge_stream(
        BRANDS,
        N_GOOD,
        surge_brand="brand04",
        seed=4,
        start=now - 3 * 3600,
        duration_s=3 * 3600 - 600,
    )
    mixed = mix(good, hostile, head=1000)
    want = Counter(mixed.good.values())
    w = workers.start()
    pid = w.proc.pid
    watch = Watch(w)
    watch.start()
    sent = send_checked(workers.bootstrap, workers.topic("raw"), mixed.records)
    got = wait_counts(w, want, timeout=240, stall=60)
    n_dead = len(mixed.dead) + len(mixed.late)
    dls = workers.consume(workers.topic("deadletter"), until=n_dead, idle=10, timeout=120)
    time.sleep(2)
    watch.stop_event.set()
    watch.join(5)

    ingest_dead = [d for d in dls if headers(d).get("crisiswatch.stage") == b"ingest"]
    detect_dead = [d for d in dls if headers(d).get("crisiswatch.stage") == b"detect"]
    no_reason = [d for d in dls if not headers(d).get("crisiswatch.error")]
    want_dead = Counter(mixed.dead)
    got_dead = Counter(bytes(d.value or b"") for d in ingest_dead)
    missing_dead = sum((want_dead - got_dead).values())
    unexpected_dead = sum((got_dead - want_dead).values())
    late_ids = set()
    for d in detect_dead:
        if headers(d).get("crisiswatch.error", b"").startswith(b"late"):
            late_ids.add(str(orjson.loads(d.value)["id"]))
    lost, extra = loss(want, got)
    summary(
        "hostile-input",
        sent=sent,
        good=len(mixed.good),
        hostile=len(hostile),
        bad=len(mixed.dead),
        late=len(mixed.late),
        faults=len(hostile),
        lost=lost + missing_dead + len(mixed.late - late_ids),
        counted_lost=lost,
        extra=extra,
        deadlettered=len(dls),
        missing_deadletters=missing_dead,
        unexpected_deadletters=unexpected_dead + len(detect_dead) - len(late_ids & mixed.late),
        crashes=int(watch.died or not w.alive() or w.proc.pid != pid),
        max_unresponsive_s=f"{watch.max_unresponsive:.1f}",
        elapsed_s=f"{time.monotonic() - t_start:.0f}",
    )
    print("hostile kinds:", dict(sorted(mixed.kinds.items())))
    assert not watch.died and w.alive(), w.log_text()[-3000:]
    assert not no_reason
    assert lost == 0 and extra == 0, {
        b: (want[b], got.get(b)) for b in want if want[b] != got.get(b)
    }
    assert got == dict(want)
    assert missing_dead == 0 and unexpected_dead == 0
    assert late_ids == mixed.late
    assert len(dls) == n_dead
