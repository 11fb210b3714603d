"""Detect stage: event-time buckets, rolling detectors, crisis lifecycle.

Pure (no Kafka): the detect agent keeps one :class:`DetectEngine` per
partition; the backtest keeps one for everything. Both feed scored
mentions in and get crisis events (CrisisEvent v1 dicts) out, so the
stream and the backtest run the same code.

Event time: a mention counts in the bucket ``floor(event_time / width)``.
The watermark is the largest event time seen minus the allowed lateness;
a bucket closes once the watermark passes its end, and closing runs the
detector over that bucket for every brand of the engine at once. A
mention whose bucket has already closed is *late*: it is not counted and
is returned to the caller (the agent dead-letters it with the reason), so
it never silently disappears. ``flush()`` closes every open bucket (end of
a backtest, or a partition idle for a while).

>>> from streams.settings import Settings
>>> eng = DetectEngine(Settings(bucket_seconds=60, allowed_lateness_seconds=0))
>>> doc = {"id": "1", "brand": "acme", "text": "x", "sentiment": -0.5,
...        "sentiment_label": "negative", "event_time": 30.0}
>>> eng.add([doc]).events, eng.totals["acme"]
([], 1)
"""

from __future__ import annotations

import hashlib
import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from detectors import BucketStats, Detector, make_detector

from .settings import Settings

#: Detector name -> crisis kind it reports.
KIND_OF = {"negative_share": "negativity_surge"}
SEVERITIES = ("low", "medium", "high", "critical")
MAX_GAP_BUCKETS = 10_000
EXAMPLES = 5
TOP_TERMS = 10
TOP_AUTHORS = 5

_WORD = re.compile(r"[a-z][a-z'’]{2,}")
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "you",
        "your",
        "with",
        "this",
        "that",
        "was",
        "are",
        "have",
        "has",
        "not",
        "but",
        "they",
        "them",
        "their",
        "our",
        "from",
        "what",
        "when",
        "just",
        "all",
        "can",
        "its",
        "it's",
        "get",
        "got",
        "out",
        "about",
        "would",
        "will",
        "been",
        "were",
        "there",
        "here",
        "who",
        "how",
        "why",
        "one",
        "very",
        "really",
        "more",
        "than",
        "then",
        "also",
        "too",
        "any",
        "much",
        "some",
        "even",
        "now",
        "ever",
        "still",
        "only",
        "into",
        "over",
        "after",
        "again",
        "dont",
        "don't",
        "im",
        "i'm",
        "ive",
        "i've",
    ]
)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def crisis_id(brand: str, kind: str, opened_bucket: int) -> str:
    """Deterministic: the same crisis gets the same id in the stream and the backtest."""
    return hashlib.sha256(f"{brand}\x00{kind}\x00{opened_bucket}".encode()).hexdigest()[:32]


@dataclass(slots=True)
class Evidence:
    """Bounded evidence for one brand over some buckets."""

    examples: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)  # min-heap
    terms: Counter[str] = field(default_factory=Counter)
    authors: Counter[str] = field(default_factory=Counter)
    reach: dict[str, int] = field(default_factory=dict)
    seq: int = 0

    def add(self, doc: dict[str, Any]) -> None:
        author = doc.get("author")
        followers = doc.get("author_followers") or 0
        if author:
            self.authors[author] += 1
            if followers > self.reach.get(author, -1):
                self.reach[author] = followers
        if doc.get("sentiment_label") != "negative":
            return
        # Most negative, highest reach first: the mentions a comms team must read.
        weight = -float(doc.get("sentiment") or 0.0) * math.log10(10.0 + followers)
        example = {
            "id": doc["id"],
            "text": doc["text"][:500],
            "author": author,
            "reach": followers,
            "sentiment": doc.get("sentiment"),
        }
        self.seq += 1
        item = (weight, -self.seq, example)
        if len(self.examples) < EXAMPLES:
            heapq.heappush(self.examples, item)
        elif item[:2] > self.examples[0][:2]:
            heapq.heapreplace(self.examples, item)
        self.terms.update(w for w in _WORD.findall(doc["text"].lower()) if w not in _STOP)

    def merge(self, other: Evidence) -> None:
        for item in other.examples:
            if len(self.examples) < EXAMPLES:
                heapq.heappush(self.examples, item)
            elif item[:2] > self.examples[0][:2]:
                heapq.heapreplace(self.examples, item)
        self.terms.update(other.terms)
        self.authors.update(other.authors)
        for a, r in other.reach.items():
            if r > self.reach.get(a, -1):
                self.reach[a] = r
        # Keep memory bounded for long crises.
        if len(self.terms) > 2000:
            self.terms = Counter(dict(self.terms.most_common(500)))
        if len(self.authors) > 2000:
            self.authors = Counter(dict(self.authors.most_common(500)))
            self.reach = {a: self.reach[a] for a in self.authors if a in self.reach}

    def to_state(self) -> dict[str, Any]:
        return {
            "examples": [list(e) for e in self.examples],
            "terms": dict(self.terms),
            "authors": dict(self.authors),
            "reach": self.reach,
            "seq": self.seq,
        }

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> Evidence:
        ev = cls(
            examples=[(float(w), int(q), e) for w, q, e in st["examples"]],
            terms=Counter(st["terms"]),
            authors=Counter(st["authors"]),
            reach=dict(st["reach"]),
            seq=int(st["seq"]),
        )
        heapq.heapify(ev.examples)
        return ev

    def to_json(self, brand: str = "") -> dict[str, Any]:
        # The brand's own name is in nearly every mention: not a distinguishing term.
        own = set(_WORD.findall(brand.lower()))
        terms = [(t, c) for t, c in self.terms.most_common(TOP_TERMS + len(own)) if t not in own]
        examples = [e for _, _, e in sorted(self.examples, key=lambda t: t[:2], reverse=True)]
        return {
            "examples": examples,
            "top_terms": [{"term": t, "weight": float(c)} for t, c in terms[:TOP_TERMS]],
            "top_authors": [
                {"author": a, "mentions": c, "reach": self.reach.get(a)}
                for a, c in self.authors.most_common(TOP_AUTHORS)
            ],
        }


class Bucket:
    """Accumulators of one open bucket, one row per brand index."""

    __slots__ = ("count", "evidence", "negative", "scored", "sentiment_sum")

    def __init__(self, n: int) -> None:
        self.count = np.zeros(n)
        self.scored = np.zeros(n)
        self.negative = np.zeros(n)
        self.sentiment_sum = np.zeros(n)
        self.evidence: dict[int, Evidence] = {}

    def ensure(self, n: int) -> None:
        if n > len(self.count):
            cap = max(n, 2 * len(self.count), 16)
            for name in ("count", "scored", "negative", "sentiment_sum"):
                old = getattr(self, name)
                new = np.zeros(cap)
                new[: len(old)] = old
                setattr(self, name, new)

    def to_state(self, n: int) -> dict[str, Any]:
        self.ensure(n)
        return {
            "count": self.count[:n],
            "scored": self.scored[:n],
            "negative": self.negative[:n],
            "sentiment_sum": self.sentiment_sum[:n],
            "evidence": {str(i): e.to_state() for i, e in self.evidence.items()},
        }

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> Bucket:
        b = cls(len(st["count"]))
        for name in ("count", "scored", "negative", "sentiment_sum"):
            getattr(b, name)[:] = np.asarray(st[name], dtype=np.float64)
        b.evidence = {int(i): Evidence.from_state(e) for i, e in st["evidence"].items()}
        return b

    def stats(self, n: int) -> BucketStats:
        self.ensure(n)
        return BucketStats(
            self.count[:n], self.scored[:n], self.negative[:n], self.sentiment_sum[:n]
        )


@dataclass(slots=True)
class OpenCrisis:
    crisis_id: str
    kind: str
    opened_bucket: int
    severity: int
    peak: float
    quiet: int = 0
    buckets: int = 0
    evidence: Evidence = field(default_factory=Evidence)


@dataclass(slots=True)
class AddResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    late: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0


class DetectEngine:
    """Buckets, detector and lifecycle for the brands of one partition."""

    def __init__(self, settings: Settings, detector: Detector | None = None) -> None:
        self.s = settings
        self.width = settings.bucket_seconds
        self.detector = detector or make_detector(settings.detector)
        self.kind = KIND_OF.get(self.detector.name, "negativity_surge")
        self.index: dict[str, int] = {}
        self.brands: list[str] = []
        self.totals: Counter[str] = Counter()
        self.buckets: dict[int, Bucket] = {}
        self.next_close: int | None = (
            None  # start (in bucket numbers) of the oldest unclosed bucket
        )
        self.max_event_time = -math.inf
        self.open: dict[int, OpenCrisis] = {}
        self.cooldown: dict[int, int] = {}
        # Baselines for the observed-vs-baseline metrics in events (EWMA, causal).
        self._alpha = 1.0 - 0.5 ** (1.0 / 24.0)
        self.base_volume = np.zeros(0)
        self.base_negshare = np.zeros(0)
        self.base_sentiment = np.zeros(0)
        self.base_seen = np.zeros(0)
        # Mention ids per bucket, kept for ``dedupe_buckets`` buckets after the
        # bucket closes: a duplicate always falls in its original's bucket.
        self.seen: dict[int, set[str]] = {}

    # -- checkpoints ---------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this engine is (JSON-able with numpy)."""
        n = len(self.brands)
        self._ensure_baselines(n)
        det = self.detector.to_state()
        return {
            "version": 1,
            "bucket_seconds": self.width,
            "brands": self.brands,
            "totals": dict(self.totals),
            "buckets": {str(b): bk.to_state(n) for b, bk in self.buckets.items()},
            "next_close": self.next_close,
            "max_event_time": self.max_event_time if self.max_event_time > -math.inf else None,
            "open": {
                str(i): {
                    "crisis_id": c.crisis_id,
                    "kind": c.kind,
                    "opened_bucket": c.opened_bucket,
                    "severity": c.severity,
                    "peak": c.peak,
                    "quiet": c.quiet,
                    "buckets": c.buckets,
                    "evidence": c.evidence.to_state(),
                }
                for i, c in self.open.items()
            },
            "cooldown": {str(i): b for i, b in self.cooldown.items()},
            "base": {
                name: getattr(self, f"base_{name}")[:n]
                for name in ("volume", "negshare", "sentiment", "seen")
            },
            "seen": {str(b): sorted(ids) for b, ids in self.seen.items()},
            "detector": {k: v for k, v in det.items() if not k.startswith("__")},
            "detector_name": det["__detector__"],
            "detector_params": det["__params__"],
        }

    @classmethod
    def from_state(cls, settings: Settings, st: dict[str, Any]) -> DetectEngine:
        if st.get("version") != 1:
            raise ValueError(f"unsupported detect-engine state version {st.get('version')!r}")
        if st["bucket_seconds"] != settings.bucket_seconds:
            raise ValueError(
                f"checkpoint uses {st['bucket_seconds']}s buckets but CRISISWATCH_BUCKET_SECONDS="
                f"{settings.bucket_seconds}; keep the setting or start from an empty state"
            )
        det_state = {
            **{k: np.asarray(v, dtype=np.float64) for k, v in st["detector"].items()},
            "__detector__": st["detector_name"],
            "__params__": st["detector_params"],
        }
        det_cls = type(make_detector(st["detector_name"], **st["detector_params"]))
        eng = cls(settings, det_cls.from_state(det_state))
        eng.brands = list(st["brands"])
        eng.index = {b: i for i, b in enumerate(eng.brands)}
        eng.totals = Counter(st["totals"])
        eng.buckets = {int(b): Bucket.from_state(bk) for b, bk in st["buckets"].items()}
        eng.next_close = st["next_close"]
        eng.max_event_time = -math.inf if st["max_event_time"] is None else st["max_event_time"]
        eng.open = {
            int(i): OpenCrisis(
                c["crisis_id"],
                c["kind"],
                c["opened_bucket"],
                c["severity"],
                c["peak"],
                c["quiet"],
                c["buckets"],
                Evidence.from_state(c["evidence"]),
            )
            for i, c in st["open"].items()
        }
        eng.cooldown = {int(i): b for i, b in st["cooldown"].items()}
        n = len(eng.brands)
        eng._ensure_baselines(n)
        for name, arr in st["base"].items():
            getattr(eng, f"base_{name}")[:n] = np.asarray(arr, dtype=np.float64)
        eng.seen = {int(b): set(ids) for b, ids in st["seen"].items()}
        return eng

    # -- input -------------------------------------------------------------
    def _brand(self, brand: str) -> int:
        i = self.index.get(brand)
        if i is None:
            i = self.index[brand] = len(self.brands)
            self.brands.append(brand)
        return i

    def add(self, docs: Iterable[dict[str, Any]]) -> AddResult:
        """Count scored mentions into their buckets, then close what the watermark allows."""
        res = AddResult()
        w = self.width
        for doc in docs:
            t = float(doc["event_time"])
            b = int(t // w)
            if self.next_close is None:
                self.next_close = b
            seen = self.seen.get(b)
            mid = str(doc["id"])
            if seen is not None and mid in seen:
                # The same mention again (a producer retry, or a replay after a
                # crash): counted once only.
                res.duplicates += 1
                continue
            if b < self.next_close:
                res.late.append(doc)
                continue
            if seen is None:
                seen = self.seen[b] = set()
            seen.add(mid)
            i = self._brand(doc["brand"])
            bucket = self.buckets.get(b)
            if bucket is None:
                bucket = self.buckets[b] = Bucket(max(16, len(self.brands)))
            bucket.ensure(i + 1)
            bucket.count[i] += 1.0
            s = doc.get("sentiment")
            if s is not None:
                bucket.scored[i] += 1.0
                bucket.sentiment_sum[i] += s
                if doc.get("sentiment_label") == "negative":
                    bucket.negative[i] += 1.0
            ev = bucket.evidence.get(i)
            if ev is None:
                ev = bucket.evidence[i] = Evidence()
            ev.add(doc)
            self.totals[doc["brand"]] += 1
            if t > self.max_event_time:
                self.max_event_time = t
        watermark = self.max_event_time - self.s.allowed_lateness_seconds
        res.events.extend(self._close_until(int(watermark // w)))
        return res

    def advance_to(self, event_time: float) -> list[dict[str, Any]]:
        """Close every bucket that ends at or before ``event_time``."""
        return self._close_until(int(event_time // self.width))

    def flush(self) -> list[dict[str, Any]]:
        """Close every bucket that has data (end of input, or an idle partition)."""
        if not self.buckets:
            return []
        return self._close_until(max(self.buckets) + 1)

    # -- read-only views (metrics) -------------------------------------------
    def open_crises_by_kind_severity(self) -> Counter[tuple[str, str]]:
        """Open crises counted by (kind, severity name)."""
        return Counter((c.kind, SEVERITIES[c.severity]) for c in self.open.values())

    def open_crisis_brands(self) -> Counter[str]:
        """Open crises counted by brand."""
        return Counter(self.brands[i] for i in self.open)

    # -- bucket close ------------------------------------------------------
    def _close_until(self, end_bucket: int) -> list[dict[str, Any]]:
        """Close buckets [next_close, end_bucket)."""
        events: list[dict[str, Any]] = []
        if self.next_close is None:
            return events
        if end_bucket - self.next_close > MAX_GAP_BUCKETS:
            # A jump this long (an ingest outage of weeks) is not worth scoring
            # bucket by bucket; detectors simply see a gap.
            first_data = min(self.buckets, default=end_bucket)
            self.next_close = max(self.next_close, min(first_data, end_bucket - 1))
            horizon = self.next_close - self.s.dedupe_buckets
            self.seen = {k: v for k, v in self.seen.items() if k >= horizon}
        while self.next_close < end_bucket:
            b = self.next_close
            bucket = self.buckets.pop(b, None)
            events.extend(self._close(b, bucket))
            self.next_close = b + 1
            self.seen.pop(b - self.s.dedupe_buckets, None)
        return events

    def _close(self, b: int, bucket: Bucket | None) -> list[dict[str, Any]]:
        n = len(self.brands)
        if n == 0:
            return []
        if bucket is None:
            bucket = Bucket(n)
        stats = bucket.stats(n)
        scores = self.detector.update(stats)
        self._ensure_baselines(n)
        events = self._lifecycle(b, bucket, stats, scores)
        self._update_baselines(stats)
        return events

    def _ensure_baselines(self, n: int) -> None:
        if len(self.base_volume) < n:
            for name in ("base_volume", "base_negshare", "base_sentiment", "base_seen"):
                old = getattr(self, name)
                new = np.zeros(max(n, 2 * len(old), 16))
                new[: len(old)] = old
                setattr(self, name, new)

    def _update_baselines(self, st: BucketStats) -> None:
        n = len(st.count)
        a = self._alpha
        seen = self.base_seen[:n]
        first = seen == 0
        self.base_volume[:n] = np.where(
            first, st.count, (1 - a) * self.base_volume[:n] + a * st.count
        )
        has = st.scored > 0
        share = np.divide(st.negative, st.scored, out=np.zeros(n), where=has)
        mean = np.divide(st.sentiment_sum, st.scored, out=np.zeros(n), where=has)
        upd_first = first & has
        self.base_negshare[:n] = np.where(
            upd_first,
            share,
            np.where(has, (1 - a) * self.base_negshare[:n] + a * share, self.base_negshare[:n]),
        )
        self.base_sentiment[:n] = np.where(
            upd_first,
            mean,
            np.where(has, (1 - a) * self.base_sentiment[:n] + a * mean, self.base_sentiment[:n]),
        )
        self.base_seen[:n] += 1

    def _severity(self, i: int, st: BucketStats) -> int:
        share = st.negative[i] / st.scored[i] if st.scored[i] else 0.0
        ratio = share / max(self.base_negshare[i], 0.02)
        level = 0 if ratio < 1.5 else 1 if ratio < 2.5 else 2 if ratio < 4 else 3
        if st.count[i] >= 3 * max(self.base_volume[i], 1.0):
            level += 1
        return min(level, 3)

    def _lifecycle(
        self, b: int, bucket: Bucket, st: BucketStats, scores: np.ndarray
    ) -> list[dict[str, Any]]:
        s = self.s
        events: list[dict[str, Any]] = []
        hot = set(np.flatnonzero(scores >= s.open_threshold).tolist())
        for i in sorted(hot | set(self.open)):
            score = float(scores[i])
            crisis = self.open.get(i)
            ev = bucket.evidence.get(i)
            if crisis is None:
                if st.count[i] < s.min_volume or self.cooldown.get(i, -1) >= b:
                    continue
                crisis = OpenCrisis(
                    crisis_id(self.brands[i], self.kind, b),
                    self.kind,
                    b,
                    self._severity(i, st),
                    score,
                )
                if ev:
                    crisis.evidence.merge(ev)
                crisis.buckets = 1
                self.open[i] = crisis
                events.append(self._event(i, "opened", b, st, score, crisis))
                continue
            if ev:
                crisis.evidence.merge(ev)
            crisis.buckets += 1
            crisis.peak = max(crisis.peak, score)
            if score < s.close_threshold:
                crisis.quiet += 1
                if crisis.quiet >= s.resolve_after_buckets:
                    del self.open[i]
                    self.cooldown[i] = b + s.cooldown_buckets
                    events.append(self._event(i, "resolved", b, st, score, crisis))
                continue
            crisis.quiet = 0
            sev = self._severity(i, st)
            if score >= s.open_threshold and sev > crisis.severity:
                crisis.severity = sev
                events.append(self._event(i, "escalated", b, st, score, crisis))
            elif crisis.buckets % s.update_every_buckets == 0:
                events.append(self._event(i, "updated", b, st, score, crisis))
        return events

    def _event(
        self, i: int, status: str, b: int, st: BucketStats, score: float, crisis: OpenCrisis
    ) -> dict[str, Any]:
        w = self.width
        scored = st.scored[i]
        share = float(st.negative[i] / scored) if scored else None
        mean = float(st.sentiment_sum[i] / scored) if scored else None
        seen = self.base_seen[i] > 0
        return {
            "schema_version": 1,
            "crisis_id": crisis.crisis_id,
            "brand": self.brands[i],
            "status": status,
            "kind": crisis.kind,
            "severity": SEVERITIES[crisis.severity],
            "score": min(max(score, 0.0), 1.0),
            "peak_score": crisis.peak,
            "detected_at": iso((b + 1) * w),
            "window_start": iso(crisis.opened_bucket * w),
            "window_end": iso((b + 1) * w),
            "metrics": {
                "volume": {
                    "observed": float(st.count[i]),
                    "baseline": float(self.base_volume[i]) if seen else None,
                },
                "negative_share": {
                    "observed": share,
                    "baseline": float(self.base_negshare[i]) if seen else None,
                },
                "mean_sentiment": {
                    "observed": mean,
                    "baseline": float(self.base_sentiment[i]) if seen else None,
                },
            },
            "detectors": [
                {
                    "name": self.detector.name,
                    "score": min(max(score, 0.0), 1.0),
                    "fired": score >= self.s.open_threshold,
                }
            ],
            "evidence": crisis.evidence.to_json(self.brands[i]),
        }
