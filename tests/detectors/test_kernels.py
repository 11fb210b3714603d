"""Kernels against NumPy reference implementations (after every update)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from detectors import kernels as K

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
with_gaps = st.one_of(finite, st.just(math.nan))


def ref_ewm(x: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean/variance with explicit weights over the finite values seen so far."""
    means, vars_ = np.full(len(x), np.nan), np.full(len(x), np.nan)
    seen = x[~np.isnan(x)] if len(x) else x
    vals: list[float] = []
    for i, v in enumerate(x):
        if not np.isnan(v):
            vals.append(v)
        if not vals:
            continue
        a = np.array(vals)
        m = len(a)
        w = alpha * (1 - alpha) ** (m - 1 - np.arange(m))
        w[0] = (1 - alpha) ** (m - 1)
        mean = float(np.sum(w * a))
        means[i] = mean
        vars_[i] = float(np.sum(w * (a - mean) ** 2))
    del seen
    return means, vars_


@pytest.mark.parametrize(
    "x",
    [
        np.array([1.0]),
        np.array([np.nan, np.nan]),
        np.full(50, 3.5),
        np.array([1.0, np.nan, 3.0, 10.0, -2.0, np.nan]),
        np.random.default_rng(0).standard_normal(300),
    ],
    ids=["single", "all-nan", "constant", "gaps", "normal"],
)
@pytest.mark.parametrize("alpha", [0.01, 0.3, 1.0])
def test_ewm_matches_weighted_reference(x: np.ndarray, alpha: float) -> None:
    m, v = np.empty(len(x)), np.empty(len(x))
    K.ewm(x, alpha, m, v)
    rm, rv = ref_ewm(x, alpha)
    np.testing.assert_allclose(m, rm, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(v, rv, rtol=1e-8, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(0, 60), elements=with_gaps), st.floats(0.001, 1.0))
def test_ewm_property(x: np.ndarray, alpha: float) -> None:
    m, v = np.empty(len(x)), np.empty(len(x))
    K.ewm(x, alpha, m, v)
    rm, rv = ref_ewm(x, alpha)
    np.testing.assert_allclose(m, rm, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(v, rv, rtol=1e-7, atol=1e-4)
    assert (np.nan_to_num(v) >= 0).all()


def ref_robust(x, eta, a_scale, clip, scale0, floor):
    loc, scale = math.nan, scale0
    locs, scales = [], []
    for v in x:
        if not math.isnan(v):
            if math.isnan(loc):
                loc = v
            else:
                d = v - loc
                loc += float(np.sign(d)) * min(eta * scale, abs(d))
                dev = min(abs(d), clip * scale)
                scale = max(scale + a_scale * (dev * math.sqrt(math.pi / 2) - scale), floor)
        locs.append(loc)
        scales.append(scale)
    return np.array(locs), np.array(scales)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.integers(0, 80), elements=with_gaps),
    st.floats(0.001, 0.5),
    st.floats(0.001, 0.5),
    st.floats(1.0, 5.0),
)
def test_robust_property(x: np.ndarray, eta: float, a_scale: float, clip: float) -> None:
    loc, scale = np.empty(len(x)), np.empty(len(x))
    K.robust(x, eta, a_scale, clip, 1.0, 1e-6, loc, scale)
    rl, rs = ref_robust(x, eta, a_scale, clip, 1.0, 1e-6)
    np.testing.assert_allclose(loc, rl, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(scale, rs, rtol=1e-12, atol=1e-12)


def test_robust_tracks_median_and_sd_and_resists_outliers() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(40_000) * 2.0 + 5.0
    x[::50] = 1e6  # 2 % gross outliers
    loc, scale = np.empty(len(x)), np.empty(len(x))
    K.robust(x, 0.002, 0.002, 3.0, 1.0, 1e-6, loc, scale)
    clean = x[x < 1e5]
    assert abs(loc[-1] - np.median(clean)) < 0.2
    # winsorising inflates the sd estimate by the outlier share at most
    assert 1.7 < scale[-1] < 2.6


def test_robust_constant_input_is_exact() -> None:
    x = np.full(100, 7.0)
    loc, scale = np.empty(100), np.empty(100)
    K.robust(x, 0.1, 0.1, 3.0, 1.0, 1e-6, loc, scale)
    assert (loc == 7.0).all() and scale[-1] < 1e-3


def ref_cusum(z, k):
    pos = neg = 0.0
    outp, outn = [], []
    for v in z:
        if not math.isnan(v):
            pos, neg = max(0.0, pos + v - k), max(0.0, neg - v - k)
        outp.append(pos)
        outn.append(neg)
    return np.array(outp), np.array(outn)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(0, 80), elements=with_gaps), st.floats(0.0, 3.0))
def test_cusum_property(z: np.ndarray, k: float) -> None:
    p, n = np.empty(len(z)), np.empty(len(z))
    K.cusum(z, k, p, n)
    rp, rn = ref_cusum(z, k)
    np.testing.assert_allclose(p, rp, atol=1e-9)
    np.testing.assert_allclose(n, rn, atol=1e-9)
    assert (p >= 0).all() and (n >= 0).all()


def ref_page_hinkley(x: np.ndarray, delta: float) -> np.ndarray:
    """Closed form without forgetting: cumulative means, cumsum, running minimum."""
    ok = ~np.isnan(x)
    v = x[ok]
    if len(v) == 0:
        return np.zeros(len(x))
    mean = np.cumsum(v) / np.arange(1, len(v) + 1)
    cum = np.cumsum(v - mean - delta)
    stat = cum - np.minimum(np.minimum.accumulate(cum), 0.0)
    out = np.zeros(len(x))
    idx = np.cumsum(ok) - 1
    out[idx >= 0] = stat[idx[idx >= 0]]
    return out


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(0, 80), elements=with_gaps), st.floats(0.0, 2.0))
def test_page_hinkley_property(x: np.ndarray, delta: float) -> None:
    out = np.empty(len(x))
    K.page_hinkley(x, delta, 1.0, out)
    np.testing.assert_allclose(out, ref_page_hinkley(x, delta), rtol=1e-9, atol=1e-6)


def test_page_hinkley_detects_a_shift() -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.standard_normal(500), rng.standard_normal(100) + 2.0])
    out = np.empty(len(x))
    K.page_hinkley(x, 0.5, 0.99, out)
    assert out[:500].max() < 20 < 100 < out[550:].max()


def ref_seasonal(y, slots, n_slots, clip, a_level, a_min):
    level, prof, age = 0.0, np.zeros(n_slots), 0
    out = []
    for v, s in zip(y, slots, strict=True):
        if math.isnan(v):
            out.append(math.nan)
            continue
        if age == 0:
            level = v
        exp = level + prof[s] - prof.mean()
        out.append(exp)
        e = float(np.clip(v - exp, -clip, clip))
        level += a_level * e
        prof[s] += max(1.0 / (1.0 + age / n_slots), a_min) * e
        age += 1
    return np.array(out)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.integers(0, 120), elements=with_gaps),
    st.integers(1, 24),
    st.floats(0.1, 10.0),
    st.floats(0.0, 0.5),
    st.floats(0.001, 0.5),
)
def test_seasonal_property(y, n_slots, clip, a_level, a_min) -> None:
    slots = (np.arange(len(y)) % n_slots).astype(np.int64)
    out = np.empty(len(y))
    K.seasonal(y, slots, n_slots, clip, a_level, a_min, out)
    np.testing.assert_allclose(
        out, ref_seasonal(y, slots, n_slots, clip, a_level, a_min), rtol=1e-9, atol=1e-6
    )


def test_seasonal_learns_a_daily_profile() -> None:
    t = np.arange(24 * 30)
    y = 3.0 + np.sin(2 * np.pi * t / 24)
    out = np.empty(len(y))
    K.seasonal(y, (t % 24).astype(np.int64), 24, 10.0, 0.05, 0.05, out)
    assert np.abs(out[-48:] - y[-48:]).max() < 0.05


@pytest.mark.parametrize("z", [-5.0, 0.0, 1.0, 3.0, 8.0, 25.0, 29.9])
def test_gauss_surprise_matches_erfc(z: float) -> None:
    assert math.isclose(
        K.gauss_surprise(z), -math.log10(0.5 * math.erfc(z / math.sqrt(2))), rel_tol=1e-9
    )


def test_gauss_surprise_is_continuous_and_monotone_into_the_asymptote() -> None:
    zs = np.linspace(0, 60, 6001)
    s = np.array([K.gauss_surprise(z) for z in zs])
    assert (np.diff(s) > 0).all()
    below, above = K.gauss_surprise(29.999999), K.gauss_surprise(30.0)
    assert abs(above - below) / below < 1e-4
    assert K.gauss_surprise(math.nan) == 0.0


@given(st.floats(0, 1e6))
def test_surprise_score_in_unit_interval_and_invertible(s: float) -> None:
    sc = K.surprise_score(s)
    assert 0.0 <= sc < 1.0
    if 1e-6 < s < 100:
        assert math.isclose(-math.log10(K.score_to_tail_probability(sc)), s, rel_tol=1e-6)


def test_gauss_scores_vectorised() -> None:
    z = np.array([np.nan, -1.0, 0.0, 3.0, 50.0])
    out = np.empty(5)
    K.gauss_scores(z, out)
    assert out.tolist() == [K.surprise_score(K.gauss_surprise(v)) for v in z]


# --------------------------------------------------------------------------- tail calibration


def ref_tail(q: np.ndarray, q_u: float, a: float, rate0: float, me0: float) -> np.ndarray:
    """Digits with the state written as explicit weighted sums over the past (no floor).

    Before value i: rate = rate0 (1-a)^i + a sum_j (1-a)^(i-1-j) 1[q_j > q_u];
    mean excess = me0 (1-a)^K + a sum_k (1-a)^(K-1-k) (x_k - q_u) over the K
    exceedances x_k so far.
    """
    out = np.empty(len(q))
    for i, v in enumerate(q):
        past = q[:i]
        w = (1 - a) ** (i - 1 - np.arange(i))
        rate = rate0 * (1 - a) ** i + a * np.sum(w * (past > q_u))
        exc = past[past > q_u] - q_u
        k = len(exc)
        me = me0 * (1 - a) ** k + a * np.sum((1 - a) ** (k - 1 - np.arange(k)) * exc)
        du = -math.log10(rate)
        if v > q_u:
            out[i] = du + (v - q_u) / me * math.log10(math.e)
        else:
            out[i] = du * max(v, 0.0) / q_u
    return out


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 60), elements=st.floats(0.0, 30.0)),
    st.floats(0.5, 3.0),
    st.floats(0.01, 0.3),
)
def test_tail_calibrate_matches_explicit_weights(q: np.ndarray, q_u: float, a: float) -> None:
    out = np.empty(len(q))
    K.tail_calibrate(q, q_u, a, 0.05, 1.0, 1e-12, out)
    np.testing.assert_allclose(out, ref_tail(q, q_u, a, 0.05, 1.0), rtol=1e-9, atol=1e-12)


def test_tail_calibrate_is_monotone_in_q_and_ranks_rarer_tails_higher() -> None:
    rng = np.random.default_rng(0)
    calm = 0.5 * rng.standard_normal(5000) ** 2  # Gaussian z: exponential-ish tail of q
    bursty = 0.5 * (3 * rng.standard_t(2, 5000)) ** 2  # heavy tail
    outs = []
    for q in (calm, bursty):
        probe = np.concatenate([q, [8.0]])
        d = np.empty(len(probe))
        K.tail_calibrate(probe, 1.125, 1e-3, 0.05, 1.0, 1e-4, d)
        outs.append(d[-1])
    # the same q = 8 (z = 4) is far rarer on the calm series
    assert outs[0] > outs[1] + 1.0
    d1, d2 = np.empty(2), np.empty(2)
    K.tail_calibrate(np.array([0.0, 3.0]), 1.125, 0.01, 0.05, 1.0, 1e-4, d1)
    K.tail_calibrate(np.array([0.0, 4.0]), 1.125, 0.01, 0.05, 1.0, 1e-4, d2)
    assert d2[1] > d1[1] > 0


def test_tail_calibrate_gap_and_floor() -> None:
    d = np.empty(3)
    K.tail_calibrate(np.array([np.nan, 0.0, np.nan]), 1.0, 0.5, 0.05, 1.0, 0.02, d)
    assert d[0] == 0.0 and d[2] == 0.0
    d = np.empty(200)
    K.tail_calibrate(np.zeros(200), 1.0, 0.5, 0.05, 1.0, 0.02, d)
    probe = np.empty(201)
    K.tail_calibrate(np.append(np.zeros(200), 1.0), 1.0, 0.5, 0.05, 1.0, 0.02, probe)
    assert probe[-1] <= -math.log10(0.02 * 0.5) + 1e-12  # the rate stops decaying at the floor


@settings(max_examples=200, deadline=None)
@given(st.floats(-5.0, 40.0))
def test_gauss_surprise_fast_matches_exact_one_sided(z: float) -> None:
    exact = K.gauss_surprise(z) if z > 0 else 0.0
    assert abs(K.gauss_surprise_fast(z) - exact) < 4e-6
