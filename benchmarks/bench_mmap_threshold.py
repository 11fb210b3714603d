"""One worker's throughput under glibc malloc thresholds, alternated in one run.

    python benchmarks/bench_mmap_threshold.py                  # adaptive, 1M, 1M:32M, 4M:32M; 3 rounds
    python benchmarks/bench_mmap_threshold.py 0 128K -r 4      # adaptive against 128 KiB, trim left to glibc

A variant is ``MMAP[:TRIM]``: the mmap threshold
(``CRISISWATCH_MALLOC_MMAP_THRESHOLD``; 0 is glibc's adaptive default) and the
trim threshold (``CRISISWATCH_MALLOC_TRIM_THRESHOLD``; left out or 0, glibc's
128 KiB), in bytes or with a K or M suffix. A private broker, one preloaded
topic (``--mentions``, 1,000 brands), and one worker per variant and round,
the order rotated each round so that a slow minute of this shared machine
does not land on one variant. Prints each run (mentions/s, CPU and minor page
faults per mention, peak RSS) and the medians; docs/reliability.md (problem
15) has the figures that chose the worker's defaults. RSS growth over time
needs the soak, not this.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from streams import bench_pipeline as bp

DEFAULT = ["0", "1M", "1M:32M", "4M:32M"]


def size(text: str) -> int:
    """``"4M"`` -> 4194304; ``"128K"``, ``"65536"``."""
    units = {"K": 1 << 10, "M": 1 << 20}
    t = text.strip().upper()
    try:
        n = int(t[:-1]) * units[t[-1]] if t and t[-1] in units else int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size (bytes, or with K or M)"
        ) from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return n


def variant(text: str) -> tuple[int, int]:
    mmap, _, trim = text.partition(":")
    return size(mmap), size(trim) if trim else 0


def label(v: tuple[int, int]) -> str:
    def one(n: int) -> str:
        return f"{n >> 20}M" if n % (1 << 20) == 0 else f"{n >> 10}K"

    mmap, trim = v
    head = "adaptive" if mmap == 0 else one(mmap)
    return head + (f":{one(trim)}" if trim and mmap else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="*", type=variant, default=[variant(v) for v in DEFAULT])
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("-n", "--mentions", type=int, default=1_000_000)
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    if not a.variants or a.rounds < 1 or a.mentions < 1000:
        ap.error("need at least one variant, one round and 1,000 mentions")
    runs: dict[tuple[int, int], list[dict[str, Any]]] = {v: [] for v in a.variants}
    with tempfile.TemporaryDirectory(prefix="cw-mmap-") as tmp, bp.broker() as boot:
        topic = f"mmap-ab-{int(time.time())}"
        bp.create_topic(boot, topic)
        bp.produce(
            boot, topic, bp.make_mentions(a.mentions, 1000, start=time.time() - 3600, span=3600)
        )
        order = list(a.variants)
        for rnd in range(a.rounds):
            for v in order[rnd % len(order) :] + order[: rnd % len(order)]:
                settings = {"malloc_mmap_threshold": str(v[0]), "malloc_trim_threshold": str(v[1])}
                run = bp.Run(f"mmap{v[0]}-{v[1]}", boot, Path(tmp), topic, settings)
                r = bp.measure_pipeline(run, a.mentions, 1, a.timeout)
                runs[v].append(r)
                print(
                    f"round {rnd + 1} {label(v):>9}: {r['rate']:>9,.0f}/s  "
                    f"{r['cpu_s_per_m']:5.1f} CPU s per M  {r['faults_per_mention']:.2f} faults "
                    f"per mention  peak RSS {r['rss_mib']:4.0f} MiB  load {bp.load1():.2f}",
                    flush=True,
                )
    base = statistics.median(r["rate"] for r in runs[a.variants[0]])
    print(f"\nmedians of {a.rounds} rounds ({time.strftime('%Y-%m-%d %H:%M')}):")
    for v, rs in runs.items():
        rate = statistics.median(r["rate"] for r in rs)
        print(
            f"  {label(v):>9}: {rate:>9,.0f}/s ({rate / base - 1:+.0%} against {label(a.variants[0])})  "
            f"{statistics.median(r['cpu_s_per_m'] for r in rs):5.1f} CPU s per M  "
            f"{statistics.median(r['faults_per_mention'] for r in rs):.2f} faults per mention  "
            f"peak RSS {statistics.median(r['rss_mib'] for r in rs):4.0f} MiB"
        )


if __name__ == "__main__":
    main()
