"""``crisiswatch bench-backtest``: offline backtest throughput on one core.

Two inputs, written once to a temporary folder as the JSONL files a user
would backtest:

- ``scenarios``: ``crisiswatch generate`` with its defaults (8 brands x 14
  days, seed 1: about 750,000 mentions with every crisis kind and the
  distractors). Short template texts, few mentions per brand and bucket.
- ``corpus``: 1,000,000 mentions of 1,000 brands over one day with real
  tweets of the sentiment corpus as texts (110 characters on average): the
  scoring and per-mention work of a busy stream.

Each is backtested ``repeats`` times in this process, pinned to one CPU,
with the shipped settings (the same code as ``crisiswatch backtest``: read,
validate, score, bucket, detect, lifecycle, evidence). Reported: mentions/s
over wall time and over the process's CPU time, the median of the repeats,
with the time split into decode + validate, scoring and detection (the
backtest's own thread-CPU stage counters).
"""

from __future__ import annotations

import datetime as _dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from .backtest import Backtest, read_chunks
from .benchdoc import machine, write_section
from .settings import Settings

__all__ = ["report", "run_benchmark", "write"]


def _write_jsonl(path: Path, docs: list[dict[str, Any]]) -> None:
    with path.open("wb") as f:
        for d in docs:
            f.write(orjson.dumps(d) + b"\n")


def make_inputs(folder: Path, log: Callable[[str], None]) -> dict[str, Path]:
    from .bench_pipeline import make_mentions
    from .generate import generate

    out = {}
    log("generating the default scenarios (8 brands x 14 days, seed 1)")
    mentions, _ = generate(8, 14, seed=1)
    out["scenarios"] = folder / "scenarios.jsonl"
    _write_jsonl(out["scenarios"], mentions)
    del mentions
    log("generating 1,000,000 corpus mentions of 1,000 brands over one day")
    start = 1_767_225_600.0  # 2026-01-01, as the scenarios
    records = make_mentions(1_000_000, 1000, start=start, span=86_400.0)
    out["corpus"] = folder / "corpus.jsonl"
    with out["corpus"].open("wb") as f:
        for _, v in records:
            f.write(v + b"\n")
    return out


def run_benchmark(repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})  # one core: numba threads and all
    settings = Settings()
    res: dict[str, Any] = {"machine": machine(), "cpu": cpus[-1], "runs": {}, "loads": []}
    with tempfile.TemporaryDirectory(prefix="cw-bench-backtest-") as tmp:
        inputs = make_inputs(Path(tmp), log)
        # Warm the kernels (numba loads its cache on the first call).
        Backtest(settings).run_chunks(list(read_chunks(inputs["scenarios"], 5000))[:2])
        for name, path in inputs.items():
            rows: list[dict[str, float]] = []
            events = set()
            stages: list[dict[str, float]] = []
            for r in range(repeats):
                res["loads"].append(os.getloadavg()[0])
                w0, c0 = time.perf_counter(), time.process_time()
                bt = Backtest(settings)
                out = bt.run_chunks(read_chunks(path))
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
                events.add(len(out.events))
                rows.append({"wall": wall, "cpu": cpu, "mentions": float(out.mentions)})
                stages.append(bt.stage_seconds)
                log(
                    f"{name} {r + 1}/{repeats}: {out.mentions:,} mentions in {wall:.1f} s "
                    f"({out.mentions / wall:,.0f}/s wall, {out.mentions / cpu:,.0f}/s CPU), "
                    f"{len(out.events)} events"
                )
            n = rows[0]["mentions"]
            res["runs"][name] = {
                "mentions": int(n),
                "events": sorted(events),
                "wall_rate": n / statistics.median(r["wall"] for r in rows),
                "cpu_rate": n / statistics.median(r["cpu"] for r in rows),
                "all": [round(n / r["wall"]) for r in rows],
                "stages_us": {
                    k: statistics.median(st[k] for st in stages) / n * 1e6 for k in stages[0]
                },
            }
    os.sched_setaffinity(0, set(cpus))
    res["date"] = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return res


def report(res: dict[str, Any], command: str) -> str:
    loads = ", ".join(f"{x:.1f}" for x in res["loads"])
    lines = [
        "## Backtest",
        "",
        f"Measured {res['date']} on {res['machine']}; the process pinned to CPU {res['cpu']}. "
        f"1-minute load average at each repeat: {loads} (the other core runs whatever else the "
        "machine does, and a loaded machine slows the wall-clock figures: the CPU-time rate is "
        "the per-core cost). Medians of the repeats. Target: >= 200,000 mentions/s on one core.",
        f"Reproduce: `{command}`.",
        "",
        "| input | mentions | events | mentions/s (wall, 1 core) | mentions/s (CPU time) | "
        "repeats (wall) | us per mention: decode + validate / score / detect |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    desc = {
        "scenarios": "`generate` defaults (8 brands x 14 days, seed 1; template texts)",
        "corpus": "1,000 brands, one day, corpus tweets",
    }
    for name, r in res["runs"].items():
        st = r["stages_us"]
        lines.append(
            f"| {desc.get(name, name)} | {r['mentions']:,} | {'/'.join(map(str, r['events']))} | "
            f"{r['wall_rate']:,.0f} | {r['cpu_rate']:,.0f} | "
            f"{', '.join(f'{x:,}' for x in r['all'])} | "
            f"{st['decode']:.2f} / {st['score']:.2f} / {st['detect']:.2f} |"
        )
    return "\n".join(lines)


def write(path: Path, body: str) -> None:
    write_section(path, "backtest", body)
