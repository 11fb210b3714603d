from __future__ import annotations

import orjson
import pytest

from streams.ingest import Ingestor, RawRecord
from streams.sentiment import load_scorer
from streams.settings import Settings
from tests.malformed import GOOD, malformed


@pytest.fixture(scope="module")
def ingestor() -> Ingestor:
    return Ingestor(Settings(), load_scorer("vader"))


def rec(doc: dict | bytes, offset: int = 0) -> RawRecord:
    value = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return RawRecord(b"acme", value, "mentions.raw", 3, offset, (("trace", b"abc"),))


def test_every_malformed_record_becomes_a_dead_letter_with_its_reason(ingestor: Ingestor) -> None:
    bad = malformed(100)
    res = ingestor.process(
        [RawRecord(k, v, "mentions.raw", 0, i) for i, (k, v, _) in enumerate(bad)]
    )
    assert res.scored == []
    assert len(res.dead) == 100
    for d, (_, value, reason) in zip(res.dead, bad, strict=True):
        assert d.record.value == value  # original bytes kept
        assert reason in d.reason, (reason, d.reason)
        hdrs = dict(d.headers())
        assert hdrs["crisiswatch.stage"] == b"ingest"
        assert hdrs["crisiswatch.source.topic"] == b"mentions.raw"
        assert int(hdrs["crisiswatch.source.offset"]) == d.record.offset


def test_good_and_bad_records_are_partitioned_exactly(ingestor: Ingestor) -> None:
    good = [dict(GOOD, id=str(i), text="I love this") for i in range(50)]
    recs = [rec(g, i) for i, g in enumerate(good)] + [rec(b"nope", 99), RawRecord(b"k", None)]
    res = ingestor.process(recs)
    assert [s.value["id"] for s in res.scored] == [str(i) for i in range(50)]
    assert len(res.dead) == 2
    assert "null value" in res.dead[1].reason


def test_scored_mention_matches_its_schema_and_keeps_unknown_fields(ingestor: Ingestor) -> None:
    from schemas import validator

    doc = dict(
        GOOD, text="This is terrible, I hate it", custom={"campaign": "x"}, platform="reddit"
    )
    (s,) = ingestor.process([rec(doc)]).scored
    validator("scored_mention.v1").validate(s.value)
    assert s.value["custom"] == {"campaign": "x"}
    assert s.value["sentiment_label"] == "negative"
    assert s.value["sentiment_source"].startswith("vader")
    assert s.value["event_time"] == 1767225600.0


def test_presented_sentiment_is_kept_and_other_languages_are_not_guessed(
    ingestor: Ingestor,
) -> None:
    pre = dict(GOOD, text="I love it", sentiment=-0.8)
    fr = dict(GOOD, text="c'est nul", lang="fr")
    res = ingestor.process([rec(pre), rec(fr)])
    a, b = (s.value for s in res.scored)
    assert (a["sentiment"], a["sentiment_label"], a["sentiment_source"]) == (
        -0.8,
        "negative",
        "presented",
    )
    assert (b["sentiment"], b["sentiment_label"], b["sentiment_source"]) == (
        None,
        "unscored",
        "skipped:lang=fr",
    )


def test_rescoring_can_be_forced() -> None:
    ing = Ingestor(Settings(keep_presented_sentiment=False), load_scorer("vader"))
    (s,) = ing.process([rec(dict(GOOD, text="I love it", sentiment=-0.8))]).scored
    assert s.value["sentiment"] > 0 and s.value["sentiment_source"] != "presented"
