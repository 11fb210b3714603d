"""Mention -> scored mention: the one enrichment rule, shared by the ingest
agent and ``crisiswatch score``.

- A mention that arrives with a ``sentiment`` keeps it (source
  ``presented``) unless ``keep_presented`` is false; its label follows
  VADER's convention (``<= -0.05`` negative, ``>= 0.05`` positive).
- A mention whose ``lang`` is set and whose primary subtag is not in
  ``languages`` is not scored (``sentiment`` null, label ``unscored``,
  source ``skipped:lang=<tag>``). The language is never guessed: a missing
  or empty ``lang`` is scored.
- Everything else is scored by ``scorer`` in one vectorised call.
- ``event_time`` is ``created_at`` as Unix seconds.

>>> from streams.sentiment.vader import VaderScorer
>>> ms = [
...     {"id": "1", "brand": "acme", "text": "love it", "created_at": "2026-01-01T00:00:00Z"},
...     {"id": "2", "brand": "acme", "text": "nul", "created_at": "2026-01-01T00:00:01Z", "lang": "fr"},
...     {"id": "3", "brand": "acme", "text": "meh", "created_at": "2026-01-01T00:00:02Z", "sentiment": -0.5},
... ]
>>> [(m["sentiment_label"], m["sentiment_source"], m["event_time"]) for m in enrich(ms, VaderScorer())]
[('positive', 'vader-3.3.2', 1767225600.0), ('unscored', 'skipped:lang=fr', 1767225601.0), ('negative', 'presented', 1767225602.0)]
"""

from __future__ import annotations

from typing import Any

from schemas import parse_rfc3339

from .base import LABELS, ScoreBatch, SentimentScorer

__all__ = [
    "PRESENTED_NEUTRAL_BAND",
    "apply_scores",
    "classify_in_place",
    "enrich",
    "language_scored",
]

#: Label of a presented score: VADER's convention, the one producers most often use.
PRESENTED_NEUTRAL_BAND = 0.05


def language_scored(lang: object, languages: frozenset[str]) -> bool:
    """Whether a mention with this ``lang`` tag is scored.

    >>> language_scored("en-GB", frozenset({"en"})), language_scored("es", frozenset({"en"}))
    (True, False)
    >>> language_scored(None, frozenset({"en"})), language_scored("", frozenset({"en"}))
    (True, True)
    """
    if not lang or not isinstance(lang, str) or lang in languages:
        return True
    primary = lang.replace("_", "-").split("-", 1)[0].strip().lower()
    return not primary or primary in languages


def _presented_label(value: float) -> str:
    if value <= -PRESENTED_NEUTRAL_BAND:
        return "negative"
    if value >= PRESENTED_NEUTRAL_BAND:
        return "positive"
    return "neutral"


def classify_in_place(
    docs: list[dict[str, Any]],
    *,
    keep_presented: bool = True,
    languages: frozenset[str] = frozenset({"en"}),
) -> list[int]:
    """Apply the presented-score and language rules to ``docs`` in place.

    Returns the indices still to be scored by a model. The ingest hot path
    calls this directly on its freshly decoded documents (no copies).
    """
    pending: list[int] = []
    for i, d in enumerate(docs):
        presented = d.get("sentiment")
        if keep_presented and presented is not None:
            v = float(presented)
            d["sentiment"] = v
            d["sentiment_label"] = _presented_label(v)
            d["sentiment_source"] = "presented"
        elif not language_scored(d.get("lang"), languages):
            d["sentiment"] = None
            d["sentiment_label"] = "unscored"
            d["sentiment_source"] = f"skipped:lang={d['lang']}"
        else:
            pending.append(i)
    return pending


def apply_scores(
    docs: list[dict[str, Any]], pending: list[int], batch: ScoreBatch, source: str
) -> None:
    """Write a scorer's batch for the ``pending`` documents into them."""
    # tolist() gives Python floats/ints, which every JSON encoder takes.
    for i, s, lab in zip(pending, batch.scores.tolist(), batch.labels.tolist(), strict=True):
        d = docs[i]
        d["sentiment"] = s
        d["sentiment_label"] = LABELS[lab]
        d["sentiment_source"] = source


def enrich(
    mentions: list[dict[str, Any]],
    scorer: SentimentScorer,
    *,
    keep_presented: bool = True,
    languages: frozenset[str] = frozenset({"en"}),
) -> list[dict[str, Any]]:
    """Scored copies of validated mentions, in order (the inputs are not modified).

    Raises ``ValueError`` if a ``created_at`` is not RFC 3339; validate with
    ``schemas.validator("mention.v1")`` first.
    """
    out = [dict(m, event_time=parse_rfc3339(m["created_at"]).timestamp()) for m in mentions]
    pending = classify_in_place(out, keep_presented=keep_presented, languages=languages)
    if pending:
        apply_scores(
            out, pending, scorer.score([str(out[i]["text"]) for i in pending]), scorer.name
        )
    return out
