"""Offline subcommands: backtest (and, later, generate)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from .settings import load_settings


@click.command()
@click.argument("mentions", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="crisis events JSONL to write",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    default=None,
    help="folder for PNG plots and index.html",
)
@click.option(
    "--deadletter",
    type=click.Path(path_type=Path),
    default=None,
    help="write refused records here (JSONL with reasons)",
)
@click.option("--quiet", is_flag=True, help="no progress bar")
def backtest(
    mentions: Path, out: Path, report: Path | None, deadletter: Path | None, quiet: bool
) -> None:
    """Run the stream's stages over MENTIONS.jsonl offline and write the crisis events."""
    from tqdm import tqdm

    from .backtest import Backtest, count_lines, read_chunks

    settings = load_settings()
    bt = Backtest(settings, record_series=report is not None)
    chunks = read_chunks(mentions)
    total = count_lines(mentions)
    with tqdm(total=total, unit="rec", desc="backtest", disable=quiet, file=sys.stderr) as bar:
        res = bt.run_chunks(chunks, progress=bar.update)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as f:
        for ev in res.events:
            f.write(orjson.dumps(ev) + b"\n")
    if deadletter is not None:
        with deadletter.open("wb") as f:
            for d in res.dead:
                f.write(
                    orjson.dumps(
                        {
                            "offset": d.record.offset,
                            "reason": d.reason,
                            "value": (d.record.value or b"").decode("utf-8", "replace"),
                        }
                    )
                    + b"\n"
                )
    click.echo(
        f"{res.mentions} records: {sum(res.totals.values())} mentions counted, {len(res.dead)} refused, "
        f"{res.late} late, {res.duplicates} duplicates; {len(res.events)} events → {out} "
        f"in {res.seconds:.1f}s ({res.mentions / max(res.seconds, 1e-9):,.0f} records/s)"
    )
    if report is not None:
        from .report import write_report

        index = write_report(res, settings, report)
        click.echo(f"report: {index}")


@click.command()
@click.option("--brands", type=click.IntRange(1, 10_000), default=8, show_default=True)
@click.option("--days", type=click.IntRange(4, 366), default=14, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="mentions JSONL to write"
)
@click.option(
    "--truth",
    type=click.Path(path_type=Path),
    required=True,
    help="truth JSON (injected scenarios) to write",
)
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    help="scenario kinds to inject (repeatable; default: each crisis kind twice, each distractor once)",
)
def generate(
    brands: int, days: int, seed: int, out: Path, truth: Path, scenarios: tuple[str, ...]
) -> None:
    """Write a synthetic mention stream with injected crises and distractors, plus its truth file."""
    from .errors import ConfigError
    from .generate import generate as gen

    try:
        mentions, plan = gen(brands, days, seed=seed, scenarios=list(scenarios) or None)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as f:
        for m in mentions:
            f.write(orjson.dumps(m) + b"\n")
    truth.write_bytes(orjson.dumps(plan, option=orjson.OPT_INDENT_2) + b"\n")
    # Brands and days for per-brand-week rates in `crisiswatch evaluate --truth`.
    truth.with_suffix(".meta.json").write_bytes(
        orjson.dumps({"brands": brands, "days": days, "seed": seed})
    )
    click.echo(
        f"{len(mentions)} mentions for {brands} brands over {days} days → {out}; {len(plan)} scenarios → {truth}"
    )


COMMANDS: list[click.Command] = [backtest, generate]
