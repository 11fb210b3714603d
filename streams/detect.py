"""Detect stage: event-time buckets, rolling detectors, crisis lifecycle.

Pure (no Kafka): the detect agent keeps one :class:`DetectEngine` per
partition; the backtest keeps one for everything. Both feed scored
mentions in and get crisis events (CrisisEvent v1 dicts) out, so the
stream and the backtest run the same code.

Event time: a mention counts in the bucket ``floor(event_time / width)``.
The watermark is the largest event time seen (capped at wall-clock time
plus ``watermark_future_skew_seconds``, 0 by default, in the stream) minus the
allowed lateness;
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
import operator
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from detectors import BucketStats, Detector, make_detector

from .columns import NEGATIVE, Mentions
from .evidence import SAMPLE, Evidence, EvidenceRow
from .idset import IdSet
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
        # orjson writes numeric arrays itself (OPT_SERIALIZE_NUMPY), far faster than tolist().
        arr = np.ascontiguousarray(obj) if obj.dtype.kind in "biuf" else obj.tolist()
        return {"__nd__": arr, "dtype": str(obj.dtype)}
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


@numba.njit(cache=True, nogil=True)
def _update_baselines(
    count: npt.NDArray[np.float64],
    scored: npt.NDArray[np.float64],
    negative: npt.NDArray[np.float64],
    sentiment_sum: npt.NDArray[np.float64],
    volume: npt.NDArray[np.float64],
    negshare: npt.NDArray[np.float64],
    sentiment: npt.NDArray[np.float64],
    seen: npt.NDArray[np.float64],
    a: float,
) -> None:
    """EWMA baselines (volume, negative share, mean sentiment) after one closed bucket, in place.

    A brand's first bucket sets them; share and mean move only in buckets
    with scored mentions. Causal: the event of a bucket reads the baselines
    before this update.
    """
    for i in range(count.shape[0]):
        first = seen[i] == 0
        volume[i] = count[i] if first else (1 - a) * volume[i] + a * count[i]
        if scored[i] > 0:
            share = negative[i] / scored[i]
            mean = sentiment_sum[i] / scored[i]
            if first:
                negshare[i] = share
                sentiment[i] = mean
            else:
                negshare[i] = (1 - a) * negshare[i] + a * share
                sentiment[i] = (1 - a) * sentiment[i] + a * mean
        seen[i] += 1


def _gather(column: list[Any], rows: list[int]) -> tuple[Any, ...]:
    """``column[k]`` for each of ``rows`` (non-empty), gathered in C by itemgetter:
    a third cheaper than a comprehension."""
    got = operator.itemgetter(*rows)(column)
    return got if len(rows) > 1 else (got,)


def _rank_in_group(key: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """For each element, how many earlier elements have the same key (0 for the first).

    >>> _rank_in_group(np.array([5, 3, 5, 5, 3])).tolist()
    [0, 0, 1, 2, 1]
    """
    order = np.argsort(key, kind="stable")
    srt = key[order]
    starts = np.flatnonzero(np.r_[True, srt[1:] != srt[:-1]])
    rank = np.empty(len(key), dtype=np.int64)
    rank[order] = np.arange(len(key)) - np.repeat(starts, np.diff(np.r_[starts, len(key)]))
    return rank


class Bucket:
    """Accumulators of one open bucket, one row per brand index.

    Evidence is built lazily: the bucket keeps the negative mentions' fields
    (up to :data:`EVIDENCE_ROWS` per brand) and :meth:`evidence_for` turns
    them into :class:`Evidence` at close, only for the brands the lifecycle
    looks at (those whose score crossed the open threshold or with an open
    crisis), so the calm majority never pays for counters and term counts.
    """

    __slots__ = (
        "acc",
        "count",
        "neg_brand",
        "neg_kept",
        "neg_rows",
        "negative",
        "sample_n",
        "sample_rows",
        "scored",
        "sentiment_sum",
    )

    def __init__(self, n: int) -> None:
        self._views(np.zeros((4, n)))
        self.sample_n = np.zeros(n, dtype=np.int64)  # len(samples[i]) per brand
        self.neg_kept = np.zeros(n, dtype=np.int64)  # evidence rows kept per brand
        #: Evidence rows in arrival order: brand index, and (id, text, author,
        #: followers, sentiment, platform).
        self.neg_brand: list[int] = []
        self.neg_rows: list[EvidenceRow] = []
        #: A few texts of any tone per brand (the first SAMPLE), as (brand index, text).
        self.sample_rows: list[tuple[int, str]] = []

    def _views(self, acc: npt.NDArray[np.float64]) -> None:
        #: The four sums per brand, one row each, so a batch adds them in one operation.
        self.acc = acc
        self.count, self.scored, self.sentiment_sum, self.negative = acc

    def ensure(self, n: int) -> None:
        if n > len(self.count):
            cap = max(n, 2 * len(self.count), 16)
            acc = np.zeros((4, cap))
            acc[:, : self.acc.shape[1]] = self.acc
            self._views(acc)
            for name in ("sample_n", "neg_kept"):
                old = getattr(self, name)
                new = np.zeros(cap, dtype=old.dtype)
                new[: len(old)] = old
                setattr(self, name, new)

    def keep_evidence(self, ixs: npt.NDArray[np.int64], rows: list[EvidenceRow]) -> None:
        """Keep negative mentions' rows (brand indices ``ixs``), up to the cap per brand."""
        if len(self.neg_rows) + len(rows) > EVIDENCE_ROWS:  # some brand may reach the cap
            keep = _rank_in_group(ixs) + self.neg_kept[ixs] < EVIDENCE_ROWS
            if not keep.all():
                rows = [r for r, k in zip(rows, keep.tolist(), strict=True) if k]
                ixs = ixs[keep]
        self.neg_kept += np.bincount(ixs, minlength=len(self.neg_kept))
        self.neg_brand.extend(ixs.tolist())
        self.neg_rows.extend(rows)

    def evidence_for(self, brands: set[int]) -> dict[int, Evidence]:
        """Evidence of the negative mentions of ``brands`` in this bucket."""
        if not brands or not self.neg_rows:
            return {}
        of_row = np.asarray(self.neg_brand)
        order = np.argsort(of_row, kind="stable")  # by brand, arrival order inside
        wanted = sorted(brands)
        cuts = np.searchsorted(of_row[order], [(i, i + 1) for i in wanted]).tolist()
        rows = self.neg_rows
        out: dict[int, Evidence] = {}
        for i, (a, z) in zip(wanted, cuts, strict=True):
            if z > a:
                ev = out[i] = Evidence()
                ev.add_rows(_gather(rows, order[a:z].tolist()))
        return out

    def to_state(self, n: int) -> dict[str, Any]:
        self.ensure(n)
        return {
            "count": self.count[:n],
            "scored": self.scored[:n],
            "negative": self.negative[:n],
            "sentiment_sum": self.sentiment_sum[:n],
            "neg_brand": self.neg_brand,
            "neg_rows": self.neg_rows,  # tuples: orjson writes them as arrays
            "sample_rows": self.sample_rows,
        }

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> Bucket:
        b = cls(len(st["count"]))
        for name in ("count", "scored", "negative", "sentiment_sum"):
            getattr(b, name)[:] = np.asarray(st[name], dtype=np.float64)
        b.neg_brand = [int(i) for i in st["neg_brand"]]
        b.neg_rows = [(str(r[0]), str(r[1]), r[2], r[3], float(r[4]), r[5]) for r in st["neg_rows"]]
        b.sample_rows = [(int(i), str(t)) for i, t in st["sample_rows"]]
        n = len(b.count)
        if b.neg_brand:
            b.neg_kept[:] = np.bincount(b.neg_brand, minlength=n)[:n]
        if b.sample_rows:
            b.sample_n[:] = np.bincount([i for i, _ in b.sample_rows], minlength=n)[:n]
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
        #: Mentions counted per brand index (see :attr:`totals`).
        self.counted = np.zeros(0, dtype=np.int64)
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
        # bucket closes (at most ``dedupe_max_ids`` of closed buckets): a
        # duplicate always falls in its original's bucket.
        #: Per bucket: the 64-bit hashes of its mention ids (streams.columns.hash_ids).
        self.seen: dict[int, IdSet] = {}
        self._zeros: npt.NDArray[np.float64] | None = None
        #: Called as on_close(bucket, stats, scores) after each bucket is scored (backtest plots).
        self.on_close: Callable[[int, BucketStats, np.ndarray], None] | None = None

    @classmethod
    def warm_up(cls, settings: Settings) -> None:
        """Count, close and checkpoint a few mentions on a throwaway engine, so numba's
        first-call loading of the detector kernels happens at start, not on live data."""
        eng = cls(settings.model_copy(update={"watermark_future_skew_seconds": None}))
        w = float(settings.bucket_seconds)
        docs = [
            {
                "id": str(k),
                "brand": "w",
                "text": "x",
                "event_time": k * w / 2,
                "sentiment": -0.5,
                "sentiment_label": "negative",
            }
            for k in range(8)
        ]
        eng.add(docs)
        eng.flush()
        eng.to_state()
        # And the evidence of a crisis event: numba compiles its word-counting
        # kernel at first use in a fresh install, which held up every partition
        # for 0.9 s at a new worker's first crisis.
        ev = Evidence()
        ev.add({"id": "w", "text": "warm words here", "sentiment": -0.5})
        ev.to_json("w", ["other words"])

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
            "seen": {str(b): ids.to_text() for b, ids in self.seen.items()},
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
        eng.counted = np.array([int(st["totals"].get(b, 0)) for b in eng.brands], dtype=np.int64)
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
        eng.seen = {int(b): IdSet.from_text(ids) for b, ids in st["seen"].items()}
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

    def add_columns(self, m: Mentions, rows: npt.NDArray[np.intp] | None = None) -> AddResult:
        """Count a batch of scored mentions (or its ``rows``) into their buckets, then close
        what the watermark allows.

        In arrival order, a mention whose id its bucket has already counted
        is a duplicate (dropped), one whose bucket has closed is late
        (returned, not counted); the rest are counted. The per-mention work
        is the duplicate check (set operations per bucket; a loop only when a
        batch really holds a duplicate); the sums of all buckets of the batch
        come from one ``bincount`` per field, and evidence rows of negative
        mentions are appended as they are.
        """
        res = AddResult()
        sel = np.arange(len(m)) if rows is None else np.asarray(rows, dtype=np.intp)
        if len(sel):
            self._count(m, sel, res)
        res.events.extend(self._close_until(int(self.watermark() // self.width)))
        return res

    def watermark(self, now: float | None = None) -> float:
        """The newest event time counted, capped at ``now`` (wall clock) plus
        ``watermark_future_skew_seconds`` in the stream, minus the allowed
        lateness: buckets that end at or before it are closed (``-inf`` before
        the first mention)."""
        horizon = self.max_event_time
        if self.s.watermark_future_skew_seconds is not None:
            # One mention from a clock running fast must not drag the watermark
            # ahead of real time and make every live mention after it late.
            now = time.time() if now is None else now
            horizon = min(horizon, now + self.s.watermark_future_skew_seconds)
        return horizon - self.s.allowed_lateness_seconds

    def _count(self, m: Mentions, sel: npt.NDArray[np.intp], res: AddResult) -> None:
        bk = np.floor_divide(m.event_time[sel], self.width).astype(np.int64)
        if self.next_close is None:
            self.next_close = int(bk[0])
        next_close = self.next_close
        n_in = len(sel)
        counted = np.ones(n_in, dtype=np.bool_)
        late: list[int] = []
        # Positions (into sel) grouped by bucket, arrival order kept inside each group.
        single = n_in == 1 or not (bk[1:] != bk[0]).any()
        if single:
            groups = [np.arange(n_in)]
        else:
            order = np.argsort(bk, kind="stable")
            groups = np.split(order, np.flatnonzero(np.diff(bk[order])) + 1)
        hashes = m.hashes()[sel]
        for pos in groups:
            b = int(bk[pos[0]])
            h = hashes[pos]
            seen = self.seen.get(b)
            if b < next_close:
                # Closed: a re-delivery of a counted mention is a duplicate, the rest is late.
                dup = seen.contains(h) if seen is not None else np.zeros(len(h), dtype=np.bool_)
                res.duplicates += int(dup.sum())
                late.extend(sel[pos[~dup]].tolist())
                counted[pos] = False
                continue
            if seen is None:
                seen = self.seen[b] = IdSet(len(h))
            # A re-delivery is an id its bucket has counted, or an earlier row of this batch.
            dup = seen.add(h)
            if dup.any():
                counted[pos[dup]] = False
                res.duplicates += int(dup.sum())
        if late:
            late.sort()
            res.late = [m.doc(k) for k in late]
        if not counted.all():
            keep = np.flatnonzero(counted)
            if not len(keep):
                return
            sel, bk = sel[keep], bk[keep]
        # Brand indices; brands new to the engine in order of first counted mention.
        index = self.index
        codes = m.bcode[sel]
        lut = np.fromiter(
            (index.get(name, -1) for name in m.brands), dtype=np.int64, count=len(m.brands)
        )
        if (lut[codes] < 0).any():
            used, first = np.unique(codes, return_index=True)
            for c in used[np.argsort(first)].tolist():
                if lut[c] < 0:
                    lut[c] = self._brand(m.brands[c])
        ix = lut[codes]
        self.max_event_time = max(self.max_event_time, float(m.event_time[sel].max()))
        n = len(self.brands)
        # All buckets of the batch at once: key = group * n + brand.
        ub, ginv = np.unique(bk, return_inverse=True)
        ginv = ginv.reshape(-1)
        n_g = len(ub)
        key = ginv * n + ix
        size = n_g * n
        counts = np.bincount(key, minlength=size).reshape(n_g, n)
        s = m.sentiment[sel]
        has = ~np.isnan(s)
        scored = np.bincount(key[has], minlength=size).reshape(n_g, n)
        ssum = np.bincount(key[has], weights=np.rint(s[has] * GIGA), minlength=size).reshape(n_g, n)
        neg = has & (m.label[sel] == NEGATIVE)
        negative = np.bincount(key[neg], minlength=size).reshape(n_g, n)
        # Sample candidates: the first SAMPLE mentions of each (bucket, brand) in this batch.
        rank = _rank_in_group(key)
        cand = np.flatnonzero(rank < SAMPLE)
        cand_rank = rank[cand]
        cand_g = ginv[cand]
        # Evidence rows: negative mentions, grouped by bucket in arrival order.
        npos = np.flatnonzero(neg)
        ev_rows: list[EvidenceRow] = []
        if len(npos):
            npos = npos[np.argsort(ginv[npos], kind="stable")]
            nk = sel[npos].tolist()
            ev_rows = list(
                zip(
                    _gather(m.id, nk),
                    _gather(m.text, nk),
                    _gather(m.author, nk),
                    _gather(m.followers, nk),
                    s[npos].tolist(),
                    _gather(m.platform, nk),
                    strict=True,
                )
            )
            ev_g = ginv[npos]
            ev_cuts = np.searchsorted(ev_g, np.arange(n_g + 1))
        texts = m.text
        buckets: list[Bucket] = []
        for b in ub.tolist():
            bucket = self.buckets.get(b)
            if bucket is None:
                bucket = self.buckets[b] = Bucket(max(16, n))
            bucket.ensure(n)
            buckets.append(bucket)
        # Samples of all buckets at once: a candidate is kept while its brand has
        # fewer than SAMPLE texts in its bucket (across batches), in arrival order.
        s_cuts: list[int] = []
        if len(cand):
            ci = ix[cand]
            have = np.stack([bk.sample_n[:n] for bk in buckets])  # (group, brand)
            okpos = np.flatnonzero(cand_rank + have[cand_g, ci] < SAMPLE)
            if len(okpos):
                okpos = okpos[np.argsort(cand_g[okpos], kind="stable")]
                s_brand = ci[okpos]
                s_brand_l = s_brand.tolist()
                s_texts = [texts[k][:280] for k in sel[cand[okpos]].tolist()]
                s_cuts = np.searchsorted(cand_g[okpos], np.arange(n_g + 1)).tolist()
        sums = np.stack((counts, scored, ssum, negative), axis=1)  # (group, field, brand)
        e_cuts = ev_cuts.tolist() if len(npos) else []
        for g, bucket in enumerate(buckets):
            bucket.acc[:, :n] += sums[g]
            if e_cuts and e_cuts[g + 1] > e_cuts[g]:
                a, z = e_cuts[g], e_cuts[g + 1]
                bucket.keep_evidence(ix[npos[a:z]], ev_rows[a:z])
            if s_cuts and s_cuts[g + 1] > s_cuts[g]:
                a, z = s_cuts[g], s_cuts[g + 1]
                bucket.sample_n += np.bincount(s_brand[a:z], minlength=len(bucket.sample_n))
                bucket.sample_rows.extend(zip(s_brand_l[a:z], s_texts[a:z], strict=True))
        if len(self.counted) < n:
            grown = np.zeros(max(n, 2 * len(self.counted)), dtype=np.int64)
            grown[: len(self.counted)] = self.counted
            self.counted = grown
        self.counted[:n] += counts.sum(axis=0)

    def advance_to(self, event_time: float) -> list[dict[str, Any]]:
        """Close every bucket that ends at or before ``event_time``."""
        return self._close_until(int(event_time // self.width))

    def flush(self) -> list[dict[str, Any]]:
        """Close every bucket that has data (end of input, or an idle partition)."""
        if not self.buckets:
            return []
        return self._close_until(max(self.buckets) + 1)

    # -- read-only views (metrics) -------------------------------------------
    @property
    def totals(self) -> Counter[str]:
        """Mentions counted per brand (brands with none left out)."""
        counted = self.counted
        return Counter(
            {self.brands[i]: int(counted[i]) for i in np.flatnonzero(counted[: len(self.brands)])}
        )

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
        if self.next_close is None or self.next_close >= end_bucket:
            return events
        closing: list[tuple[int, Bucket | None]] = []
        while self.next_close < end_bucket:
            b = self.next_close
            bucket = self.buckets.pop(b, None)
            if bucket is None:
                nxt = min((k for k in self.buckets if k > b), default=end_bucket)
                stop = min(nxt, end_bucket)
                if stop - b > MAX_EMPTY_RUN:
                    # Jump: detectors see a gap, not thousands of empty buckets.
                    events.extend(self._close_run(closing))
                    closing = []
                    self.next_close = stop
                    horizon = stop - self.s.dedupe_buckets
                    self.seen = {k: v for k, v in self.seen.items() if k >= horizon}
                    continue
            closing.append((b, bucket))
            self.next_close = b + 1
            self.seen.pop(b - self.s.dedupe_buckets, None)
        events.extend(self._close_run(closing))
        self._cap_seen()
        return events

    def _close_run(self, closing: list[tuple[int, Bucket | None]]) -> list[dict[str, Any]]:
        """Close consecutive buckets in order.

        A detector that scores many buckets in one kernel call
        (``update_many``) gets them all at once; the lifecycle and baselines
        then step bucket by bucket as before, with the same scores. A sparse
        stream (a backtest of a few brands) closes tens of buckets per batch,
        and one call per bucket cost more than the bucket's own work.
        """
        n = len(self.brands)
        det = self.detector
        if len(closing) < 2 or n == 0 or not getattr(det, "native_update_many", False):
            return [e for b, bucket in closing for e in self._close(b, bucket)]
        stats = [bk.stats(n) if bk is not None else self._empty_stats(n) for _, bk in closing]
        stacked = BucketStats(*(np.stack(col) for col in zip(*stats, strict=True)))
        scores, signals = det.update_many(stacked, [float(b * self.width) for b, _ in closing])
        events: list[dict[str, Any]] = []
        for t, (b, bucket) in enumerate(closing):
            # What the lifecycle reads for this bucket's drivers; after the last
            # bucket it is what update_many left (the last row).
            if signals:
                det.last_scores = {k: v[t] for k, v in signals.items()}  # type: ignore[attr-defined]
            events.extend(self._close(b, bucket, stats[t], scores[t]))
        return events

    def _cap_seen(self) -> None:
        """Drop the oldest closed buckets' ids beyond ``dedupe_max_ids`` (open buckets keep theirs).

        A closed bucket's ids only decide whether a re-delivery that arrives
        after the close is dropped as a duplicate or dead-lettered as late;
        it is not counted either way, so the cap never changes a count.
        Called after buckets close, the only time the closed set changes.
        """
        nc = self.next_close
        assert nc is not None
        closed = sorted(k for k in self.seen if k < nc)
        total = sum(len(self.seen[k]) for k in closed)
        for k in closed:
            if total <= self.s.dedupe_max_ids:
                break
            total -= len(self.seen.pop(k))

    def _close(
        self,
        b: int,
        bucket: Bucket | None,
        stats: BucketStats | None = None,
        scores: np.ndarray | None = None,
    ) -> list[dict[str, Any]]:
        """Close bucket ``b``: score it (unless ``_close_run`` already did: ``stats``
        and ``scores``), run the lifecycle, then update the baselines."""
        n = len(self.brands)
        if n == 0:
            return []
        if stats is None or scores is None:
            # An empty bucket is an observation (zero mentions) with nothing to keep.
            stats = bucket.stats(n) if bucket is not None else self._empty_stats(n)
            scores = self.detector.update(stats, timestamp=float(b * self.width))
        if self.on_close is not None:
            self.on_close(b, stats, scores)
        self._ensure_baselines(n)
        events = self._lifecycle(b, bucket, stats, scores)
        _update_baselines(
            stats.count,
            stats.scored,
            stats.negative,
            stats.sentiment_sum,
            self.base_volume,
            self.base_negshare,
            self.base_sentiment,
            self.base_seen,
            self._alpha,
        )
        return events

    def _empty_stats(self, n: int) -> BucketStats:
        """Zero statistics for ``n`` brands, shared and read-only (detectors must not write them)."""
        z = self._zeros
        if z is None or len(z) != n:
            z = self._zeros = np.zeros(n)
            z.flags.writeable = False
        return BucketStats(z, z, z, z)

    def _ensure_baselines(self, n: int) -> None:
        if len(self.base_volume) < n:
            for name in ("base_volume", "base_negshare", "base_sentiment", "base_seen"):
                old = getattr(self, name)
                new = np.zeros(max(n, 2 * len(old), 16))
                new[: len(old)] = old
                setattr(self, name, new)

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
        self, b: int, bucket: Bucket | None, st: BucketStats, scores: np.ndarray
    ) -> list[dict[str, Any]]:
        life = self.lifecycle
        events: list[dict[str, Any]] = []
        hot = np.flatnonzero(scores >= self.s.open_threshold).tolist()
        watched = set(hot) | set(life.open) if hot or life.open else set()
        if not watched and bucket is None:
            return events
        # Evidence only where the lifecycle can use it: open crises, and hot brands
        # that pass its volume and warm-up gates (the others are turned away first).
        ready = [
            i
            for i in hot
            if st.count[i] >= self.s.min_volume and self.base_seen[i] >= self.s.warmup_buckets
        ]
        needed = set(ready) | set(life.open)
        evidence = bucket.evidence_for(needed) if bucket is not None and needed else {}
        for i in sorted(watched):
            sig = self._signals(i, scores)
            base = self._baseline(i)
            brand = self.brands[i]
            for status, crisis in life.step(i, brand, b, st, sig, base, evidence.get(i)):
                sample = list(self.samples.get(i, ()))
                events.append(
                    life.event(status, crisis, brand, b, self.width, st, i, sig, base, sample)
                )
        if bucket is None:
            return events
        # Calm buckets feed the baseline vocabulary used to contrast crisis terms.
        samples, is_open = self.samples, life.open
        for i, text in bucket.sample_rows:
            if i not in is_open:
                d = samples.get(i)
                if d is None:
                    d = samples[i] = deque(maxlen=self.s.baseline_texts)
                d.append(text)
        return events
