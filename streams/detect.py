"""Detect stage: event-time buckets, rolling detectors, crisis lifecycle.

Pure (no Kafka): the detect agent keeps one :class:`DetectEngine` per
partition; the backtest keeps one for everything. Both feed scored
mentions in and get crisis events (CrisisEvent v1 dicts) out, so the
stream and the backtest run the same code.

Event time: a mention counts in the bucket ``floor(event_time / width)``.
The watermark is the largest event time seen (capped at wall-clock time
plus ``watermark_future_skew_seconds`` in the stream) minus the allowed lateness;
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

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors import BucketStats, Detector, make_detector

from .evidence import SAMPLE, Evidence
from .lifecycle import SEVERITIES, Baseline, Lifecycle, Signals
from .settings import Settings

MAX_EMPTY_RUN = 288  # empty buckets scored in a row before a gap is jumped (a day of 5 min)
# Sentiment sums are kept in integer nano-units: integer-valued float64 sums
# are exact below 2**53, so a bucket's sum does not depend on how its
# mentions were batched (the stream and the backtest batch differently and
# must agree to the last bit).
GIGA = 1_000_000_000
NANO = 1e-9


def _pack(obj: Any) -> Any:
    """Detector state to JSON-able form, numpy arrays tagged so they come back as arrays."""
    if isinstance(obj, np.ndarray):
        return {"__nd__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        return {k: _pack(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_pack(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _unpack(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__nd__" in obj:
            return np.asarray(obj["__nd__"], dtype=obj["dtype"])
        return {k: _unpack(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v) for v in obj]
    return obj


class Bucket:
    """Accumulators of one open bucket, one row per brand index."""

    __slots__ = ("count", "evidence", "negative", "samples", "scored", "sentiment_sum")

    def __init__(self, n: int) -> None:
        self.count = np.zeros(n)
        self.scored = np.zeros(n)
        self.negative = np.zeros(n)
        self.sentiment_sum = np.zeros(n)
        self.evidence: dict[int, Evidence] = {}  # negative mentions only
        self.samples: dict[int, list[str]] = {}  # a few texts of any tone, per brand

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
            "samples": {str(i): v for i, v in self.samples.items()},
        }

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> Bucket:
        b = cls(len(st["count"]))
        for name in ("count", "scored", "negative", "sentiment_sum"):
            getattr(b, name)[:] = np.asarray(st[name], dtype=np.float64)
        b.evidence = {int(i): Evidence.from_state(e) for i, e in st["evidence"].items()}
        b.samples = {int(i): list(v) for i, v in st["samples"].items()}
        return b

    def stats(self, n: int) -> BucketStats:
        self.ensure(n)
        return BucketStats(
            self.count[:n], self.scored[:n], self.negative[:n], self.sentiment_sum[:n] * NANO
        )


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
        self.lifecycle = Lifecycle(settings)
        #: Recent texts per brand from calm buckets: the baseline for term contrast.
        self.samples: dict[int, deque[str]] = {}
        self.index: dict[str, int] = {}
        self.brands: list[str] = []
        self.totals: Counter[str] = Counter()
        self.buckets: dict[int, Bucket] = {}
        self.next_close: int | None = (
            None  # start (in bucket numbers) of the oldest unclosed bucket
        )
        self.max_event_time = -math.inf
        # Baselines for the observed-vs-baseline metrics in events (EWMA, causal).
        self._alpha = 1.0 - 0.5 ** (1.0 / 24.0)
        self.base_volume = np.zeros(0)
        self.base_negshare = np.zeros(0)
        self.base_sentiment = np.zeros(0)
        self.base_seen = np.zeros(0)
        # Mention ids per bucket, kept for ``dedupe_buckets`` buckets after the
        # bucket closes: a duplicate always falls in its original's bucket.
        self.seen: dict[int, set[str]] = {}
        #: Called as on_close(bucket, stats, scores) after each bucket is scored (backtest plots).
        self.on_close: Callable[[int, BucketStats, np.ndarray], None] | None = None

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
            "lifecycle": self.lifecycle.to_state(),
            "samples": {str(i): list(d) for i, d in self.samples.items()},
            "base": {
                name: getattr(self, f"base_{name}")[:n]
                for name in ("volume", "negshare", "sentiment", "seen")
            },
            # Unordered: sorting a window of millions of ids took seconds per checkpoint.
            "seen": {str(b): list(ids) for b, ids in self.seen.items()},
            "detector": _pack(det),
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
        det_state = _unpack(st["detector"])
        det_cls = type(make_detector(det_state["__detector__"], **det_state["__params__"]))
        eng = cls(settings, det_cls.from_state(det_state))
        eng.brands = list(st["brands"])
        eng.index = {b: i for i, b in enumerate(eng.brands)}
        eng.totals = Counter(st["totals"])
        eng.buckets = {int(b): Bucket.from_state(bk) for b, bk in st["buckets"].items()}
        eng.next_close = st["next_close"]
        eng.max_event_time = -math.inf if st["max_event_time"] is None else st["max_event_time"]
        eng.lifecycle.load_state(st["lifecycle"])
        eng.samples = {
            int(i): deque(v, maxlen=settings.baseline_texts) for i, v in st["samples"].items()
        }
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
        """Count scored mentions into their buckets, then close what the watermark allows.

        One pass of cheap per-record work (dedupe, bucket, brand index, evidence
        for negative mentions only); the sums go into the bucket arrays with one
        ``bincount`` per bucket at the end.
        """
        res = AddResult()
        w = self.width
        seen_map, buckets, index = self.seen, self.buckets, self.index
        pending: dict[int, tuple[list[int], list[int], list[int], list[int]]] = {}
        next_close = self.next_close
        max_t = self.max_event_time
        for doc in docs:
            t = doc["event_time"]
            b = int(t // w)
            if next_close is None:
                next_close = self.next_close = b
            mid = doc["id"]
            seen = seen_map.get(b)
            if seen is not None and mid in seen:
                # The same mention again (a producer retry, or a replay after a
                # crash): counted once only.
                res.duplicates += 1
                continue
            if b < next_close:
                res.late.append(doc)
                continue
            if seen is None:
                seen = seen_map[b] = set()
            seen.add(mid)
            brand = doc["brand"]
            i = index.get(brand)
            if i is None:
                i = self._brand(brand)
            bucket = buckets.get(b)
            if bucket is None:
                bucket = buckets[b] = Bucket(max(16, len(self.brands)))
                pend = pending[b] = ([], [], [], [])
            else:
                pend = pending.get(b) or pending.setdefault(b, ([], [], [], []))
            pend[0].append(i)
            sample = bucket.samples.get(i)
            if sample is None:
                bucket.samples[i] = [doc["text"][:280]]
            elif len(sample) < SAMPLE:
                sample.append(doc["text"][:280])
            s = doc.get("sentiment")
            if s is not None:
                pend[1].append(i)
                pend[2].append(round(s * GIGA))
                if doc.get("sentiment_label") == "negative":
                    pend[3].append(i)
                    ev = bucket.evidence.get(i)
                    if ev is None:
                        ev = bucket.evidence[i] = Evidence()
                    ev.add(doc)
            if t > max_t:
                max_t = t
        self.max_event_time = max_t
        n = len(self.brands)
        totals = np.zeros(n)
        for b, (idx, sidx, svals, nidx) in pending.items():
            bucket = buckets[b]
            bucket.ensure(n)
            counts = np.bincount(idx, minlength=n)
            totals += counts
            bucket.count[:n] += counts
            if sidx:
                bucket.scored[:n] += np.bincount(sidx, minlength=n)
                bucket.sentiment_sum[:n] += np.bincount(sidx, weights=svals, minlength=n)
            if nidx:
                bucket.negative[:n] += np.bincount(nidx, minlength=n)
        for i in np.flatnonzero(totals).tolist():
            self.totals[self.brands[i]] += int(totals[i])
        horizon = self.max_event_time
        if self.s.watermark_future_skew_seconds is not None:
            # One mention from a clock running fast must not drag the watermark
            # ahead of real time and make every live mention after it late.
            horizon = min(horizon, time.time() + self.s.watermark_future_skew_seconds)
        watermark = horizon - self.s.allowed_lateness_seconds
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
        return Counter((c.kind, SEVERITIES[c.severity]) for c in self.lifecycle.open.values())

    def open_crisis_brands(self) -> Counter[str]:
        """Open crises counted by brand."""
        return Counter(self.brands[i] for i in self.lifecycle.open)

    # -- bucket close ------------------------------------------------------
    def _close_until(self, end_bucket: int) -> list[dict[str, Any]]:
        """Close buckets [next_close, end_bucket).

        Empty buckets are scored one by one (an empty bucket is an observation:
        zero mentions) up to ``MAX_EMPTY_RUN`` in a row; a longer empty stretch
        (an outage, or a mention dated years away from the rest) is jumped
        over, so no timestamp can make the engine walk millions of buckets.
        """
        events: list[dict[str, Any]] = []
        if self.next_close is None:
            return events
        while self.next_close < end_bucket:
            b = self.next_close
            bucket = self.buckets.pop(b, None)
            if bucket is None:
                nxt = min((k for k in self.buckets if k > b), default=end_bucket)
                stop = min(nxt, end_bucket)
                if stop - b > MAX_EMPTY_RUN:
                    # Jump: detectors see a gap, not thousands of empty buckets.
                    self.next_close = stop
                    horizon = stop - self.s.dedupe_buckets
                    self.seen = {k: v for k, v in self.seen.items() if k >= horizon}
                    continue
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
        scores = self.detector.update(stats, timestamp=float(b * self.width))
        if self.on_close is not None:
            self.on_close(b, stats, scores)
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

    def _signals(self, i: int, scores: np.ndarray) -> Signals:
        per = getattr(self.detector, "last_scores", None)
        score = float(scores[i])
        if per:  # a combined detector says which signals drove the score
            drivers = self.detector.drivers(i)  # type: ignore[attr-defined]
            return Signals(score, drivers, {k: float(v[i]) for k, v in per.items()})
        name = self.detector.name
        return Signals(score, [name] if score >= self.s.open_threshold else [], {name: score})

    def _baseline(self, i: int) -> Baseline:
        seen = int(self.base_seen[i])
        if not seen:
            return Baseline(None, None, None, 0)
        return Baseline(
            float(self.base_volume[i]),
            float(self.base_negshare[i]),
            float(self.base_sentiment[i]),
            seen,
        )

    def _lifecycle(
        self, b: int, bucket: Bucket, st: BucketStats, scores: np.ndarray
    ) -> list[dict[str, Any]]:
        life = self.lifecycle
        events: list[dict[str, Any]] = []
        hot = np.flatnonzero(scores >= self.s.open_threshold).tolist()
        for i in sorted(set(hot) | set(life.open)):
            sig = self._signals(i, scores)
            base = self._baseline(i)
            brand = self.brands[i]
            for status, crisis in life.step(i, brand, b, st, sig, base, bucket.evidence.get(i)):
                sample = list(self.samples.get(i, ()))
                events.append(
                    life.event(status, crisis, brand, b, self.width, st, i, sig, base, sample)
                )
        # Calm buckets feed the baseline vocabulary used to contrast crisis terms.
        for i, texts in bucket.samples.items():
            if i not in life.open:
                d = self.samples.get(i)
                if d is None:
                    d = self.samples[i] = deque(maxlen=self.s.baseline_texts)
                d.extend(texts)
        return events
