"""The picture of a ``crisiswatch bench-pipeline`` run (``docs/benchmarks-pipeline.png``).

Two panels from the same result dict the table is written from:

- throughput of every phase, as a share of the bare consumer, with the two
  throughput targets of the pipeline drawn in (50% of the bare consumer and
  50,000 mentions/s), so the gap and Kafka's part of it, the relay, show at
  a glance;
- the machine's CPU per million mentions, the measured process and the
  broker stacked (they share the cores), for the phases that report both,
  with the most a mention may cost for 50% of the bare consumer on the
  run's cores drawn in: a bar past that line cannot reach the target by
  parallelism, only by costing less.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from .bench_pipeline import budget_s_per_m

#: Phases in the order of the table: key in the result, short label.
PHASES = (
    ("bare", "(a) bare consumer"),
    ("bare_gc", "(a') bare, GC tuned"),
    ("relay", "(r) Kafka-only relay"),
    ("empty", "empty Faust agent"),
    ("one", "(b) pipeline, 1 worker"),
    ("lean", "(b') 1 worker, no mentions.scored"),
    ("two", "(c) pipeline, 2 workers"),
    ("two_lean", "(c') 2 workers, no mentions.scored"),
)
#: The pipeline's own rows, drawn in one colour; the references in another.
PIPELINE = {"one", "lean", "two", "two_lean"}
PIPE, REF, BROKER = "#1f77b4", "#9a9a9a", "#f5a05a"
TARGET_SHARE = 0.5
TARGET_RATE = 50_000.0


def figure(res: dict[str, Any]) -> Figure:
    """The two-panel figure of one run (``res`` as ``run_benchmark`` returns it)."""
    bare = float(res["bare"]["rate"])
    if bare <= 0:
        raise ValueError("the bare consumer's rate must be positive")
    rows = [(key, label, res[key]) for key, label in PHASES if key in res]
    labels = [label for _, label, _ in rows]
    rates = [float(r["rate"]) for _, _, r in rows]
    colours = [PIPE if key in PIPELINE else REF for key, _, _ in rows]

    fig, (left, right) = plt.subplots(
        1, 2, figsize=(12, 0.55 * len(rows) + 3.0), constrained_layout=True, sharey=True
    )
    y = list(range(len(rows)))
    left.barh(y, rates, color=colours)
    left.set_yticks(y, labels)
    left.invert_yaxis()
    top = max(rates) * 1.28
    left.set_xlim(0, top)
    for k, rate in enumerate(rates):
        left.annotate(
            f"{rate:,.0f}/s  {rate / bare:.0%}",
            (rate, k),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
        )
    left.axvline(
        bare * TARGET_SHARE,
        color="#d62728",
        ls="--",
        lw=1,
        label=f"target: {TARGET_SHARE:.0%} of (a)",
    )
    left.axvline(
        TARGET_RATE, color="#2ca02c", ls=":", lw=1.2, label=f"target: {TARGET_RATE:,.0f}/s"
    )
    left.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k"))
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=2, fontsize=8)
    left.set_xlabel("mentions/s (median of the repeats)")
    left.set_title("Throughput against the bare consumer, same broker, same run", fontsize=10)

    # CPU: the empty agent's is an order of magnitude off the scale, and says
    # nothing about the broker; it stays in the table.
    proc, brk = [], []
    for key, _, r in rows:
        both = key != "empty" and "broker_cpu_s_per_m" in r
        proc.append(float(r["cpu_s_per_m"]) if both else 0.0)
        brk.append(float(r["broker_cpu_s_per_m"]) if both else 0.0)
    right.barh(y, proc, color=colours)
    right.barh(y, brk, left=proc, color=BROKER)
    widest = max(p + b for p, b in zip(proc, brk, strict=True))
    handles: list[Artist] = [
        Patch(color=PIPE, label="pipeline worker(s)"),
        Patch(color=REF, label="reference consumer"),
        Patch(color=BROKER, label="broker (JVM)"),
    ]
    if res.get("cores"):
        # The most a mention may cost the whole machine for 50% of (a) on these cores:
        # a bar past this line cannot reach the share target however it is parallelised.
        budget = budget_s_per_m(res, TARGET_SHARE)
        handles.append(
            right.axvline(
                budget,
                color="#d62728",
                ls="--",
                lw=1,
                label=f"most a mention may cost for {TARGET_SHARE:.0%} of (a) "
                f"on {res['cores']} cores ({budget:.1f})",
            )
        )
        widest = max(widest, budget)
    right.set_xlim(0, widest * 1.25 or 1)
    for k, (p, b) in enumerate(zip(proc, brk, strict=True)):
        if p + b:
            right.annotate(
                f"{p:.1f} + {b:.1f}",
                (p + b, k),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
            )
        else:
            right.annotate(
                "see the table",
                (0, k),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color="#666666",
            )
    shared = f"{res['cores']} shared cores" if res.get("cores") else "shared cores"
    right.set_xlabel(f"CPU s per million mentions (process + broker, {shared})")
    right.set_title("What a mention costs the machine", fontsize=10)
    right.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=2, fontsize=8
    )
    title = f"crisiswatch bench-pipeline, {res.get('date', '')}: {res['n']:,} mentions"
    fig.suptitle(f"{title}\n{res.get('machine', '')}", fontsize=10)
    return fig


def write(res: dict[str, Any], path: Path) -> Path:
    """Render :func:`figure` to ``path`` (PNG) and return it."""
    fig = figure(res)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90)
    finally:
        plt.close(fig)
    return path
