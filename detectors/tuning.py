"""Choosing a few global settings on labelled series, and checking that choice out of sample.

The rule (the same one picks the shipped default threshold and every fold's
settings): for each candidate setting, the corpus's NAB standard score as a
function of the threshold is averaged over a window of ``+-half_width``
(``plateau``), and the setting and threshold with the highest average win;
ties go to the first candidate (list the simplest first). Averaging prefers
a plateau to a peak: a threshold just below a cliff (where one more window
is lost) is a poor bet for unseen series, and NAB's costs are asymmetric (a
missed window costs as much as about 17 false alarms).

:func:`leave_one_out` applies the rule to all files but one and scores the
one left out at the chosen setting and threshold, for every file in turn:
the honest estimate of what the procedure does on a series it has not seen.
With one candidate it measures the threshold choice alone.

>>> import numpy as np
>>> s = np.zeros(2000); s[1200] = 0.7
>>> f = nab.FileScores("a", s, [(1190, 1290)])
>>> t = choose([[f]], half_width=0.02)
>>> t.candidate, round(t.threshold, 3) <= 0.7
(0, True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from . import nab
from .base import FloatArray

#: Thresholds on which the plateau average is taken (step 0.005).
GRID = np.round(np.arange(0.0, 1.0 + 1e-9, 0.005), 3)
#: Half width of the plateau average (thresholds within +-0.02 of the candidate).
HALF_WIDTH = 0.02


def raw_curve(files: Sequence[nab.FileScores], thresholds: FloatArray = GRID) -> FloatArray:
    """Raw NAB standard corpus score at each threshold (exact: from :func:`nab.sweep`)."""
    cands, total = nab.sweep(files, "standard")  # thresholds descending
    asc_c, asc_t = cands[::-1], total[::-1]
    # Detections at threshold t are the scores >= t: the same set as at the
    # smallest candidate >= t.
    j = np.searchsorted(asc_c, thresholds, side="left")
    return np.asarray(asc_t[np.minimum(j, len(asc_c) - 1)], dtype=np.float64)


def normalised(raw: FloatArray | float, n_windows: int) -> FloatArray:
    """Raw standard score(s) to NAB's normalised scale (null detector 0, perfect 100)."""
    return np.asarray(100.0 * (np.asarray(raw) + n_windows) / (2.0 * n_windows))


def plateau(curve: FloatArray, half_width: float = HALF_WIDTH, step: float = 0.005) -> FloatArray:
    """Moving average of a curve over ``+-half_width`` (edges repeat the end values)."""
    k = round(half_width / step)
    if k == 0:
        return curve.copy()
    pad = np.concatenate([np.full(k, curve[0]), curve, np.full(k, curve[-1])])
    return np.convolve(pad, np.ones(2 * k + 1) / (2 * k + 1), mode="valid")


@dataclass
class Choice:
    """The winning candidate and threshold, with its plateau and point scores (normalised)."""

    candidate: int
    threshold: float
    plateau_score: float
    score: float


def choose(
    candidates: Sequence[Sequence[nab.FileScores]], half_width: float = HALF_WIDTH
) -> Choice:
    """Apply the rule: ``candidates[c]`` is the corpus scored with candidate setting ``c``."""
    best: Choice | None = None
    best_raw = -np.inf
    for c, files in enumerate(candidates):
        n_windows = nab.scored_windows(files)
        curve = raw_curve(files)
        smooth = plateau(curve, half_width)
        j = int(np.argmax(smooth))  # the first (lowest) threshold of equal plateaus
        if smooth[j] > best_raw + 1e-12:  # strictly better: ties keep the earlier candidate
            best_raw = float(smooth[j])
            best = Choice(
                c,
                float(GRID[j]),
                float(normalised(smooth[j], n_windows)),
                float(normalised(curve[j], n_windows)),
            )
    if best is None:
        raise ValueError("no candidates")
    return best


@dataclass
class Fold:
    """One held-out file: the setting and threshold chosen without it, and its result."""

    held_out: str
    candidate: int
    threshold: float
    raw: float
    tp: int
    fp: int
    fn: int


@dataclass
class LeaveOneOut:
    in_sample: Choice
    folds: list[Fold]
    #: Normalised standard score of the held-out files, each at its fold's choice.
    score: float


def leave_one_out(
    candidates: Sequence[Mapping[str, nab.FileScores]], half_width: float = HALF_WIDTH
) -> LeaveOneOut:
    """The rule on all files (in sample), and on every file left out in turn.

    ``candidates[c][name]`` are file ``name``'s scores under setting ``c``;
    every candidate scores the same files.
    """
    names = list(candidates[0])
    if any(list(c) != names for c in candidates):
        raise ValueError("every candidate must score the same files")
    if len(names) < 2:
        raise ValueError("leave-one-out needs at least two files")
    in_sample = choose([[c[n] for n in names] for c in candidates], half_width)
    folds: list[Fold] = []
    for held in names:
        rest = [n for n in names if n != held]
        pick = choose([[c[n] for n in rest] for c in candidates], half_width)
        res = nab.score_corpus([candidates[pick.candidate][held]], pick.threshold)
        f = res.files[0]
        folds.append(
            Fold(held, pick.candidate, pick.threshold, res.raw["standard"], f.tp, f.fp, f.fn)
        )
    n_windows = nab.scored_windows([candidates[0][n] for n in names])
    score = float(normalised(sum(f.raw for f in folds), n_windows))
    return LeaveOneOut(in_sample, folds, score)


def score_candidates(
    series: Mapping[str, tuple[FloatArray, FloatArray, list[tuple[int, int]]]],
    settings: Sequence[Mapping[str, object]],
    scorer: Callable[[FloatArray, FloatArray, Mapping[str, object]], FloatArray],
) -> list[dict[str, nab.FileScores]]:
    """Score every series (``name -> (values, epoch seconds, window rows)``) under every setting."""
    return [
        {
            name: nab.FileScores(name, scorer(values, t, s), windows)
            for name, (values, t, windows) in series.items()
        }
        for s in settings
    ]
