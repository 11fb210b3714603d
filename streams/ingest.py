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
from typing import Annotated, Any

import msgspec
import numpy as np
import numpy.typing as npt
import orjson

from schemas import SchemaError, parse_rfc3339, schema, validator
from schemas.rfc3339 import seconds

from .columns import LABEL_NAMES, UNSCORED, Mentions, encode_brands
from .sentiment import ScoreBatch, SentimentScorer
from .sentiment.enrich import PRESENTED_NEUTRAL_BAND, language_scored
from .settings import Settings
from .splice import splice

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
#: author_followers beyond a signed 64-bit integer saturate in the columns (reach is a ranking).
MAX_REACH = 2**63 - 1
#: Fields ingest writes: a mention that already has one is re-encoded as a dict, not spliced.
_WRITTEN = ("event_time", "sentiment", "sentiment_label", "sentiment_source")


class _Mention(msgspec.Struct, gc=False):
    """mention.v1 as msgspec decodes it, with types and lengths checked in C.

    A fast path only: it must accept nothing the schema refuses (the property
    tests in tests/test_ingest.py hold it to that), and whatever it refuses
    or is unsure of goes to the reference path, which decides and says why.
    The brand pattern (cached per brand) and ``created_at`` (numba, see
    :mod:`schemas.rfc3339`) are checked after decoding. Unknown fields are
    skipped here and carried through in the original bytes.
    """

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    brand: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    text: Annotated[str, msgspec.Meta(max_length=65536)]
    created_at: str
    author: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    author_followers: Annotated[int, msgspec.Meta(ge=0)] | None = None
    platform: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    lang: Annotated[str, msgspec.Meta(max_length=16)] | None = None
    url: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    in_reply_to: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    sentiment: Annotated[float, msgspec.Meta(ge=-1, le=1)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    # Present only to notice them: a producer-set value is overwritten.
    event_time: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    sentiment_label: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    sentiment_source: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


def _from_doc(doc: dict[str, Any]) -> _Mention:
    """A mention the reference path accepted, as a row (no second validation)."""
    followers = doc.get("author_followers")
    return _Mention(
        id=doc["id"],
        brand=doc["brand"],
        text=doc["text"],
        created_at=doc["created_at"],
        author=doc.get("author"),
        author_followers=None if followers is None else min(int(followers), MAX_REACH),
        platform=doc.get("platform"),
        lang=doc.get("lang"),
        sentiment=doc.get("sentiment", msgspec.UNSET),
    )


def _presented_label(value: float) -> int:
    if value <= -PRESENTED_NEUTRAL_BAND:
        return 0
    if value >= PRESENTED_NEUTRAL_BAND:
        return 2
    return 1


@dataclass(slots=True)
class IngestBatch:
    """The valid mentions of one input batch, column by column, on their way to being scored.

    Row ``k`` is the input record ``index[k]``; rows keep the input order.
    """

    rows: list[_Mention]
    index: list[int]
    event_time: npt.NDArray[np.float64]
    raw: list[bytes]
    #: Rows whose output is built from the decoded dict (the reference path's, or
    #: mentions carrying a field ingest writes): row -> document.
    docs: dict[int, dict[str, Any]]
    sentiment: npt.NDArray[np.float64]
    label: npt.NDArray[np.int8]
    #: sentiment_source of rows not scored by the model (presented, skipped:...).
    source: dict[int, str]
    #: Rows the model scores.
    pending: npt.NDArray[np.intp]
    model: str = ""

    def __len__(self) -> int:
        return len(self.rows)

    def texts(self) -> list[str]:
        rows = self.rows
        if len(self.pending) == len(rows):  # the common case: every row is scored
            return [r.text for r in rows]
        return [rows[k].text for k in self.pending.tolist()]

    def apply(self, scores: ScoreBatch, model: str) -> None:
        """Write the model's scores of the pending rows."""
        self.sentiment[self.pending] = scores.scores
        self.label[self.pending] = scores.labels
        self.model = model

    def mentions(self) -> Mentions:
        """The batch as columns for the detect stage (a subset: :meth:`Mentions.take`)."""
        rows, times, sent, label = self.rows, self.event_time, self.sentiment, self.label
        brands, bcode = encode_brands([r.brand for r in rows])
        followers = [r.author_followers for r in rows]
        if max(filter(None, followers), default=0) > MAX_REACH:
            followers = [None if f is None else min(f, MAX_REACH) for f in followers]
        return Mentions(
            brands,
            bcode,
            [r.id for r in rows],
            times,
            sent,
            label,
            [r.created_at for r in rows],
            [r.text for r in rows],
            [r.author for r in rows],
            followers,
            [r.platform for r in rows],
        )

    def scored_values(self) -> list[bytes]:
        """ScoredMention v1 bytes per row: the input object with the four fields ingest writes.

        Most rows are spliced (:mod:`streams.splice`, one numba pass for the
        batch): the original bytes (unknown fields and all) minus the closing
        brace, plus the new fields. Rows in ``docs`` are encoded from the dict
        with the fields set in place, as :func:`streams.sentiment.enrich.enrich` does.
        """
        docs, source, model = self.docs, self.source, self.model
        # Numbers formatted by orjson in one call per column (null for NaN).
        times = orjson.dumps(self.event_time, option=orjson.OPT_SERIALIZE_NUMPY)
        sents = orjson.dumps(self.sentiment, option=orjson.OPT_SERIALIZE_NUMPY)
        codes = self.label.tolist()
        # One tail per (label, source) of the batch: usually the model's four.
        kinds: dict[tuple[int, str], int] = {(c, model): c for c in range(len(LABEL_NAMES))}
        if source:
            tail_of: Any = [
                kinds.setdefault((c, source.get(k, model)), len(kinds)) for k, c in enumerate(codes)
            ]
        else:
            tail_of = self.label
        tails = [
            b',"sentiment_label":"%b","sentiment_source":%b}'
            % (LABEL_NAMES[c].encode(), orjson.dumps(src))
            for c, src in kinds
        ]
        out = splice(self.raw, times, sents, tails, tail_of)
        for k, d in docs.items():
            d["event_time"] = float(self.event_time[k])
            s = float(self.sentiment[k])
            d["sentiment"] = None if s != s else s
            d["sentiment_label"] = LABEL_NAMES[codes[k]]
            d["sentiment_source"] = source.get(k, model)
            out[k] = orjson.dumps(d)
        return out


class Ingestor:
    """Validates and scores batches; built once per worker."""

    def __init__(self, settings: Settings, scorer: SentimentScorer) -> None:
        self.settings = settings
        self.scorer = scorer
        self._validator = validator("mention.v1")
        self._is_valid: Callable[[Any], bool] = self._validator.is_valid
        self._max_text = settings.max_text_bytes
        self._max_record = settings.max_text_bytes * 4 + 16_384
        self._fast = msgspec.json.Decoder(_Mention)
        #: brand -> whether it matches mention.v1's brand pattern (brands are few).
        self._brand_ok: dict[str, bool] = {}
        #: lang -> whether mentions in it are scored.
        self._lang_ok: dict[str | None, bool] = {}
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
        """The reference path: (document, event time) of a valid mention, or why it is refused."""
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

    def _brand_valid(self, brand: str) -> bool:
        ok = self._brand_ok.get(brand)
        if ok is None:
            if len(self._brand_ok) > 100_000:  # bounded: brands are many, not unbounded
                self._brand_ok.clear()
            probe = {"id": "x", "brand": brand, "text": "", "created_at": "2026-01-01T00:00:00Z"}
            ok = self._brand_ok[brand] = bool(self._is_valid(probe))
        return ok

    def _lang_scored(self, lang: str | None) -> bool:
        ok = self._lang_ok.get(lang)
        if ok is None:
            if len(self._lang_ok) > 10_000:
                self._lang_ok.clear()
            ok = self._lang_ok[lang] = language_scored(lang, _LANGUAGES)
        return ok

    def decode_columns(
        self,
        values: Sequence[bytes | None],
        dead: Callable[[int, str], None],
        now: float | None = None,
    ) -> IngestBatch:
        """Decode, validate and classify a batch; ``dead(i, reason)`` for each refused record.

        The fast path (msgspec, cached brand checks, numba date-times) decides
        every record it is sure of; the others take the reference path
        (orjson + the schema), which accepts them or says why not. Every
        input record ends up exactly once: a row of the batch, or a call of
        ``dead``.
        """
        now = time.time() if now is None else now
        dec = self._fast.decode
        max_record = self._max_record
        rows: list[_Mention | None] = []
        slow: list[int] = []
        try:
            # The common case in one C-level pass; any odd record and the batch
            # is decoded record by record below.
            if max(map(len, values), default=0) <= max_record:  # type: ignore[arg-type]
                rows = list(map(dec, values))  # type: ignore[arg-type]
        except Exception:
            rows = []
        for i, value in enumerate(values if not rows else ()):
            if value is None or len(value) > max_record:
                slow.append(i)
                rows.append(None)
                continue
            try:
                rows.append(dec(value))
            except Exception:  # anything odd (even a RecursionError): the reference decides
                slow.append(i)
                rows.append(None)
        if slow:
            fast = [i for i, r in enumerate(rows) if r is not None]
            fast_rows: list[_Mention] = [rows[i] for i in fast]  # type: ignore[misc]
        else:  # the common case: every record decoded
            fast, fast_rows = list(range(len(rows))), rows  # type: ignore[assignment]
        times = np.zeros(len(values))
        if fast:
            ts, ok = seconds([r.created_at for r in fast_rows])
            ok &= ts <= now + self.settings.max_future_seconds
            brands = [r.brand for r in fast_rows]
            bad = {b for b in set(brands) if not self._brand_valid(b)}
            if bad:
                ok &= np.fromiter((b not in bad for b in brands), dtype=np.bool_, count=len(brands))
            # Below max_text / 4 characters no text can exceed the byte limit.
            lengths = list(map(len, [r.text for r in fast_rows]))
            if max(lengths) > self._max_text // 4:
                ok &= np.array(lengths) <= self._max_text // 4
            for j in np.flatnonzero(~ok).tolist():
                slow.append(fast[j])
                rows[fast[j]] = None
            if len(fast) == len(times):
                times[:] = ts
            else:
                times[fast] = ts
        docs_by_input: dict[int, dict[str, Any]] = {}
        refused = False
        for i in sorted(slow):  # dead letters in input order
            out = self._decode(values[i], now)
            if isinstance(out, str):
                dead(i, out)
                refused = True
                continue
            doc, t = out
            rows[i] = _from_doc(doc)
            docs_by_input[i] = doc
            times[i] = t
        if refused:
            index = [i for i, r in enumerate(rows) if r is not None]
            kept = [rows[i] for i in index]
            raw = [values[i] for i in index]
        else:
            index, kept, raw = list(range(len(rows))), rows, list(values)
        n = len(index)
        docs: dict[int, dict[str, Any]] = {}
        if docs_by_input:
            for k, i in enumerate(index):
                d = docs_by_input.get(i)
                if d is not None:
                    docs[k] = d
        unset = msgspec.UNSET
        for k in [
            k
            for k, r in enumerate(kept)
            if r.sentiment is not unset  # type: ignore[union-attr]
            or r.event_time is not unset  # type: ignore[union-attr]
            or r.sentiment_label is not unset  # type: ignore[union-attr]
            or r.sentiment_source is not unset  # type: ignore[union-attr]
        ]:
            if k not in docs:
                docs[k] = orjson.loads(raw[k])  # type: ignore[arg-type]
        batch = IngestBatch(
            kept,  # type: ignore[arg-type]
            index,
            times[index],
            raw,  # type: ignore[arg-type]
            docs,
            np.full(n, np.nan),
            np.zeros(n, dtype=np.int8),
            {},
            np.zeros(0, dtype=np.intp),
        )
        self._classify(batch)
        return batch

    def _classify(self, batch: IngestBatch) -> None:
        """The presented-score and language rules of :mod:`streams.sentiment.enrich`, per row."""
        keep = self.settings.keep_presented_sentiment
        rows = batch.rows
        unset = msgspec.UNSET
        langs = [r.lang for r in rows]
        skipped = {lang for lang in set(langs) if not self._lang_scored(lang)}
        given = [r.sentiment for r in rows]
        special = (keep and given.count(unset) + given.count(None) < len(given)) or skipped
        if not special:  # the common case: the model scores every row
            batch.pending = np.arange(len(rows), dtype=np.intp)
            return
        pending: list[int] = []
        sent, label, source = batch.sentiment, batch.label, batch.source
        for k, r in enumerate(rows):
            presented = given[k]
            if keep and presented is not None and presented is not unset:
                v = float(presented)
                sent[k] = v
                label[k] = _presented_label(v)
                source[k] = "presented"
            elif langs[k] in skipped:
                label[k] = UNSCORED
                source[k] = f"skipped:lang={r.lang}"
            else:
                pending.append(k)
        batch.pending = np.asarray(pending, dtype=np.intp)

    def warm_up(self) -> None:
        """Run every kernel of the hot path once: numba loads its compiled code (and
        initialises itself) at the first call, hundreds of milliseconds that would
        otherwise land on the first batch of mentions."""
        probe = b'{"id":"w","brand":"w","text":"warm up","created_at":"2026-01-01T00:00:00Z"}'
        batch = self.prepare([probe], lambda i, reason: None)
        batch.mentions()
        batch.scored_values()

    def score_batch(self, batch: IngestBatch) -> ScoreBatch | None:
        """Score the pending rows (thread-safe; the numba kernels release the GIL)."""
        if not len(batch.pending):
            return None
        return self.scorer.score(batch.texts())

    def prepare(
        self,
        values: Sequence[bytes | None],
        dead: Callable[[int, str], None],
        now: float | None = None,
    ) -> IngestBatch:
        """:meth:`decode_columns` and scoring in one call (the backtest and tests)."""
        batch = self.decode_columns(values, dead, now)
        scores = self.score_batch(batch)
        if scores is not None:
            batch.apply(scores, self.scorer.name)
        return batch

    def process(self, records: Sequence[RawRecord], now: float | None = None) -> IngestResult:
        """Records in, scored mentions (as dicts) and dead letters out: the convenient form."""
        result = IngestResult()
        batch = self.prepare(
            [r.value for r in records],
            lambda i, reason: result.dead.append(DeadLetter(records[i], reason)),
            now,
        )
        for k, v in enumerate(batch.scored_values()):
            doc = orjson.loads(v)
            result.scored.append(ScoredRecord(doc["brand"], doc, records[batch.index[k]]))
        return result
