"""The soak's RSS rule (test_soak.fitted_ends) on made-up curves; no broker, runs in CI."""

from __future__ import annotations

import statistics

import pytest

from tests.reliability.test_soak import fitted_ends

pytestmark = [pytest.mark.reliability, pytest.mark.ci]


def growth(points: list[tuple[float, float]]) -> float:
    a, b = fitted_ends(points)
    return (b - a) / a


def saw_tooth(seconds: int, leak_mib_per_min: float = 0.0) -> list[tuple[float, float]]:
    """10 s samples of a 60 s saw tooth between two modes (765 and 880 MiB), as in soak run 7,
    with the high mode's share varying from minute to minute, plus a steady leak."""
    out = []
    for k in range(seconds // 10):
        t = 10.0 * k
        high = (k % 6) >= (2 if (k // 18) % 2 else 4)  # 3-min stretches of 2/6 and 4/6 high
        out.append((t, (880.0 if high else 765.0) + leak_mib_per_min * t / 60))
    return out


def test_no_trend_passes_whatever_the_phase_of_the_saw_tooth() -> None:
    pts = saw_tooth(1080)
    # The rule before: medians of the first and the last 180 s land on different modes.
    first = statistics.median(v for t, v in pts if t < 180)
    last = statistics.median(v for t, v in pts if t > pts[-1][0] - 180)
    assert (last - first) / first > 0.05
    assert abs(growth(pts)) <= 0.05  # within the soak's rule (about 3%: the last stretch is high)
    assert abs(growth(saw_tooth(900))) < 0.02


def test_a_leak_fails() -> None:
    assert growth(saw_tooth(900, leak_mib_per_min=5.0)) > 0.05  # 75 MiB over 15 minutes
    assert growth(saw_tooth(900, leak_mib_per_min=44.0)) > 0.5  # soak run 2's rate


def test_one_sample() -> None:
    assert fitted_ends([(3.0, 700.0)]) == (700.0, 700.0)
