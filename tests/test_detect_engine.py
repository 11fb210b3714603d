from __future__ import annotations

import orjson
import pytest

from detectors import make_detector
from detectors.combined import CrisisDetector
from schemas import validator
from streams.detect import DetectEngine
from streams.ingest import Ingestor, RawRecord
from streams.lifecycle import crisis_id
from streams.metrics import ObservedDetector
from streams.sentiment import load_scorer
from streams.settings import Settings
from streams.synth import QUICK_SETTINGS, surge_stream

BRANDS = ["acme", "globex", "initech", "umbrella"]


QUICK = Settings(**QUICK_SETTINGS)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ingestor() -> Ingestor:
    return Ingestor(QUICK, load_scorer("vader"))


def scored(ingestor: Ingestor, mentions: list[dict]) -> list[dict]:
    res = ingestor.process([RawRecord(None, orjson.dumps(m)) for m in mentions])
    assert not res.dead
    return [r.value for r in res.scored]


@pytest.mark.parametrize("seed", range(6))
def test_one_surge_gives_one_crisis_for_that_brand_only(ingestor: Ingestor, seed: int) -> None:
    docs = scored(ingestor, surge_stream(BRANDS, 10_000, surge_brand="globex", seed=seed))
    eng = DetectEngine(QUICK)
    events = eng.add(docs).events + eng.flush()
    assert [e["status"] for e in events if e["status"] == "opened"] == ["opened"]
    assert {e["brand"] for e in events} == {"globex"}
    assert events[-1]["status"] == "resolved"
    assert len({e["crisis_id"] for e in events}) == 1
    for e in events:
        validator("crisis_event.v1").validate(e)
    # Opened inside the surge (60% of 6 h = 03:36, 30 min long), not before it.
    assert "2026-01-01T03:30:00Z" <= events[0]["window_start"] <= "2026-01-01T04:00:00Z"


def test_no_surge_no_crisis(ingestor: Ingestor) -> None:
    docs = scored(ingestor, surge_stream(BRANDS, 10_000, surge_brand=None, seed=3))
    eng = DetectEngine(QUICK)
    assert eng.add(docs).events + eng.flush() == []


def test_batching_does_not_change_the_events(ingestor: Ingestor) -> None:
    docs = scored(ingestor, surge_stream(BRANDS, 6_000, surge_brand="acme", seed=4))
    one = DetectEngine(QUICK)
    whole = one.add(docs).events + one.flush()
    many = DetectEngine(QUICK)
    parts = []
    for i in range(0, len(docs), 137):
        parts += many.add(docs[i : i + 137]).events
    parts += many.flush()
    assert parts == whole and whole


@pytest.mark.parametrize("observed", [False, True], ids=["plain", "observed"])
def test_closing_many_buckets_at_once_changes_nothing(
    ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch, observed: bool
) -> None:
    """Buckets closed together are scored in one ``update_many`` call (the crisis
    detector's own kernel; also through the worker's metrics wrapper); the scores,
    events and the engine's state are those of closing them one by one."""
    settings = QUICK.model_copy(update={"detector": "crisis"})
    docs = scored(ingestor, surge_stream(BRANDS, 6_000, surge_brand="acme", seed=4))

    def engine() -> DetectEngine:
        det = make_detector("crisis")
        return DetectEngine(settings, ObservedDetector(det) if observed else det)  # type: ignore[arg-type]

    calls: list[int] = []
    real = CrisisDetector.update_many

    def spy(self, stats, timestamps):  # type: ignore[no-untyped-def]
        calls.append(len(timestamps))
        return real(self, stats, timestamps)

    monkeypatch.setattr(CrisisDetector, "update_many", spy)
    closed: dict[str, list[tuple[int, list[float]]]] = {"batched": [], "single": []}
    batched = engine()
    batched.on_close = lambda b, st, sc: closed["batched"].append((b, sc.tolist()))
    got = batched.add(docs).events + batched.flush()
    assert max(calls) > 1  # buckets were closed several at a time
    monkeypatch.undo()
    monkeypatch.setattr(
        DetectEngine,
        "_close_run",
        lambda self, closing: [e for b, bk in closing for e in self._close(b, bk)],
    )
    single = engine()
    single.on_close = lambda b, st, sc: closed["single"].append((b, sc.tolist()))
    want = single.add(docs).events + single.flush()
    assert got == want
    assert closed["batched"] == closed["single"] and len(closed["single"]) > 50
    assert max(max(sc) for _, sc in closed["single"]) > 0  # the scores are not all zero
    if observed:  # set on the detector itself, not on the wrapper
        assert "last_scores" not in vars(batched.detector)
    assert orjson.dumps(batched.to_state(), option=orjson.OPT_SERIALIZE_NUMPY) == orjson.dumps(
        single.to_state(), option=orjson.OPT_SERIALIZE_NUMPY
    )


def test_late_records_are_returned_not_counted() -> None:
    eng = DetectEngine(Settings(bucket_seconds=60, allowed_lateness_seconds=0))
    doc = {"id": "1", "brand": "a", "text": "t", "sentiment": 0.1, "sentiment_label": "positive"}
    eng.add([dict(doc, event_time=10.0), dict(doc, event_time=200.0)])
    res = eng.add([dict(doc, id="late", event_time=30.0)])
    assert [d["id"] for d in res.late] == ["late"]
    assert eng.totals["a"] == 2


def test_crisis_id_is_deterministic() -> None:
    assert crisis_id("acme", 42) == crisis_id("acme", 42)
    assert crisis_id("acme", 42) != crisis_id("acme", 43)
    assert crisis_id("acme", 42) != crisis_id("acme2", 42)
