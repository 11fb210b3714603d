"""One worker's throughput under glibc malloc thresholds, alternated in one run.

    python benchmarks/bench_mmap_threshold.py                  # adaptive, 1M, 1M:32M, 4M:32M; 3 rounds
    python benchmarks/bench_mmap_threshold.py 0 128K -r 4      # adaptive against 128 KiB, trim left to glibc
    python benchmarks/bench_mmap_threshold.py 4M:32M 4M:32M/a2 jemalloc   # other allocators

A variant is ``MMAP[:TRIM][/aN]`` or ``jemalloc``: the mmap threshold
(``CRISISWATCH_MALLOC_MMAP_THRESHOLD``; 0 is glibc's adaptive default) and the
trim threshold (``CRISISWATCH_MALLOC_TRIM_THRESHOLD``; left out or 0, glibc's
128 KiB), in bytes or with a K or M suffix; ``/aN`` caps glibc's arenas at N
(``MALLOC_ARENA_MAX``); ``jemalloc`` preloads Debian's libjemalloc2 (apt
install libjemalloc2) into the worker, thresholds off. A private broker, one preloaded
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
JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")

#: (mmap threshold, trim threshold, arena cap or 0); the mmap threshold -1 is jemalloc.
Variant = tuple[int, int, int]


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


def variant(text: str) -> Variant:
    if text.strip().lower() == "jemalloc":
        if not JEMALLOC.exists():
            raise argparse.ArgumentTypeError(
                f"jemalloc: {JEMALLOC} missing (apt install libjemalloc2)"
            )
        return -1, 0, 0
    head, _, arenas = text.partition("/")
    mmap, _, trim = head.partition(":")
    cap = 0
    if arenas:
        if not (arenas[:1].lower() == "a" and arenas[1:].isdigit() and int(arenas[1:]) > 0):
            raise argparse.ArgumentTypeError(f"{text!r}: the arena cap is /aN, N >= 1")
        cap = int(arenas[1:])
    return size(mmap), size(trim) if trim else 0, cap


def label(v: Variant) -> str:
    def one(n: int) -> str:
        return f"{n >> 20}M" if n % (1 << 20) == 0 else f"{n >> 10}K"

    mmap, trim, cap = v
    if mmap < 0:
        return "jemalloc"
    head = "adaptive" if mmap == 0 else one(mmap)
    return head + (f":{one(trim)}" if trim and mmap else "") + (f"/a{cap}" if cap else "")


def run_for(v: Variant, boot: str, tmp: Path, topic: str) -> bp.Run:
    mmap, trim, cap = v
    settings = {"malloc_mmap_threshold": str(max(mmap, 0)), "malloc_trim_threshold": str(trim)}
    environ = {"LD_PRELOAD": str(JEMALLOC)} if mmap < 0 else {}
    if cap:
        environ["MALLOC_ARENA_MAX"] = str(cap)
    name = "alloc-" + label(v).replace(":", "-").replace("/", "-")
    return bp.Run(name, boot, tmp, topic, settings, environ=environ)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="*", type=variant, default=[variant(v) for v in DEFAULT])
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("-n", "--mentions", type=int, default=1_000_000)
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    if not a.variants or a.rounds < 1 or a.mentions < 1000:
        ap.error("need at least one variant, one round and 1,000 mentions")
    runs: dict[Variant, list[dict[str, Any]]] = {v: [] for v in a.variants}
    with tempfile.TemporaryDirectory(prefix="cw-mmap-") as tmp, bp.broker() as boot:
        topic = f"mmap-ab-{int(time.time())}"
        bp.create_topic(boot, topic)
        bp.produce(
            boot, topic, bp.make_mentions(a.mentions, 1000, start=time.time() - 3600, span=3600)
        )
        order = list(a.variants)
        for rnd in range(a.rounds):
            for v in order[rnd % len(order) :] + order[: rnd % len(order)]:
                run = run_for(v, boot, Path(tmp), topic)
                r = bp.measure_pipeline(run, a.mentions, 1, a.timeout)
                runs[v].append(r)
                print(
                    f"round {rnd + 1} {label(v):>12}: {r['rate']:>9,.0f}/s  "
                    f"{r['cpu_s_per_m']:5.1f} CPU s per M  {r['faults_per_mention']:.2f} faults "
                    f"per mention  peak RSS {r['rss_mib']:4.0f} MiB  load {bp.load1():.2f}",
                    flush=True,
                )
    base = statistics.median(r["rate"] for r in runs[a.variants[0]])
    print(f"\nmedians of {a.rounds} rounds ({time.strftime('%Y-%m-%d %H:%M')}):")
    for v, rs in runs.items():
        rate = statistics.median(r["rate"] for r in rs)
        print(
            f"  {label(v):>12}: {rate:>9,.0f}/s ({rate / base - 1:+.0%} against {label(a.variants[0])})  "
            f"{statistics.median(r['cpu_s_per_m'] for r in rs):5.1f} CPU s per M  "
            f"{statistics.median(r['faults_per_mention'] for r in rs):.2f} faults per mention  "
            f"peak RSS {statistics.median(r['rss_mib'] for r in rs):4.0f} MiB"
        )


if __name__ == "__main__":
    main()
