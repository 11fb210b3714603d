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
import numpy.typing as npt

from detectors import BucketStats, Detector, make_detector

from .columns import NEGATIVE, Mentions
from .evidence import SAMPLE, Evidence, EvidenceRow
from .lifecycle import SEVERITIES, Baseline, Lifecycle, Signals
from .settings import Settings

MAX_EMPTY_RUN = 288  # empty buckets scored in a row before a gap is jumped (a day of 5 min)
# Sentiment sums are kept in integer nano-units: integer-valued float64 sums
# are exact below 2**53, so a bucket's sum does not depend on how its
# mentions were batched (the stream and the backtest batch differently and
# must agree to the last bit).
GIGA = 1_000_000_000
#: Engine state (checkpoint) layout; 2: buckets keep evidence rows, not counters.
STATE_VERSION = 2
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


#: Negative mentions kept per bucket and brand for evidence (examples, terms,
#: authors, voices, platforms); counts and detector inputs always use every
#: mention. Bounds a bucket's memory when one brand gets a flood.
EVIDENCE_ROWS = 5000


class Bucket:
    """Accumulators of one open bucket, one row per brand index.

    Evidence is built lazily: the bucket keeps the negative mentions' fields
    (up to :data:`EVIDENCE_ROWS` per brand) and :meth:`evidence_for` turns
    them into :class:`Evidence` at close, only for the brands the lifecycle
    looks at (those whose score crossed the open threshold or with an open
    crisis), so the calm majority never pays for counters and term counts.
    """

    __slots__ = (
        "count",
        "neg_brand",
        "neg_kept",
        "neg_rows",
        "negative",
        "sample_n",
        "samples",
        "scored",
        "sentiment_sum",
    )

    def __init__(self, n: int) -> None:
        self.count = np.zeros(n)
        self.scored = np.zeros(n)
        self.negative = np.zeros(n)
        self.sentiment_sum = np.zeros(n)
        self.sample_n = np.zeros(n, dtype=np.int64)  # len(samples[i]) per brand
        self.neg_kept = np.zeros(n, dtype=np.int64)  # evidence rows kept per brand
        #: Evidence rows in arrival order: brand index, and (id, text, author,
        #: followers, sentiment, platform).
        self.neg_brand: list[int] = []
        self.neg_rows: list[EvidenceRow] = []
        self.samples: dict[int, list[str]] = {}  # a few texts of any tone, per brand

    def ensure(self, n: int) -> None:
        if n > len(self.count):
            cap = max(n, 2 * len(self.count), 16)
            for name in ("count", "scored", "negative", "sentiment_sum", "sample_n", "neg_kept"):
                old = getattr(self, name)
                new = np.zeros(cap, dtype=old.dtype)
                new[: len(old)] = old
                setattr(self, name, new)

    def evidence_for(self, brands: set[int]) -> dict[int, Evidence]:
        """Evidence of the negative mentions of ``brands`` in this bucket."""
        if not brands or not self.neg_rows:
            return {}
        per: dict[int, list[EvidenceRow]] = {}
        for i, row in zip(self.neg_brand, self.neg_rows, strict=True):
            if i in brands:
                rows = per.get(i)
                if rows is None:
                    rows = per[i] = []
                rows.append(row)
        out: dict[int, Evidence] = {}
        for i, rows in per.items():
            ev = out[i] = Evidence()
            ev.add_rows(rows)
        return out

    def to_state(self, n: int) -> dict[str, Any]:
        self.ensure(n)
        return {
            "count": self.count[:n],
            "scored": self.scored[:n],
            "negative": self.negative[:n],
            "sentiment_sum": self.sentiment_sum[:n],
            "neg_brand": self.neg_brand,
            "neg_rows": [list(r) for r in self.neg_rows],
            "samples": {str(i): v for i, v in self.samples.items()},
        }

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> Bucket:
        b = cls(len(st["count"]))
        for name in ("count", "scored", "negative", "sentiment_sum"):
            getattr(b, name)[:] = np.asarray(st[name], dtype=np.float64)
        b.neg_brand = [int(i) for i in st["neg_brand"]]
        b.neg_rows = [(str(r[0]), str(r[1]), r[2], r[3], float(r[4]), r[5]) for r in st["neg_rows"]]
        b.samples = {int(i): list(v) for i, v in st["samples"].items()}
        n = len(b.count)
        if b.neg_brand:
            b.neg_kept[:] = np.bincount(b.neg_brand, minlength=n)[:n]
        for i, texts in b.samples.items():
            b.sample_n[i] = len(texts)
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
            "version": STATE_VERSION,
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
            "seen": {str(b): sorted(ids) for b, ids in self.seen.items()},
            "detector": _pack(det),
        }

    @classmethod
    def from_state(cls, settings: Settings, st: dict[str, Any]) -> DetectEngine:
        if st.get("version") != STATE_VERSION:
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
        """Count scored mention dicts (ScoredMention v1): :meth:`add_columns` of their columns."""
        return self.add_columns(Mentions.from_docs(list(docs)))

    def add_columns(self, m: Mentions) -> AddResult:
        """Count a batch of scored mentions into their buckets, then close what the watermark allows.

        In arrival order, a mention whose id its bucket has already counted
        is a duplicate (dropped), one whose bucket has closed is late
        (returned, not counted); the rest are counted. The per-mention work
        is the duplicate check (set operations per bucket; a loop only when a
        batch really holds a duplicate); sums go into the bucket arrays with
        one ``bincount`` per bucket, and evidence rows of negative mentions
        are appended as they are.
        """
        res = AddResult()
        n_in = len(m)
        if n_in:
            self._count(m, res)
        horizon = self.max_event_time
        if self.s.watermark_future_skew_seconds is not None:
            # One mention from a clock running fast must not drag the watermark
            # ahead of real time and make every live mention after it late.
            horizon = min(horizon, time.time() + self.s.watermark_future_skew_seconds)
        watermark = horizon - self.s.allowed_lateness_seconds
        res.events.extend(self._close_until(int(watermark // self.width)))
        return res

    def _count(self, m: Mentions, res: AddResult) -> None:
        n_in = len(m)
        bk = np.floor_divide(m.event_time, self.width).astype(np.int64)
        if self.next_close is None:
            self.next_close = int(bk[0])
        next_close = self.next_close
        counted = np.ones(n_in, dtype=np.bool_)
        late: list[int] = []
        # Rows grouped by bucket, arrival order kept inside each group.
        if n_in > 1 and (bk[1:] != bk[0]).any():
            order = np.argsort(bk, kind="stable")
            cuts = np.flatnonzero(np.diff(bk[order])) + 1
            groups = np.split(order, cuts)
        else:
            groups = [np.arange(n_in)]
        ids_all = m.id
        for rows in groups:
            b = int(bk[rows[0]])
            rl = rows.tolist()
            ids = ids_all if len(rl) == n_in else [ids_all[k] for k in rl]
            seen = self.seen.get(b)
            if b < next_close:
                # Closed: a re-delivery of a counted mention is a duplicate, the rest is late.
                for k, mid in zip(rl, ids, strict=True):
                    if seen is not None and mid in seen:
                        res.duplicates += 1
                    else:
                        late.append(k)
                counted[rows] = False
                continue
            fresh = set(ids)
            if len(fresh) == len(ids) and (seen is None or seen.isdisjoint(fresh)):
                if seen is None:
                    self.seen[b] = fresh
                else:
                    seen |= fresh
                continue
            if seen is None:
                seen = self.seen[b] = set()
            for k, mid in zip(rl, ids, strict=True):
                if mid in seen:
                    # The same mention again (a producer retry, or a replay after
                    # a crash): counted once only.
                    counted[k] = False
                    res.duplicates += 1
                else:
                    seen.add(mid)
        if late:
            late.sort()
            res.late = [m.doc(k) for k in late]
        if counted.all():
            crow = np.arange(n_in)
        else:
            crow = np.flatnonzero(counted)
            if not len(crow):
                return
        # Brand indices; brands new to the engine in order of first counted mention.
        index = self.index
        codes = m.bcode[crow]
        lut = np.fromiter(
            (index.get(name, -1) for name in m.brands), dtype=np.int64, count=len(m.brands)
        )
        if (lut[codes] < 0).any():
            used, first = np.unique(codes, return_index=True)
            for c in used[np.argsort(first)].tolist():
                if lut[c] < 0:
                    lut[c] = self._brand(m.brands[c])
        ix = np.full(n_in, -1, dtype=np.int64)
        ix[crow] = lut[codes]
        self.max_event_time = max(self.max_event_time, float(m.event_time[crow].max()))
        n = len(self.brands)
        totals = np.zeros(n)
        sent, label = m.sentiment, m.label
        for rows in groups:
            r = rows[counted[rows]]
            if not len(r):
                continue
            b = int(bk[r[0]])
            bucket = self.buckets.get(b)
            if bucket is None:
                bucket = self.buckets[b] = Bucket(max(16, n))
            bucket.ensure(n)
            ixr = ix[r]
            counts = np.bincount(ixr, minlength=n)
            totals += counts
            bucket.count[:n] += counts
            s = sent[r]
            has = ~np.isnan(s)
            if has.any():
                si = ixr[has]
                bucket.scored[:n] += np.bincount(si, minlength=n)
                bucket.sentiment_sum[:n] += np.bincount(
                    si, weights=np.rint(s[has] * GIGA), minlength=n
                )
                neg = has & (label[r] == NEGATIVE)
                if neg.any():
                    bucket.negative[:n] += np.bincount(ixr[neg], minlength=n)
                    self._keep_evidence(bucket, m, r[neg], ixr[neg])
            if bucket.sample_n[ixr].min() < SAMPLE:
                self._keep_samples(bucket, m, r, ixr)
        for i in np.flatnonzero(totals).tolist():
            self.totals[self.brands[i]] += int(totals[i])

    @staticmethod
    def _first_per_brand(
        ixr: npt.NDArray[np.int64], have: npt.NDArray[np.int64], cap: int
    ) -> npt.NDArray[np.bool_]:
        """Which rows (arrival order) are among the first ``cap - have[brand]`` of their brand."""
        order = np.argsort(ixr, kind="stable")
        srt = ixr[order]
        starts = np.flatnonzero(np.r_[True, srt[1:] != srt[:-1]])
        rank_sorted = np.arange(len(srt)) - np.repeat(starts, np.diff(np.r_[starts, len(srt)]))
        rank = np.empty(len(srt), dtype=np.int64)
        rank[order] = rank_sorted
        return rank + have[ixr] < cap

    def _keep_evidence(
        self, bucket: Bucket, m: Mentions, rows: npt.NDArray[np.intp], ixr: npt.NDArray[np.int64]
    ) -> None:
        if bucket.neg_kept[ixr].max() + len(rows) > EVIDENCE_ROWS:
            keep = self._first_per_brand(ixr, bucket.neg_kept, EVIDENCE_ROWS)
            rows, ixr = rows[keep], ixr[keep]
        np.add.at(bucket.neg_kept, ixr, 1)
        rl = rows.tolist()
        bucket.neg_brand.extend(ixr.tolist())
        bucket.neg_rows.extend(
            zip(
                [m.id[k] for k in rl],
                [m.text[k] for k in rl],
                [m.author[k] for k in rl],
                [m.followers[k] for k in rl],
                m.sentiment[rows].tolist(),
                [m.platform[k] for k in rl],
                strict=True,
            )
        )

    def _keep_samples(
        self, bucket: Bucket, m: Mentions, rows: npt.NDArray[np.intp], ixr: npt.NDArray[np.int64]
    ) -> None:
        keep = self._first_per_brand(ixr, bucket.sample_n, SAMPLE)
        for k, i in zip(rows[keep].tolist(), ixr[keep].tolist(), strict=True):
            texts = bucket.samples.get(i)
            if texts is None:
                texts = bucket.samples[i] = []
            texts.append(m.text[k][:280])
            bucket.sample_n[i] += 1

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
        watched = set(hot) | set(life.open)
        evidence = bucket.evidence_for(watched)
        for i in sorted(watched):
            sig = self._signals(i, scores)
            base = self._baseline(i)
            brand = self.brands[i]
            for status, crisis in life.step(i, brand, b, st, sig, base, evidence.get(i)):
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
