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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas import SchemaError, parse_rfc3339, schema, validator

from .sentiment import SentimentScorer
from .sentiment.enrich import apply_scores, classify_in_place
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


#: Languages the scorers understand (enrich's default).
_LANGUAGES = frozenset({"en"})


class Ingestor:
    """Validates and scores batches; built once per worker."""

    def __init__(self, settings: Settings, scorer: SentimentScorer) -> None:
        self.settings = settings
        self.scorer = scorer
        self._validator = validator("mention.v1")
        self._is_valid: Callable[[Any], bool] = self._validator.is_valid
        self._max_text = settings.max_text_bytes
        self._max_record = settings.max_text_bytes * 4 + 16_384
        #: created_at -> event time of the last date-time the fast validator checked.
        self._last_time: tuple[str, float] | None = None
        try:
            import jsonschema_rs

            # The same schema and format rule as schemas.validator (so the same
            # verdicts), but the date-time check keeps the time it parsed:
            # decoding then needs no second parse of created_at.
            fast = jsonschema_rs.validator_for(
                schema("mention.v1"),
                formats={"date-time": self._check_time},
                validate_formats=True,
            )
            self._is_valid = fast.is_valid
        except ImportError:  # the reference validator alone is slower, not wrong
            pass

    def _check_time(self, value: str) -> bool:
        try:
            self._last_time = (value, parse_rfc3339(value).timestamp())
        except (ValueError, OverflowError):
            return False
        return True

    def decode(self, rec: RawRecord, now: float) -> dict[str, Any] | DeadLetter:
        """Parse and validate one record; a DeadLetter says why it was refused."""
        out = self._decode(rec.value, now)
        if isinstance(out, str):
            return DeadLetter(rec, out)
        return out[0]

    def _decode(self, value: bytes | None, now: float) -> tuple[dict[str, Any], float] | str:
        """(document, event time) of a valid mention, or the reason it is refused."""
        if value is None:
            return "empty record (null value)"
        if len(value) > self._max_record:
            return (
                f"record too large: {len(value)} bytes "
                f"(text is limited to {self.settings.max_text_bytes} bytes)"
            )
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return f"invalid JSON: {exc}"
        if type(doc) is not dict:
            return f"mention must be a JSON object, got {type(doc).__name__}"
        if not self._is_valid(doc):
            try:
                self._validator.validate(doc)  # the reference validator says why
            except SchemaError as exc:
                return str(exc)
        text = doc["text"]
        # A str of n code points encodes to at most 4n UTF-8 bytes: most texts
        # need no encoding to know they are short enough.
        if len(text) * 4 > self._max_text and (
            len(text.encode("utf-8", "surrogatepass")) > self._max_text
        ):
            return f"text longer than {self._max_text} bytes"
        created = doc["created_at"]
        last = self._last_time
        if last is not None and last[0] == created:
            event_time = last[1]
        else:
            try:
                event_time = parse_rfc3339(created).timestamp()
            except (ValueError, OverflowError) as exc:
                return f"mention.v1: created_at: {exc}"
        if event_time > now + self.settings.max_future_seconds:
            return (
                f"created_at {doc['created_at']} is more than "
                f"{self.settings.max_future_seconds}s in the future"
            )
        return doc, event_time

    def decode_batch(
        self,
        values: Sequence[bytes | None],
        dead: Callable[[int, str], None],
        now: float | None = None,
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Valid documents (event_time set) and their indices; ``dead(i, reason)`` for the rest.

        The batch path of the ingest service: no per-record wrapper objects,
        the record is only looked at again if it is refused.
        """
        now = time.time() if now is None else now
        docs: list[dict[str, Any]] = []
        index: list[int] = []
        dec = self._decode
        for i, value in enumerate(values):
            out = dec(value, now)
            if isinstance(out, str):
                dead(i, out)
                continue
            doc, t = out
            # In place: the document was just decoded and belongs to this batch.
            # Same key order as enrich's copy (event_time first, then sentiment).
            doc["event_time"] = t
            docs.append(doc)
            index.append(i)
        return docs, index

    def enrich(self, docs: list[dict[str, Any]]) -> list[int]:
        """Apply presented and language rules in place; the indices still to be scored.

        :func:`streams.sentiment.enrich.classify_in_place`, the rule
        :func:`~streams.sentiment.enrich.enrich` uses too, without its copy of
        every mention and its second parse of ``created_at``.
        """
        return classify_in_place(
            docs, keep_presented=self.settings.keep_presented_sentiment, languages=_LANGUAGES
        )

    def apply_scores(
        self, docs: list[dict[str, Any]], pending: list[int], texts_scored: Any
    ) -> None:
        """Write a :class:`ScoreBatch` for ``pending`` into the documents."""
        apply_scores(docs, pending, texts_scored, self.scorer.name)

    def score_pending(self, docs: list[dict[str, Any]], pending: list[int]) -> Any:
        """Score the texts of ``pending`` (releases the GIL in the numba kernels)."""
        return self.scorer.score([str(docs[i]["text"]) for i in pending])

    def process(self, records: Sequence[RawRecord], now: float | None = None) -> IngestResult:
        result = IngestResult()
        docs, index = self.decode_batch(
            [r.value for r in records],
            lambda i, reason: result.dead.append(DeadLetter(records[i], reason)),
            now,
        )
        pending = self.enrich(docs)
        if pending:
            self.apply_scores(docs, pending, self.score_pending(docs, pending))
        result.scored = [
            ScoredRecord(d["brand"], d, records[i]) for d, i in zip(docs, index, strict=True)
        ]
        return result
