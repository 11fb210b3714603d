"""``crisiswatch bench-pipeline`` and ``bench-backtest`` (see :mod:`streams.bench_pipeline`,
:mod:`streams.bench_backtest`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .cli_core import PROJECT


@click.command("bench-pipeline")
@click.option(
    "--mentions", "n", type=click.IntRange(min=10_000), default=1_000_000, show_default=True
)
@click.option("--brands", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--quick", is_flag=True, help="sanity run: 300,000 mentions, 1 repeat, shorter latency run"
)
@click.option("--repeats", type=click.IntRange(min=1, max=9), default=3, show_default=True)
@click.option(
    "--empty-agent-records",
    type=click.IntRange(min=10_000),
    default=200_000,
    show_default=True,
    help="records for the empty Faust agent (it is slow: about 10k/s)",
)
@click.option("--scale-brands", type=click.IntRange(min=1000), default=100_000, show_default=True)
@click.option("--latency-seconds", type=click.FloatRange(min=20), default=90.0, show_default=True)
@click.option(
    "--write/--no-write",
    default=True,
    show_default=True,
    help="record the results in docs/benchmarks.md",
)
@click.option("--json-out", type=click.Path(path_type=Path), default=None)
def bench_pipeline(
    n: int,
    brands: int,
    quick: bool,
    repeats: int,
    empty_agent_records: int,
    scale_brands: int,
    latency_seconds: float,
    write: bool,
    json_out: Path | None,
) -> None:
    """Throughput, CPU, latency and memory of the whole pipeline against the bare consumer."""
    from . import bench_pipeline as bp

    if quick:
        # Enough that two workers still have most of the topic to drain once
        # the second is ready (the first starts while the second starts).
        n, repeats, latency_seconds = 300_000, 1, 45.0
        empty_agent_records = min(empty_agent_records, 100_000)
    # The command to reproduce: without where this run wrote its own JSON.
    args = sys.argv[1:]
    if "--json-out" in args:
        i = args.index("--json-out")
        del args[i : i + 2]
    argv = " ".join(args) or "bench-pipeline"
    res = bp.run_benchmark(
        n,
        brands,
        empty_n=min(empty_agent_records, n),
        scale_brands=scale_brands,
        latency_seconds=latency_seconds,
        repeats=repeats,
    )
    click.echo(bp.report(res, f"crisiswatch {argv}"))
    if json_out:
        json_out.write_text(json.dumps(res, indent=2, default=str))
    if write:
        from . import bench_chart

        docs = PROJECT / "docs"
        bench_chart.write(res, docs / bp.CHART)
        bp.write_section(docs / "benchmarks.md", bp.report(res, f"crisiswatch {argv}", bp.CHART))
        click.echo(f"written to docs/benchmarks.md and docs/{bp.CHART}", err=True)


@click.command("bench-backtest")
@click.option("--repeats", type=click.IntRange(min=1, max=9), default=3, show_default=True)
@click.option(
    "--write/--no-write",
    default=True,
    show_default=True,
    help="record the results in docs/benchmarks.md",
)
def bench_backtest(repeats: int, write: bool) -> None:
    """Backtest throughput on one core (generated scenarios and corpus tweets)."""
    from . import bench_backtest as bb
    from .bench_pipeline import log

    res = bb.run_benchmark(repeats, log)
    args = " ".join(a for a in sys.argv[1:] if a != "--no-write")
    body = bb.report(res, f"crisiswatch {args or 'bench-backtest'}")
    click.echo(body)
    if write:
        bb.write(PROJECT / "docs" / "benchmarks.md", body)
        click.echo("written to docs/benchmarks.md", err=True)


COMMANDS = [bench_pipeline, bench_backtest]
