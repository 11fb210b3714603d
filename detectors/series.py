"""Offline tools over single series: ``detect-series``, NAB evaluation, tuning.

:func:`detect_series` scores one ``timestamp,value`` series (a count per
bucket) with the shipped :class:`~detectors.volume.VolumeDetector` defaults,
causally, row for row. :func:`evaluate_files` scores such outputs against a
NAB windows file (:mod:`detectors.nab`); :func:`tune_files` chooses global
settings and a threshold on labelled series and checks the choice
leave-one-file-out (:mod:`detectors.tuning`). The CLI commands are thin
wrappers.

``DEFAULT_THRESHOLD`` is the one alarm threshold shipped with the defaults,
chosen once on the five NAB Twitter series by the rule of
:mod:`detectors.tuning` (the best NAB standard score averaged over
thresholds within +-0.02: a plateau, not a peak; see ``docs/detectors.md``).
It lies below the best threshold there (0.605), since raising a threshold
loses windows in steps while lowering it adds false alarms gradually. A
score ``>= t`` means a surge whose peak had a combined, calibrated tail
probability below ``10 ** -(3 * t / (1 - t))`` (4.2 digits at 0.585)
against the brand's own recent tails; on the NAB series that is about one
alarm per 5.5 days.

>>> import numpy as np
>>> ts = [f"2015-03-01 {h:02d}:00:00" for h in range(24)]
>>> scores = detect_series(ts, np.full(24, 10.0), {"bucket_seconds": 3600.0})
>>> scores.shape, float(scores.max())
((24,), 0.0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import nab, tuning
from .base import FloatArray
from .volume import VolumeDetector

#: The shipped alarm threshold for ``VolumeDetector`` (sparse) scores (NAB standard 85.7 there).
DEFAULT_THRESHOLD = 0.585


def read_counts(path: str | Path) -> tuple[list[str], list[str], FloatArray]:
    """Read ``timestamp,value``: (timestamps, value texts as written, values as floats)."""
    import csv

    path = Path(path)
    ts, texts = [], []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if header[:2] != ["timestamp", "value"]:
            raise ValueError(f"{path}: expected header 'timestamp,value', got {','.join(header)!r}")
        for lineno, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            try:
                nab.parse_timestamp(row[0])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: bad timestamp {row[0]!r}") from None
            ts.append(row[0].strip())
            texts.append(row[1].strip() if len(row) > 1 else "")
    values = np.array([_num(v) for v in texts], dtype=np.float64)
    return ts, texts, values


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def epoch_seconds(timestamps: Sequence[str]) -> FloatArray:
    """Parse timestamps (naive ones are taken as UTC) to epoch seconds."""
    from datetime import UTC

    out = np.empty(len(timestamps))
    for i, t in enumerate(timestamps):
        dt = nab.parse_timestamp(t)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        out[i] = dt.timestamp()
    return out


def infer_bucket_seconds(t: FloatArray) -> float:
    """The bucket width: the median spacing of increasing timestamps.

    Raises ``ValueError`` if timestamps are not strictly increasing or fewer than two.
    """
    if len(t) < 2:
        raise ValueError("need at least two rows to infer the bucket width")
    d = np.diff(t)
    if not (d > 0).all():
        i = int(np.flatnonzero(d <= 0)[0])
        raise ValueError(
            f"timestamps must be strictly increasing (row {i + 2} is not after row {i + 1})"
        )
    return float(np.median(d))


def detect_series(
    timestamps: Sequence[str], values: FloatArray, params: Mapping[str, Any] | None = None
) -> FloatArray:
    """Causal sparse volume scores in [0, 1] for one series, one per row.

    ``params`` override :class:`VolumeDetector` defaults; ``bucket_seconds``
    defaults to the series' median spacing. NaN values are gaps (score 0).
    Missing rows (a larger time step) are not filled: the hour-of-day
    profile still uses each row's own timestamp.
    """
    t = epoch_seconds(timestamps)
    p = dict(params or {})
    if "bucket_seconds" not in p:
        p["bucket_seconds"] = infer_bucket_seconds(t) if len(t) >= 2 else 300.0
    elif len(t) >= 2:
        infer_bucket_seconds(t)  # still validate ordering
    det = VolumeDetector(**p)
    return det.score_series(np.asarray(values, dtype=np.float64), t)


@dataclass
class Evaluation:
    """NAB results at the given threshold and at the best threshold per profile."""

    at_threshold: nab.CorpusResult
    best: dict[str, tuple[float, float]]  # profile -> (threshold, normalised score)
    at_best: nab.CorpusResult  # all profiles at the standard profile's best threshold
    unmatched: list[str]


def evaluate_files(
    results: Sequence[Path],
    windows: Mapping[str, list[tuple[str, str]]],
    threshold: float = DEFAULT_THRESHOLD,
    progress: Callable[[Path], None] | None = None,
) -> Evaluation:
    """Score ``timestamp,value,anomaly_score`` files against NAB windows.

    Files are matched to windows by key or file name (a ``<detector>_``
    prefix, as NAB names results files, is ignored); files without windows
    are listed in ``unmatched`` and not scored.
    """
    files: list[nab.FileScores] = []
    unmatched: list[str] = []
    for path in results:
        ts, _, scores = nab.read_series(path)
        if scores is None:
            raise ValueError(f"{path}: no anomaly_score column (run detect-series first)")
        w = nab.match_windows(path.name, dict(windows))
        if w is None and "_" in path.name:
            w = nab.match_windows(path.name.split("_", 1)[1], dict(windows))
        if progress is not None:
            progress(path)
        if w is None:
            unmatched.append(str(path))
            continue
        files.append(nab.FileScores(path.name, scores, nab.window_rows(ts, w)))
    if not files:
        raise ValueError("no results file matched a key of the windows file")
    best = {p: nab.best_threshold(files, p) for p in nab.PROFILES}
    return Evaluation(
        at_threshold=nab.score_corpus(files, threshold),
        best=best,
        at_best=nab.score_corpus(files, best["standard"][0]),
        unmatched=unmatched,
    )


def format_evaluation(ev: Evaluation) -> str:
    """A plain-text report (markdown tables) of an :class:`Evaluation`."""
    lines = [f"| profile | at threshold {ev.at_threshold.threshold:.4g} | best | best threshold |"]
    lines.append("|---|---:|---:|---:|")
    for p in nab.PROFILES:
        bt, bs = ev.best[p]
        lines.append(f"| {p} | {ev.at_threshold.normalised[p]:.2f} | {bs:.2f} | {bt:.4g} |")
    for title, res in (
        (f"threshold {ev.at_threshold.threshold:.4g}", ev.at_threshold),
        (f"best threshold {ev.at_best.threshold:.4g}", ev.at_best),
    ):
        lines += [
            "",
            f"Per file, standard profile, {title}:",
            "",
            "| file | score | TP | FP | FN |",
        ]
        lines.append("|---|---:|---:|---:|---:|")
        for f in res.files:
            lines.append(f"| {f.name} | {f.score:.3f} | {f.tp} | {f.fp} | {f.fn} |")
    if ev.unmatched:
        lines += ["", "Not scored (no windows): " + ", ".join(ev.unmatched)]
    return "\n".join(lines)


@dataclass
class Tuning:
    """:func:`tune_files` result: the candidate settings and the leave-one-out report."""

    settings: list[dict[str, Any]]
    in_sample: list[tuning.Choice]  # per candidate, the rule's threshold on all files
    result: tuning.LeaveOneOut


def tune_files(
    paths: Sequence[Path],
    windows: Mapping[str, list[tuple[str, str]]],
    grid: Mapping[str, Sequence[Any]] | None = None,
    half_width: float = tuning.HALF_WIDTH,
) -> Tuning:
    """Score every ``timestamp,value`` file under every combination of ``grid`` values.

    Then choose the setting and threshold by :func:`detectors.tuning.choose`
    on all files, and leave-one-file-out (:func:`detectors.tuning.leave_one_out`).
    Without a grid there is one candidate, the shipped defaults: the
    leave-one-out then measures the choice of the threshold alone.
    """
    import itertools

    grid = dict(grid or {})
    keys = list(grid)
    settings = [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*grid.values())]
    series: dict[str, tuple[FloatArray, FloatArray, list[tuple[int, int]]]] = {}
    for path in paths:
        ts, _, values = read_counts(path)
        w = nab.match_windows(path.name, dict(windows))
        if w is None:
            continue
        series[path.name] = (values, epoch_seconds(ts), nab.window_rows(ts, w))
    if len(series) < 2:
        raise ValueError("tuning needs at least two files that have windows")

    def score(values: FloatArray, t: FloatArray, s: Mapping[str, Any]) -> FloatArray:
        p = dict(s)
        p.setdefault("bucket_seconds", infer_bucket_seconds(t))
        return VolumeDetector(**p).score_series(values, t)

    candidates = tuning.score_candidates(series, settings, score)
    names = list(series)
    in_sample = [tuning.choose([[c[n] for n in names]], half_width) for c in candidates]
    return Tuning(settings, in_sample, tuning.leave_one_out(candidates, half_width))


def format_tuning(t: Tuning) -> str:
    """A plain-text report (markdown tables) of a :class:`Tuning`."""
    show = lambda s: ", ".join(f"{k}={v}" for k, v in s.items()) or "shipped defaults"  # noqa: E731
    lines = ["| candidate | threshold | plateau score | score |", "|---|---:|---:|---:|"]
    for s, c in zip(t.settings, t.in_sample, strict=True):
        lines.append(f"| {show(s)} | {c.threshold:.3f} | {c.plateau_score:.2f} | {c.score:.2f} |")
    r = t.result
    lines += [
        "",
        f"Chosen on all files: {show(t.settings[r.in_sample.candidate])}, threshold "
        f"{r.in_sample.threshold:.3f}: standard {r.in_sample.score:.2f} "
        f"(plateau {r.in_sample.plateau_score:.2f}).",
        "",
        "Leave one file out (chosen on the others, scored on it):",
        "",
        "| held out | chosen | threshold | raw score | TP | FP | FN |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for f in r.folds:
        lines.append(
            f"| {f.held_out} | {show(t.settings[f.candidate])} | {f.threshold:.3f} | "
            f"{f.raw:.3f} | {f.tp} | {f.fp} | {f.fn} |"
        )
    lines += ["", f"Leave-one-file-out standard score: {r.score:.2f}"]
    return "\n".join(lines)
