"""``crisiswatch detect-series``, ``evaluate``, ``tune-series`` and ``bench-detectors``.

Thin wrappers: parsing, files and progress bars here; the computation is in
:mod:`detectors.series`, :mod:`detectors.nab`, :mod:`detectors.tuning` and
:mod:`detectors.bench`.
"""

from __future__ import annotations

import ast
import csv
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from .errors import ConfigError, InputFileError


def _parse_params(items: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = raw.strip()
    return out


def _inputs(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.rglob("*.csv"))
        if not files:
            raise InputFileError(f"{path}: no .csv files found")
        return files
    if not path.exists():
        raise InputFileError(f"{path}: no such file or directory")
    return [path]


@click.command("detect-series")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a VolumeDetector default (repeatable), e.g. -p scale_memory_hours=72.",
)
def detect_series_cmd(src: Path, dst: Path, params: tuple[str, ...]) -> None:
    """Score SRC (timestamp,value per bucket) into DST (timestamp,value,anomaly_score).

    Causal, row for row, with the shipped defaults unless overridden. SRC may
    be a directory: every .csv below it is scored into the same relative path
    under DST (a directory).
    """
    from detectors.series import detect_series, read_counts

    overrides = _parse_params(params)
    files = _inputs(src)
    pairs = [(f, dst / f.relative_to(src)) for f in files] if src.is_dir() else [(files[0], dst)]
    for inp, out in tqdm(pairs, desc="detect-series", unit="file", disable=len(pairs) < 2):
        try:
            ts, texts, values = read_counts(inp)
            scores = detect_series(ts, values, overrides)
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(f"{inp}: {exc}") from exc
        except TypeError as exc:
            raise ConfigError(f"bad --param: {exc}") from exc
        except ValueError as exc:
            msg = str(exc)
            raise (
                InputFileError(msg) if str(inp) in msg or "timestamp" in msg else ConfigError(msg)
            ) from exc
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["timestamp", "value", "anomaly_score"])
            for t, v, s in zip(ts, texts, scores.tolist(), strict=True):
                w.writerow([t, v, f"{s:.6f}"])
    if len(pairs) > 1:
        click.echo(f"scored {len(pairs)} files into {dst}")


@click.command("evaluate")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--windows",
    "-w",
    "windows_path",
    default=None,
    type=click.Path(path_type=Path),
    help='NAB windows file: {"dir/file.csv": [[start, end], ...]}.',
)
@click.option(
    "--truth",
    "truth_path",
    default=None,
    type=click.Path(path_type=Path),
    help="truth file from `crisiswatch generate`: score crisis events JSONL (RESULTS) against it.",
)
@click.option(
    "--threshold",
    "-t",
    type=float,
    default=None,
    help="Detection threshold (score >= threshold); default: the shipped one.",
)
def evaluate_cmd(
    results: tuple[Path, ...],
    windows_path: Path | None,
    truth_path: Path | None,
    threshold: float | None,
) -> None:
    """NAB-score detect-series outputs, or score crisis events against a truth file.

    With --windows: RESULTS are detect-series outputs (files or directories);
    prints normalised standard / low-FP / low-FN scores at the threshold and at
    the best corpus-wide threshold, and per-file TP/FP/FN.

    With --truth: RESULTS is a crisis events JSONL (from `crisiswatch backtest`
    or `crisiswatch tail --json`); prints recall per kind, detection delay,
    false alarms per brand-week and alarms on distractors.
    """
    if (windows_path is None) == (truth_path is None):
        raise ConfigError("give exactly one of --windows (NAB series) or --truth (crisis events)")
    if truth_path is not None:
        from streams.truth import evaluate_files as evaluate_events
        from streams.truth import format_report

        if len(results) != 1:
            raise ConfigError("with --truth, give one events JSONL file")
        click.echo(format_report(evaluate_events(results[0], truth_path)))
        return
    assert windows_path is not None
    from detectors import nab
    from detectors.series import DEFAULT_THRESHOLD, evaluate_files, format_evaluation

    thr = DEFAULT_THRESHOLD if threshold is None else threshold
    if not 0.0 <= thr <= 1.0:
        raise ConfigError(f"--threshold must be in [0, 1], got {thr}")
    try:
        windows = nab.load_windows(windows_path)
    except (OSError, ValueError, TypeError) as exc:
        raise InputFileError(f"{windows_path}: cannot read windows: {exc}") from exc
    files = [f for r in results for f in _inputs(r)]
    with tqdm(total=len(files), desc="evaluate", unit="file", disable=len(files) < 2) as bar:
        try:
            ev = evaluate_files(files, windows, thr, progress=lambda _: bar.update())
        except (OSError, ValueError) as exc:
            raise InputFileError(str(exc)) from exc
    click.echo(format_evaluation(ev))


@click.command("tune-series")
@click.argument("src", type=click.Path(path_type=Path))
@click.option(
    "--windows",
    "-w",
    "windows_path",
    required=True,
    type=click.Path(path_type=Path),
    help='NAB windows file: {"dir/file.csv": [[start, end], ...]}.',
)
@click.option(
    "--grid",
    "-g",
    "grid",
    multiple=True,
    metavar="NAME=V1,V2,...",
    help="Candidate values of a VolumeDetector parameter (repeatable; all combinations "
    "are tried, the first values first, so list the shipped value first).",
)
@click.option(
    "--half-width",
    type=float,
    default=0.02,
    show_default=True,
    help="Thresholds within +-this are averaged when choosing (a plateau, not a peak).",
)
def tune_series_cmd(
    src: Path, windows_path: Path, grid: tuple[str, ...], half_width: float
) -> None:
    """Choose settings and a threshold on labelled series in SRC, and check it leave-one-file-out.

    SRC holds timestamp,value CSVs (as read by detect-series); each is scored
    under every combination of --grid values (the shipped defaults without
    --grid). The rule picks the setting and threshold with the best NAB
    standard score averaged over +-half-width of the threshold, first on
    all files, then on all but one, scoring the one left out.
    """
    from detectors import nab
    from detectors.series import format_tuning, tune_files

    if not 0.0 <= half_width <= 0.2:
        raise ConfigError(f"--half-width must be in [0, 0.2], got {half_width}")
    values: dict[str, list[Any]] = {}
    for item in grid:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise ConfigError(f"--grid expects NAME=V1,V2,..., got {item!r}")
        values[key.strip()] = [_parse_params((f"v={x}",))["v"] for x in raw.split(",")]
    try:
        windows = nab.load_windows(windows_path)
    except (OSError, ValueError, TypeError) as exc:
        raise InputFileError(f"{windows_path}: cannot read windows: {exc}") from exc
    try:
        result = tune_files(_inputs(src), windows, values, half_width)
    except TypeError as exc:
        raise ConfigError(f"bad --grid: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    except OSError as exc:
        raise InputFileError(str(exc)) from exc
    click.echo(format_tuning(result))


@click.command("bench-detectors")
@click.option(
    "--points", type=int, default=10_000_000, show_default=True, help="Points per kernel run."
)
@click.option(
    "--brands", type=int, default=100_000, show_default=True, help="Brands per bucket update."
)
@click.option(
    "--repeats", type=int, default=5, show_default=True, help="Timed runs (median reported)."
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("docs/benchmarks.md"),
    show_default=True,
    help="Markdown file whose detectors section is replaced.",
)
def bench_detectors_cmd(points: int, brands: int, repeats: int, output: Path) -> None:
    """Benchmark detector kernels and bucket updates; record them in OUTPUT."""
    from detectors import bench

    if points < 1000 or brands < 1 or repeats < 1:
        raise ConfigError("--points must be >= 1000, --brands and --repeats >= 1")
    with tqdm(total=1, desc="bench-detectors", unit="suite") as bar:
        r = bench.run_benchmarks(points=points, brands=brands, repeats=repeats)
        bar.update()
    body = bench.format_markdown(r)
    try:
        bench.write_section(output, body)
    except OSError as exc:
        raise InputFileError(f"{output}: {exc}") from exc
    click.echo(body)
    click.echo(f"written to {output}")


COMMANDS: list[click.Command] = [
    detect_series_cmd,
    evaluate_cmd,
    tune_series_cmd,
    bench_detectors_cmd,
]
