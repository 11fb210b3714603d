"""Crisis score: one number per brand and bucket, and which signals drove it.

Three signals, each turned into "digits of surprise" ``S`` and then into
``S / (S + 3)`` so they share one scale (0.5 = one-in-a-thousand):

- ``volume``: :class:`~detectors.volume.VolumeDetector` in dense mode (the
  surprise of the current seasonal, count-aware volume z);
- ``negative_share``: the binomial z of the bucket's negative count from
  :class:`~detectors.negative_share.NegativeShareDetector`, as a one-sided
  Gaussian tail;
- ``mean_sentiment``: :class:`~detectors.sentiment.SentimentShiftDetector`
  (CUSUM of the count-aware drop in mean sentiment).

The crisis score is the largest of the three (so its meaning is the
strongest single piece of evidence; no signal can be outvoted). After each
``update``, ``last_scores`` holds every signal's score and ``last_drivers``
a bitmask (``DRIVER_BITS``) of the signals scoring ``>= driver_threshold``;
:meth:`CrisisDetector.drivers` names them for one brand.

Gaps and warm-up are each signal's own (see their modules): a brand with no
mentions in a bucket keeps a volume observation (0 mentions) and no
negativity or sentiment evidence.

Speed: one numba kernel runs all three signals' step functions (the same
arithmetic as the single-signal detectors, whose struct-of-arrays state it
updates in place) and the maximum, block by block (``BLOCK`` brands: one
branch-free loop per signal inside a block, each vectorised by LLVM, over
data that stay in cache). Drivers are computed from ``last_scores`` only
when asked for. The negative-share z is put on the surprise scale by
:func:`~detectors.kernels.gauss_surprise_fast` (one-sided: fewer negatives
than expected is no evidence, score 0). From ``PARALLEL_MIN_BRANDS`` brands
(``threading="auto"``) the blocks run on numba's threads; results are
identical (brands are independent).

>>> import numpy as np
>>> det = CrisisDetector(volume={"bucket_seconds": 3600, "warmup_hours": 24})
>>> calm = BucketStats(*(np.array([v]) for v in (100.0, 100.0, 10.0, 20.0)))
>>> for _ in range(48):
...     _ = det.update(calm)
>>> angry = BucketStats(*(np.array([v]) for v in (100.0, 100.0, 70.0, -50.0)))
>>> float(det.update(angry)[0]) > 0.9, det.drivers(0)
(True, ['negative_share', 'mean_sentiment'])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numba
import numpy as np
import numpy.typing as npt

from .base import BucketStats, Detector, FloatArray, register
from .kernels import SURPRISE_HALF, gauss_surprise_fast, surprise_score
from .negative_share import NegativeShareDetector, negshare_z_step
from .sentiment import METHODS, SentimentShiftDetector, sentiment_step
from .volume import BLOCK as VOLUME_BLOCK
from .volume import (
    N_SCALES,
    PARALLEL_MIN_BRANDS,
    Config,
    VolumeDetector,
    baseline_block,
    calibration_block,
)

SIGNALS = ("volume", "negative_share", "mean_sentiment")
DRIVER_BITS = {name: 1 << i for i, name in enumerate(SIGNALS)}
IntArray = npt.NDArray[np.int64]
NegParams = tuple[float, float, float, float]
SentParams = tuple[float, float, float, float, float, int, float]


#: Brands per block: each block runs the three signals as separate loops over
#: data that stays in cache (few memory streams per loop, which the hardware
#: prefetcher follows); threads take whole blocks.
BLOCK = VOLUME_BLOCK


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _crisis_block(
    start: int,
    stop: int,
    count: FloatArray,
    scored: FloatArray,
    negative: FloatArray,
    sentiment_sum: FloatArray,
    slot: int,
    v_profile: FloatArray,
    v_state: FloatArray,
    v_cfg: Config,
    n_base: FloatArray,
    n_weight: FloatArray,
    n_buckets: FloatArray,
    n_par: NegParams,
    s_state: FloatArray,
    s_par: SentParams,
    out: FloatArray,
    out_vol: FloatArray,
    out_neg: FloatArray,
    out_sent: FloatArray,
    qbuf: FloatArray,
) -> None:
    """Brands ``start..stop-1``: volume, negative-share z, sentiment, then the maximum.

    Each loop is branch-free, so LLVM vectorises it.
    """
    baseline_block(start, stop, count, slot, v_profile, v_state, v_cfg, qbuf)
    calibration_block(start, stop, v_state, v_cfg, qbuf, out_vol)
    a, prior, prior_weight, min_buckets = n_par
    # Unsigned indices: a possibly negative index costs a wrap-around select
    # on every access, which keeps LLVM from vectorising the loop.
    ustart, ustop = np.uint64(start), np.uint64(stop)
    for i in range(ustart, ustop):
        z, n_base[i], n_weight[i], n_buckets[i] = negshare_z_step(
            scored[i], negative[i], n_base[i], n_weight[i], n_buckets[i],
            a, prior, prior_weight, min_buckets,
        )  # fmt: skip
        out_neg[i] = surprise_score(gauss_surprise_fast(z), SURPRISE_HALF)
    s_alpha, k, min_sd, prior_sd, s_min, method, forget = s_par
    # One loop per method, each with the method a constant: a loop that tests
    # it per brand is not vectorised.
    if method == 0:
        for i in range(ustart, ustop):
            out_sent[i], _ = sentiment_step(
                scored[i], sentiment_sum[i], s_state, i,
                s_alpha, k, min_sd, prior_sd, s_min, 0, forget,
            )  # fmt: skip
    else:
        for i in range(ustart, ustop):
            out_sent[i], _ = sentiment_step(
                scored[i], sentiment_sum[i], s_state, i,
                s_alpha, k, min_sd, prior_sd, s_min, 1, forget,
            )  # fmt: skip
    for i in range(ustart, ustop):
        out[i] = max(out_vol[i], out_neg[i], out_sent[i])


@numba.njit(nogil=True, cache=True, error_model="numpy")
def crisis_update(
    count: FloatArray,
    scored: FloatArray,
    negative: FloatArray,
    sentiment_sum: FloatArray,
    slot: int,
    v_profile: FloatArray,
    v_state: FloatArray,
    v_cfg: Config,
    n_base: FloatArray,
    n_weight: FloatArray,
    n_buckets: FloatArray,
    n_par: NegParams,
    s_state: FloatArray,
    s_par: SentParams,
    out: FloatArray,
    out_vol: FloatArray,
    out_neg: FloatArray,
    out_sent: FloatArray,
) -> None:
    """All brands of one bucket, all three signals (one thread)."""
    n = count.shape[0]
    qbuf = np.empty((N_SCALES, BLOCK))
    for start in range(0, n, BLOCK):
        _crisis_block(
            start, min(start + BLOCK, n), count, scored, negative, sentiment_sum, slot,
            v_profile, v_state, v_cfg, n_base, n_weight, n_buckets, n_par,
            s_state, s_par, out, out_vol, out_neg, out_sent, qbuf,
        )  # fmt: skip


@numba.njit(nogil=True, cache=True, error_model="numpy")
def crisis_update_many(
    count: FloatArray,
    scored: FloatArray,
    negative: FloatArray,
    sentiment_sum: FloatArray,
    slots: npt.NDArray[np.int64],
    v_profile: FloatArray,
    v_state: FloatArray,
    v_cfg: Config,
    n_base: FloatArray,
    n_weight: FloatArray,
    n_buckets: FloatArray,
    n_par: NegParams,
    s_state: FloatArray,
    s_par: SentParams,
    out: FloatArray,
    out_vol: FloatArray,
    out_neg: FloatArray,
    out_sent: FloatArray,
) -> None:
    """:func:`crisis_update` for T buckets in a row (inputs and outputs (T, n)): one
    call instead of T, for engines that close many sparse buckets at once."""
    for t in range(count.shape[0]):
        crisis_update(
            count[t], scored[t], negative[t], sentiment_sum[t], slots[t],
            v_profile, v_state, v_cfg, n_base, n_weight, n_buckets, n_par,
            s_state, s_par, out[t], out_vol[t], out_neg[t], out_sent[t],
        )  # fmt: skip


@numba.njit(nogil=True, cache=True, error_model="numpy", parallel=True)
def crisis_update_parallel(
    count: FloatArray,
    scored: FloatArray,
    negative: FloatArray,
    sentiment_sum: FloatArray,
    slot: int,
    v_profile: FloatArray,
    v_state: FloatArray,
    v_cfg: Config,
    n_base: FloatArray,
    n_weight: FloatArray,
    n_buckets: FloatArray,
    n_par: NegParams,
    s_state: FloatArray,
    s_par: SentParams,
    out: FloatArray,
    out_vol: FloatArray,
    out_neg: FloatArray,
    out_sent: FloatArray,
) -> None:
    """:func:`crisis_update` with blocks on numba's threads (identical results)."""
    n = count.shape[0]
    for b in numba.prange((n + BLOCK - 1) // BLOCK):
        start = b * BLOCK
        qbuf = np.empty((N_SCALES, BLOCK))
        _crisis_block(
            start, min(start + BLOCK, n), count, scored, negative, sentiment_sum, slot,
            v_profile, v_state, v_cfg, n_base, n_weight, n_buckets, n_par,
            s_state, s_par, out, out_vol, out_neg, out_sent, qbuf,
        )  # fmt: skip


@register
class CrisisDetector(Detector):
    """Combined crisis score over volume, negative share and mean sentiment."""

    name: ClassVar[str] = "crisis"
    state_fields: ClassVar[tuple[str, ...]] = ()

    #: ``"auto"``: threads from ``PARALLEL_MIN_BRANDS`` brands; ``"serial"``/``"parallel"``: always.
    threading: str = "auto"

    def __init__(
        self,
        volume: dict[str, Any] | None = None,
        negative_share: dict[str, Any] | None = None,
        mean_sentiment: dict[str, Any] | None = None,
        driver_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        if not 0 < driver_threshold < 1:
            raise ValueError(f"driver_threshold must be in (0, 1), got {driver_threshold}")
        vol = dict(volume or {})
        if vol.get("sparse", False):
            raise ValueError("the crisis detector needs the dense volume score: drop volume.sparse")
        vol["sparse"] = False
        self.volume = VolumeDetector(**vol)
        self.negative_share = NegativeShareDetector(**(negative_share or {}))
        self.mean_sentiment = SentimentShiftDetector(**(mean_sentiment or {}))
        self.driver_threshold = float(driver_threshold)
        self.last_scores: dict[str, FloatArray] = {s: np.zeros(0) for s in SIGNALS}

    @property
    def params(self) -> dict[str, Any]:
        return {
            "volume": self.volume.params,
            "negative_share": self.negative_share.params,
            "mean_sentiment": self.mean_sentiment.params,
            "driver_threshold": self.driver_threshold,
        }

    def _grow(self, n: int) -> None:
        for d in (self.volume, self.negative_share, self.mean_sentiment):
            d.ensure_rows(n)

    native_update_many = True

    def _parallel(self, n: int) -> bool:
        return self.threading == "parallel" or (
            self.threading == "auto" and n >= PARALLEL_MIN_BRANDS
        )

    def _kernel_args(self) -> tuple[Any, ...]:
        """The state and parameters every kernel call takes (between the slot and the outputs)."""
        ns, ms = self.negative_share, self.mean_sentiment
        return (
            self.volume.profile,
            self.volume.state,
            self.volume._cfg,
            ns.p_base,
            ns.weight,
            ns.buckets,
            (ns._alpha, ns.prior, ns.prior_weight, float(ns.min_buckets)),
            ms.state,
            (
                ms._alpha,
                ms.k,
                ms.min_sd,
                ms.prior_sd,
                float(ms.min_buckets),
                METHODS.index(ms.method),
                ms.forget,
            ),
        )

    def update(self, stats: BucketStats, timestamp: float | None = None) -> FloatArray:
        stats = stats.check(1)
        n = stats.count.shape[0]
        self.ensure_rows(n)
        slot = self.volume.slot_of(timestamp)
        # Fresh arrays (callers keep a bucket's scores); every element is written.
        out, vol, neg, sent = np.empty((4, n))
        kernel = crisis_update_parallel if self._parallel(n) else crisis_update
        kernel(*stats, slot, *self._kernel_args(), out, vol, neg, sent)  # type: ignore[call-arg]
        self.last_scores = {"volume": vol, "negative_share": neg, "mean_sentiment": sent}
        return out

    def update_many(
        self, stats: BucketStats, timestamps: Sequence[float]
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        stats = stats.check(2)
        T, n = stats.count.shape
        if self._parallel(n):  # many brands: one bucket at a time on numba's threads
            return super().update_many(stats, timestamps)
        self.ensure_rows(n)
        slots = np.array([self.volume.slot_of(ts) for ts in timestamps], dtype=np.int64)
        out, vol, neg, sent = np.empty((4, T, n))
        crisis_update_many(*stats, slots, *self._kernel_args(), out, vol, neg, sent)  # type: ignore[call-arg]
        self.last_scores = {
            "volume": vol[-1],
            "negative_share": neg[-1],
            "mean_sentiment": sent[-1],
        }
        return out, {"volume": vol, "negative_share": neg, "mean_sentiment": sent}

    @property
    def last_drivers(self) -> IntArray:
        """Bitmask (``DRIVER_BITS``) per brand of the signals ``>= driver_threshold``.

        Computed from ``last_scores`` when asked for (most buckets nobody asks),
        so the bucket update writes one array fewer.
        """
        bits = np.zeros(len(self.last_scores["volume"]), dtype=np.int64)
        for s in SIGNALS:
            bits |= np.where(self.last_scores[s] >= self.driver_threshold, DRIVER_BITS[s], 0)
        return bits

    def drivers(self, i: int) -> list[str]:
        """Names of the signals that drove brand ``i``'s last score (>= driver_threshold)."""
        return [s for s in SIGNALS if self.last_scores[s][i] >= self.driver_threshold]

    def to_state(self) -> dict[str, Any]:
        return {
            "__detector__": self.name,
            "__params__": dict(self.params),
            "n": self.n,
            "parts": {s: getattr(self, s).to_state() for s in SIGNALS},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CrisisDetector:
        if state.get("__detector__") != cls.name:
            raise ValueError(
                f"state is for detector {state.get('__detector__')!r}, not {cls.name!r}"
            )
        det = cls(**state["__params__"])
        det.volume = VolumeDetector.from_state(state["parts"]["volume"])
        det.negative_share = NegativeShareDetector.from_state(state["parts"]["negative_share"])
        det.mean_sentiment = SentimentShiftDetector.from_state(state["parts"]["mean_sentiment"])
        det.n = int(state["n"])
        det._grow(det.n)
        return det
