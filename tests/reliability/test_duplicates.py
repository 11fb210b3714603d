"""Duplicate delivery (a producer retry, a re-sent batch) never double-counts.

The detect engine drops a mention whose id it has already counted in the same
event-time bucket; the ids of a bucket are kept while it is open and for
``dedupe_buckets`` buckets after it closes (default 12 x 300 s = 1 hour of
event time after the bucket closed). A duplicate older than that window finds
its bucket closed and is dead-lettered as late: it is still not counted twice.

The stream here is *live* (created_at within the last 2.5 hours of the wall
clock), as production is, so the watermark and the idle flush behave as they
do in production.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from datetime import datetime

import orjson
import pytest

from streams.synth import surge_stream
from tests.kafka_support import WorkerFactory
from tests.reliability.support import (
    dead_letters,
    loss,
    metric,
    metrics_text,
    send_checked,
    summary,
    wait_counts,
)

pytestmark = [pytest.mark.kafka, pytest.mark.reliability, pytest.mark.ci]

BRANDS = [f"brand{i:02d}" for i in range(8)]
N = 8000


def created(m: dict) -> float:
    return datetime.fromisoformat(m["created_at"].replace("Z", "+00:00")).timestamp()


@pytest.mark.timeout(300)
def test_duplicate_delivery_is_counted_once(workers: WorkerFactory) -> None:
    now = time.time()
    start = now - 2.5 * 3600
    mentions = surge_stream(
        BRANDS, N, surge_brand=None, seed=12, start=start, duration_s=2.5 * 3600 - 300
    )
    values = [orjson.dumps(m) for m in mentions]
    records = [(m["brand"].encode(), v) for m, v in zip(mentions, values, strict=True)]
    want = Counter(m["brand"] for m in mentions)
    rng = random.Random(6)
    w = workers.start(checkpoint_seconds="1")
    raw = workers.topic("raw")

    # 1. Every record twice in a row, for 10% of the stream: what a producer
    #    retry after a lost acknowledgement writes.
    doubled: list[tuple[bytes | None, bytes]] = []
    retried = 0
    for rec in records:
        doubled.append(rec)
        if rng.random() < 0.1:
            doubled.append(rec)
            retried += 1
    # A producer without idempotence and with retries (what most clients run).
    send_checked(workers.bootstrap, raw, doubled, enable_idempotence=False, retries=5, acks=1)
    got = wait_counts(w, want, timeout=120)
    assert got == dict(want), loss(want, got)

    # 2. The worker is killed and restarted (dedupe state comes from the
    #    checkpoint), then a producer that restarted too re-sends the tail
    #    of what it had sent: ids inside the dedupe window.
    time.sleep(2.5)  # a checkpoint after the last batch
    w.stop(signal.SIGKILL)
    w = workers.start(checkpoint_seconds="1")
    window_s = 12 * 300  # dedupe_buckets x bucket_seconds (defaults)
    recent = [r for r, m in zip(records, mentions, strict=True) if created(m) > now - window_s / 2]
    resent = rng.sample(recent, min(1500, len(recent)))
    # 3. Ancient re-deliveries: ids far beyond the window (their buckets closed
    #    more than an hour of event time ago).
    old = [r for r, m in zip(records, mentions, strict=True) if created(m) < start + 600]
    resent_old = old[:200]
    send_checked(workers.bootstrap, raw, resent + resent_old)
    time.sleep(3)
    got = wait_counts(w, want, timeout=60, stall=20)
    lost, extra = loss(want, got)
    dropped = metric(
        metrics_text(w), "crisiswatch_records_processed_total", stage="detect", result="duplicate"
    )
    dls = dead_letters(workers)
    late = sum(
        1
        for d in dls
        if dict((k, bytes(v or b"")) for k, v in d.headers or ())
        .get("crisiswatch.error", b"")
        .startswith(b"late")
    )
    summary(
        "duplicates",
        sent=len(doubled) + len(resent) + len(resent_old),
        unique=N,
        duplicates_sent=retried + len(resent) + len(resent_old),
        faults=1,
        lost=lost,
        extra=extra,
        old_dup_deadlettered_late=late,
        worker_restarts=1,
        dropped_as_duplicate_after_restart=int(dropped),
    )
    assert w.alive(), w.log_text()[-3000:]
    assert extra == 0, {b: (want[b], got.get(b)) for b in want}
    assert lost == 0
    assert got == dict(want)
    # Beyond the window a duplicate is refused as late (never counted twice);
    # inside it, it is dropped without a dead letter.
    assert late <= len(resent_old)
