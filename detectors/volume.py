"""Volume surge: is the brand's mention count unusually high for this time of day?

Per brand and bucket, in ``y = log(count + offset)`` space (the offset is a
pseudo-count, so a brand with few mentions needs a large *relative* rise and
a large absolute one to look unusual):

1. **Seasonal baseline**: a level (half-life ``level_halflife_hours``) plus
   an hour-of-day profile learned online (Holt-Winters style, Winters 1960).
   The profile is short-memoried on purpose (``profile_halflife_days`` of
   a slot's own visits, default 0.15 days): it follows *yesterday's* shape of
   the day, which on Twitter volumes drifts from day to day. A bucket's error
   is clipped at ``clip`` standard deviations of the 1-hour residual before
   it updates the baseline, so a sustained surge does not become the new
   normal within the hour.
2. **Multi-scale evidence**: the residual ``e = y - expected`` is smoothed by
   EWMAs of spans ``scales_hours`` (default 1 h, 4 h, 16 h), so a sharp
   spike and a day-long elevation are both seen at the scale that suits
   them. Each smoothed residual ``m_k`` is standardised by
   ``sd_k^2 = s_k^2 + v_k``: ``s_k`` is a winsorised EW mean absolute value
   of ``m_k`` (``scale_memory_hours``; it absorbs the series' own
   overdispersion and autocorrelation) and ``v_k`` the Poisson variance of
   the smoothed count carried to log space (delta method: ``mu * a_k /
   (2 - a_k) / (mu + offset)^2`` with ``mu`` the expected count). The
   Poisson term is the count model: at a few mentions per bucket, noise
   alone explains large ratios. The evidence of scale k is
   ``q_k = max(z_k, 0)^2 / 2`` (the exponent of a Gaussian tail, so no
   ``erfc`` per point).
3. **Calibration, per scale** (:func:`~detectors.kernels.tail_step`): each
   ``q_k`` becomes digits of surprise ``d_k = -log10 P(Q_k >= q_k)`` against
   that scale's own recent tail (exceedance rate of ``q_u = tail_z^2 / 2``
   and mean excess, half-life ``calibration_halflife_days``). A brand whose
   volume is bursty by nature thus needs a larger ``q`` for the same ``d``,
   and one threshold means a similar rarity on every series
   (peaks-over-threshold calibration; Siffer et al., KDD 2017). Each scale
   has its own tail because their tails differ: the 1-hour residual of a
   bursty series is heavy-tailed, the 16-hour one is not.
4. **Combination** (Fisher 1932): the scales' tail probabilities are
   combined as independent p-values: with ``D = d_1 + .. + d_K`` digits and
   ``L = D log(10)``, ``P = 10^-D sum_{j<K} L^j / j!`` (the chi-squared tail
   of ``-2 sum log p_k`` with ``2K`` degrees of freedom), reported as
   ``S = -log10 P``. A surge seen at several scales at once (a spike that
   lifts the hour *and* the day) is stronger evidence than the same
   surprise at one scale only; a burst that only the 1-hour scale sees
   needs to be rarer. The scales overlap, so ``P`` is not literally a
   p-value, and the exponential tail fitted just above ``q_u`` is lighter
   than the real far tail: read ``S`` as a *ranking* on a probability-like
   scale.
5. **Score**: ``S / (S + 3)`` (:func:`~detectors.kernels.surprise_score`).

Output modes:

- ``sparse=True`` (default; what ``detect-series`` and NAB scoring use): a
  surge is an *event* that starts when ``S >= event_low`` and ends when
  ``S < event_low / 2``. The event's running peak is emitted once, when
  ``S`` has fallen ``event_drop`` (a fraction) below it; all other buckets
  score 0. Refractory period: within ``refractory_hours`` of an emission, a
  later peak is emitted only if it is rarer than the last emitted one by
  the factor ``refractory_rearm`` in the exponent (``S > (1 + rearm)
  S_last``, i.e. ``P < P_last^(1 + rearm)``). So an alarm is one row per
  surge, and a surge with several bursts alarms again only if it grows
  substantially, which is what NAB (every detection row outside a window
  is a false positive) and an on-call person want.
- ``sparse=False``: the score of the current ``S`` at every bucket (for the
  combined crisis detector and dashboards).

Gaps: a NaN count means "no data" (score 0, state unchanged); a count of 0
is an observation (no mentions). Warm-up: scores are 0 until the brand has
``warmup_hours`` of observations. Causal: the score of a bucket is computed
before the bucket updates the state. Time of day comes from the
``timestamp`` passed to ``update`` (bucket start, UTC epoch seconds);
without one the detector advances its own clock by ``bucket_seconds``.

Layout and speed: the state is struct-of-arrays, ``state[field, brand]``
and ``profile[slot, brand]``, so one bucket update streams each field
through memory once and reads one contiguous profile row (not a 192-byte
row per brand). The many-brand update runs blocks of ``BLOCK`` brands in two
branch-free loops (steps 1-2, then 3-5; one loop storing all 19 rows is
beyond LLVM's run-time alias checks), with unsigned indices and
:mod:`detectors.fastmath` instead of the C library's ``log``/``exp``, so
LLVM vectorises both. The single-series loop keeps the state in registers;
it is a chain of dependent updates, bound by latency and instruction count:
no ``erfc``, no ``sqrt`` (the evidence stays in ``z^2`` units), ``-log10``
of each rate carried with it (a ``log`` only on exceedances), and the
combination's ``log`` skipped while no event is open and the digit sum is
below ``event_low``'s. Both loops call the same step functions, so they
agree bit for bit.

The Poisson term floors the expected count at one mention per bucket: below
that the Gaussian (delta-method) approximation understates how often a
skewed Poisson count jumps (2 mentions where 0.1 are expected is a z of 5
by the approximation, a 1-in-200 event in truth), and pure Poisson noise
at 0.1-0.3 mentions per bucket alarmed about once a month without it.

State: 22 float64 per brand plus the 24-slot profile (368 bytes).

>>> import numpy as np
>>> det = VolumeDetector(bucket_seconds=3600, warmup_hours=48)
>>> rng = np.random.default_rng(0)
>>> calm = rng.poisson(50, size=(24 * 14, 1)).astype(float)
>>> surge = np.concatenate([calm, np.full((6, 1), 400.0), np.full((6, 1), 50.0)])
>>> scores = det.run(BucketStats(surge, surge, surge * 0, surge * 0))
>>> float(scores[: 24 * 14].max()) < 0.6, float(scores[24 * 14 :].max()) > 0.8
(True, True)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numba
import numpy as np

from .base import BucketStats, Detector, FloatArray, grow, register
from .fastmath import fast_exp, fast_log, fast_log10
from .kernels import SURPRISE_HALF, IntArray, surprise_score, tail_step, tail_step_finite

#: Profile slots per day (hour of day).
DAY_SLOTS = 24
#: Partitions with at least this many brands are updated on all numba threads.
#: High on purpose: one thread updates 100,000 brands in a few milliseconds,
#: and on a small shared machine (2 cores, the other busy) threads cost more
#: CPU and more wall time than they save (docs/benchmarks.md).
PARALLEL_MIN_BRANDS = 250_000
#: ``log(k + offset)`` is tabulated for integer counts ``k`` below this (series loop).
LOG_TABLE_SIZE = 4096
#: Version of the state layout written by ``to_state`` (checked by ``from_state``).
STATE_LAYOUT = 2

_SCALE0 = 0.3  # initial scale of a smoothed log residual: wide, so day one cannot alarm on noise
_SCALE_FLOOR = 1e-3
_MU_FLOOR = 1.0  # expected-count floor of the Poisson variance (module docstring)
_RATE0 = 0.05  # initial exceedance rate of the calibration
_RATE_MIN = 1e-4
_MEAN_EXCESS0 = 1.0  # a Gaussian's mean excess of z^2/2 over a high threshold is ~1
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)
_LN10 = math.log(10.0)

#: The detector's constants, ``_C_*`` layout.
Config = tuple[float, ...]
#: Smoothing scales per detector (fewer are padded; padded scales carry no weight).
N_SCALES = 3
# Per-brand state rows (struct of arrays: state[row, brand]).
(
    _S_LEVEL,
    _S_PMEAN,
    _S_AGE,
    _S_M0,
    _S_M1,
    _S_M2,
    _S_SC0,
    _S_SC1,
    _S_SC2,
    _S_RATE0,
    _S_RATE1,
    _S_RATE2,
    _S_DU0,
    _S_DU1,
    _S_DU2,
    _S_ME0,
    _S_ME1,
    _S_ME2,
    _S_EVENT,
    _S_EVENT_MAX,
    _S_SINCE,
    _S_LAST,
) = range(22)
N_STATE = 22
_NEVER = 1e15  # "buckets since the last emission" before the first one

# Constant vector layout (built once per detector by VolumeDetector._config).
(
    _C_OFFSET,
    _C_A_LEVEL,
    _C_A_PROFILE,
    _C_AGE_SWITCH,
    _C_CLIP,
    _C_SCALE_KEEP,
    _C_SCALE_GAIN,
    _C_WARMUP,
    _C_A_CAL,
    _C_D_KEEP,
    _C_RATE_MIN,
    _C_Q_U,
    _C_LOW,
    _C_DROP,
    _C_REFRACTORY,
    _C_REARM,
    _C_ALPHA0,
    _C_ALPHA1,
    _C_ALPHA2,
    _C_PVAR0,
    _C_PVAR1,
    _C_PVAR2,
    _C_W1,
    _C_W2,
    _C_FISHER1,
    _C_FISHER2,
    _C_D_SKIP,
) = range(27)
_N_CONFIG = 27


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def log_count(x: float, offset: float) -> float:
    """``log(max(x, 0) + offset)`` of a count ``x`` (not NaN)."""
    return fast_log(max(x, 0.0) + offset)


@functools.lru_cache(maxsize=8)
def log_table(offset: float) -> FloatArray:
    """:func:`log_count` of the counts 0 .. ``LOG_TABLE_SIZE - 1``, for the series loop.

    Values of the same function, so a count looked up and a count computed
    agree bit for bit. (The many-brand loops compute: a lookup in a table
    passed as an argument keeps LLVM from vectorising, since it cannot
    rule out that the table aliases the state.)
    """
    t = np.array([log_count(float(k), offset) for k in range(LOG_TABLE_SIZE)])
    t.setflags(write=False)
    return t


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _log_count_lookup(x: float, table: FloatArray, offset: float) -> float:
    # Counts are small integers almost always: a table lookup replaces the log
    # (unsigned index: never negative, so numba adds no wrap-around code).
    k = np.uint64(min(max(x, 0.0), LOG_TABLE_SIZE - 1.0))
    if k == x:
        return table[k]
    return log_count(x, offset)


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def expected_big(level: float, pslot: float, pmean: float, offset: float) -> float:
    """``mu + offset`` for the baseline's expected count ``mu`` (floored at ``_MU_FLOOR``)."""
    return max(fast_exp(level + pslot - pmean), offset + _MU_FLOOR)


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def fisher_digits(d_sum: float, c1: float, c2: float) -> float:
    """Digits of the Fisher combination of scales whose digits sum to ``d_sum``.

    ``-log10(10^-D (1 + c1 L + c2 L^2))`` with ``L = D log 10``: for K = 3
    scales ``c1 = 1, c2 = 1/2``; K = 2: ``c1 = 1, c2 = 0``; K = 1: both 0 (no
    correction). Never negative (``e^L >= 1 + L + L^2/2``; the ``max`` only
    absorbs rounding).
    """
    lam = d_sum * _LN10
    return max(d_sum - fast_log10(1.0 + lam * (c1 + c2 * lam)), 0.0)


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def baseline_step(
    y: float,
    level: float,
    pmean: float,
    age: float,
    pslot: float,
    m0: float,
    m1: float,
    m2: float,
    s0: float,
    s1: float,
    s2: float,
    big: float,
    cfg: Config,
) -> tuple[
    float, float, float, float, float, float, float, float, float, float, float, float, float
]:
    """Steps 1-2 for one brand and bucket of ``y = log(count + offset)``: the evidence and baseline.

    State: ``level``, ``pmean`` (profile mean), ``age`` (observed buckets),
    ``pslot`` (this hour's profile entry), the smoothed residuals ``m0..m2``
    and their scales ``s0..s2``. Returns ``(q0, q1, q2, level, pmean, age,
    pslot, m0, m1, m2, s0, s1, s2)``; the ``q_k`` use the state from before
    this bucket (causal). Scalars only and no branch that a select cannot
    replace. ``y`` comes from :func:`log_count` (the callers handle gaps);
    ``big`` is :func:`expected_big` of the state, computed by the caller so
    that a series loop can compute it a bucket ahead, off the critical path
    (ignored for a brand's first bucket).
    """
    offset = cfg[_C_OFFSET]
    if age == 0.0:
        level = y
        big = expected_big(level, pslot, pmean, offset)
    expected = level + pslot - pmean
    e = y - expected
    m0 += cfg[_C_ALPHA0] * (e - m0)
    m1 += cfg[_C_ALPHA1] * (e - m1)
    m2 += cfg[_C_ALPHA2] * (e - m2)

    # q_k = max(m_k, 0)^2 / (2 sd_k^2) per scale, where sd_k^2 = s_k^2 +
    # pvar_k * mu / (mu + offset)^2 (robust scale plus the Poisson variance
    # of the expected count mu; big = mu + offset), multiplied through by
    # big^2 so no division feeds another.
    big2 = big * big
    mu = big - offset
    p0, p1, p2 = max(m0, 0.0), max(m1, 0.0), max(m2, 0.0)
    half_big2 = 0.5 * big2
    q0 = half_big2 * p0 * p0 / (s0 * s0 * big2 + mu * cfg[_C_PVAR0])
    q1 = half_big2 * p1 * p1 / (s1 * s1 * big2 + mu * cfg[_C_PVAR1])
    q2 = half_big2 * p2 * p2 / (s2 * s2 * big2 + mu * cfg[_C_PVAR2])

    # Learn after scoring (causal). Clip the bucket error at `clip` sds of the
    # first (1-hour) scale, so a sustained surge moves the fast-learning
    # baseline by a bounded amount per bucket and does not become the new
    # normal within the hour. The limit uses the scale from before this
    # bucket, which keeps the bucket out of its own outlier test (and the
    # scale update off the baseline's critical path).
    clip = cfg[_C_CLIP]
    lim = clip * s0
    ec = min(max(e, -lim), lim)
    # Winsorised EW mean |m_k|, rescaled to a standard deviation:
    # s += a (sqrt(pi/2) min(|m|, clip s) - s), with the constants folded.
    keep, gain = cfg[_C_SCALE_KEEP], cfg[_C_SCALE_GAIN]
    s0 = max(keep * s0 + gain * min(abs(m0), clip * s0), _SCALE_FLOOR)
    s1 = max(keep * s1 + gain * min(abs(m1), clip * s1), _SCALE_FLOOR)
    s2 = max(keep * s2 + gain * min(abs(m2), clip * s2), _SCALE_FLOOR)
    level += cfg[_C_A_LEVEL] * ec
    # A slot's rate is 1/visits while young (a plain mean), then constant.
    a_p = DAY_SLOTS / (DAY_SLOTS + age) if age < cfg[_C_AGE_SWITCH] else cfg[_C_A_PROFILE]
    pslot += a_p * ec
    pmean += a_p * ec * (1.0 / DAY_SLOTS)
    return q0, q1, q2, level, pmean, age + 1.0, pslot, m0, m1, m2, s0, s1, s2


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def calibration_sum(
    q0: float,
    q1: float,
    q2: float,
    r0: float,
    r1: float,
    r2: float,
    du0: float,
    du1: float,
    du2: float,
    me0: float,
    me1: float,
    me2: float,
    cfg: Config,
) -> tuple[float, float, float, float, float, float, float, float, float, float]:
    """Step 3: each scale's ``q_k`` against its own tail; returns the digits summed over scales.

    Per scale, the rate ``r``, ``du = -log10(r)`` and mean excess ``me`` of
    :func:`~detectors.kernels.tail_step`. Returns ``(D, r0, r1, r2, du0, du1,
    du2, me0, me1, me2)``; ``D`` uses the state from before this bucket. A
    NaN ``q`` is a gap (no digits, state unchanged).
    """
    q_u, a_cal, d_keep, rate_min = cfg[_C_Q_U], cfg[_C_A_CAL], cfg[_C_D_KEEP], cfg[_C_RATE_MIN]
    d0, r0, du0, me0 = tail_step(r0, du0, me0, q0, q_u, a_cal, d_keep, rate_min)
    d1, r1, du1, me1 = tail_step(r1, du1, me1, q1, q_u, a_cal, d_keep, rate_min)
    d2, r2, du2, me2 = tail_step(r2, du2, me2, q2, q_u, a_cal, d_keep, rate_min)
    return d0 + cfg[_C_W1] * d1 + cfg[_C_W2] * d2, r0, r1, r2, du0, du1, du2, me0, me1, me2


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def calibration_sum_finite(
    q0: float,
    q1: float,
    q2: float,
    r0: float,
    r1: float,
    r2: float,
    du0: float,
    du1: float,
    du2: float,
    me0: float,
    me1: float,
    me2: float,
    cfg: Config,
) -> tuple[float, float, float, float, float, float, float, float, float, float]:
    """:func:`calibration_sum` for evidence known not to be NaN (the series loop skips gaps)."""
    q_u, a_cal, d_keep, rate_min = cfg[_C_Q_U], cfg[_C_A_CAL], cfg[_C_D_KEEP], cfg[_C_RATE_MIN]
    d0, r0, du0, me0 = tail_step_finite(r0, du0, me0, q0, q_u, a_cal, d_keep, rate_min)
    d1, r1, du1, me1 = tail_step_finite(r1, du1, me1, q1, q_u, a_cal, d_keep, rate_min)
    d2, r2, du2, me2 = tail_step_finite(r2, du2, me2, q2, q_u, a_cal, d_keep, rate_min)
    return d0 + cfg[_C_W1] * d1 + cfg[_C_W2] * d2, r0, r1, r2, du0, du1, du2, me0, me1, me2


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def calibration_step(
    q0: float,
    q1: float,
    q2: float,
    r0: float,
    r1: float,
    r2: float,
    du0: float,
    du1: float,
    du2: float,
    me0: float,
    me1: float,
    me2: float,
    cfg: Config,
) -> tuple[float, float, float, float, float, float, float, float, float, float]:
    """Steps 3-4: :func:`calibration_sum`, then the Fisher combination: returns ``(digits, ...)``."""
    d_sum, r0, r1, r2, du0, du1, du2, me0, me1, me2 = calibration_sum(
        q0, q1, q2, r0, r1, r2, du0, du1, du2, me0, me1, me2, cfg
    )
    digits = fisher_digits(d_sum, cfg[_C_FISHER1], cfg[_C_FISHER2])
    return digits, r0, r1, r2, du0, du1, du2, me0, me1, me2


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def event_step(
    digits: float,
    ev: float,
    ev_max: float,
    since: float,
    last: float,
    low: float,
    drop: float,
    refractory: float,
    rearm: float,
) -> tuple[float, float, float, float, float]:
    """Sparse output, one row per surge: returns ``(score, ev, ev_max, since, last)``.

    ``ev``: 0 no event, 1 rising, 2 emitted; ``ev_max`` the event's peak
    digits; ``since`` buckets since the last emission, ``last`` its digits.
    """
    score = 0.0
    since += 1.0
    if ev == 0.0:
        if digits >= low:
            ev, ev_max = 1.0, digits
    else:
        if digits > ev_max:
            ev, ev_max = 1.0, digits  # a higher peak re-arms the event
        elif ev == 1.0 and digits <= ev_max * (1.0 - drop):
            # Within the refractory period only a much rarer peak alarms again.
            if since > refractory or ev_max > last * (1.0 + rearm):
                score = surprise_score(ev_max, SURPRISE_HALF)
                last, since = ev_max, 0.0
            ev = 2.0
        if digits < 0.5 * low:
            ev = 0.0
    return score, ev, ev_max, since, last


#: Brands per block of the many-brand loops (the block's evidence stays in cache).
BLOCK = 1024


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def baseline_block(
    start: int,
    stop: int,
    count: FloatArray,
    slot: int,
    profile: FloatArray,
    state: FloatArray,
    cfg: Config,
    qbuf: FloatArray,
) -> None:
    """:func:`baseline_step` for brands ``start..stop-1``; their ``q_k`` go to ``qbuf[k, i - start]``.

    Branch-free: a gap computes on a stand-in count, stores the old state
    back and leaves NaN evidence, so the loop vectorises. (Steps 1-2 and 3-4
    are two loops because one loop storing all 19 state rows is more than
    LLVM's run-time alias checks allow, and then it is not vectorised.)
    """
    # Unsigned indices: numba wraps negative indices around, and that select
    # on every access keeps LLVM from vectorising (an unsigned index is never negative).
    ustart = np.uint64(start)
    for i in range(ustart, np.uint64(stop)):
        x = count[i]
        ok = x == x
        level0, pmean0, age0 = state[_S_LEVEL, i], state[_S_PMEAN, i], state[_S_AGE, i]
        pslot0 = profile[slot, i]
        m00, m10, m20 = state[_S_M0, i], state[_S_M1, i], state[_S_M2, i]
        s00, s10, s20 = state[_S_SC0, i], state[_S_SC1, i], state[_S_SC2, i]
        y = log_count(x if ok else 0.0, cfg[_C_OFFSET])
        big = expected_big(level0, pslot0, pmean0, cfg[_C_OFFSET])
        q0, q1, q2, level, pmean, age, pslot, m0, m1, m2, s0, s1, s2 = baseline_step(
            y, level0, pmean0, age0, pslot0, m00, m10, m20, s00, s10, s20, big, cfg
        )
        state[_S_LEVEL, i] = level if ok else level0
        state[_S_PMEAN, i] = pmean if ok else pmean0
        state[_S_AGE, i] = age if ok else age0
        profile[slot, i] = pslot if ok else pslot0
        state[_S_M0, i] = m0 if ok else m00
        state[_S_M1, i] = m1 if ok else m10
        state[_S_M2, i] = m2 if ok else m20
        state[_S_SC0, i] = s0 if ok else s00
        state[_S_SC1, i] = s1 if ok else s10
        state[_S_SC2, i] = s2 if ok else s20
        j = i - ustart
        qbuf[0, j] = q0 if ok else math.nan  # NaN evidence: a gap for the calibration too
        qbuf[1, j] = q1 if ok else math.nan
        qbuf[2, j] = q2 if ok else math.nan


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def calibration_digits_block(
    start: int, stop: int, state: FloatArray, cfg: Config, qbuf: FloatArray, out: FloatArray
) -> None:
    """:func:`calibration_step` for brands ``start..stop-1``: digits into ``out[i - start]``.

    -1 for a gap or a brand still warming up (no score).
    """
    ustart = np.uint64(start)  # unsigned: see baseline_block
    for i in range(ustart, np.uint64(stop)):
        j = i - ustart
        old0, old1, old2 = state[_S_ME0, i], state[_S_ME1, i], state[_S_ME2, i]
        digits, r0, r1, r2, du0, du1, du2, me0, me1, me2 = calibration_step(
            qbuf[0, j],
            qbuf[1, j],
            qbuf[2, j],
            state[_S_RATE0, i],
            state[_S_RATE1, i],
            state[_S_RATE2, i],
            state[_S_DU0, i],
            state[_S_DU1, i],
            state[_S_DU2, i],
            old0,
            old1,
            old2,
            cfg,
        )
        state[_S_RATE0, i], state[_S_RATE1, i], state[_S_RATE2, i] = r0, r1, r2
        state[_S_DU0, i], state[_S_DU1, i], state[_S_DU2, i] = du0, du1, du2
        # A mean excess changes only on an exceedance (a few per cent of
        # buckets): a masked store leaves the other cache lines clean, which
        # saves their write-back.
        if me0 != old0:
            state[_S_ME0, i] = me0
        if me1 != old1:
            state[_S_ME1, i] = me1
        if me2 != old2:
            state[_S_ME2, i] = me2
        # Warm-up looks at the age before this bucket; a gap left its age alone.
        scored = qbuf[0, j] == qbuf[0, j] and state[_S_AGE, i] - 1.0 >= cfg[_C_WARMUP]
        out[j] = digits if scored else -1.0


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def calibration_block(
    start: int, stop: int, state: FloatArray, cfg: Config, qbuf: FloatArray, out: FloatArray
) -> None:
    """:func:`calibration_digits_block` as dense scores, into ``out[start:stop]``."""
    calibration_digits_block(start, stop, state, cfg, qbuf, out[start:stop])
    for i in range(np.uint64(start), np.uint64(stop)):
        out[i] = surprise_score(out[i], SURPRISE_HALF)  # -1 (no score) maps to 0


@numba.njit(nogil=True, cache=True, error_model="numpy")
def volume_update(
    count: FloatArray,
    slot: int,
    profile: FloatArray,
    state: FloatArray,
    cfg: Config,
    out: FloatArray,
) -> None:
    """Dense scores of all brands for one bucket (columns of ``profile``/``state``)."""
    n = count.shape[0]
    qbuf = np.empty((N_SCALES, BLOCK))
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        baseline_block(start, stop, count, slot, profile, state, cfg, qbuf)
        calibration_block(start, stop, state, cfg, qbuf, out)


@numba.njit(nogil=True, cache=True, error_model="numpy", parallel=True)
def volume_update_parallel(
    count: FloatArray,
    slot: int,
    profile: FloatArray,
    state: FloatArray,
    cfg: Config,
    out: FloatArray,
) -> None:
    """:func:`volume_update` over threads: brands are independent, so results are identical."""
    n = count.shape[0]
    for b in numba.prange((n + BLOCK - 1) // BLOCK):
        start = b * BLOCK
        stop = min(start + BLOCK, n)
        qbuf = np.empty((N_SCALES, BLOCK))
        baseline_block(start, stop, count, slot, profile, state, cfg, qbuf)
        calibration_block(start, stop, state, cfg, qbuf, out)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def volume_update_sparse(
    count: FloatArray,
    slot: int,
    profile: FloatArray,
    state: FloatArray,
    cfg: Config,
    out: FloatArray,
) -> None:
    """Sparse scores (one row per surge, see the module docstring) of all brands for one bucket.

    The dense update, then the event rule per brand on the dense score's
    digits (recovered exactly: the rule is a scalar loop, nothing to vectorise).
    """
    n = count.shape[0]
    qbuf = np.empty((N_SCALES, BLOCK))
    dig = np.empty(BLOCK)
    low, drop, refractory, rearm = cfg[_C_LOW], cfg[_C_DROP], cfg[_C_REFRACTORY], cfg[_C_REARM]
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        baseline_block(start, stop, count, slot, profile, state, cfg, qbuf)
        calibration_digits_block(start, stop, state, cfg, qbuf, dig)
        for i in range(start, stop):
            d = dig[i - start]
            if d < 0.0:  # a gap or warming up: no event step
                out[i] = 0.0
                continue
            (
                out[i],
                state[_S_EVENT, i],
                state[_S_EVENT_MAX, i],
                state[_S_SINCE, i],
                state[_S_LAST, i],
            ) = event_step(
                d,
                state[_S_EVENT, i],
                state[_S_EVENT_MAX, i],
                state[_S_SINCE, i],
                state[_S_LAST, i],
                low,
                drop,
                refractory,
                rearm,
            )


@numba.njit(nogil=True, cache=True, error_model="numpy")
def volume_series(
    x: FloatArray,
    slots: IntArray,
    profile: FloatArray,
    state: FloatArray,
    table: FloatArray,
    cfg: Config,
    sparse: bool,
    out: FloatArray,
) -> None:
    """One brand, a whole series (the benchmarked kernel): state column 0 is read and written back.

    Same arithmetic as :func:`volume_update` (both call :func:`baseline_step`
    and :func:`calibration_step`), with the state in local variables for the
    whole loop.
    """
    level, pmean, age = state[_S_LEVEL, 0], state[_S_PMEAN, 0], state[_S_AGE, 0]
    m0, m1, m2 = state[_S_M0, 0], state[_S_M1, 0], state[_S_M2, 0]
    s0, s1, s2 = state[_S_SC0, 0], state[_S_SC1, 0], state[_S_SC2, 0]
    r0, r1, r2 = state[_S_RATE0, 0], state[_S_RATE1, 0], state[_S_RATE2, 0]
    du0, du1, du2 = state[_S_DU0, 0], state[_S_DU1, 0], state[_S_DU2, 0]
    me0, me1, me2 = state[_S_ME0, 0], state[_S_ME1, 0], state[_S_ME2, 0]
    ev, ev_max = state[_S_EVENT, 0], state[_S_EVENT_MAX, 0]
    since, last = state[_S_SINCE, 0], state[_S_LAST, 0]
    warmup = cfg[_C_WARMUP]
    low, drop, refractory, rearm = cfg[_C_LOW], cfg[_C_DROP], cfg[_C_REFRACTORY], cfg[_C_REARM]
    f1, f2, d_skip = cfg[_C_FISHER1], cfg[_C_FISHER2], cfg[_C_D_SKIP]
    offset = cfg[_C_OFFSET]
    # The current slot's profile entry lives in a register while the hour
    # lasts (12 buckets at 5 minutes), not in a store/load round trip.
    cur = slots[0] if x.shape[0] else 0
    pslot = profile[cur, 0]
    # The expected count for the next bucket is computed at the end of this
    # one (same slot; recomputed on a slot change), so the exp overlaps with
    # the rest of the bucket instead of delaying it. Same value either way.
    big = expected_big(level, pslot, pmean, offset)
    for t in range(x.shape[0]):
        xt = x[t]
        if xt != xt:
            out[t] = 0.0
            continue
        s = slots[t]
        if s != cur:
            profile[cur, 0] = pslot
            cur, pslot = s, profile[s, 0]
            big = expected_big(level, pslot, pmean, offset)
        young = age < warmup
        y = _log_count_lookup(xt, table, offset)
        q0, q1, q2, level, pmean, age, pslot, m0, m1, m2, s0, s1, s2 = baseline_step(
            y, level, pmean, age, pslot, m0, m1, m2, s0, s1, s2, big, cfg
        )
        big = expected_big(level, pslot, pmean, offset)
        d_sum, r0, r1, r2, du0, du1, du2, me0, me1, me2 = calibration_sum_finite(
            q0, q1, q2, r0, r1, r2, du0, du1, du2, me0, me1, me2, cfg
        )
        if young:
            out[t] = 0.0
        elif not sparse:
            out[t] = surprise_score(fisher_digits(d_sum, f1, f2), SURPRISE_HALF)
        elif ev == 0.0 and d_sum < d_skip:
            # No event and surely below event_low: event_step would only
            # count the bucket, so skip the combination's log.
            out[t] = 0.0
            since += 1.0
        else:
            out[t], ev, ev_max, since, last = event_step(
                fisher_digits(d_sum, f1, f2), ev, ev_max, since, last, low, drop, refractory, rearm
            )
    if x.shape[0]:
        profile[cur, 0] = pslot
    state[_S_LEVEL, 0], state[_S_PMEAN, 0], state[_S_AGE, 0] = level, pmean, age
    state[_S_M0, 0], state[_S_M1, 0], state[_S_M2, 0] = m0, m1, m2
    state[_S_SC0, 0], state[_S_SC1, 0], state[_S_SC2, 0] = s0, s1, s2
    state[_S_RATE0, 0], state[_S_RATE1, 0], state[_S_RATE2, 0] = r0, r1, r2
    state[_S_DU0, 0], state[_S_DU1, 0], state[_S_DU2, 0] = du0, du1, du2
    state[_S_ME0, 0], state[_S_ME1, 0], state[_S_ME2, 0] = me0, me1, me2
    state[_S_EVENT, 0], state[_S_EVENT_MAX, 0] = ev, ev_max
    state[_S_SINCE, 0], state[_S_LAST, 0] = since, last


def _fisher_inverse(digits: float, c1: float, c2: float) -> float:
    """The digit sum ``D`` whose :func:`fisher_digits` is ``digits`` (bisection; it is increasing).

    Below it a series loop knows the combined digits are below ``digits``
    without computing them. The margin the caller takes covers the rounding
    difference between ``math.log10`` here and ``fast_log10`` in the kernel.
    """
    lo, hi = digits, digits + 100.0  # fisher_digits(D) <= D, and the correction is < 100
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lam = mid * math.log(10.0)
        if mid - math.log10(1.0 + lam * (c1 + c2 * lam)) < digits:
            lo = mid
        else:
            hi = mid
    return lo


def _halflife_alpha(halflife_buckets: float) -> float:
    return 1.0 - 0.5 ** (1.0 / halflife_buckets)


@register
class VolumeDetector(Detector):
    """Seasonal, count-aware, multi-scale, self-calibrated volume-surge detector.

    See the module docstring for the method; ``docs/detectors.md`` for the
    defaults and how they were chosen.
    """

    name: ClassVar[str] = "volume"
    state_fields: ClassVar[tuple[str, ...]] = ("profile", "state")
    scalar_fields: ClassVar[tuple[str, ...]] = ("clock",)
    state_layout: ClassVar[int] = STATE_LAYOUT

    def __init__(
        self,
        bucket_seconds: float = 300.0,
        offset: float = 5.0,
        level_halflife_hours: float = 24.0,
        profile_halflife_days: float = 0.15,
        scales_hours: Sequence[float] = (1.0, 4.0, 16.0),
        scale_memory_hours: float = 48.0,
        clip: float = 3.0,
        calibration_halflife_days: float = 14.0,
        tail_z: float = 1.5,
        warmup_hours: float = 24.0,
        event_low: float = 2.0,
        event_drop: float = 0.2,
        refractory_hours: float = 24.0,
        refractory_rearm: float = 0.5,
        sparse: bool = True,
    ) -> None:
        super().__init__()
        for pname, v in (
            ("bucket_seconds", bucket_seconds),
            ("offset", offset),
            ("level_halflife_hours", level_halflife_hours),
            ("profile_halflife_days", profile_halflife_days),
            ("scale_memory_hours", scale_memory_hours),
            ("clip", clip),
            ("calibration_halflife_days", calibration_halflife_days),
            ("tail_z", tail_z),
            ("event_low", event_low),
        ):
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"{pname} must be a finite number > 0, got {v!r}")
        for pname, v in (
            ("warmup_hours", warmup_hours),
            ("refractory_hours", refractory_hours),
            ("refractory_rearm", refractory_rearm),
        ):
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{pname} must be a finite number >= 0, got {v!r}")
        if not (isinstance(event_drop, int | float) and 0 < event_drop < 1):
            raise ValueError(f"event_drop must be in (0, 1), got {event_drop!r}")
        scales = tuple(float(h) for h in scales_hours)
        if (
            not 1 <= len(scales) <= N_SCALES
            or not all(math.isfinite(h) and h > 0 for h in scales)
            or len(set(scales)) != len(scales)
        ):
            raise ValueError(
                f"scales_hours must be 1 to {N_SCALES} distinct durations > 0, got {scales_hours!r}"
            )
        self.bucket_seconds = float(bucket_seconds)
        self.offset = float(offset)
        self.level_halflife_hours = float(level_halflife_hours)
        self.profile_halflife_days = float(profile_halflife_days)
        self.scales_hours = scales
        self.scale_memory_hours = float(scale_memory_hours)
        self.clip = float(clip)
        self.calibration_halflife_days = float(calibration_halflife_days)
        self.tail_z = float(tail_z)
        self.warmup_hours = float(warmup_hours)
        self.event_low = float(event_low)
        self.event_drop = float(event_drop)
        self.refractory_hours = float(refractory_hours)
        self.refractory_rearm = float(refractory_rearm)
        self.sparse = bool(sparse)
        self._cfg = self._config()
        self.clock = math.nan  # start of the last bucket seen (UTC epoch seconds)
        self.profile = np.zeros((DAY_SLOTS, 0))
        self.state = np.zeros((N_STATE, 0))

    def _config(self) -> tuple[float, ...]:
        per_hour = 3600.0 / self.bucket_seconds  # buckets per hour (may be < 1)
        k = len(self.scales_hours)
        # Padding repeats the last scale with weight 0: its state is kept but it adds no digits.
        spans = list(self.scales_hours) + [self.scales_hours[-1]] * (N_SCALES - k)
        alpha = [2.0 / (max(h * per_hour, 1.0) + 1.0) for h in spans]
        # A profile slot is visited (buckets per day / slots) times a day.
        visits_per_day = max(24.0 * per_hour / DAY_SLOTS, 1e-9)
        a_profile = _halflife_alpha(max(self.profile_halflife_days * visits_per_day, 1e-9))
        a_cal = _halflife_alpha(max(self.calibration_halflife_days * 24.0 * per_hour, 1.0))
        cfg = np.zeros(_N_CONFIG)
        cfg[_C_OFFSET] = self.offset
        cfg[_C_A_LEVEL] = _halflife_alpha(max(self.level_halflife_hours * per_hour, 1e-9))
        cfg[_C_A_PROFILE] = a_profile
        # 1 / (1 + age / slots) falls below a_profile from this age on.
        cfg[_C_AGE_SWITCH] = DAY_SLOTS * (1.0 / a_profile - 1.0)
        cfg[_C_CLIP] = self.clip
        a_scale = _halflife_alpha(max(self.scale_memory_hours * per_hour, 1.0))
        cfg[_C_SCALE_KEEP] = 1.0 - a_scale
        cfg[_C_SCALE_GAIN] = a_scale * _SQRT_HALF_PI
        cfg[_C_WARMUP] = self.warmup_hours * per_hour
        cfg[_C_A_CAL] = a_cal
        cfg[_C_D_KEEP] = -math.log10(1.0 - a_cal)
        cfg[_C_RATE_MIN] = _RATE_MIN
        cfg[_C_Q_U] = 0.5 * self.tail_z * self.tail_z
        cfg[_C_LOW] = self.event_low
        cfg[_C_DROP] = self.event_drop
        cfg[_C_REFRACTORY] = self.refractory_hours * per_hour
        cfg[_C_REARM] = self.refractory_rearm
        for j, a in enumerate(alpha):
            cfg[_C_ALPHA0 + j] = a
            # Variance of an EWMA of white noise, in units of the noise variance.
            cfg[_C_PVAR0 + j] = a / (2.0 - a)
        cfg[_C_W1] = 1.0 if k >= 2 else 0.0
        cfg[_C_W2] = 1.0 if k >= 3 else 0.0
        # Fisher: P = 10^-D sum_{j<K} L^j / j!, i.e. 1 + c1 L + c2 L^2 for K <= 3.
        cfg[_C_FISHER1] = 1.0 if k >= 2 else 0.0
        cfg[_C_FISHER2] = 0.5 if k >= 3 else 0.0
        cfg[_C_D_SKIP] = _fisher_inverse(self.event_low, cfg[_C_FISHER1], cfg[_C_FISHER2]) * (
            1.0 - 1e-9
        )
        # A tuple, not an array: numba passes it by value, so the constants
        # live in registers and cannot alias the state arrays.
        return tuple(float(c) for c in cfg)

    @property
    def params(self) -> dict[str, Any]:
        return {
            "bucket_seconds": self.bucket_seconds,
            "offset": self.offset,
            "level_halflife_hours": self.level_halflife_hours,
            "profile_halflife_days": self.profile_halflife_days,
            "scales_hours": self.scales_hours,
            "scale_memory_hours": self.scale_memory_hours,
            "clip": self.clip,
            "calibration_halflife_days": self.calibration_halflife_days,
            "tail_z": self.tail_z,
            "warmup_hours": self.warmup_hours,
            "event_low": self.event_low,
            "event_drop": self.event_drop,
            "refractory_hours": self.refractory_hours,
            "refractory_rearm": self.refractory_rearm,
            "sparse": self.sparse,
        }

    @staticmethod
    def fresh_state(n: int) -> FloatArray:
        """State columns of ``n`` brands never seen."""
        col = np.zeros(N_STATE)
        col[[_S_RATE0, _S_RATE1, _S_RATE2]] = _RATE0
        col[[_S_DU0, _S_DU1, _S_DU2]] = -math.log10(_RATE0)
        col[[_S_ME0, _S_ME1, _S_ME2]] = _MEAN_EXCESS0
        col[_S_SINCE] = _NEVER
        col[[_S_SC0, _S_SC1, _S_SC2]] = _SCALE0
        return np.repeat(col[:, None], n, axis=1)

    def _grow(self, n: int) -> None:
        old = self.state.shape[1]
        self.profile = grow(self.profile, n, 0.0)
        self.state = grow(self.state, n, 0.0)
        self.state[:, old:] = self.fresh_state(self.state.shape[1] - old)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> VolumeDetector:
        params = state.get("__params__", {})
        if "smooth_hours" in params:  # written by the single-scale detector (before 2025-06)
            raise ValueError(
                "volume state was written by an older volume detector (single-scale, "
                "uncalibrated); its scores are not comparable: start from an empty state"
            )
        det = super().from_state(state)
        if det.state.shape[0] != N_STATE or det.profile.shape[0] != DAY_SLOTS:
            raise ValueError(
                f"volume state has {det.state.shape[0]} rows and a {det.profile.shape[0]}-slot "
                f"profile, expected {N_STATE} and {DAY_SLOTS}"
            )
        return det

    def slot_of(self, timestamp: float | None) -> int:
        """Advance the clock to ``timestamp`` (or by one bucket) and return its hour slot."""
        if timestamp is None:
            self.clock = 0.0 if math.isnan(self.clock) else self.clock + self.bucket_seconds
        else:
            if not math.isfinite(timestamp):
                raise ValueError(f"timestamp must be finite, got {timestamp!r}")
            self.clock = float(timestamp)
        return int((self.clock % 86400.0) // (86400.0 / DAY_SLOTS))

    def update(self, stats: BucketStats, timestamp: float | None = None) -> FloatArray:
        stats = stats.check(1)
        n = stats.count.shape[0]
        self.ensure_rows(n)
        out = np.empty(n)
        self.update_into(stats.count, self.slot_of(timestamp), out)
        return out

    def update_into(self, count: FloatArray, slot: int, out: FloatArray) -> None:
        """Kernel call for a checked, float64 ``count`` of ``n <= self.n`` brands."""
        if self.sparse:
            kernel = volume_update_sparse
        elif len(count) >= PARALLEL_MIN_BRANDS:
            # Threads pay off only for large partitions (start-up costs ~10-50 us).
            kernel = volume_update_parallel
        else:
            kernel = volume_update
        kernel(count, slot, self.profile, self.state, self._cfg, out)

    def score_series(self, values: FloatArray, timestamps: FloatArray | None = None) -> FloatArray:
        """Scores for one brand's whole series with fresh state (fast path; equals ``run``)."""
        x = np.ascontiguousarray(values, dtype=np.float64)
        if timestamps is None:
            ts = np.arange(len(x)) * self.bucket_seconds
        else:
            ts = np.asarray(timestamps, dtype=np.float64)
        slots = ((ts % 86400.0) // (86400.0 / DAY_SLOTS)).astype(np.int64)
        out = np.zeros(len(x))
        volume_series(
            x,
            slots,
            np.zeros((DAY_SLOTS, 1)),
            self.fresh_state(1),
            log_table(self.offset),
            self._cfg,
            self.sparse,
            out,
        )
        return out
