"""Benchmarks of the detector kernels, recorded in ``docs/benchmarks.md``.

Measures (median of ``repeats`` timed runs, after one warm-up run that
triggers compilation or loads the numba cache):

- kernel throughput in points/s on one thread over ``points`` values (the
  volume detector both as one long series and as bucket updates of 1,024
  brands, each brand-bucket a point);
- one bucket update for ``brands`` brands (``VolumeDetector`` and the
  combined ``CrisisDetector``), on warmed-up state, on one thread and on
  numba's threads;
- state bytes per brand for each signal.

Every time is taken twice: wall clock, and the CPU time of the calling
thread (``time.thread_time``; for threaded runs, the process's CPU time).
On a machine shared with other work, wall clock includes time the thread
waited for a core; CPU time is the honest per-core cost.

>>> r = run_benchmarks(points=10_000, brands=1_000, repeats=1)
>>> sorted(r["state_bytes_per_brand"])
['mean_sentiment', 'negative_share', 'volume']
>>> "crisis (3 signals), 1 thread" in r["bucket_update_ms"]
True
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np

from . import kernels
from .base import BucketStats
from .combined import CrisisDetector
from .negative_share import NegativeShareDetector
from .sentiment import SentimentShiftDetector
from .volume import DAY_SLOTS, VolumeDetector, log_table, volume_series, volume_update

BEGIN, END = "<!-- BEGIN detectors -->", "<!-- END detectors -->"
#: Brands of the many-brand volume kernel's throughput case.
MANY = 1024


def _median_times(
    fn: Callable[[], object], repeats: int, cpu: Callable[[], float] = time.thread_time
) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``repeats`` runs after one warm-up run."""
    fn()  # warm-up: compile or load from cache
    wall, cpus = [], []
    for _ in range(repeats):
        c0, t0 = cpu(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpus.append(cpu() - c0)
    return float(np.median(wall)), float(np.median(cpus))


def kernel_throughput(points: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Points/s per kernel: (wall clock, CPU time of the thread)."""
    rng = np.random.default_rng(0)
    x = rng.poisson(20.0, points).astype(np.float64)
    z = rng.standard_normal(points)
    q = 0.5 * z * z
    slots = ((np.arange(points) * 300 % 86400) // 3600).astype(np.int64)
    o1, o2 = np.empty(points), np.empty(points)
    v = VolumeDetector()
    # The many-brand kernel over the same number of points: MANY brands (its
    # state stays in cache) times points / MANY buckets, dense.
    many = VolumeDetector(sparse=False)
    many.ensure_rows(MANY)
    xm = x[: (points // MANY) * MANY].reshape(-1, MANY)
    om = np.empty(MANY)

    def volume_many() -> None:
        for t in range(xm.shape[0]):
            volume_update(xm[t], (t // 12) % DAY_SLOTS, many.profile, many.state, many._cfg, om)

    cases: dict[str, Callable[[], object]] = {
        "ewm": lambda: kernels.ewm(z, 0.01, o1, o2),
        "robust": lambda: kernels.robust(z, 0.005, 0.01, 3.0, 1.0, 1e-6, o1, o2),
        "cusum": lambda: kernels.cusum(z, 0.5, o1, o2),
        "page_hinkley": lambda: kernels.page_hinkley(z, 0.5, 0.99, o1),
        "seasonal": lambda: kernels.seasonal(z, slots, DAY_SLOTS, 3.0, 0.01, 0.01, o1),
        "tail_calibrate": lambda: kernels.tail_calibrate(q, 1.125, 1e-3, 0.05, 1.0, 1e-4, o1),
        "volume (one series, sparse)": lambda: volume_series(
            x,
            slots,
            np.zeros((DAY_SLOTS, 1)),
            v.fresh_state(1),
            log_table(v.offset),
            v._cfg,
            True,
            o1,
        ),
        f"volume ({MANY:,} brands per bucket update, dense)": volume_many,
    }
    out = {}
    for name, fn in cases.items():
        wall, cpu = _median_times(fn, repeats)
        n = xm.size if fn is volume_many else points
        out[name] = (n / wall, n / cpu)
    return out


def _stats(n: int, rng: np.random.Generator) -> BucketStats:
    count = rng.poisson(20.0, n).astype(np.float64)
    neg = rng.binomial(count.astype(np.int64), 0.2).astype(np.float64)
    return BucketStats(count, count, neg, rng.standard_normal(n) * np.sqrt(count + 1))


def bucket_update(brands: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Milliseconds per bucket update of ``brands`` brands: (wall, CPU)."""
    rng = np.random.default_rng(1)
    out: dict[str, tuple[float, float]] = {}
    vol = VolumeDetector(sparse=False)
    for _ in range(3):  # warm state and compile
        vol.update(_stats(brands, rng))
    s = _stats(brands, rng)
    res = np.zeros(brands)

    def vol_serial() -> None:
        volume_update(s.count, 5, vol.profile, vol.state, vol._cfg, res)

    wall, cpu = _median_times(vol_serial, repeats)
    out["volume, 1 thread"] = (1e3 * wall, 1e3 * cpu)
    threads = numba.get_num_threads()
    for label, mode, clock in (
        ("crisis (3 signals), 1 thread", "serial", time.thread_time),
        (f"crisis (3 signals), {threads} numba threads", "parallel", time.process_time),
    ):
        det = CrisisDetector()
        det.threading = mode
        for _ in range(3):
            det.update(_stats(brands, rng))
        wall, cpu = _median_times(lambda det=det: det.update(s), repeats, clock)  # type: ignore[misc]
        out[label] = (1e3 * wall, 1e3 * cpu)
    return out


def state_bytes(brands: int = 1000) -> dict[str, float]:
    rng = np.random.default_rng(2)
    out: dict[str, float] = {}
    for det in (VolumeDetector(), NegativeShareDetector(), SentimentShiftDetector()):
        det.update(_stats(brands, rng))
        st = det.to_state()
        nbytes = sum(v.nbytes for v in st.values() if isinstance(v, np.ndarray))
        out[det.name] = nbytes / brands
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_benchmarks(
    points: int = 10_000_000, brands: int = 100_000, repeats: int = 5
) -> dict[str, Any]:
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "load_before": load_before,
        "kernel_points_per_s": kernel_throughput(points, repeats),
        "bucket_update_ms": bucket_update(brands, repeats),
        "state_bytes_per_brand": state_bytes(),
        "points": points,
        "brands": brands,
        "repeats": repeats,
        "machine": f"{_cpu_model()}, {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
    }


def format_markdown(r: dict[str, Any]) -> str:
    lines = [
        "## Detectors",
        "",
        f"Measured {r['date']} on {r['machine']}. 1-minute load average "
        f"{r['load_before']:.1f} before and {r['load']:.1f} after the run: the machine is "
        "shared, so wall-clock times include waiting for a core; the CPU-time columns "
        "(`time.thread_time`, process CPU time for threaded runs) are the per-core cost. "
        f"Medians of {r['repeats']} runs after a warm-up run.",
        f"Reproduce: `crisiswatch bench-detectors --points {r['points']} --brands {r['brands']}"
        f" --repeats {r['repeats']}`.",
        "",
        f"Kernel throughput over {r['points']:,} points, one thread "
        "(target >= 50 M points/s per core):",
        "",
        "| kernel | M points/s (CPU time) | M points/s (wall) |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {k} | {cpu / 1e6:.1f} | {wall / 1e6:.1f} |"
        for k, (wall, cpu) in r["kernel_points_per_s"].items()
    ]
    lines += [
        "",
        f"One bucket update for {r['brands']:,} brands (target <= 5 ms; dense volume):",
        "",
        "| detector | ms (CPU time) | ms (wall) |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {k} | {cpu:.2f} | {wall:.2f} |" for k, (wall, cpu) in r["bucket_update_ms"].items()
    ]
    lines += [
        "",
        "State per brand (target <= 1 KiB per signal):",
        "",
        "| signal | bytes |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v:.0f} |" for k, v in r["state_bytes_per_brand"].items()]
    return "\n".join(lines) + "\n"


def write_section(path: Path, body: str) -> None:
    """Replace (or append) the detectors section of ``path``, leaving the rest intact."""
    section = f"{BEGIN}\n{body}{END}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
