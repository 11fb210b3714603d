"""NAB scoring rules, and the shipped defaults on the five NAB Twitter series."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import nab
from detectors.series import DEFAULT_THRESHOLD, detect_series, read_counts

NAB_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab-realtweets"
STD = nab.PROFILES["standard"]


def sig(y: float) -> float:
    return 2 / (1 + math.exp(5 * y)) - 1


def test_probation_rows() -> None:
    assert nab.probation_rows(1000) == 150
    assert nab.probation_rows(15902) == 750


def test_earliest_detection_in_window_counts_once() -> None:
    s = np.zeros(1000)
    s[[500, 550, 599]] = 1.0  # window 500..599 (width 100)
    r = nab.score_corpus([nab.FileScores("f", s, [(500, 599)])], 0.5).files[0]
    assert (r.tp, r.fp, r.fn) == (1, 0, 0)
    assert math.isclose(r.score, 1.0)  # first row of a window earns exactly A_TP


def test_position_weight_inside_window() -> None:
    s = np.zeros(1000)
    s[550] = 1.0
    r = nab.score_corpus([nab.FileScores("f", s, [(500, 599)])], 0.5).files[0]
    assert math.isclose(r.score, sig(-(599 - 550 + 1) / 100) / sig(-1.0))


def test_false_positive_weights() -> None:
    s = np.zeros(1000)
    s[300] = 1.0  # before any window: full A_FP
    s[610] = 1.0  # 11 rows after a width-100 window
    r = nab.score_corpus([nab.FileScores("f", s, [(500, 599)])], 0.5).files[0]
    expected = -STD[1] + STD[1] * sig(11 / 99) - STD[2]  # two FPs and a missed window
    assert (r.tp, r.fp, r.fn) == (0, 2, 1)
    assert math.isclose(r.score, expected)


def test_probation_rows_are_ignored() -> None:
    s = np.zeros(1000)
    s[10] = 1.0
    r = nab.score_corpus([nab.FileScores("f", s, [(500, 599)])], 0.5)
    assert r.files[0].fp == 0 and math.isclose(r.normalised["standard"], 0.0)


def test_detection_is_score_at_least_threshold() -> None:
    s = np.zeros(1000)
    s[500] = 0.5
    assert nab.score_corpus([nab.FileScores("f", s, [(500, 599)])], 0.5).files[0].tp == 1


def test_normalisation_null_and_perfect() -> None:
    wins = [(300, 399), (700, 799)]
    null = nab.score_corpus([nab.FileScores("f", np.zeros(1000), wins)], 0.5)
    s = np.zeros(1000)
    s[[300, 700]] = 1.0
    perfect = nab.score_corpus([nab.FileScores("f", s, wins)], 0.5)
    for p in nab.PROFILES:
        assert math.isclose(null.normalised[p], 0.0, abs_tol=1e-12)
        assert math.isclose(perfect.normalised[p], 100.0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1999), st.floats(0.01, 1.0)), max_size=30), st.integers(0, 2)
)
def test_sweep_equals_direct_scoring_at_every_threshold(points, profile_i) -> None:
    s = np.zeros(2000)
    for i, v in points:
        s[i] = round(v, 2)
    files = [
        nab.FileScores("a", s, [(400, 499), (1200, 1399)]),
        nab.FileScores("b", s[::-1].copy(), [(900, 950)]),
    ]
    profile = list(nab.PROFILES)[profile_i]
    cands, total = nab.sweep(files, profile)
    for t, v in zip(cands[:8], total[:8], strict=False):
        if np.isfinite(t):
            assert math.isclose(nab.score_corpus(files, float(t)).raw[profile], v, abs_tol=1e-9)
    _, best = nab.best_threshold(files, profile)
    assert best >= nab.score_corpus(files, 0.5).normalised[profile] - 1e-9


def test_window_rows_and_matching() -> None:
    ts = ["2015-01-01 00:00:00", "2015-01-01 00:05:00", "2015-01-01 00:10:00"]
    assert nab.window_rows(ts, [("2015-01-01 00:05:00.000000", "2015-01-01 00:10:00")]) == [(1, 2)]
    w = {"realTweets/x.csv": [("a", "b")]}
    assert nab.match_windows("x.csv", w) == [("a", "b")] and nab.match_windows("y.csv", w) is None


def _nab_files() -> list[nab.FileScores]:
    windows = nab.load_windows(NAB_DIR / "windows.json")
    files = []
    for key, wins in sorted(windows.items()):
        ts, _, values = read_counts(NAB_DIR / key)
        files.append(nab.FileScores(key, detect_series(ts, values), nab.window_rows(ts, wins)))
    return files


@pytest.fixture(scope="module")
def nab_files() -> list[nab.FileScores]:
    if not (NAB_DIR / "windows.json").exists():
        pytest.skip(f"NAB data not found at {NAB_DIR}")
    return _nab_files()


#: What the shipped defaults reach on the five series (see docs/detectors.md):
#: 85.7 at DEFAULT_THRESHOLD, 86.7 at the best threshold (the issue's targets:
#: >= 78 at the default, >= 85 at the best). Floors just below: regressions fail.
DEFAULT_SCORE_FLOOR = 85.5
BEST_SCORE_FLOOR = 86.5


def test_shipped_defaults_on_nab_twitter_at_default_threshold(nab_files) -> None:
    r = nab.score_corpus(nab_files, DEFAULT_THRESHOLD)
    assert sum(f.tp for f in r.files) == 16
    assert r.normalised["standard"] >= max(78.0, DEFAULT_SCORE_FLOOR)


def test_shipped_defaults_on_nab_twitter_best_threshold(nab_files) -> None:
    _, best = nab.best_threshold(nab_files)
    assert best >= BEST_SCORE_FLOOR


def test_default_threshold_is_not_on_a_cliff(nab_files) -> None:
    """+-0.02 around the shipped threshold stays above the issue's 78."""
    for t in (DEFAULT_THRESHOLD - 0.02, DEFAULT_THRESHOLD + 0.02):
        assert nab.score_corpus(nab_files, t).normalised["standard"] >= 78.0


# --------------------------------------------------------------------------- reference


def reference_raw_score(
    scores: np.ndarray, windows: list[tuple[int, int]], threshold: float, profile: str
) -> float:
    """NAB's sweeper rules, transcribed row by row (numenta/NAB ``nab/sweeper.py``).

    Each row gets a weight: inside a window ``sigma(-(right - i + 1) / width)
    * A_TP / sigma(-1)``; outside, ``sigma(d) * A_FP`` with ``d = |i -
    right_prev| / (width_prev - 1)``, or ``d = 3`` (``sigma = -1``) before the
    first window. Probation rows are dropped; a window's score is the maximum
    weight of its detected rows (the earliest, as weights fall through the
    window) or ``-A_FN``; every detected outside row adds its weight.
    """
    a_tp, a_fp, a_fn = nab.PROFILES[profile]

    def ssig(y: float) -> float:
        return -1.0 if y >= 3.0 else 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0

    n = len(scores)
    probation = min(math.floor(0.15 * n), 0.15 * 5000)
    window_of, weight = {}, {}
    prev_right, prev_width = -1, 0  # no window seen yet
    for i in range(n):
        inside = [(w, (a, b)) for w, (a, b) in enumerate(windows) if a <= i <= b]
        if inside:
            w, (a, b) = inside[0]
            window_of[i] = w
            weight[i] = ssig(-(b - i + 1) / (b - a + 1)) * a_tp / ssig(-1.0)
            if i == b:
                prev_right, prev_width = b, b - a + 1
        else:
            d = 3.0 if prev_right < 0 else abs(prev_right - i) / (prev_width - 1)
            weight[i] = ssig(d) * a_fp
    parts = {w: -a_fn for i, w in window_of.items() if i >= probation}
    fp = 0.0
    for i in range(n):
        if i < probation or scores[i] < threshold:
            continue
        if i in window_of:
            parts[window_of[i]] = max(parts[window_of[i]], weight[i])
        else:
            fp += weight[i]
    return fp + sum(parts.values())


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1199), st.floats(0.01, 1.0)), max_size=40),
    st.lists(st.tuples(st.integers(0, 1150), st.integers(2, 120)), min_size=1, max_size=4),
    st.floats(0.05, 0.95),
    st.integers(0, 2),
)
def test_scorer_matches_a_row_by_row_transcription_of_nab(points, wins, threshold, pi) -> None:
    s = np.zeros(1200)
    for i, v in points:
        s[i] = v
    windows: list[tuple[int, int]] = []
    for a, w in sorted(wins):
        b = min(a + w - 1, 1199)
        if windows and a <= windows[-1][1] + 1:
            continue  # NAB windows do not overlap or touch
        windows.append((a, b))
    profile = list(nab.PROFILES)[pi]
    got = nab.score_corpus([nab.FileScores("f", s, windows)], threshold).raw[profile]
    assert math.isclose(got, reference_raw_score(s, windows, threshold, profile), abs_tol=1e-9)
