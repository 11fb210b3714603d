"""NAB-style scoring of anomaly-score series against labelled windows.

Written from the rules of the Numenta Anomaly Benchmark (Lavin & Ahmad,
"Evaluating Real-time Anomaly Detection Algorithms - the Numenta Anomaly
Benchmark", ICMLA 2015; conventions of ``nab/sweeper.py`` in numenta/NAB):

- A *detection* is a row whose anomaly score is ``>= threshold``.
- The first ``min(floor(0.15 * rows), 750)`` rows are probation: never scored.
- Inside a labelled window only the earliest detection counts; it earns
  ``A_TP * sigma(p) / sigma(-1)`` where ``p = -(right - i + 1) / width`` is the
  row's position relative to the window's right edge (so the window's first row
  earns exactly ``A_TP``) and ``sigma(y) = 2 / (1 + exp(5 y)) - 1``.
- A window with no detection costs ``A_FN``.
- Every detection outside the windows is a false positive (NAB does not
  debounce). It costs ``A_FP * sigma(d)`` with ``d = |i - right_prev| /
  (width_prev - 1)`` its distance past the previous window (``sigma`` is
  clipped to -1 for ``d >= 3``), or the full ``A_FP`` before the first window.
- A corpus score is the sum of file scores; it is normalised as
  ``100 * (S - S_null) / (S_perfect - S_null)`` with ``S_null = -A_FN * W``
  (detect nothing) and ``S_perfect = A_TP * W`` for ``W`` windows.
- The "best threshold" is the single threshold over the whole corpus that
  maximises the corpus score (NAB tunes one threshold per detector and
  profile); it is found exactly by sweeping every distinct score.

Pure numpy and the standard library, so tests and the CLI share it.

>>> import numpy as np
>>> scores = np.zeros(2000)
>>> scores[1200] = 1.0                       # early in the window below
>>> f = FileScores("demo", scores, [(1190, 1290)])
>>> r = score_corpus([f], threshold=0.5)
>>> round(r.normalised["standard"], 1), r.files[0].tp, r.files[0].fp, r.files[0].fn
(99.6, 1, 0, 0)
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: NAB application profiles: (A_TP, A_FP, A_FN).
PROFILES: dict[str, tuple[float, float, float]] = {
    "standard": (1.0, 0.11, 1.0),
    "reward_low_FP_rate": (1.0, 0.22, 1.0),
    "reward_low_FN_rate": (1.0, 0.11, 2.0),
}

PROBATION_PERCENT = 0.15
PROBATION_MAX_ROWS = 750  # NAB: probationPercent * 5000


def scaled_sigmoid(y: float) -> float:
    """NAB's ``sigma(y) = 2 / (1 + e^(5y)) - 1``, clipped to -1 for ``y >= 3``.

    >>> round(scaled_sigmoid(-1.0), 5), scaled_sigmoid(0.0), scaled_sigmoid(3.0)
    (0.98661, 0.0, -1.0)
    """
    if y >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probation_rows(n_rows: int) -> int:
    """Rows at the start of a file that are never scored."""
    return min(math.floor(PROBATION_PERCENT * n_rows), PROBATION_MAX_ROWS)


@dataclass(frozen=True)
class FileScores:
    """One file's anomaly scores and its labelled windows as inclusive row ranges."""

    name: str
    scores: FloatArray
    windows: Sequence[tuple[int, int]]


@dataclass
class FileResult:
    """Per-file outcome at one threshold and one profile.

    ``tp``: windows with a detection; ``fn``: windows without; ``fp``:
    detection rows outside every window (after probation).
    """

    name: str
    score: float
    tp: int
    fp: int
    fn: int


@dataclass
class CorpusResult:
    threshold: float
    #: profile -> raw corpus score
    raw: dict[str, float]
    #: profile -> normalised score (0 = null detector, 100 = perfect)
    normalised: dict[str, float]
    #: per-file results under the standard profile
    files: list[FileResult] = field(default_factory=list)


@dataclass(frozen=True)
class _Prepared:
    """Per-row NAB weights for one file (profile-independent parts)."""

    scores: FloatArray  # scorable rows only
    window: npt.NDArray[np.int64]  # window id per scorable row, -1 outside
    tp_unit: FloatArray  # sigma(p)/sigma(-1) for rows in windows
    fp_unit: FloatArray  # sigma(d) for rows outside windows (negative)
    n_windows: int


def _prepare(f: FileScores) -> _Prepared:
    scores = np.asarray(f.scores, dtype=np.float64)
    n = len(scores)
    if np.isnan(scores).any():
        raise ValueError(f"{f.name}: anomaly scores contain NaN")
    wins = sorted((int(a), int(b)) for a, b in f.windows)
    for (a, b), (c, e) in itertools.pairwise(wins):
        if c <= b:
            raise ValueError(f"{f.name}: windows overlap: {(a, b)} and {(c, e)}")
    for a, b in wins:
        if not 0 <= a <= b < n:
            raise ValueError(f"{f.name}: window rows {(a, b)} outside 0..{n - 1}")
    window = np.full(n, -1, dtype=np.int64)
    tp_unit = np.zeros(n)
    fp_unit = np.zeros(n)
    max_tp = scaled_sigmoid(-1.0)
    prev_right, prev_width = -1, 0
    wi = 0
    for i in range(n):
        if wi < len(wins) and wins[wi][0] <= i <= wins[wi][1]:
            a, b = wins[wi]
            window[i] = wi
            tp_unit[i] = scaled_sigmoid(-(b - i + 1) / float(b - a + 1)) / max_tp
            if i == b:
                prev_right, prev_width = b, b - a + 1
                wi += 1
        else:
            if prev_right < 0:
                fp_unit[i] = -1.0
            else:
                # NAB divides by (width - 1); a one-row window would divide by
                # zero there, we treat its FPs as far away instead.
                d = abs(i - prev_right) / float(prev_width - 1) if prev_width > 1 else 3.0
                fp_unit[i] = scaled_sigmoid(d)
    start = probation_rows(n)
    window = window[start:]
    # Windows lying wholly inside probation are not scored (as in NAB).
    kept = np.unique(window[window >= 0])
    remap = np.full(len(wins) + 1, -1, dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    window = np.where(window >= 0, remap[window], -1)
    return _Prepared(scores[start:], window, tp_unit[start:], fp_unit[start:], len(kept))


def _file_result(p: _Prepared, name: str, threshold: float, profile: str) -> FileResult:
    a_tp, a_fp, a_fn = PROFILES[profile]
    hit = p.scores >= threshold
    outside = p.window < 0
    fp_rows = hit & outside
    score = a_fp * float(p.fp_unit[fp_rows].sum())
    tp = 0
    for w in range(p.n_windows):
        rows = np.flatnonzero(hit & (p.window == w))
        if len(rows):
            tp += 1
            score += a_tp * float(p.tp_unit[rows[0]])  # earliest detection only
        else:
            score -= a_fn
    return FileResult(name, score, tp, int(fp_rows.sum()), p.n_windows - tp)


def _normalise(raw: float, n_windows: int, profile: str) -> float:
    a_tp, _, a_fn = PROFILES[profile]
    null, perfect = -a_fn * n_windows, a_tp * n_windows
    if perfect == null:
        return 0.0
    return 100.0 * (raw - null) / (perfect - null)


def score_corpus(files: Sequence[FileScores], threshold: float) -> CorpusResult:
    """Score every profile at one threshold; per-file rows use the standard profile."""
    prepared = [_prepare(f) for f in files]
    n_windows = sum(p.n_windows for p in prepared)
    raw: dict[str, float] = {}
    norm: dict[str, float] = {}
    per_file: list[FileResult] = []
    for profile in PROFILES:
        results = [
            _file_result(p, f.name, threshold, profile)
            for p, f in zip(prepared, files, strict=True)
        ]
        raw[profile] = sum(r.score for r in results)
        norm[profile] = _normalise(raw[profile], n_windows, profile)
        if profile == "standard":
            per_file = results
    return CorpusResult(threshold, raw, norm, per_file)


def sweep(files: Sequence[FileScores], profile: str) -> tuple[FloatArray, FloatArray]:
    """Corpus score at every distinct threshold: returns (thresholds desc, raw scores).

    Exact and vectorised: a file's score is a step function of the threshold
    that changes only at its own score values, so every distinct score in the
    corpus (plus +inf, "detect nothing") is a candidate.
    """
    a_tp, a_fp, a_fn = PROFILES[profile]
    prepared = [_prepare(f) for f in files]
    cands = np.unique(np.concatenate([p.scores for p in prepared] + [np.array([np.inf])]))[::-1]
    total = np.zeros(len(cands))
    for p in prepared:
        out = p.window < 0
        # FP part: sum of weights of outside rows with score >= t.
        s = p.scores[out]
        order = np.argsort(-s, kind="stable")
        s_sorted = s[order]
        cum = np.concatenate([[0.0], np.cumsum(p.fp_unit[out][order])])
        k = np.searchsorted(-s_sorted, -cands, side="right")  # count of s >= t
        total += a_fp * cum[k]
        for w in range(p.n_windows):
            m = p.window == w
            s = p.scores[m]
            order = np.argsort(-s, kind="stable")
            best = np.maximum.accumulate(p.tp_unit[m][order])
            k = np.searchsorted(-s[order], -cands, side="right")
            contrib = np.where(k > 0, a_tp * best[np.maximum(k - 1, 0)], -a_fn)
            total += contrib
    return cands, total


def scored_windows(files: Sequence[FileScores]) -> int:
    """Windows that count (those wholly inside probation do not)."""
    return sum(_prepare(f).n_windows for f in files)


def best_threshold(files: Sequence[FileScores], profile: str = "standard") -> tuple[float, float]:
    """The corpus-wide threshold maximising the raw score, and that normalised score.

    Ties go to the highest threshold (fewest detections).
    """
    cands, total = sweep(files, profile)
    i = int(np.argmax(total))
    n_windows = sum(_prepare(f).n_windows for f in files)
    return float(cands[i]), _normalise(float(total[i]), n_windows, profile)


# --------------------------------------------------------------------------- files


def parse_timestamp(text: str) -> datetime:
    """Parse NAB's ``YYYY-mm-dd HH:MM:SS[.ffffff]`` (or ISO 8601) timestamps."""
    return datetime.fromisoformat(text.strip().replace("T", " ").rstrip("Z"))


def read_series(path: str | Path) -> tuple[list[str], FloatArray, FloatArray | None]:
    """Read ``timestamp,value[,anomaly_score]``: returns (timestamps, values, scores or None).

    Empty or non-numeric values become NaN (a gap); a missing or malformed
    header or timestamp raises ``ValueError`` naming the line.
    """
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if header[:2] != ["timestamp", "value"]:
            raise ValueError(f"{path}: expected header 'timestamp,value', got {','.join(header)!r}")
        has_score = "anomaly_score" in header
        si = header.index("anomaly_score") if has_score else -1
        ts: list[str] = []
        vals: list[float] = []
        scs: list[float] = []
        for lineno, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            try:
                parse_timestamp(row[0])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: bad timestamp {row[0]!r}") from None
            ts.append(row[0].strip())
            vals.append(_to_float(row[1] if len(row) > 1 else ""))
            if has_score:
                sc = _to_float(row[si] if len(row) > si else "")
                if not 0.0 <= sc <= 1.0:
                    raise ValueError(f"{path}:{lineno}: anomaly_score {row[si]!r} not in [0, 1]")
                scs.append(sc)
    return ts, np.array(vals, dtype=np.float64), (np.array(scs) if has_score else None)


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def load_windows(path: str | Path) -> dict[str, list[tuple[str, str]]]:
    """Read a NAB windows file: ``{"dir/file.csv": [[start, end], ...]}``."""
    with Path(path).open() as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of file -> [[start, end], ...]")
    return {str(k): [(str(a), str(b)) for a, b in v] for k, v in data.items()}


def window_rows(
    timestamps: Iterable[str], windows: Sequence[tuple[str, str]]
) -> list[tuple[int, int]]:
    """Map timestamp windows to inclusive row ranges (rows whose time is inside)."""
    t = np.array([parse_timestamp(x).timestamp() for x in timestamps])
    out: list[tuple[int, int]] = []
    for a, b in windows:
        ta, tb = parse_timestamp(a).timestamp(), parse_timestamp(b).timestamp()
        rows = np.flatnonzero((t >= ta) & (t <= tb))
        if len(rows):
            out.append((int(rows[0]), int(rows[-1])))
    return out


def match_windows(
    name: str, windows: dict[str, list[tuple[str, str]]]
) -> list[tuple[str, str]] | None:
    """Windows for a results file: exact key, else the key with the same file name."""
    if name in windows:
        return windows[name]
    base = Path(name).name
    hits = [k for k in windows if Path(k).name == base]
    return windows[hits[0]] if len(hits) == 1 else None
