"""One contract suite over every registered detector."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest

from detectors import BucketStats, available, make_detector
from detectors.base import Detector

HOUR = 3600.0
# (name, params): every registered detector appears at least once.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("negative_share", {}),
    ("volume", {"bucket_seconds": HOUR, "warmup_hours": 6.0}),
    ("volume", {"bucket_seconds": HOUR, "warmup_hours": 6.0, "sparse": False}),
    ("mean_sentiment", {}),
    ("mean_sentiment", {"method": "page_hinkley"}),
    ("crisis", {"volume": {"bucket_seconds": HOUR, "warmup_hours": 6.0}}),
]
IDS = [
    f"{n}{'-' + '-'.join(f'{k}={v}' for k, v in p.items() if k != 'volume') if p else ''}"
    for n, p in CASES
]


def test_every_registered_detector_is_covered() -> None:
    assert set(available()) <= {n for n, _ in CASES}


def history(T: int = 120, n: int = 5, seed: int = 0, gaps: bool = True) -> BucketStats:
    """Synthetic brands: diurnal volume, a surge, a few tiny brands, gaps and NaNs."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None]
    rate = np.array([200.0, 50.0, 5.0, 0.5, 80.0])[:n] * (1.3 + np.sin(2 * np.pi * t / 24))
    rate[T // 2 : T // 2 + 4, 0] *= 8  # a surge on brand 0
    count = rng.poisson(rate).astype(np.float64)
    scored = np.floor(count * 0.9)
    p_neg = np.full((T, n), 0.2)
    p_neg[T // 2 : T // 2 + 4, 1] = 0.7  # a negativity surge on brand 1
    negative = rng.binomial(scored.astype(np.int64), p_neg).astype(np.float64)
    sentiment = rng.normal(0.1, 0.5, (T, n)) * np.sqrt(scored) + 0.1 * scored - 0.8 * negative
    if gaps:
        count[10:13, 2] = np.nan  # unknown buckets
        scored[10:13, 2] = np.nan
        negative[10:13, 2] = np.nan
        sentiment[10:13, 2] = np.nan
        scored[20:25, 3] = 0.0  # no scored mentions
        negative[20:25, 3] = 0.0
        sentiment[20:25, 3] = 0.0
    return BucketStats(count, scored, negative, sentiment)


def timestamps(T: int) -> np.ndarray:
    return 1_425_000_000.0 - 1_425_000_000.0 % 86400 + HOUR * np.arange(T)


def per_bucket(det: Detector, stats: BucketStats, ts: np.ndarray) -> np.ndarray:
    return np.stack([det.update(stats.row(t), float(ts[t])) for t in range(len(ts))])


@pytest.fixture(params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param


def fresh(case: tuple[str, dict[str, Any]]) -> Detector:
    name, params = case
    return make_detector(name, **copy.deepcopy(params))


def test_batch_equals_per_bucket(case) -> None:
    s, ts = history(), timestamps(120)
    np.testing.assert_array_equal(fresh(case).run(s, ts), per_bucket(fresh(case), s, ts))


def test_update_many_equals_per_bucket_and_leaves_the_same_state(case) -> None:
    """``update_many`` (one kernel call for the crisis detector) is ``update`` T times:
    the same scores, per-signal scores and state, bit for bit."""
    s, ts = history(), timestamps(120)
    one, many = fresh(case), fresh(case)
    per_one = []
    for t in range(60):
        one.update(s.row(t), float(ts[t]))
    for t in range(60):
        many.update(s.row(t), float(ts[t]))
    want = []
    for t in range(60, 120):
        want.append(one.update(s.row(t), float(ts[t])))
        last = getattr(one, "last_scores", None)
        if last:
            per_one.append({k: v.copy() for k, v in last.items()})
    rest = BucketStats(*(a[60:] for a in s))
    got, signals = many.update_many(rest, [float(x) for x in ts[60:]])
    np.testing.assert_array_equal(got, np.stack(want))
    if per_one:
        assert set(signals) == set(per_one[0])
        for k, v in signals.items():
            np.testing.assert_array_equal(v, np.stack([p[k] for p in per_one]))
            np.testing.assert_array_equal(many.last_scores[k], per_one[-1][k])
    else:
        assert signals == {}
    assert pickle.dumps(one.to_state()) == pickle.dumps(many.to_state())
    np.testing.assert_array_equal(
        one.update(s.row(0), float(ts[-1]) + HOUR), many.update(s.row(0), float(ts[-1]) + HOUR)
    )


def test_scores_in_unit_interval_and_finite(case) -> None:
    out = fresh(case).run(history(), timestamps(120))
    assert np.isfinite(out).all() and (out >= 0).all() and (out <= 1).all()


def test_state_round_trip_changes_no_future_score(case) -> None:
    s, ts = history(), timestamps(120)
    a = fresh(case)
    a.run(BucketStats(*(x[:70] for x in s)), ts[:70])
    state = pickle.loads(pickle.dumps(a.to_state()))
    b = type(a).from_state(state)
    rest = BucketStats(*(x[70:] for x in s))
    np.testing.assert_array_equal(a.run(rest, ts[70:]), b.run(rest, ts[70:]))


def test_update_is_deterministic_and_leaves_inputs_alone(case) -> None:
    s, ts = history(), timestamps(120)
    a = fresh(case)
    a.run(BucketStats(*(x[:60] for x in s)), ts[:60])
    before = pickle.dumps(a.to_state())
    b = type(a).from_state(pickle.loads(before))
    row = s.row(60)
    row_copy = BucketStats(*(x.copy() for x in row))
    assert pickle.dumps(a.to_state()) == before  # to_state has no side effect
    np.testing.assert_array_equal(a.update(row, float(ts[60])), b.update(row, float(ts[60])))
    for x, y in zip(row, row_copy, strict=True):
        np.testing.assert_array_equal(x, y)


def test_causal_prefix_scores_do_not_depend_on_the_future(case) -> None:
    s, ts = history(), timestamps(120)
    full = fresh(case).run(s, ts)
    other = BucketStats(*(x.copy() for x in s))
    for x in other:
        x[80:] = x[80:] * 3 + 7
    np.testing.assert_array_equal(full[:80], fresh(case).run(other, ts)[:80])


def test_all_nan_bucket_scores_zero_and_changes_no_brand_state(case) -> None:
    s, ts = history(gaps=False), timestamps(120)
    a = fresh(case)
    a.run(BucketStats(*(x[:60] for x in s)), ts[:60])
    before = a.to_state()
    nan = BucketStats(*(np.full(5, np.nan) for _ in range(4)))
    assert (a.update(nan, float(ts[60])) == 0).all()
    after = a.to_state()
    _assert_state_equal(before, after, ignore={"__scalars__"})


def _assert_state_equal(a: Any, b: Any, ignore: set[str]) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            if k not in ignore:
                _assert_state_equal(a[k], b[k], ignore)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


def test_warm_up_scores_zero(case) -> None:
    s, ts = history(), timestamps(120)
    out = fresh(case).run(BucketStats(*(x[:3] for x in s)), ts[:3])
    assert (out == 0).all()


def test_brands_are_independent_and_new_brands_get_fresh_state(case) -> None:
    s, ts = history(), timestamps(120)
    alone = fresh(case).run(BucketStats(*(x[:, :2] for x in s)), ts)
    together = fresh(case).run(s, ts)
    np.testing.assert_array_equal(alone, together[:, :2])
    # a brand that appears at bucket 50 scores like a brand seen from its first bucket
    late = fresh(case)
    late.run(BucketStats(*(x[:50, :2] for x in s)), ts[:50])
    tail = late.run(BucketStats(*(x[50:, :3] for x in s)), ts[50:])
    ref = fresh(case).run(BucketStats(*(x[50:, 2:3] for x in s)), ts[50:])
    np.testing.assert_array_equal(tail[:, 2:3], ref)


def test_bounded_memory(case) -> None:
    s, ts = history(T=400), timestamps(400)

    def nbytes(det: Detector) -> int:
        return len(pickle.dumps(det.to_state()))

    a = fresh(case)
    a.run(BucketStats(*(x[:20] for x in s)), ts[:20])
    small = nbytes(a)
    a.run(BucketStats(*(x[20:] for x in s)), ts[20:])
    assert nbytes(a) == small


def test_state_under_one_kib_per_brand_per_signal(case) -> None:
    det = fresh(case)
    det.run(history(), timestamps(120))
    signals = 3 if case[0] == "crisis" else 1
    size = len(pickle.dumps(det.to_state()))
    assert size / 5 <= 1024 * signals + 400  # + pickle/params overhead over 5 brands


def test_params_are_validated(case) -> None:
    name, _ = case
    with pytest.raises((ValueError, TypeError)):
        make_detector(name, no_such_parameter=1)
