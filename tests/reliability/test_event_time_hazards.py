"""Single hostile timestamps must not stall a partition or make good mentions late.

These run the detect engine directly (no broker: the effect is in
streams/detect.py, and a worker-level run of the first case would block a
worker's event loop for hours). Both inputs pass ingest validation: the
schema accepts any four-digit year, and ingest only refuses created_at more
than ``max_future_seconds`` (1 h) ahead of the wall clock.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import pytest

from streams import detect
from streams.detect import DetectEngine
from streams.settings import Settings
from streams.synth import QUICK_SETTINGS
from tests.kafka_support import PROJECT
from tests.reliability.support import summary

pytestmark = [pytest.mark.kafka, pytest.mark.reliability, pytest.mark.ci]


def doc(i: int, t: float, brand: str = "acme") -> dict[str, object]:
    return {"id": f"m{i}", "brand": brand, "text": "fine", "event_time": t}


def test_ancient_first_mention_does_not_stall_the_partition() -> None:
    """A partition whose first mention says created_at 0001-01-01 (valid per the
    schema) must go on counting live mentions promptly."""
    code = textwrap.dedent(
        """
        import time
        from streams.detect import DetectEngine
        from streams.settings import Settings
        from streams.synth import QUICK_SETTINGS
        eng = DetectEngine(Settings(**QUICK_SETTINGS))
        ancient = -62135596800.0  # 0001-01-01T00:00:00Z
        eng.add([{"id": "a", "brand": "acme", "text": "x", "event_time": ancient}])
        t0 = time.time()
        res = eng.add([{"id": "b", "brand": "acme", "text": "x", "event_time": time.time()}])
        print("counted", eng.totals["acme"], "late", len(res.late), "took", time.time() - t0)
        """
    )
    t0 = time.monotonic()
    try:
        r = subprocess.run(
            [sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=20
        )
        out, stalled = r.stdout.strip(), False
    except subprocess.TimeoutExpired:
        out, stalled = "", True
    summary(
        "ancient-first-mention",
        sent=2,
        faults=1,
        lost=int(stalled),
        stalled=stalled,
        elapsed_s=f"{time.monotonic() - t0:.1f}",
        detail=out or "-",
    )
    assert not stalled, (
        "DetectEngine.add() did not return within 20 s after an ancient first mention: "
        "_close_until() closes every empty bucket between year 1 and now (~2e8 buckets)"
    )


def test_near_future_mention_does_not_make_live_mentions_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One mention 50 minutes ahead (from a fast clock) must not turn the live mentions
    after it into late dead letters: the stream's watermark never runs ahead of
    wall-clock time plus ``watermark_future_skew_seconds``.

    Live means arriving within the allowed lateness of their event time, as in
    production; mentions delayed by more than the allowed lateness are late by
    design, outlier or not. The worker's clock is pinned 5 s after a bucket
    boundary, so the live mentions of the last 30 s straddle it: with a skew as
    large as the lateness (the old default, 60 s each) the watermark reached the
    wall clock and closed the bucket before the boundary, which refused the live
    mentions after the outlier that fell before the boundary (200 of 300; this test
    failed only in the first seconds of a bucket while the clock ran free)."""
    s = Settings(**QUICK_SETTINGS)  # type: ignore[arg-type]
    now = (time.time() // s.bucket_seconds) * s.bucket_seconds + 5.0
    monkeypatch.setattr(detect, "time", SimpleNamespace(time=lambda: now))
    eng = DetectEngine(s)
    live = [doc(i, now - 30 + i * 0.05) for i in range(600)]
    eng.add(live[:300])
    eng.add([doc(10_000, now + 50 * 60, brand="skewed-clock")])
    res = eng.add(live[300:])
    counted = eng.totals["acme"]
    summary(
        "near-future-mention",
        sent=len(live) + 1,
        faults=1,
        lost=len(live) - counted,
        late_deadlettered=len(res.late),
    )
    assert counted == len(live), (
        f"{len(res.late)} of {len(live) - 300} live mentions after one mention 50 min ahead "
        "were refused as late: the watermark follows the largest event time seen"
    )
