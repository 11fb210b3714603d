"""Sentiment shift: has the brand's mean sentiment dropped and stayed down?

Per brand and bucket, the mean sentiment ``m = sentiment_sum / scored`` is
standardised against a baseline with a *count-aware* standard error,

    z = (m - base) / sqrt(sigma1^2 / scored + tau^2),

where ``sigma1^2`` is the per-mention sentiment variance (estimated online
from ``scored * (m - base)^2``, which is unbiased for it when the mean is
stable; floored at ``(prior_sd / 2)^2``) and ``tau = min_sd`` a floor for bucket-to-bucket drift. A bucket
of 3 mentions therefore moves ``z`` far less than one of 300.

The standardised values feed a change detector on the *downward* side:

- ``method="cusum"`` (default): ``S = max(0, S - z - k)`` (:func:`~detectors.
  kernels.cusum_step`, the negative side). ``2k * S`` is the log-likelihood
  ratio of "the mean dropped by 2k standard errors" against "no change"
  (Page 1954), so the surprise is ``S * 2k * log10(e)`` digits.
- ``method="page_hinkley"``: Page-Hinkley on ``-z`` (:func:`~detectors.
  kernels.page_hinkley_step`) with allowance ``k`` and forgetting factor
  ``forget``; its statistic is read on the same scale.

Score: ``surprise / (surprise + 3)`` (0.5 = likelihood ratio 1000:1). The
baseline and variance update after scoring, count-weighted (full step at
30 mentions) and with ``z`` clipped at 3 so a crisis is not absorbed fast.

Gaps: a bucket with no scored mentions (or NaN) scores 0 and changes no
state; the change statistic holds its value across the gap. Warm-up: 0 until
``min_buckets`` buckets with data.

>>> import numpy as np
>>> det = SentimentShiftDetector()
>>> calm = BucketStats(*(np.array([v]) for v in (50.0, 50.0, 10.0, 10.0)))   # mean +0.2
>>> drop = BucketStats(*(np.array([v]) for v in (50.0, 50.0, 30.0, -20.0)))  # mean -0.4
>>> [round(float(det.update(calm)[0]), 3) for _ in range(20)][-1]
0.0
>>> float(max(det.update(drop)[0] for _ in range(6))) > 0.8
True
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np

from .base import BucketStats, Detector, FloatArray, grow, register
from .kernels import SURPRISE_HALF, cusum_step, page_hinkley_step, surprise_score

_LOG10E = 1.0 / math.log(10.0)
METHODS = ("cusum", "page_hinkley")
# state rows (struct of arrays, state[row, brand]): base, var1, buckets, a, b, c, d
# (a..d: change-detector state)
_N_STATE = 7


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def sentiment_step(
    n: float,
    total: float,
    state: FloatArray,
    i: int,
    alpha: float,
    k: float,
    min_sd: float,
    prior_sd: float,
    min_buckets: float,
    method: int,
    forget: float,
) -> tuple[float, float]:
    """Brand ``i``, one bucket: returns (score, z); updates column ``i`` of ``state`` in place.

    Branch-free (selects instead of early returns), so a loop over brands
    vectorises: a gap computes on stand-in values and stores the old state
    back; a brand's first bucket with data only sets its baseline.
    """
    ok = n > 0.0 and total == total
    nn = n if ok else 1.0
    inv_n = 1.0 / nn  # divisions are what a vectorised loop pays for: one, shared
    m = total * inv_n if ok else 0.0
    base, var1, buckets = state[0, i], state[1, i], state[2, i]
    a0, a1 = state[3, i], state[4, i]
    # Rows 5-6 are Page-Hinkley's only: CUSUM does not stream them through memory.
    a2, a3 = (state[5, i], state[6, i]) if method != 0 else (0.0, 0.0)
    first = buckets == 0.0
    se = math.sqrt(var1 * inv_n + min_sd * min_sd)
    z = (m - base) / se if not first else 0.0
    if method == 0:
        n0, n1 = cusum_step(a0, a1, z, k)
        n2, n3 = a2, a3
        stat = n1
    else:
        n0, n1, n2, n3 = page_hinkley_step(a0, a1, a2, a3, -z, k, forget)
        stat = n2 - n3
    score = surprise_score(stat * 2.0 * k * _LOG10E, SURPRISE_HALF)
    if not buckets >= min_buckets:
        score = 0.0
    # Learn after scoring, clipped and count-weighted.
    a = alpha * min(1.0, nn * (1.0 / 30.0))
    zc = min(max(z, -3.0), 3.0)
    base1 = base + a * zc * se
    d2 = nn * (zc * se) * (zc * se)
    # Floor the per-mention variance: a brand whose few mentions happened to
    # agree must not look infinitely precise.
    var11 = max(var1 + a * (d2 - var1), 0.25 * prior_sd * prior_sd)
    live = ok and not first
    state[0, i] = base1 if live else (m if ok else base)
    state[1, i] = var11 if live else (prior_sd * prior_sd if ok else var1)
    state[2, i] = buckets + 1.0 if ok else buckets
    state[3, i] = n0 if live else a0
    state[4, i] = n1 if live else a1
    if method != 0:
        state[5, i] = n2 if live else a2
        state[6, i] = n3 if live else a3
    if live:
        return score, z
    return 0.0, math.nan


@numba.njit(nogil=True, cache=True)
def sentiment_update(
    scored: FloatArray,
    total: FloatArray,
    state: FloatArray,
    alpha: float,
    k: float,
    min_sd: float,
    prior_sd: float,
    min_buckets: float,
    method: int,
    forget: float,
    out: FloatArray,
    out_z: FloatArray,
) -> None:
    for i in range(scored.shape[0]):
        out[i], out_z[i] = sentiment_step(
            scored[i], total[i], state, i, alpha, k, min_sd, prior_sd, min_buckets, method, forget
        )


@register
class SentimentShiftDetector(Detector):
    """Count-aware mean-sentiment drop detector (see the module docstring)."""

    name: ClassVar[str] = "mean_sentiment"
    state_fields: ClassVar[tuple[str, ...]] = ("state",)
    state_layout: ClassVar[int] = 2  # 2: state[row, brand] (1 was state[brand, column])

    def __init__(
        self,
        halflife_buckets: float = 72.0,
        k: float = 0.5,
        min_sd: float = 0.05,
        prior_sd: float = 0.5,
        min_buckets: int = 6,
        method: str = "cusum",
        forget: float = 0.99,
    ) -> None:
        super().__init__()
        if not halflife_buckets > 0:
            raise ValueError(f"halflife_buckets must be > 0, got {halflife_buckets}")
        if not k > 0:
            raise ValueError(f"k must be > 0, got {k}")
        if not (min_sd > 0 and prior_sd > 0):
            raise ValueError(f"min_sd and prior_sd must be > 0, got {min_sd}, {prior_sd}")
        if min_buckets < 0:
            raise ValueError(f"min_buckets must be >= 0, got {min_buckets}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if not 0 < forget <= 1:
            raise ValueError(f"forget must be in (0, 1], got {forget}")
        self.halflife_buckets = float(halflife_buckets)
        self.k = float(k)
        self.min_sd = float(min_sd)
        self.prior_sd = float(prior_sd)
        self.min_buckets = int(min_buckets)
        self.method = method
        self.forget = float(forget)
        self._alpha = 1.0 - 0.5 ** (1.0 / self.halflife_buckets)
        self.state = np.zeros((_N_STATE, 0))
        self.last_z = np.zeros(0)

    @property
    def params(self) -> dict[str, Any]:
        return {
            "halflife_buckets": self.halflife_buckets,
            "k": self.k,
            "min_sd": self.min_sd,
            "prior_sd": self.prior_sd,
            "min_buckets": self.min_buckets,
            "method": self.method,
            "forget": self.forget,
        }

    def _grow(self, n: int) -> None:
        self.state = grow(self.state, n, 0.0)

    def update(self, stats: BucketStats, timestamp: float | None = None) -> FloatArray:
        stats = stats.check(1)
        n = stats.count.shape[0]
        self.ensure_rows(n)
        out = np.zeros(n)
        self.last_z = np.zeros(n)
        sentiment_update(
            stats.scored,
            stats.sentiment_sum,
            self.state,
            self._alpha,
            self.k,
            self.min_sd,
            self.prior_sd,
            float(self.min_buckets),
            METHODS.index(self.method),
            self.forget,
            out,
            self.last_z,
        )
        return out
