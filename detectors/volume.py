"""Volume surge: is the brand's mention count unusually high for this time of day?

Per brand, in ``log(count + offset)`` space (the offset is a pseudo-count,
so a brand with few mentions needs a large *relative* rise and a large
absolute one to look unusual):

1. **Seasonal baseline** (:func:`~detectors.kernels.seasonal_step`): a level
   (half-life ``level_halflife_hours``) plus an hour-of-day profile learned
   online (``profile_halflife_days``); a bucket's error is clipped at
   ``clip`` standard deviations before it updates the baseline, so a surge
   does not quickly become the new normal.
2. **Smoothed ratio**: observed counts and baseline-expected counts are both
   smoothed by the same EWMA (span ``smooth_hours``) and compared as
   ``r = log((obs + offset) / (expected + offset))``. Smoothing both with one
   filter keeps them aligned in time; the span makes the detector look at
   surges that last hours rather than single noisy buckets (on the NAB
   Twitter series this is what separates labelled events from retweet
   bursts).
3. **Standardise** (:func:`~detectors.kernels.robust_step`): ``z = (r - loc)
   / sd`` with ``loc``/``MAD`` a streaming median/MAD of ``r`` and ``sd^2 =
   (1.4826 MAD)^2 + v_pois``, where ``v_pois`` is the Poisson variance of the
   smoothed count in log space (delta method: ``mu * a / (2 - a) / (mu +
   offset)^2``). That second term is the count model: at a few mentions per
   bucket, Poisson noise alone explains large ratios.
4. **Score**: ``S = -log10 P(Z >= z)`` (Gaussian tail; "digits of
   surprise") mapped to ``S / (S + 3)``: 0.5 means a one-in-a-thousand
   deviation, 0.8 one in 10^12 (:func:`~detectors.kernels.surprise_score`).

Output modes:

- ``sparse=True`` (default; what ``detect-series`` and NAB scoring use): a
  surge is an *event* that starts when ``z >= event_low``. The detector emits
  the score of the event's running peak once, at the first bucket where ``z``
  has fallen ``event_drop`` below that peak (the surge stopped growing), and
  0 elsewhere; a later, higher peak in the same event emits again. The event
  ends when ``z < event_low / 2``. An alarm is then one row per surge, not
  one per bucket of it, which is what NAB-style scoring (and an on-call
  person) wants.
- ``sparse=False``: the score of the current ``z`` at every bucket (for the
  combined crisis detector and dashboards).

Gaps: a NaN count means "no data" (score 0, state unchanged); a count of 0
is an observation (no mentions). Warm-up: scores are 0 until the brand has
``warmup_hours`` of observations. Causal: state is updated only after the
bucket is scored. Time of day comes from the ``timestamp`` passed to
``update`` (bucket start, UTC epoch seconds); without one the detector
advances its own clock by ``bucket_seconds``.

State: 34 float64 per brand (272 bytes; the 24-slot profile dominates).

>>> import numpy as np
>>> det = VolumeDetector(bucket_seconds=3600, warmup_hours=48)
>>> rng = np.random.default_rng(0)
>>> calm = rng.poisson(50, size=(24 * 7, 1)).astype(float)
>>> surge = np.concatenate([calm, np.full((6, 1), 400.0), np.full((6, 1), 50.0)])
>>> scores = det.run(BucketStats(surge, surge, surge * 0, surge * 0))
>>> float(scores[: 24 * 7].max()) < 0.5, float(scores[24 * 7 :].max()) > 0.8
(True, True)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np

from .base import BucketStats, Detector, FloatArray, grow, register
from .kernels import (
    SURPRISE_HALF,
    IntArray,
    gauss_surprise,
    robust_step,
    seasonal_step,
    surprise_score,
)

#: Profile slots per day (hour of day).
DAY_SLOTS = 24
_SCALE0 = 0.3  # initial sd of the log ratio: wide, so the first day cannot alarm on noise
_SCALE_FLOOR = 1e-3
#: Partitions with at least this many brands are updated on all numba threads.
PARALLEL_MIN_BRANDS = 20_000
# state columns: level, pmean, age, obs, expected, loc, scale, ev_max, ev_state
_N_STATE = 9
_STATE_FILL = (0.0, 0.0, 0.0, 0.0, 0.0, math.nan, _SCALE0, 0.0, 0.0)


@numba.njit(nogil=True, cache=True)
def volume_step(
    x: float,
    slot: int,
    profile: FloatArray,
    state: FloatArray,
    i: int,
    offset: float,
    a_level: float,
    a_profile: float,
    a_smooth: float,
    eta_loc: float,
    a_scale: float,
    clip: float,
    warmup: float,
    event_low: float,
    event_drop: float,
    sparse: bool,
) -> tuple[float, float]:
    """Brand ``i``, one bucket: returns (score, z); updates row ``i`` of ``profile``/``state``.

    ``state[i]`` = [level, pmean, age, obs, expected, loc, scale, ev_max, ev_state].
    Rows are indexed in place (no per-row views), which keeps a 100k-brand
    update within a few milliseconds.
    """
    if x != x:  # gap: no evidence, no state change
        return 0.0, math.nan
    level, pmean, age = state[i, 0], state[i, 1], state[i, 2]
    obs, exp_s, loc, scale = state[i, 3], state[i, 4], state[i, 5], state[i, 6]
    pslot = profile[i, slot]
    y = math.log(max(x, 0.0) + offset)
    base = y if age == 0.0 else level + pslot - pmean
    mu = max(math.exp(base) - offset, 0.0)
    if age == 0.0:
        obs, exp_s = x, mu
    else:
        obs += a_smooth * (x - obs)
        exp_s += a_smooth * (mu - exp_s)
    inv = 1.0 / (exp_s + offset)
    r = math.log((obs + offset) * inv)
    # Poisson variance of an EWMA of counts, carried to log space (delta method).
    v_pois = max(exp_s, 0.1) * a_smooth / (2.0 - a_smooth) * inv * inv
    sd = math.sqrt(scale * scale + v_pois)
    z = (r - loc) / sd if loc == loc else 0.0

    score = 0.0
    if age >= warmup:
        if sparse:
            ev_max, ev_state = state[i, 7], state[i, 8]
            if ev_state == 0.0:
                if z >= event_low:
                    ev_state, ev_max = 1.0, z
            else:
                if z > ev_max:
                    ev_max, ev_state = z, 1.0  # a higher peak re-arms the event
                elif ev_state == 1.0 and z <= ev_max - event_drop:
                    score = surprise_score(gauss_surprise(ev_max), SURPRISE_HALF)
                    ev_state = 2.0
                if z < 0.5 * event_low:
                    ev_state = 0.0
            state[i, 7], state[i, 8] = ev_max, ev_state
        else:
            score = surprise_score(gauss_surprise(z), SURPRISE_HALF)

    # Learn after scoring (causal). The per-bucket error is clipped at `clip`
    # sd of a single bucket's log count (robust scale plus Poisson noise).
    sd1 = math.sqrt(scale * scale + 1.0 / (mu + offset))
    _, level, pslot, pmean, age = seasonal_step(
        level, pslot, pmean, age, y, DAY_SLOTS, clip * sd1, a_level, a_profile
    )
    loc, scale = robust_step(loc, scale, r, eta_loc, a_scale, clip, _SCALE_FLOOR)
    profile[i, slot] = pslot
    state[i, 0], state[i, 1], state[i, 2] = level, pmean, age
    state[i, 3], state[i, 4], state[i, 5], state[i, 6] = obs, exp_s, loc, scale
    return score, z


@numba.njit(nogil=True, cache=True)
def volume_update(
    count: FloatArray,
    slot: int,
    profile: FloatArray,
    state: FloatArray,
    offset: float,
    a_level: float,
    a_profile: float,
    a_smooth: float,
    eta_loc: float,
    a_scale: float,
    clip: float,
    warmup: float,
    event_low: float,
    event_drop: float,
    sparse: bool,
    out: FloatArray,
    out_z: FloatArray,
) -> None:
    """All brands of one bucket (rows of ``profile``/``state``)."""
    for i in range(count.shape[0]):
        out[i], out_z[i] = volume_step(
            count[i], slot, profile, state, i, offset, a_level, a_profile, a_smooth, eta_loc,
            a_scale, clip, warmup, event_low, event_drop, sparse,
        )  # fmt: skip


@numba.njit(nogil=True, cache=True, parallel=True)
def volume_update_parallel(
    count: FloatArray,
    slot: int,
    profile: FloatArray,
    state: FloatArray,
    offset: float,
    a_level: float,
    a_profile: float,
    a_smooth: float,
    eta_loc: float,
    a_scale: float,
    clip: float,
    warmup: float,
    event_low: float,
    event_drop: float,
    sparse: bool,
    out: FloatArray,
    out_z: FloatArray,
) -> None:
    """:func:`volume_update` over threads: brands are independent, so results are identical."""
    for i in numba.prange(count.shape[0]):
        out[i], out_z[i] = volume_step(
            count[i], slot, profile, state, i, offset, a_level, a_profile, a_smooth, eta_loc,
            a_scale, clip, warmup, event_low, event_drop, sparse,
        )  # fmt: skip


@numba.njit(nogil=True, cache=True)
def volume_series(
    x: FloatArray,
    slots: IntArray,
    offset: float,
    a_level: float,
    a_profile: float,
    a_smooth: float,
    eta_loc: float,
    a_scale: float,
    clip: float,
    warmup: float,
    event_low: float,
    event_drop: float,
    sparse: bool,
    out: FloatArray,
    out_z: FloatArray,
) -> None:
    """One brand, a whole series (the kernel the throughput benchmark measures)."""
    profile = np.zeros((1, DAY_SLOTS))
    state = np.zeros((1, _N_STATE))
    state[0, 5] = math.nan
    state[0, 6] = _SCALE0
    for t in range(x.shape[0]):
        out[t], out_z[t] = volume_step(
            x[t], slots[t], profile, state, 0, offset, a_level, a_profile, a_smooth, eta_loc, a_scale, clip,
            warmup, event_low, event_drop, sparse,
        )  # fmt: skip


def _halflife_alpha(halflife_buckets: float) -> float:
    return 1.0 - 0.5 ** (1.0 / halflife_buckets)


@register
class VolumeDetector(Detector):
    """Seasonal, count-aware volume-surge detector (see the module docstring)."""

    name: ClassVar[str] = "volume"
    state_fields: ClassVar[tuple[str, ...]] = ("profile", "state")
    scalar_fields: ClassVar[tuple[str, ...]] = ("clock",)

    def __init__(
        self,
        bucket_seconds: float = 300.0,
        smooth_hours: float = 12.0,
        level_halflife_hours: float = 24.0,
        profile_halflife_days: float = 6.0,
        robust_memory_hours: float = 24.0,
        offset: float = 5.0,
        clip: float = 3.0,
        warmup_hours: float = 24.0,
        event_low: float = 2.0,
        event_drop: float = 0.25,
        sparse: bool = True,
    ) -> None:
        super().__init__()
        for pname, v in (
            ("bucket_seconds", bucket_seconds),
            ("smooth_hours", smooth_hours),
            ("level_halflife_hours", level_halflife_hours),
            ("profile_halflife_days", profile_halflife_days),
            ("robust_memory_hours", robust_memory_hours),
            ("offset", offset),
            ("clip", clip),
            ("event_drop", event_drop),
        ):
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"{pname} must be a finite number > 0, got {v!r}")
        if not (math.isfinite(warmup_hours) and warmup_hours >= 0):
            raise ValueError(f"warmup_hours must be >= 0, got {warmup_hours!r}")
        if not (math.isfinite(event_low) and event_low > 0):
            raise ValueError(f"event_low must be > 0, got {event_low!r}")
        self.bucket_seconds = float(bucket_seconds)
        self.smooth_hours = float(smooth_hours)
        self.level_halflife_hours = float(level_halflife_hours)
        self.profile_halflife_days = float(profile_halflife_days)
        self.robust_memory_hours = float(robust_memory_hours)
        self.offset = float(offset)
        self.clip = float(clip)
        self.warmup_hours = float(warmup_hours)
        self.event_low = float(event_low)
        self.event_drop = float(event_drop)
        self.sparse = bool(sparse)

        per_hour = 3600.0 / self.bucket_seconds  # buckets per hour (may be < 1)
        span = max(self.smooth_hours * per_hour, 1.0)
        self._a_smooth = 2.0 / (span + 1.0)
        self._a_level = _halflife_alpha(max(self.level_halflife_hours * per_hour, 1e-9))
        # A profile slot is visited (buckets per day / slots) times a day.
        visits_per_day = max(24.0 * per_hour / DAY_SLOTS, 1e-9)
        self._a_profile = _halflife_alpha(self.profile_halflife_days * visits_per_day)
        memory = max(self.robust_memory_hours * per_hour, 1.0)
        self._a_scale = _halflife_alpha(memory)
        # The median moves half as fast (in sd units) as the scale adapts, so a
        # surge lasting hours is not absorbed into the location.
        self._eta_loc = 0.5 * self._a_scale
        self._warmup = self.warmup_hours * per_hour
        self.clock = math.nan  # start of the last bucket seen (UTC epoch seconds)
        self.profile = np.zeros((0, DAY_SLOTS))
        self.state = np.zeros((0, _N_STATE))
        self.last_z = np.zeros(0)

    @property
    def params(self) -> dict[str, Any]:
        return {
            "bucket_seconds": self.bucket_seconds,
            "smooth_hours": self.smooth_hours,
            "level_halflife_hours": self.level_halflife_hours,
            "profile_halflife_days": self.profile_halflife_days,
            "robust_memory_hours": self.robust_memory_hours,
            "offset": self.offset,
            "clip": self.clip,
            "warmup_hours": self.warmup_hours,
            "event_low": self.event_low,
            "event_drop": self.event_drop,
            "sparse": self.sparse,
        }

    def _grow(self, n: int) -> None:
        old = len(self.state)
        self.profile = grow(self.profile, n, 0.0)
        self.state = grow(self.state, n, 0.0)
        self.state[old:] = _STATE_FILL

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
        slot = self.slot_of(timestamp)
        out = np.zeros(n)
        self.last_z = np.zeros(n)
        # Threads pay off only for large partitions (start-up costs ~10-50 us).
        kernel = volume_update_parallel if n >= PARALLEL_MIN_BRANDS else volume_update
        kernel(
            stats.count,
            slot,
            self.profile,
            self.state,
            self.offset,
            self._a_level,
            self._a_profile,
            self._a_smooth,
            self._eta_loc,
            self._a_scale,
            self.clip,
            self._warmup,
            self.event_low,
            self.event_drop,
            self.sparse,
            out,
            self.last_z,
        )
        return out

    def score_series(self, values: FloatArray, timestamps: FloatArray | None = None) -> FloatArray:
        """Scores for one brand's whole series with fresh state (fast path; equals ``run``)."""
        x = np.ascontiguousarray(values, dtype=np.float64)
        if timestamps is None:
            ts = np.arange(len(x)) * self.bucket_seconds
        else:
            ts = np.asarray(timestamps, dtype=np.float64)
        slots = ((ts % 86400.0) // (86400.0 / DAY_SLOTS)).astype(np.int64)
        out, z = np.zeros(len(x)), np.zeros(len(x))
        volume_series(
            x, slots, self.offset, self._a_level, self._a_profile, self._a_smooth, self._eta_loc, self._a_scale,
            self.clip, self._warmup, self.event_low, self.event_drop, self.sparse, out, z,
        )  # fmt: skip
        return out
