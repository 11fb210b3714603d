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
   alone explains large ratios. The evidence is the largest
   ``q_k = z_k^2 / 2`` over scales (``z_k > 0``; the exponent of a Gaussian
   tail, so no ``erfc`` per point).
3. **Calibration** (:func:`~detectors.kernels.tail_step`): ``q`` is turned
   into digits of surprise ``S = -log10 P(Q >= q)`` against the brand's own
   recent tail of ``q`` (exceedance rate of ``q_u = tail_z^2 / 2`` and mean
   excess, half-life ``calibration_halflife_days``). A brand whose volume is
   bursty by nature thus needs a larger ``q`` for the same ``S``, and one
   threshold means a similar rarity on every series (peaks-over-threshold
   calibration; Siffer et al., KDD 2017). The exponential tail fitted just
   above ``q_u`` underestimates how heavy the far tail of real data is, so
   ``S`` is a *ranking* on a probability-like scale, not a literal p-value.
4. **Score**: ``S / (S + 3)`` (:func:`~detectors.kernels.surprise_score`).

Output modes:

- ``sparse=True`` (default; what ``detect-series`` and NAB scoring use): a
  surge is an *event* that starts when ``S >= event_low`` and ends when
  ``S < event_low / 2``. The event's running peak is emitted once, when
  ``S`` has fallen ``event_drop`` (a fraction) below it; all other buckets
  score 0. Refractory period: within ``refractory_hours`` of an emission, a
  later event is emitted only if its peak is higher. So an alarm is one row
  per surge, and one surge with several bursts does not alarm again unless
  it grows, which is what NAB (every detection row outside a window is a
  false positive) and an on-call person want.
- ``sparse=False``: the score of the current ``S`` at every bucket (for the
  combined crisis detector and dashboards).

Gaps: a NaN count means "no data" (score 0, state unchanged); a count of 0
is an observation (no mentions). Warm-up: scores are 0 until the brand has
``warmup_hours`` of observations. Causal: the score of a bucket is computed
before the bucket updates the state. Time of day comes from the
``timestamp`` passed to ``update`` (bucket start, UTC epoch seconds);
without one the detector advances its own clock by ``bucket_seconds``.

Speed (the kernel is a chain of dependent updates, so it is bound by
instruction count and latency, not memory): no ``erfc`` and no ``sqrt``
(the evidence stays in ``z^2`` units), ``log(count + offset)`` comes from a
table for integer counts below 4096 (the common case), the calibration keeps
``-log10(rate)`` next to the rate so only exceedances pay for a ``log``, the
scale of each residual is compared without branches (its sign is a coin
flip on calm data), constants travel as a tuple (registers, no aliasing), and
the one ``exp`` per bucket (the expected count of the Poisson term) is
computed one bucket ahead in series loops so its latency overlaps the rest.

State: 16 float64 per brand plus the 24-slot profile (320 bytes).

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
from .kernels import SURPRISE_HALF, IntArray, surprise_score, tail_step

#: Profile slots per day (hour of day).
DAY_SLOTS = 24
#: Partitions with at least this many brands are updated on all numba threads.
PARALLEL_MIN_BRANDS = 20_000
#: ``log(k + offset)`` is tabulated for integer counts ``k`` below this.
LOG_TABLE_SIZE = 4096

_SCALE0 = 0.3  # initial scale of a smoothed log residual: wide, so day one cannot alarm on noise
_SCALE_FLOOR = 1e-3
_MU_FLOOR = 0.05  # expected count floor of the Poisson term (a silent hour is not noise-free)
_RATE0 = 0.05  # initial exceedance rate of the calibration
_RATE_MIN = 1e-4
_MEAN_EXCESS0 = 1.0  # a Gaussian's mean excess of z^2/2 over a high threshold is ~1
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)

#: The detector's constants, ``_C_*`` layout.
Config = tuple[float, ...]
#: Smoothing scales per detector (fewer are padded by repeating the last: max is unchanged).
N_SCALES = 3
# Per-brand state columns.
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
    _S_RATE,
    _S_DIGITS_U,
    _S_MEAN_EXCESS,
    _S_EVENT,
    _S_EVENT_MAX,
    _S_SINCE,
    _S_LAST,
) = range(16)
N_STATE = 16
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
    _C_ALPHA0,
    _C_ALPHA1,
    _C_ALPHA2,
    _C_PVAR0,
    _C_PVAR1,
    _C_PVAR2,
) = range(21)
_N_CONFIG = 21


@functools.lru_cache(maxsize=8)
def log_table(offset: float) -> FloatArray:
    """``log(k + offset)`` for k = 0 .. LOG_TABLE_SIZE - 1 (``math.log``, so exact)."""
    t = np.array([math.log(k + offset) for k in range(LOG_TABLE_SIZE)], dtype=np.float64)
    t.setflags(write=False)
    return t


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _log_count(x: float, table: FloatArray, offset: float) -> float:
    # Counts are small integers almost always: a table lookup replaces the log.
    k = int(min(x, LOG_TABLE_SIZE - 1.0))
    if k == x:
        return table[k]
    return math.log(x + offset)


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def expected_big(level: float, pslot: float, pmean: float, offset: float) -> float:
    """``mu + offset`` for the baseline's expected count ``mu`` (floored at ``_MU_FLOOR``)."""
    return max(math.exp(level + pslot - pmean), offset + _MU_FLOOR)


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def volume_step(
    x: float,
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
    rate: float,
    digits_u: float,
    mean_excess: float,
    big: float,
    table: FloatArray,
    cfg: Config,
) -> tuple[
    float, float, float, float, float, float, float, float, float, float, float, float, float, float
]:
    """One brand, one bucket of count ``x``: state in, state out (a numba step function).

    State: ``level``, ``pmean`` (profile mean), ``age`` (observed buckets),
    ``pslot`` (this hour's profile entry), the smoothed residuals ``m0..m2``
    and their scales ``s0..s2`` (three scales), and the calibration's
    ``rate`` / ``digits_u`` / ``mean_excess`` (see
    :func:`~detectors.kernels.tail_step`). ``big`` is :func:`expected_big`
    of this state: the caller computes it, so a series loop can compute it a
    bucket ahead, off the critical path (ignored for the first bucket).
    Returns ``(digits, level, pmean, age, pslot, m0, m1, m2, s0, s1, s2,
    rate, digits_u, mean_excess)`` where ``digits``
    is the calibrated surprise of this bucket, computed before the bucket
    updates anything. Scalars only, so a series loop keeps the whole state in
    registers and a many-brand loop does one load and one store per field.
    ``x`` must not be NaN (the callers skip gaps).
    """
    offset = cfg[_C_OFFSET]
    x = max(x, 0.0)
    y = _log_count(x, table, offset)
    if age == 0.0:
        level = y
        big = expected_big(level, pslot, pmean, offset)
    expected = level + pslot - pmean
    e = y - expected
    m0 += cfg[_C_ALPHA0] * (e - m0)
    m1 += cfg[_C_ALPHA1] * (e - m1)
    m2 += cfg[_C_ALPHA2] * (e - m2)

    # Largest q_k = max(m_k, 0)^2 / (2 sd_k^2) over scales, where sd_k^2 =
    # s_k^2 + pvar_k * mu / (mu + offset)^2 (robust scale plus the Poisson
    # variance of the expected count mu; big = mu + offset). Multiplied
    # through by big^2 so no division feeds another. Branch-free on purpose:
    # the sign of a smoothed residual is a coin flip on calm data, and a
    # mispredicted branch costs more than a pipelined division.
    big2 = big * big
    mu = big - offset
    p0, p1, p2 = max(m0, 0.0), max(m1, 0.0), max(m2, 0.0)
    q = (0.5 * big2) * max(
        p0 * p0 / (s0 * s0 * big2 + mu * cfg[_C_PVAR0]),
        p1 * p1 / (s1 * s1 * big2 + mu * cfg[_C_PVAR1]),
        p2 * p2 / (s2 * s2 * big2 + mu * cfg[_C_PVAR2]),
    )
    digits, rate, digits_u, mean_excess = tail_step(
        rate,
        digits_u,
        mean_excess,
        q,
        cfg[_C_Q_U],
        cfg[_C_A_CAL],
        cfg[_C_D_KEEP],
        cfg[_C_RATE_MIN],
    )

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
    return (
        digits,
        level,
        pmean,
        age + 1.0,
        pslot,
        m0,
        m1,
        m2,
        s0,
        s1,
        s2,
        rate,
        digits_u,
        mean_excess,
    )


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
            # Within the refractory period only a higher peak alarms again.
            if since > refractory or ev_max > last:
                score = surprise_score(ev_max, SURPRISE_HALF)
                last, since = ev_max, 0.0
            ev = 2.0
        if digits < 0.5 * low:
            ev = 0.0
    return score, ev, ev_max, since, last


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def brand_step(
    x: float,
    slot: int,
    profile: FloatArray,
    state: FloatArray,
    i: int,
    table: FloatArray,
    cfg: Config,
    sparse: bool,
    big: float,
) -> float:
    """Row ``i`` of ``profile``/``state``, one bucket: loads, :func:`volume_step`, stores.

    ``big`` is :func:`brand_big` of the row (the crisis detector computes it
    in a separate pass over a block of brands).
    Indexes the 2-D arrays in place: a row view would cost a reference count
    per brand, more than the arithmetic.
    """
    if x != x:  # gap: no evidence, no state change
        return 0.0
    age = state[i, _S_AGE]
    level, pmean, pslot = state[i, _S_LEVEL], state[i, _S_PMEAN], profile[i, slot]
    (
        digits,
        state[i, _S_LEVEL],
        state[i, _S_PMEAN],
        state[i, _S_AGE],
        profile[i, slot],
        state[i, _S_M0],
        state[i, _S_M1],
        state[i, _S_M2],
        state[i, _S_SC0],
        state[i, _S_SC1],
        state[i, _S_SC2],
        state[i, _S_RATE],
        state[i, _S_DIGITS_U],
        state[i, _S_MEAN_EXCESS],
    ) = volume_step(
        x,
        level,
        pmean,
        age,
        pslot,
        state[i, _S_M0],
        state[i, _S_M1],
        state[i, _S_M2],
        state[i, _S_SC0],
        state[i, _S_SC1],
        state[i, _S_SC2],
        state[i, _S_RATE],
        state[i, _S_DIGITS_U],
        state[i, _S_MEAN_EXCESS],
        big,
        table,
        cfg,
    )
    if age < cfg[_C_WARMUP]:
        return 0.0
    if not sparse:
        return surprise_score(digits, SURPRISE_HALF)
    score, state[i, _S_EVENT], state[i, _S_EVENT_MAX], state[i, _S_SINCE], state[i, _S_LAST] = (
        event_step(
            digits,
            state[i, _S_EVENT],
            state[i, _S_EVENT_MAX],
            state[i, _S_SINCE],
            state[i, _S_LAST],
            cfg[_C_LOW],
            cfg[_C_DROP],
            cfg[_C_REFRACTORY],
        )
    )
    return score


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def brand_big(slot: int, profile: FloatArray, state: FloatArray, i: int, cfg: Config) -> float:
    """:func:`expected_big` of row ``i`` for this bucket's slot."""
    return expected_big(state[i, _S_LEVEL], profile[i, slot], state[i, _S_PMEAN], cfg[_C_OFFSET])


@numba.njit(nogil=True, cache=True, error_model="numpy")
def volume_update(
    count: FloatArray,
    slot: int,
    profile: FloatArray,
    state: FloatArray,
    table: FloatArray,
    cfg: Config,
    sparse: bool,
    out: FloatArray,
) -> None:
    """All brands of one bucket (rows of ``profile``/``state``)."""
    for i in range(count.shape[0]):
        out[i] = brand_step(
            count[i],
            slot,
            profile,
            state,
            i,
            table,
            cfg,
            sparse,
            brand_big(slot, profile, state, i, cfg),
        )


@numba.njit(nogil=True, cache=True, error_model="numpy", parallel=True)
def volume_update_parallel(
    count: FloatArray,
    slot: int,
    profile: FloatArray,
    state: FloatArray,
    table: FloatArray,
    cfg: Config,
    sparse: bool,
    out: FloatArray,
) -> None:
    """:func:`volume_update` over threads: brands are independent, so results are identical."""
    for i in numba.prange(count.shape[0]):
        out[i] = brand_step(
            count[i],
            slot,
            profile,
            state,
            i,
            table,
            cfg,
            sparse,
            brand_big(slot, profile, state, i, cfg),
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
    """One brand, a whole series (the benchmarked kernel): state row 0 is read and written back.

    Same arithmetic as :func:`volume_update` (both call :func:`volume_step`),
    with the state in local variables for the whole loop.
    """
    level, pmean, age = state[0, _S_LEVEL], state[0, _S_PMEAN], state[0, _S_AGE]
    m0, m1, m2 = state[0, _S_M0], state[0, _S_M1], state[0, _S_M2]
    s0, s1, s2 = state[0, _S_SC0], state[0, _S_SC1], state[0, _S_SC2]
    rate, digits_u = state[0, _S_RATE], state[0, _S_DIGITS_U]
    mean_excess = state[0, _S_MEAN_EXCESS]
    ev, ev_max, since, last = (
        state[0, _S_EVENT],
        state[0, _S_EVENT_MAX],
        state[0, _S_SINCE],
        state[0, _S_LAST],
    )
    prof = profile[0]
    warmup = cfg[_C_WARMUP]
    low, drop, refractory = cfg[_C_LOW], cfg[_C_DROP], cfg[_C_REFRACTORY]
    # The current slot's profile entry lives in a register while the hour
    # lasts (12 buckets at 5 minutes), not in a store/load round trip.
    cur = slots[0] if x.shape[0] else 0
    pslot = prof[cur]
    offset = cfg[_C_OFFSET]
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
            prof[cur] = pslot
            cur, pslot = s, prof[s]
            big = expected_big(level, pslot, pmean, offset)
        young = age < warmup
        (
            digits,
            level,
            pmean,
            age,
            pslot,
            m0,
            m1,
            m2,
            s0,
            s1,
            s2,
            rate,
            digits_u,
            mean_excess,
        ) = volume_step(
            xt,
            level,
            pmean,
            age,
            pslot,
            m0,
            m1,
            m2,
            s0,
            s1,
            s2,
            rate,
            digits_u,
            mean_excess,
            big,
            table,
            cfg,
        )
        big = expected_big(level, pslot, pmean, offset)
        if young:
            out[t] = 0.0
        elif not sparse:
            out[t] = surprise_score(digits, SURPRISE_HALF)
        else:
            out[t], ev, ev_max, since, last = event_step(
                digits, ev, ev_max, since, last, low, drop, refractory
            )
    if x.shape[0]:
        prof[cur] = pslot
    state[0, _S_LEVEL], state[0, _S_PMEAN], state[0, _S_AGE] = level, pmean, age
    state[0, _S_M0], state[0, _S_M1], state[0, _S_M2] = m0, m1, m2
    state[0, _S_SC0], state[0, _S_SC1], state[0, _S_SC2] = s0, s1, s2
    state[0, _S_RATE], state[0, _S_DIGITS_U] = rate, digits_u
    state[0, _S_MEAN_EXCESS] = mean_excess
    state[0, _S_EVENT], state[0, _S_EVENT_MAX] = ev, ev_max
    state[0, _S_SINCE], state[0, _S_LAST] = since, last


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
        for pname, v in (("warmup_hours", warmup_hours), ("refractory_hours", refractory_hours)):
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{pname} must be a finite number >= 0, got {v!r}")
        if not (isinstance(event_drop, int | float) and 0 < event_drop < 1):
            raise ValueError(f"event_drop must be in (0, 1), got {event_drop!r}")
        scales = tuple(float(h) for h in scales_hours)
        if not 1 <= len(scales) <= N_SCALES or not all(math.isfinite(h) and h > 0 for h in scales):
            raise ValueError(
                f"scales_hours must be 1 to {N_SCALES} durations > 0, got {scales_hours!r}"
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
        self.sparse = bool(sparse)
        self._cfg = self._config()
        self._table = log_table(self.offset)
        self.clock = math.nan  # start of the last bucket seen (UTC epoch seconds)
        self.profile = np.zeros((0, DAY_SLOTS))
        self.state = np.zeros((0, N_STATE))

    def _config(self) -> tuple[float, ...]:
        per_hour = 3600.0 / self.bucket_seconds  # buckets per hour (may be < 1)
        spans = list(self.scales_hours) + [self.scales_hours[-1]] * (
            N_SCALES - len(self.scales_hours)
        )
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
        for k, a in enumerate(alpha):
            cfg[_C_ALPHA0 + k] = a
            # Variance of an EWMA of white noise, in units of the noise variance.
            cfg[_C_PVAR0 + k] = a / (2.0 - a)
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
            "sparse": self.sparse,
        }

    @staticmethod
    def fresh_state(n: int) -> FloatArray:
        """State rows of ``n`` brands never seen."""
        row = np.zeros(N_STATE)
        row[_S_RATE] = _RATE0
        row[_S_DIGITS_U] = -math.log10(_RATE0)
        row[_S_MEAN_EXCESS] = _MEAN_EXCESS0
        row[_S_SINCE] = _NEVER
        row[[_S_SC0, _S_SC1, _S_SC2]] = _SCALE0
        return np.tile(row, (n, 1))

    def _grow(self, n: int) -> None:
        old = len(self.state)
        self.profile = grow(self.profile, n, 0.0)
        self.state = grow(self.state, n, 0.0)
        self.state[old:] = self.fresh_state(len(self.state) - old)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> VolumeDetector:
        params = state.get("__params__", {})
        if "smooth_hours" in params:  # written by the single-scale detector (before 2025-06)
            raise ValueError(
                "volume state was written by an older volume detector (single-scale, "
                "uncalibrated); its scores are not comparable: start from an empty state"
            )
        det = super().from_state(state)
        if det.state.shape[1] != N_STATE:
            raise ValueError(f"volume state has {det.state.shape[1]} columns, expected {N_STATE}")
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
        out = np.zeros(n)
        self.update_into(stats.count, self.slot_of(timestamp), out)
        return out

    def update_into(self, count: FloatArray, slot: int, out: FloatArray) -> None:
        """Kernel call for a checked, float64 ``count`` of ``n <= self.n`` brands."""
        # Threads pay off only for large partitions (start-up costs ~10-50 us).
        kernel = volume_update_parallel if len(count) >= PARALLEL_MIN_BRANDS else volume_update
        kernel(
            count,
            slot,
            self.profile,
            self.state,
            self._table,
            self._cfg,
            self.sparse,
            out,
        )

    def score_series(self, values: FloatArray, timestamps: FloatArray | None = None) -> FloatArray:
        """Scores for one brand's whole series with fresh state (fast path; equals ``run``)."""
        x = np.ascontiguousarray(values, dtype=np.float64)
        if timestamps is None:
            ts = np.arange(len(x)) * self.bucket_seconds
        else:
            ts = np.asarray(timestamps, dtype=np.float64)
        slots = ((ts % 86400.0) // (86400.0 / DAY_SLOTS)).astype(np.int64)
        out = np.zeros(len(x))
        profile = np.zeros((1, DAY_SLOTS))
        volume_series(
            x,
            slots,
            profile,
            self.fresh_state(1),
            self._table,
            self._cfg,
            self.sparse,
            out,
        )
        return out
