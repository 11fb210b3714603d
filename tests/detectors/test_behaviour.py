"""What each detector promises: count-awareness, seasonality, drivers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors import (
    BucketStats,
    CrisisDetector,
    NegativeShareDetector,
    SentimentShiftDetector,
    VolumeDetector,
)
from detectors.kernels import gauss_surprise, surprise_score
from detectors.series import DEFAULT_THRESHOLD, detect_series, infer_bucket_seconds

DAY = 288  # 5-minute buckets
AGE_ROW = 2  # the volume state's row of observed buckets (state[row, brand])


def counts_stats(x: np.ndarray) -> BucketStats:
    x = x.reshape(len(x), -1).astype(np.float64)
    return BucketStats(x, x, x * 0, x * 0)


def diurnal(days: int, base: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    t = 1_425_168_000.0 + 300.0 * np.arange(days * DAY)
    hour = (t % 86400) / 3600
    rate = base * (1.0 + 0.8 * np.sin(2 * np.pi * (hour - 6) / 24))
    return t, np.random.default_rng(seed).poisson(rate).astype(np.float64)


@pytest.mark.parametrize("base", [0.02, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 300.0])
def test_volume_quiet_on_seasonal_poisson_noise(base: float) -> None:
    """Pure (diurnal) Poisson noise never alarms: 8 seeds x 14 days per level.

    The low levels are where the count model matters: without the Poisson
    term's floor of one expected mention per bucket, 0.1-0.3 mentions per
    bucket alarmed about once a month.
    """
    for seed in range(8):
        t, x = diurnal(14, base, seed=seed)
        s = VolumeDetector().score_series(x, t)
        assert s.max() < DEFAULT_THRESHOLD, (base, seed)


@pytest.mark.parametrize("base", [3.0, 300.0])
def test_volume_fires_once_on_a_sustained_surge(base: float) -> None:
    t, x = diurnal(10, base, seed=1)
    start = 8 * DAY
    x[start : start + 36] *= 6  # three hours at 6x
    s = VolumeDetector().score_series(x, t)
    hits = np.flatnonzero(s >= DEFAULT_THRESHOLD)
    assert len(hits) >= 1 and hits.min() >= start and hits.min() < start + 48
    assert len(hits) <= 3  # one alarm per surge (re-armed only by a higher peak)


def test_volume_score_series_equals_run() -> None:
    t, x = diurnal(3, 20.0, seed=2)
    x[100] = np.nan
    a = VolumeDetector(warmup_hours=2).score_series(x, t)
    b = VolumeDetector(warmup_hours=2).run(counts_stats(x), t)[:, 0]
    np.testing.assert_array_equal(a, b)


def test_volume_zero_count_is_data_nan_is_gap() -> None:
    det = VolumeDetector(bucket_seconds=3600, warmup_hours=0)
    det.update(counts_stats(np.array([10.0])).row(0))
    age = det.state[AGE_ROW, 0]
    det.update(counts_stats(np.array([np.nan])).row(0))
    assert det.state[AGE_ROW, 0] == age
    det.update(counts_stats(np.array([0.0])).row(0))
    assert det.state[AGE_ROW, 0] == age + 1


def test_volume_clock_without_timestamps_advances_one_bucket() -> None:
    det = VolumeDetector(bucket_seconds=1800)
    for _ in range(3):
        det.update(counts_stats(np.array([1.0])).row(0))
    assert det.clock == 3600.0 and det.slot_of(None) == 1


def test_volume_rejects_bad_params() -> None:
    with pytest.raises(ValueError, match="scale_memory_hours"):
        VolumeDetector(scale_memory_hours=0)
    with pytest.raises(ValueError, match="scales_hours"):
        VolumeDetector(scales_hours=(1.0, 2.0, 3.0, 4.0))
    with pytest.raises(ValueError, match="event_drop"):
        VolumeDetector(event_drop=1.0)
    with pytest.raises(ValueError, match="timestamp"):
        VolumeDetector().slot_of(float("nan"))


def test_volume_refractory_period_alarms_again_only_on_a_higher_peak() -> None:
    t, x = diurnal(10, 50.0, seed=4)
    first, second = 8 * DAY, 8 * DAY + 8 * 12  # 8 hours apart: inside the 24 h refractory
    x[first : first + 24] *= 5
    x[second : second + 24] *= 3  # smaller: no new alarm
    s = VolumeDetector().score_series(x, t)
    hits = np.flatnonzero(s >= DEFAULT_THRESHOLD)
    assert len(hits) >= 1 and hits.max() < second
    x[second : second + 24] *= 4  # now 12x, higher than the first: alarms again
    s = VolumeDetector().score_series(x, t)
    assert (s[second : second + 48] >= DEFAULT_THRESHOLD).any()


def test_volume_refractory_rearm_needs_a_much_rarer_peak() -> None:
    t, x = diurnal(10, 50.0, seed=4)
    first, second = 8 * DAY, 8 * DAY + 8 * 12  # 8 hours apart: inside the 24 h refractory
    x[first : first + 24] *= 5
    x[second : second + 24] *= 4  # a little higher than the first (its echo on the slow scales)
    strict = VolumeDetector().score_series(x, t)
    loose = VolumeDetector(refractory_rearm=0.0).score_series(x, t)
    peak = strict[first : first + 48].max()
    assert peak >= DEFAULT_THRESHOLD
    second_loose = loose[second : second + 48].max()
    assert second_loose > peak  # higher, so rearm=0 alarms again ...
    # ... but not rarer by the factor 1.5 in the exponent: no second alarm
    assert strict[second : second + 48].max() == 0.0
    assert surprise_to_digits(second_loose) < 1.5 * surprise_to_digits(peak)


def surprise_to_digits(score: float) -> float:
    return 3.0 * score / (1.0 - score)


def test_volume_scales_must_be_distinct_and_old_state_is_rejected() -> None:
    with pytest.raises(ValueError, match="distinct"):
        VolumeDetector(scales_hours=(1.0, 1.0))
    state = VolumeDetector().to_state()
    state["__params__"] = {"smooth_hours": 12.0}
    with pytest.raises(ValueError, match="older volume detector"):
        VolumeDetector.from_state(state)
    state = VolumeDetector().to_state()
    del state["__layout__"]  # as written before the struct-of-arrays layout
    with pytest.raises(ValueError, match="layout"):
        VolumeDetector.from_state(state)


def reference_volume(x: np.ndarray, t: np.ndarray, det: VolumeDetector) -> np.ndarray:
    """Plain-Python transcription of the dense volume score (module docstring steps 1-5)."""
    p = det.params
    per_hour = 3600.0 / p["bucket_seconds"]
    hl = lambda h: 1 - 0.5 ** (1 / h)  # noqa: E731
    alphas = [2 / (h * per_hour + 1) for h in p["scales_hours"]]
    k_scales = len(alphas)
    a_level, a_prof = (
        hl(p["level_halflife_hours"] * per_hour),
        hl(p["profile_halflife_days"] * per_hour),
    )
    a_scale = hl(p["scale_memory_hours"] * per_hour)
    a_cal = hl(p["calibration_halflife_days"] * 24 * per_hour)
    q_u, c, clip = 0.5 * p["tail_z"] ** 2, p["offset"], p["clip"]
    level = pmean = age = 0.0
    prof = [0.0] * 24
    m = [0.0] * k_scales
    sc = [0.3] * k_scales
    rate, me = [0.05] * k_scales, [1.0] * k_scales
    out = np.zeros(len(x))
    for i, (xi, ti) in enumerate(zip(x, t, strict=True)):
        s = int((ti % 86400) // 3600)
        y = math.log(max(xi, 0) + c)
        if age == 0:
            level = y
        expected = level + prof[s] - pmean
        e = y - expected
        mu = max(math.exp(expected), c + 1.0) - c  # the count floor of the Poisson term
        var_pois = mu / (mu + c) ** 2
        total = 0.0  # digits summed over scales
        for k, a in enumerate(alphas):
            m[k] += a * (e - m[k])
            sd2 = sc[k] ** 2 + var_pois * a / (2 - a)
            q = max(m[k], 0.0) ** 2 / (2 * sd2)
            du = -math.log10(rate[k])
            total += du + (q - q_u) / me[k] * math.log10(math.e) if q > q_u else du * q / q_u
            if q > q_u:
                rate[k] += a_cal * (1 - rate[k])
                me[k] += a_cal * ((q - q_u) - me[k])
            elif rate[k] > 1e-4:
                rate[k] *= 1 - a_cal
        # Fisher: P = 10^-D sum_{j<K} (D ln 10)^j / j!
        lam = total * math.log(10)
        digits = total - math.log10(sum(lam**j / math.factorial(j) for j in range(k_scales)))
        if age >= p["warmup_hours"] * per_hour:
            out[i] = max(digits, 0.0) / (max(digits, 0.0) + 3)
        ec = min(max(e, -clip * sc[0]), clip * sc[0])
        for k in range(k_scales):
            sc[k] = max(
                sc[k] + a_scale * (min(abs(m[k]), clip * sc[k]) * math.sqrt(math.pi / 2) - sc[k]),
                1e-3,
            )
        level += a_level * ec
        ap = max(1 / (1 + age / 24), a_prof)
        prof[s] += ap * ec
        pmean += ap * ec / 24
        age += 1
    return out


@pytest.mark.parametrize("scales", [(1.0,), (1.0, 6.0), (1.0, 4.0, 16.0)])
def test_volume_kernel_matches_a_plain_python_reference(scales: tuple[float, ...]) -> None:
    t, x = diurnal(6, 30.0, seed=6)
    x[5 * DAY + 100 : 5 * DAY + 136] *= 6
    x[5 * DAY + 200] = 0.5  # a non-integer count
    det = VolumeDetector(sparse=False, scales_hours=scales)
    got = det.score_series(x, t)
    ref = reference_volume(x, t, det)
    assert ref.max() > 0.6  # the surge is in the comparison
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def test_negative_share_is_count_aware() -> None:
    det = NegativeShareDetector(min_buckets=3)
    calm = BucketStats(
        np.array([100.0, 4.0]), np.array([100.0, 4.0]), np.array([20.0, 1.0]), np.zeros(2)
    )
    for _ in range(10):
        det.update(calm)
    surge = BucketStats(
        np.array([400.0, 4.0]), np.array([400.0, 4.0]), np.array([300.0, 3.0]), np.zeros(2)
    )
    s = det.update(surge)
    assert s[0] >= 0.9999 > s[1]


def test_negative_share_learns_a_normal_share_far_above_the_prior() -> None:
    """A brand whose normal share is 45% (the prior is 20%) is calm right after warm-up.

    The warm-up baseline is the pooled share; it used to be winsorised at the
    prior's p0 + 3 sd and then creep up by alpha * 3 sd a bucket, so a large
    brand scored >= 0.9999 for tens of buckets after warm-up.
    """
    n = np.array([140.0, 1000.0])
    k = np.round(n * 0.45)
    neg, crisis = NegativeShareDetector(min_buckets=6), CrisisDetector()
    worst_neg = worst_crisis = 0.0
    for h in range(40):
        stats = BucketStats(n, n, k, -0.2 * n)
        s_neg = neg.update(stats)
        crisis.update(stats, 300.0 * h)
        if h >= 6:
            worst_neg = max(worst_neg, float(np.max(s_neg)))
            worst_crisis = max(worst_crisis, float(np.max(crisis.last_scores["negative_share"])))
    assert worst_neg < 0.9 and worst_crisis < 0.5
    assert np.allclose(neg.p_base[:2], 0.45, atol=0.002)
    # After warm-up a surge is still winsorised: it does not become the baseline.
    for _ in range(5):
        neg.update(BucketStats(n, n, np.round(n * 0.9), -0.8 * n))
    assert np.all(neg.p_base[:2] < 0.5)
    assert np.all(neg.update(BucketStats(n, n, np.round(n * 0.9), -0.8 * n)) > 0.9999)


def test_sentiment_is_count_aware() -> None:
    det = SentimentShiftDetector()
    n = np.array([400.0, 3.0])
    for _ in range(30):
        det.update(BucketStats(n, n, n * 0.1, n * 0.2))
    scores = [det.update(BucketStats(n, n, n * 0.3, n * -0.3)) for _ in range(2)]
    assert scores[-1][1] < 0.5 < 0.7 < scores[-1][0]


def test_crisis_names_its_drivers() -> None:
    det = CrisisDetector(volume={"bucket_seconds": 3600, "warmup_hours": 24})
    rng = np.random.default_rng(3)
    for h in range(24 * 5):
        c = np.array([float(rng.poisson(100)), float(rng.poisson(100))])
        det.update(BucketStats(c, c, np.round(c * 0.1), c * 0.2), 3600.0 * h)
    c = np.array([1200.0, 100.0])  # brand 0: a volume surge of ordinary mentions
    score = det.update(BucketStats(c, c, np.round(c * 0.1), c * 0.2), 3600.0 * 24 * 5)
    assert score[0] > 0.9 and det.drivers(0) == ["volume"]
    assert score[1] < 0.5 and det.drivers(1) == []


def test_crisis_signals_equal_the_single_signal_detectors() -> None:
    rng = np.random.default_rng(7)
    n = 40
    crisis = CrisisDetector()
    vol, neg, sent = VolumeDetector(sparse=False), NegativeShareDetector(), SentimentShiftDetector()
    for h in range(300):
        c = rng.poisson(30.0, n).astype(float)
        k = rng.binomial(c.astype(int), 0.2).astype(float)
        stats = BucketStats(c, c, k, rng.normal(0.1, 0.5, n) * np.sqrt(c))
        crisis.update(stats, 300.0 * h)
        np.testing.assert_array_equal(crisis.last_scores["volume"], vol.update(stats, 300.0 * h))
        np.testing.assert_array_equal(crisis.last_scores["mean_sentiment"], sent.update(stats))
        _, z = neg.update_z(stats)
        expect = np.array([surprise_score(gauss_surprise(v)) if v > 0 else 0.0 for v in z])
        np.testing.assert_allclose(crisis.last_scores["negative_share"], expect, atol=1e-6)


def test_crisis_threads_give_identical_results() -> None:
    rng = np.random.default_rng(8)
    a, b = CrisisDetector(), CrisisDetector()
    a.threading, b.threading = "serial", "parallel"
    for h in range(50):
        c = rng.poisson(10.0, 5000).astype(float)
        stats = BucketStats(c, c, np.floor(c * 0.2), rng.normal(0, 1, 5000))
        np.testing.assert_array_equal(a.update(stats, 300.0 * h), b.update(stats, 300.0 * h))
        np.testing.assert_array_equal(a.last_drivers, b.last_drivers)


def test_crisis_rejects_sparse_volume() -> None:
    with pytest.raises(ValueError, match="dense"):
        CrisisDetector(volume={"sparse": True})


def test_detect_series_infers_bucket_and_validates_order() -> None:
    assert infer_bucket_seconds(np.array([0.0, 600.0, 1200.0, 2400.0])) == 600.0
    with pytest.raises(ValueError, match="increasing"):
        detect_series(["2015-01-01 00:10:00", "2015-01-01 00:05:00"], np.array([1.0, 2.0]))
