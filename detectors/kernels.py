"""Numba kernels: streaming statistics as step functions plus batch loops.

Every statistic has a *step* function (state in, state out, one value) and a
*batch* function that loops the same step over an array and writes into
``out`` arrays, so a detector's per-bucket update and an offline run share
the arithmetic bit for bit. All are ``nopython`` with ``cache=True`` (the
first import compiles once per machine; later imports load the cache).

NaN inputs are gaps: a step returns its state unchanged and the batch loop
repeats the last output (NaN before the first finite value).

Kernels (each tested against a NumPy reference in ``tests/detectors``):

- :func:`ewm_step` / :func:`ewm`: exponentially weighted mean and variance
  (West 1979; Finch, "Incremental calculation of weighted mean and variance",
  2009). The recursion equals the weighted mean/variance with weights
  ``alpha (1-alpha)^(i-j)`` (first value ``(1-alpha)^i``).
- :func:`robust_step` / :func:`robust`: a streaming robust location and
  scale. The location is a stochastic-approximation median (Robbins & Monro
  1951; "frugal" quantile tracking, Ma, Muthukrishnan & Sandler 2014): it
  moves ``eta * scale`` towards each point, so its fixed point is the median
  and one outlier moves it by one step. The scale is an EW mean of absolute
  deviations winsorised at ``clip`` scales (Huber, "Robust Statistics",
  1981), rescaled to a standard deviation.
- :func:`cusum_step` / :func:`cusum`: two-sided CUSUM (Page 1954) on
  standardised input: ``S+ = max(0, S+ + z - k)``, ``S- = max(0, S- - z - k)``.
- :func:`page_hinkley_step` / :func:`page_hinkley`: Page-Hinkley test for an
  increase of the mean (Hinkley 1971), with an optional forgetting factor
  (Gama et al., "A survey on concept drift adaptation", 2014).
- :func:`seasonal_step` / :func:`seasonal`: a level plus a periodic profile
  (e.g. hour of day) learned online by exponential smoothing, Holt-Winters
  style (Winters 1960) but with a robustly clipped error and a profile whose
  mean is kept at zero in O(1) per step.
- :func:`gauss_surprise`, :func:`surprise_score`: map a standardised
  statistic to ``-log10`` of its one-sided Gaussian tail probability, and
  that to ``s / (s + half)`` in [0, 1); :func:`gauss_surprise_fast` is a
  tabulated one-sided version for hot loops.
- :func:`tail_step` / :func:`tail_calibrate`: calibrate a statistic against
  its *own* recent upper tail (peaks over threshold with an exponential
  excess, i.e. a generalised Pareto tail of shape 0; Pickands 1975; Siffer
  et al., "Anomaly detection in streams with extreme value theory", KDD
  2017), so one threshold means the same rarity on every series.

>>> import numpy as np
>>> m, v = np.empty(3), np.empty(3)
>>> ewm(np.array([1.0, np.nan, 3.0]), 0.5, m, v)
>>> m.tolist(), v.tolist()
([1.0, 1.0, 2.0], [0.0, 0.0, 1.0])
>>> round(surprise_score(gauss_surprise(3.0)), 3)    # p = 0.00135 -> 2.87 digits
0.489
>>> d = np.empty(3)
>>> tail_calibrate(np.array([0.5, 2.0, 2.0]), 1.0, 0.1, 0.1, 1.0, 1e-4, d)
>>> d.round(3).tolist()    # 1 digit at q_u=1 (rate 0.1), +log10(e) per mean excess
[0.5, 1.48, 1.177]
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

from .base import FloatArray
from .fastmath import fast_log, fast_log10

IntArray = npt.NDArray[np.int64]

_SQRT2 = math.sqrt(2.0)
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)
_LOG10E = 1.0 / math.log(10.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
#: Default ``half`` of :func:`surprise_score`: score 0.5 <=> tail probability 1e-3.
SURPRISE_HALF = 3.0


# --------------------------------------------------------------------------- EWMA


@numba.njit(nogil=True, cache=True)
def ewm_step(mean: float, var: float, x: float, alpha: float) -> tuple[float, float]:
    """One EW mean/variance update; a NaN mean means "no value yet"."""
    if x != x:
        return mean, var
    if mean != mean:
        return x, 0.0
    d = x - mean
    mean += alpha * d
    # Finch's form keeps var >= 0 in floating point (no E[x^2] - E[x]^2).
    var = (1.0 - alpha) * (var + alpha * d * d)
    return mean, var


@numba.njit(nogil=True, cache=True)
def ewm(x: FloatArray, alpha: float, out_mean: FloatArray, out_var: FloatArray) -> None:
    mean, var = math.nan, math.nan
    for i in range(x.shape[0]):
        mean, var = ewm_step(mean, var, x[i], alpha)
        out_mean[i] = mean
        out_var[i] = var


# --------------------------------------------------------------------------- robust


@numba.njit(nogil=True, cache=True)
def robust_step(
    loc: float, scale: float, x: float, eta: float, a_scale: float, clip: float, scale_floor: float
) -> tuple[float, float]:
    """Streaming robust location and scale; NaN ``loc`` means "no value yet".

    Location: stochastic-approximation median, a step of ``eta * scale``
    towards each point (never past it). Scale: EW mean (rate ``a_scale``) of
    the absolute deviation winsorised at ``clip * scale``, times sqrt(pi/2)
    so it estimates the standard deviation for Gaussian data. One outlier
    moves the location by one step and the scale by at most
    ``a_scale * clip * scale``. The first value sets ``loc`` only.
    """
    if x != x:
        return loc, scale
    if loc != loc:
        return x, scale
    d = x - loc
    step = eta * scale
    if d > 0.0:
        loc += min(step, d)  # never overshoot the point: keeps constant input exact
    elif d < 0.0:
        loc -= min(step, -d)
    dev = min(abs(d), clip * scale)
    scale += a_scale * (dev * _SQRT_HALF_PI - scale)
    return loc, max(scale, scale_floor)


@numba.njit(nogil=True, cache=True)
def robust(
    x: FloatArray,
    eta: float,
    a_scale: float,
    clip: float,
    scale0: float,
    scale_floor: float,
    out_loc: FloatArray,
    out_scale: FloatArray,
) -> None:
    loc, scale = math.nan, scale0
    for i in range(x.shape[0]):
        loc, scale = robust_step(loc, scale, x[i], eta, a_scale, clip, scale_floor)
        out_loc[i] = loc
        out_scale[i] = scale


# --------------------------------------------------------------------------- CUSUM


@numba.njit(nogil=True, cache=True, inline="always")
def cusum_step(pos: float, neg: float, z: float, k: float) -> tuple[float, float]:
    """Two-sided CUSUM on a standardised value ``z`` with allowance ``k``."""
    if z != z:
        return pos, neg
    return max(0.0, pos + z - k), max(0.0, neg - z - k)


@numba.njit(nogil=True, cache=True)
def cusum(z: FloatArray, k: float, out_pos: FloatArray, out_neg: FloatArray) -> None:
    pos, neg = 0.0, 0.0
    for i in range(z.shape[0]):
        pos, neg = cusum_step(pos, neg, z[i], k)
        out_pos[i] = pos
        out_neg[i] = neg


# --------------------------------------------------------------------------- Page-Hinkley


@numba.njit(nogil=True, cache=True, inline="always")
def page_hinkley_step(
    mean: float, n: float, cum: float, cum_min: float, x: float, delta: float, forget: float
) -> tuple[float, float, float, float]:
    """Page-Hinkley for an upward shift; the statistic is ``cum - cum_min``.

    ``mean`` is the running mean of x (cumulative: ``n`` counts values);
    ``cum`` the (forgetting) sum of ``x - mean - delta``; ``cum_min`` its minimum.
    """
    if x != x:
        return mean, n, cum, cum_min
    n += 1.0
    mean += (x - mean) / n
    cum = forget * cum + (x - mean - delta)
    cum_min = min(cum_min, cum)
    return mean, n, cum, cum_min


@numba.njit(nogil=True, cache=True)
def page_hinkley(x: FloatArray, delta: float, forget: float, out: FloatArray) -> None:
    mean, n, cum, cum_min = 0.0, 0.0, 0.0, 0.0
    for i in range(x.shape[0]):
        mean, n, cum, cum_min = page_hinkley_step(mean, n, cum, cum_min, x[i], delta, forget)
        out[i] = cum - cum_min


# --------------------------------------------------------------------------- seasonal


@numba.njit(nogil=True, cache=True)
def seasonal_step(
    level: float,
    pslot: float,
    pmean: float,
    age: float,
    y: float,
    n_slots: int,
    clip: float,
    a_level: float,
    a_profile_min: float,
) -> tuple[float, float, float, float, float]:
    """Update level + periodic profile with one value ``y``; ``pslot`` is its slot's entry.

    Returns ``(expected, level, pslot, pmean, age)``; the caller stores
    ``pslot`` back (scalars only, so a caller holding many brands' profiles in
    one 2-D array needs no per-row views). ``expected = level + pslot - pmean``
    is the forecast made *before* seeing ``y``. The error is clipped to
    ``+-clip`` so a spike moves the baseline by a bounded amount. A slot's
    rate starts at ``1/visits`` (a plain mean while young) and settles at
    ``a_profile_min``; visits are estimated as ``age / n_slots`` since each
    value updates one slot. ``pmean`` tracks the profile's mean so the
    effective profile has mean zero without an O(slots) re-centring.
    """
    if y != y:
        return math.nan, level, pslot, pmean, age
    if age == 0.0:
        level = y
    expected = level + pslot - pmean
    e = y - expected
    e = min(max(e, -clip), clip)
    level += a_level * e
    a_p = max(1.0 / (1.0 + age / n_slots), a_profile_min)
    pslot += a_p * e
    pmean += a_p * e / n_slots
    return expected, level, pslot, pmean, age + 1.0


@numba.njit(nogil=True, cache=True)
def seasonal(
    y: FloatArray,
    slots: IntArray,
    n_slots: int,
    clip: float,
    a_level: float,
    a_profile_min: float,
    out: FloatArray,
) -> None:
    """Batch :func:`seasonal_step`: ``out[i]`` is the forecast for ``y[i]``."""
    profile = np.zeros(n_slots)
    level, pmean, age = 0.0, 0.0, 0.0
    for i in range(y.shape[0]):
        s = slots[i]
        e, level, profile[s], pmean, age = seasonal_step(
            level, profile[s], pmean, age, y[i], n_slots, clip, a_level, a_profile_min
        )
        out[i] = e


# --------------------------------------------------------------------------- scores


@numba.njit(nogil=True, cache=True)
def gauss_surprise(z: float) -> float:
    """``-log10 P(Z >= z)`` for standard normal Z (0 for NaN), accurate for large z.

    Uses ``erfc`` while it is representable and the Mills-ratio asymptote
    ``log Q(z) ~ -z^2/2 - log(z sqrt(2 pi)) - 1/z^2`` beyond (z > 30).
    """
    if z != z:
        return 0.0
    if z < 30.0:
        q = 0.5 * math.erfc(z / _SQRT2)
        return -math.log10(q) if q > 0.0 else 0.0
    return (0.5 * z * z + math.log(z) + _HALF_LOG_2PI + 1.0 / (z * z)) * _LOG10E


# gauss_surprise on a grid of step 1/128 over [0, 16] (+1 point), for gauss_surprise_fast.
_GS_STEP_INV = 128.0
_GS_MAX = 16.0
_GS_TABLE = np.array(
    [-math.log10(0.5 * math.erfc(i / _GS_STEP_INV / _SQRT2)) for i in range(16 * 128 + 2)]
)


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def gauss_surprise_fast(z: float) -> float:
    """One-sided :func:`gauss_surprise` for hot loops: 0 for ``z <= 0`` (and NaN).

    For ``0 < z < 16``, linear interpolation in a table of step 1/128; the
    error is at most ``h^2/8 max|S''| < 4e-6`` digits (``S'' = log10(e)`` times
    the derivative of the Gaussian hazard, which lies in (0, 1)). Beyond, the
    Mills-ratio asymptote ``-log Q(z) = z^2/2 + log(z sqrt(2 pi)) + 1/z^2 -
    5/(2 z^4) + O(z^-6)`` (error < 1e-6 digits there). Branch-free (both are
    computed, one is selected), so a loop over brands vectorises. ``z <= 0``
    means "no more than expected", which is no evidence for a surge, hence 0
    rather than the Gaussian's ``-log10 P(Z >= z) <= log10 2``.
    """
    pos = z > 0.0  # False for NaN
    zt = min(z, _GS_MAX) if pos else 0.0
    u = zt * _GS_STEP_INV
    i = min(int(u), 16 * 128)
    lo = _GS_TABLE[i]
    table = lo + (u - i) * (_GS_TABLE[i + 1] - lo)
    za = max(z, _GS_MAX) if pos else _GS_MAX
    w = 1.0 / (za * za)
    asym = (0.5 * za * za + fast_log(za) + _HALF_LOG_2PI + w - 2.5 * w * w) * _LOG10E
    if not pos:
        return 0.0
    return table if z < _GS_MAX else asym


@numba.njit(nogil=True, cache=True, inline="always")
def surprise_score(s: float, half: float = SURPRISE_HALF) -> float:
    """Map a surprise ``s >= 0`` (decimal digits) to ``s / (s + half)`` in [0, 1)."""
    if not s > 0.0:
        return 0.0
    return s / (s + half)


@numba.njit(nogil=True, cache=True)
def gauss_scores(z: FloatArray, out: FloatArray) -> None:
    """``out[i] = surprise_score(gauss_surprise(z[i]))`` (0 for NaN)."""
    for i in range(z.shape[0]):
        out[i] = surprise_score(gauss_surprise(z[i]), SURPRISE_HALF)


# --------------------------------------------------------------------------- tail calibration


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def tail_step(
    rate: float,
    digits_u: float,
    mean_excess: float,
    q: float,
    q_u: float,
    a: float,
    d_keep: float,
    rate_min: float,
) -> tuple[float, float, float, float]:
    """Calibrate ``q`` against its own recent tail: returns ``(digits, rate, digits_u, mean_excess)``.

    Model (peaks over the threshold ``q_u``): ``P(Q > q) = rate *
    exp(-(q - q_u) / mean_excess)`` for ``q > q_u``, where ``rate`` is the
    exponentially weighted frequency of exceedances (rate ``a``) and
    ``mean_excess`` the EW mean of ``q - q_u`` over exceedances (the
    maximum-likelihood scale of an exponential excess). The result is
    ``-log10 P`` in decimal digits; below ``q_u`` it is interpolated linearly
    from 0 at ``q <= 0`` to ``digits_u = -log10(rate)`` at ``q_u`` (a
    continuous, monotone score). The calibration uses the state *before*
    ``q`` updates it.

    ``digits_u`` is carried along with ``rate``: a non-exceedance multiplies
    the rate by ``1 - a``, i.e. adds ``d_keep = -log10(1 - a)`` (precomputed)
    to ``digits_u``, so only exceedances (a few per cent of buckets) pay for a
    ``log`` (:func:`~detectors.fastmath.fast_log10`, so a loop over brands
    still vectorises). The rate stops decaying once below ``rate_min``, so a
    long calm spell cannot make the next exceedance look infinitely rare. NaN
    ``q`` is a gap. Division-free on the common path (``q <= q_u``).
    """
    if q != q:
        return 0.0, rate, digits_u, mean_excess
    return tail_step_finite(rate, digits_u, mean_excess, q, q_u, a, d_keep, rate_min)


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def tail_step_finite(
    rate: float,
    digits_u: float,
    mean_excess: float,
    q: float,
    q_u: float,
    a: float,
    d_keep: float,
    rate_min: float,
) -> tuple[float, float, float, float]:
    """:func:`tail_step` for a ``q`` known not to be NaN (a series loop skips gaps itself)."""
    if q > q_u:
        excess = q - q_u
        digits = digits_u + excess / mean_excess * _LOG10E
        rate += a * (1.0 - rate)
        digits_u = -fast_log10(rate)
        mean_excess += a * (excess - mean_excess)
    else:
        digits = digits_u * max(q, 0.0) * (1.0 / q_u)
        if rate > rate_min:
            rate *= 1.0 - a
            digits_u += d_keep
    return digits, rate, digits_u, mean_excess


@numba.njit(nogil=True, cache=True, error_model="numpy")
def tail_calibrate(
    q: FloatArray,
    q_u: float,
    a: float,
    rate0: float,
    mean_excess0: float,
    rate_min: float,
    out: FloatArray,
) -> None:
    """Batch :func:`tail_step` from ``rate0``/``mean_excess0``: ``out[i]`` = digits of ``q[i]``."""
    rate, digits_u, mean_excess = rate0, -math.log10(rate0), mean_excess0
    d_keep = -math.log10(1.0 - a)
    for i in range(q.shape[0]):
        out[i], rate, digits_u, mean_excess = tail_step(
            rate, digits_u, mean_excess, q[i], q_u, a, d_keep, rate_min
        )


def score_to_tail_probability(score: float, half: float = SURPRISE_HALF) -> float:
    """Invert :func:`surprise_score` composed with :func:`gauss_surprise`: the tail probability.

    >>> score_to_tail_probability(0.5)
    0.001
    """
    if not 0.0 <= score < 1.0:
        raise ValueError(f"score must be in [0, 1), got {score}")
    return float(10.0 ** -(half * score / (1.0 - score)))
