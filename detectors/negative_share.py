"""Negativity surge: is this bucket's negative count unusual for the brand?

Count-aware by construction: the score is the one-sided binomial tail of
the bucket's negative count given the brand's baseline negative share, so
3 negatives out of 4 mentions is weak evidence and 300 out of 400 is
strong. Score meaning: ``Phi(z)`` with
``z`` the signed root of the binomial likelihood-ratio statistic for
``k - 0.5`` negatives out of ``n`` (continuity-corrected), i.e. one minus
the approximate probability of at least ``k`` negatives under the
baseline. The baseline ``p0`` is an
exponentially weighted mean of past negative shares (half-life in
buckets), shrunk towards a prior share while young; it is updated after
scoring (causal), and a surging bucket's share is winsorised at
``p0 + 3 sd`` so a long crisis does not quickly become the new normal.
During warm-up the baseline is the pooled share of the warm-up buckets,
not winsorised (there is no learned normal to protect yet).

Gaps: a bucket with no scored mentions scores 0 and leaves state unchanged.
Warm-up: scores are 0 until the brand has ``min_buckets`` buckets with data.

>>> import numpy as np
>>> det = NegativeShareDetector(min_buckets=3)
>>> calm = BucketStats(*(np.array([v]) for v in (100.0, 100.0, 10.0, 0.0)))
>>> for _ in range(5):
...     _ = det.update(calm)
>>> surge = BucketStats(*(np.array([v]) for v in (100.0, 100.0, 60.0, -40.0)))
>>> float(det.update(surge)[0]) > 0.9999
True
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np

from .base import BucketStats, Detector, FloatArray, grow, register
from .fastmath import fast_log

_SQRT2 = math.sqrt(2.0)


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def signed_root_deviance(k: float, n: float, p: float) -> float:
    """Signed square root of the binomial likelihood-ratio statistic.

    Approximately standard normal under Binomial(n, p), and far more accurate
    in the upper tail than the Wald z when p is small (the case here:
    baseline negative shares of 5-20% with 10-100 mentions per bucket).
    Needs ``n > 0`` and ``0 < p < 1``. Branch-free, with
    :func:`~detectors.fastmath.fast_log`, so a loop over brands vectorises.
    """
    k = min(max(k, 0.0), n)
    mu = n * p
    rest, nmu = n - k, n - mu
    inv = 1.0 / (mu * nmu)  # one division for both ratios
    # x log(x / m) is 0 at x = 0: log(1) stands in for the undefined log(0).
    d = k * fast_log(k * nmu * inv if k > 0.0 else 1.0)
    d += rest * fast_log(rest * mu * inv if rest > 0.0 else 1.0)
    r = math.sqrt(max(2.0 * d, 0.0))
    return r if k >= mu else -r


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def negshare_z_step(
    n: float,
    k: float,
    p_base: float,
    weight: float,
    buckets: float,
    alpha: float,
    prior: float,
    prior_weight: float,
    min_buckets: float,
) -> tuple[float, float, float, float]:
    """One brand, one bucket, without the score: returns (z, p_base, weight, buckets).

    ``z`` is the signed root deviance of the negative count (NaN for a gap or
    during warm-up). :func:`negshare_step_z` adds ``Phi(z)``; the crisis
    detector needs only ``z``, so it skips the ``erf``. Branch-free: a gap
    (no scored mentions, or NaN) computes on stand-in values and returns the
    state unchanged.
    """
    ok = n > 0.0 and k == k
    nn = n if ok else 1.0
    kk = k if ok else 0.0
    # Shrink the young baseline towards the prior share.
    p0 = (p_base * weight + prior * prior_weight) / (weight + prior_weight)
    p0 = min(max(p0, 0.01), 0.99)
    z = signed_root_deviance(kk - 0.5, nn, p0)
    inv_n = 1.0 / nn  # divisions are what a vectorised loop pays for: one, shared
    share = kk * inv_n
    # While warming up the baseline is the pooled share (all negatives over all
    # scored mentions so far), not winsorised: there is no learned normal yet to
    # protect, and capping at the prior's p0 + 3 sd kept a brand whose normal
    # share is well above the prior (airline mentions: ~45%) "surging" for tens
    # of buckets after warm-up while the EWMA crept up 3 sd * alpha a bucket.
    learning = not buckets >= min_buckets
    cap = p0 + 3.0 * math.sqrt(p0 * (1.0 - p0) * inv_n)
    share = share if learning else min(share, cap)
    # Count-weighted EWMA: a bucket with more mentions moves the baseline more,
    # up to a full alpha step at 30 mentions (the pooled mean while learning).
    a = nn / (weight + nn) if learning else alpha * min(1.0, nn * (1.0 / 30.0))
    p_new = share if weight == 0.0 else (1.0 - a) * p_base + a * share
    if not ok:
        return math.nan, p_base, weight, buckets
    if not buckets >= min_buckets:
        z = math.nan
    return z, p_new, min(weight + nn, 1e6), buckets + 1.0


@numba.njit(nogil=True, cache=True)
def negshare_step_z(
    n: float,
    k: float,
    p_base: float,
    weight: float,
    buckets: float,
    alpha: float,
    prior: float,
    prior_weight: float,
    min_buckets: float,
) -> tuple[float, float, float, float, float]:
    """One brand, one bucket: returns (score, z, p_base, weight, buckets).

    ``z`` is the signed root deviance of the negative count (NaN for a gap or
    during warm-up); ``score = Phi(z)`` (0 for a gap or during warm-up).
    """
    z, p_base, weight, buckets = negshare_z_step(
        n, k, p_base, weight, buckets, alpha, prior, prior_weight, min_buckets
    )
    score = 0.5 * (1.0 + math.erf(z / _SQRT2)) if z == z else 0.0
    return score, z, p_base, weight, buckets


@numba.njit(nogil=True, cache=True)
def negshare_step(
    n: float,
    k: float,
    p_base: float,
    weight: float,
    buckets: float,
    alpha: float,
    prior: float,
    prior_weight: float,
    min_buckets: float,
) -> tuple[float, float, float, float]:
    """One brand, one bucket: returns (score, p_base, weight, buckets)."""
    score, _, p_base, weight, buckets = negshare_step_z(
        n, k, p_base, weight, buckets, alpha, prior, prior_weight, min_buckets
    )
    return score, p_base, weight, buckets


@numba.njit(nogil=True, cache=True)
def negshare_update(
    count: FloatArray,
    negative: FloatArray,
    p_base: FloatArray,
    weight: FloatArray,
    buckets: FloatArray,
    alpha: float,
    prior: float,
    prior_weight: float,
    min_buckets: float,
    out: FloatArray,
    out_z: FloatArray,
) -> None:
    for i in range(count.shape[0]):
        out[i], out_z[i], p_base[i], weight[i], buckets[i] = negshare_step_z(
            count[i],
            negative[i],
            p_base[i],
            weight[i],
            buckets[i],
            alpha,
            prior,
            prior_weight,
            min_buckets,
        )


@register
class NegativeShareDetector(Detector):
    name: ClassVar[str] = "negative_share"
    state_fields: ClassVar[tuple[str, ...]] = ("p_base", "weight", "buckets")

    def __init__(
        self,
        halflife_buckets: float = 24.0,
        prior: float = 0.2,
        prior_weight: float = 50.0,
        min_buckets: int = 6,
    ) -> None:
        super().__init__()
        if not halflife_buckets > 0:
            raise ValueError(f"halflife_buckets must be > 0, got {halflife_buckets}")
        if not 0 < prior < 1:
            raise ValueError(f"prior must be in (0, 1), got {prior}")
        if prior_weight < 0:
            raise ValueError(f"prior_weight must be >= 0, got {prior_weight}")
        if min_buckets < 0:
            raise ValueError(f"min_buckets must be >= 0, got {min_buckets}")
        self.halflife_buckets = float(halflife_buckets)
        self.prior = float(prior)
        self.prior_weight = float(prior_weight)
        self.min_buckets = int(min_buckets)
        self._alpha = 1.0 - 0.5 ** (1.0 / self.halflife_buckets)
        empty = np.zeros(0, dtype=np.float64)
        self.p_base, self.weight, self.buckets = empty, empty.copy(), empty.copy()

    @property
    def params(self) -> dict[str, Any]:
        return {
            "halflife_buckets": self.halflife_buckets,
            "prior": self.prior,
            "prior_weight": self.prior_weight,
            "min_buckets": self.min_buckets,
        }

    def _grow(self, n: int) -> None:
        self.p_base = grow(self.p_base, n, 0.0)
        self.weight = grow(self.weight, n, 0.0)
        self.buckets = grow(self.buckets, n, 0.0)

    def update(self, stats: BucketStats, timestamp: float | None = None) -> FloatArray:
        return self.update_z(stats)[0]

    def update_z(self, stats: BucketStats) -> tuple[FloatArray, FloatArray]:
        """Like ``update``, also returning z (NaN for gaps and warm-up)."""
        stats = stats.check(1)
        n = stats.count.shape[0]
        self.ensure_rows(n)
        out = np.zeros(n, dtype=np.float64)
        z = np.zeros(n, dtype=np.float64)
        negshare_update(
            stats.scored,
            stats.negative,
            self.p_base,
            self.weight,
            self.buckets,
            self._alpha,
            self.prior,
            self.prior_weight,
            float(self.min_buckets),
            out,
            z,
        )
        return out, z
