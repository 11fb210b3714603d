"""What each detector promises: count-awareness, seasonality, drivers."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import (
    BucketStats,
    CrisisDetector,
    NegativeShareDetector,
    SentimentShiftDetector,
    VolumeDetector,
)
from detectors.series import DEFAULT_THRESHOLD, detect_series, infer_bucket_seconds

DAY = 288  # 5-minute buckets


def counts_stats(x: np.ndarray) -> BucketStats:
    x = x.reshape(len(x), -1).astype(np.float64)
    return BucketStats(x, x, x * 0, x * 0)


def diurnal(days: int, base: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    t = 1_425_168_000.0 + 300.0 * np.arange(days * DAY)
    hour = (t % 86400) / 3600
    rate = base * (1.0 + 0.8 * np.sin(2 * np.pi * (hour - 6) / 24))
    return t, np.random.default_rng(seed).poisson(rate).astype(np.float64)


@pytest.mark.parametrize("base", [0.3, 3.0, 300.0])
def test_volume_quiet_on_seasonal_poisson_noise(base: float) -> None:
    t, x = diurnal(14, base, seed=int(base * 10))
    s = VolumeDetector().score_series(x, t)
    assert s.max() < DEFAULT_THRESHOLD


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
    age = det.state[0, 2]
    det.update(counts_stats(np.array([np.nan])).row(0))
    assert det.state[0, 2] == age
    det.update(counts_stats(np.array([0.0])).row(0))
    assert det.state[0, 2] == age + 1


def test_volume_clock_without_timestamps_advances_one_bucket() -> None:
    det = VolumeDetector(bucket_seconds=1800)
    for _ in range(3):
        det.update(counts_stats(np.array([1.0])).row(0))
    assert det.clock == 3600.0 and det.slot_of(None) == 1


def test_volume_rejects_bad_params() -> None:
    with pytest.raises(ValueError, match="smooth_hours"):
        VolumeDetector(smooth_hours=0)
    with pytest.raises(ValueError, match="timestamp"):
        VolumeDetector().slot_of(float("nan"))


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


def test_crisis_rejects_sparse_volume() -> None:
    with pytest.raises(ValueError, match="dense"):
        CrisisDetector(volume={"sparse": True})


def test_detect_series_infers_bucket_and_validates_order() -> None:
    assert infer_bucket_seconds(np.array([0.0, 600.0, 1200.0, 2400.0])) == 600.0
    with pytest.raises(ValueError, match="increasing"):
        detect_series(["2015-01-01 00:10:00", "2015-01-01 00:05:00"], np.array([1.0, 2.0]))
