"""One worker's throughput under glibc mmap thresholds, alternated in one run.

    python benchmarks/bench_mmap_threshold.py                 # adaptive, 1 MiB, 4 MiB; 3 rounds
    python benchmarks/bench_mmap_threshold.py 0 131072 -r 4   # adaptive against 128 KiB

A private broker, one preloaded topic (``--mentions``, 1,000 brands), and one
worker per variant and round (``CRISISWATCH_MALLOC_MMAP_THRESHOLD``; 0 is
glibc's adaptive default), the order rotated each round so that a slow
minute of this shared machine does not land on one variant. Prints each run
and the medians; docs/reliability.md (problem 15) has the figures that chose
the worker's default. RSS growth over time needs the soak, not this.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from streams import bench_pipeline as bp


def label(threshold: int) -> str:
    if threshold == 0:
        return "adaptive"
    return f"{threshold >> 20} MiB" if threshold % (1 << 20) == 0 else f"{threshold >> 10} KiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("thresholds", nargs="*", type=int, default=[0, 1 << 20, 4 << 20])
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("-n", "--mentions", type=int, default=1_000_000)
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    if not a.thresholds or a.rounds < 1 or a.mentions < 1000:
        ap.error("need at least one threshold, one round and 1,000 mentions")
    runs: dict[int, list[dict[str, float]]] = {t: [] for t in a.thresholds}
    with tempfile.TemporaryDirectory(prefix="cw-mmap-") as tmp, bp.broker() as boot:
        topic = f"mmap-ab-{int(time.time())}"
        bp.create_topic(boot, topic)
        bp.produce(
            boot, topic, bp.make_mentions(a.mentions, 1000, start=time.time() - 3600, span=3600)
        )
        order = list(a.thresholds)
        for rnd in range(a.rounds):
            for t in order[rnd % len(order) :] + order[: rnd % len(order)]:
                run = bp.Run(f"mmap{t}", boot, Path(tmp), topic, {"malloc_mmap_threshold": str(t)})
                r = bp.measure_pipeline(run, a.mentions, 1, a.timeout)
                runs[t].append(r)
                print(
                    f"round {rnd + 1} {label(t):>9}: {r['rate']:>9,.0f}/s  "
                    f"{r['cpu_s_per_m']:5.1f} CPU s per M  peak RSS {r['rss_mib']:4.0f} MiB  "
                    f"load {bp.load1():.2f}",
                    flush=True,
                )
    base = statistics.median(r["rate"] for r in runs[a.thresholds[0]])
    print(f"\nmedians of {a.rounds} rounds ({time.strftime('%Y-%m-%d %H:%M')}):")
    for t, rs in runs.items():
        rate = statistics.median(r["rate"] for r in rs)
        print(
            f"  {label(t):>9}: {rate:>9,.0f}/s ({rate / base - 1:+.0%} against {label(a.thresholds[0])})  "
            f"{statistics.median(r['cpu_s_per_m'] for r in rs):5.1f} CPU s per M  "
            f"peak RSS {statistics.median(r['rss_mib'] for r in rs):4.0f} MiB"
        )


if __name__ == "__main__":
    main()
