"""The enrichment rule shared by the ingest agent and `crisiswatch score`."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from schemas import validator
from streams.sentiment.enrich import enrich
from streams.sentiment.model import load

SCORED = validator("scored_mention.v1")
# 2026-11-25T11:00:00Z
EVENT_TIME = datetime(2026, 11, 25, 11, tzinfo=UTC).timestamp()


def mention(i: int, text: str = "love this", **extra: object) -> dict:
    return {
        "id": str(i),
        "brand": "acme",
        "text": text,
        "created_at": "2026-11-25T12:00:00+01:00",
        **extra,
    }


def test_scores_keeps_and_skips_in_order() -> None:
    ms = [
        mention(1, "worst service ever, never again"),
        mention(2, lang="es"),
        mention(3, sentiment=0.02),
        mention(4, "thanks so much!", lang="en-GB"),
        mention(5, lang=None),
        mention(6, lang=""),
        mention(7, lang="und"),
    ]
    before = copy.deepcopy(ms)
    out = enrich(ms, load())
    assert ms == before  # inputs untouched
    assert [m["id"] for m in out] == [str(i) for i in range(1, 8)]
    for m in out:
        SCORED.validate(m)
        assert m["event_time"] == EVENT_TIME
    assert out[0]["sentiment_label"] == "negative" and out[0]["sentiment"] < 0
    assert out[0]["sentiment_source"] == "crisiswatch-linear-v1"
    assert (out[1]["sentiment"], out[1]["sentiment_label"], out[1]["sentiment_source"]) == (
        None,
        "unscored",
        "skipped:lang=es",
    )
    assert (out[2]["sentiment"], out[2]["sentiment_label"], out[2]["sentiment_source"]) == (
        0.02,
        "neutral",
        "presented",
    )
    assert out[3]["sentiment_label"] == "positive"
    assert out[4]["sentiment_source"] == out[5]["sentiment_source"] == "crisiswatch-linear-v1"
    assert out[6]["sentiment_source"] == "skipped:lang=und"


def test_rescore_and_languages() -> None:
    ms = [mention(1, sentiment=0.9, text="awful, just awful"), mention(2, lang="fr")]
    out = enrich(ms, load(), keep_presented=False, languages=frozenset({"en", "fr"}))
    assert out[0]["sentiment_source"] == out[1]["sentiment_source"] == "crisiswatch-linear-v1"
    assert out[0]["sentiment_label"] == "negative"


def test_presented_kept_even_for_other_languages() -> None:
    out = enrich([mention(1, sentiment=-0.4, lang="de")], load())
    assert out[0]["sentiment_source"] == "presented" and out[0]["sentiment_label"] == "negative"


def test_empty_and_bad_time() -> None:
    assert enrich([], load()) == []
    with pytest.raises(ValueError):
        enrich([mention(1) | {"created_at": "yesterday"}], load())
