"""Ingest stage: decode, validate and score a batch of raw mention records.

Pure (no Kafka): the ingest agent, the backtest and tests call
:meth:`Ingestor.process` with raw records and get back scored mentions and
dead letters. Every input record comes out exactly once, as one or the
other.

>>> from streams.settings import Settings
>>> from streams.sentiment import load_scorer
>>> ing = Ingestor(Settings(), load_scorer("vader"))
>>> ok = b'{"id":"1","brand":"acme","text":"I love it","created_at":"2026-01-01T00:00:00Z"}'
>>> res = ing.process([RawRecord(b"acme", ok), RawRecord(None, b"{oops")])
>>> res.scored[0].value["sentiment_label"], res.dead[0].reason[:24]
('positive', 'invalid JSON: unexpected')
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas import SchemaError, parse_rfc3339, validator

from .sentiment import SentimentScorer
from .sentiment.enrich import enrich
from .settings import Settings

STAGE = "ingest"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read from ``mentions.raw``."""

    key: bytes | None
    value: bytes | None
    topic: str = ""
    partition: int = -1
    offset: int = -1
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be processed, with the reason, ready to publish."""

    record: RawRecord
    reason: str
    stage: str = STAGE

    def headers(self) -> list[tuple[str, bytes]]:
        """Original headers plus ``crisiswatch.*`` headers that say why and where from."""
        extra = [
            ("crisiswatch.error", self.reason.encode("utf-8", "replace")[:1000]),
            ("crisiswatch.stage", self.stage.encode()),
            ("crisiswatch.source.topic", self.record.topic.encode()),
            ("crisiswatch.source.partition", str(self.record.partition).encode()),
            ("crisiswatch.source.offset", str(self.record.offset).encode()),
        ]
        return [*self.record.headers, *extra]


@dataclass(frozen=True, slots=True)
class ScoredRecord:
    brand: str
    value: dict[str, Any]
    source: RawRecord

    def encode(self) -> bytes:
        return orjson.dumps(self.value)


@dataclass(slots=True)
class IngestResult:
    scored: list[ScoredRecord] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


class Ingestor:
    """Validates and scores batches; built once per worker."""

    def __init__(self, settings: Settings, scorer: SentimentScorer) -> None:
        self.settings = settings
        self.scorer = scorer
        self._validator = validator("mention.v1")

    def decode(self, rec: RawRecord, now: float) -> dict[str, Any] | DeadLetter:
        """Parse and validate one record; a DeadLetter says why it was refused."""
        if rec.value is None:
            return DeadLetter(rec, "empty record (null value)")
        if len(rec.value) > self.settings.max_text_bytes * 4 + 16_384:
            return DeadLetter(
                rec,
                f"record too large: {len(rec.value)} bytes "
                f"(text is limited to {self.settings.max_text_bytes} bytes)",
            )
        try:
            doc = orjson.loads(rec.value)
        except orjson.JSONDecodeError as exc:
            return DeadLetter(rec, f"invalid JSON: {exc}")
        if not isinstance(doc, dict):
            return DeadLetter(rec, f"mention must be a JSON object, got {type(doc).__name__}")
        try:
            self._validator.validate(doc)
        except SchemaError as exc:
            return DeadLetter(rec, str(exc))
        if len(doc["text"].encode("utf-8", "surrogatepass")) > self.settings.max_text_bytes:
            return DeadLetter(rec, f"text longer than {self.settings.max_text_bytes} bytes")
        try:
            event_time = parse_rfc3339(doc["created_at"]).timestamp()
        except (ValueError, OverflowError) as exc:
            return DeadLetter(rec, f"mention.v1: created_at: {exc}")
        if event_time > now + self.settings.max_future_seconds:
            return DeadLetter(
                rec,
                f"created_at {doc['created_at']} is more than "
                f"{self.settings.max_future_seconds}s in the future",
            )
        return doc

    def process(self, records: Sequence[RawRecord], now: float | None = None) -> IngestResult:
        now = time.time() if now is None else now
        result = IngestResult()
        docs: list[tuple[dict[str, Any], RawRecord]] = []
        for rec in records:
            out = self.decode(rec, now)
            if isinstance(out, DeadLetter):
                result.dead.append(out)
            else:
                docs.append((out, rec))
        scored = enrich(
            [d for d, _ in docs], self.scorer, keep_presented=self.settings.keep_presented_sentiment
        )
        result.scored = [
            ScoredRecord(d["brand"], d, r) for d, (_, r) in zip(scored, docs, strict=True)
        ]
        return result
