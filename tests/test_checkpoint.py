"""A checkpoint taken at any point continues exactly like the engine it was taken from."""

from __future__ import annotations

import orjson
import pytest

from streams import checkpoint
from streams.detect import DetectEngine
from streams.ingest import Ingestor, RawRecord
from streams.sentiment import load_scorer
from streams.settings import Settings
from streams.synth import QUICK_SETTINGS, surge_stream

QUICK = Settings(**QUICK_SETTINGS)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    ing = Ingestor(QUICK, load_scorer("vader"))
    ms = surge_stream(["acme", "globex", "initech"], 6000, surge_brand="acme", seed=9)
    return [r.value for r in ing.process([RawRecord(None, orjson.dumps(m)) for m in ms]).scored]


@pytest.mark.parametrize("cut", [1, 500, 2950, 3400, 3700, 5999])
def test_restore_then_continue_equals_uninterrupted(docs: list[dict], cut: int) -> None:
    s = QUICK
    ref = DetectEngine(s)
    want = ref.add(docs).events + ref.flush()

    first = DetectEngine(s)
    got = first.add(docs[:cut]).events
    blob = checkpoint.encode(first, offset=cut - 1)
    second, offset = checkpoint.decode(s, blob)
    assert offset == cut - 1
    got += second.add(docs[cut:]).events + second.flush()
    assert got == want
    assert second.totals == ref.totals


def test_duplicates_are_counted_once(docs: list[dict]) -> None:
    eng = DetectEngine(QUICK)
    res1 = eng.add(docs[:3000])
    res2 = eng.add(docs[2500:3000])  # a producer retry of the last 500
    assert res2.duplicates == 500 and not res2.late
    assert sum(eng.totals.values()) == 3000
    assert res1.duplicates == 0


def test_garbage_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="bad magic"):
        checkpoint.decode(Settings(), b"hello")
    with pytest.raises(ValueError, match="corrupt"):
        checkpoint.decode(Settings(), checkpoint.MAGIC + b"xx")


def test_bucket_width_change_is_refused(docs: list[dict]) -> None:
    eng = DetectEngine(QUICK)
    eng.add(docs[:100])
    blob = checkpoint.encode(eng, 99)
    with pytest.raises(ValueError, match="CRISISWATCH_BUCKET_SECONDS"):
        checkpoint.decode(Settings(bucket_seconds=60), blob)


def test_closed_buckets_ids_are_capped_and_counts_stay_exact(docs: list[dict]) -> None:
    """dedupe_max_ids drops the oldest closed buckets' ids; open buckets keep theirs; counts exact."""
    cap = 400
    s = QUICK.model_copy(update={"dedupe_max_ids": cap})
    capped, ref = DetectEngine(s), DetectEngine(QUICK)
    for a in range(0, 5000, 250):
        capped.add(docs[a : a + 250])
        ref.add(docs[a : a + 250])
        nc = capped.next_close
        assert nc is not None
        closed = [k for k in capped.seen if k < nc]
        assert sum(len(capped.seen[k]) for k in closed) <= cap
        # Open buckets keep every id they counted.
        for k, ids in capped.seen.items():
            if k >= nc:
                assert len(ids) == len(ref.seen[k])
    assert capped.totals == ref.totals
    assert sum(len(v) for v in ref.seen.values()) > 2 * cap  # the cap did bite
    # A re-delivery into the open bucket is still a duplicate; one into a
    # closed bucket whose ids were dropped is late (not counted either way).
    again = capped.add(docs[4900:5000])
    assert again.duplicates + len(again.late) == 100
    assert capped.totals == ref.totals
    old = capped.add(docs[:50])
    assert old.duplicates == 0 and len(old.late) == 50
    assert capped.totals == ref.totals
