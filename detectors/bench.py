"""Benchmarks of the detector kernels, recorded in ``docs/benchmarks.md``.

Measures (median of ``repeats`` timed runs, after one warm-up run that
triggers compilation or loads the numba cache):

- kernel throughput in points/s on one core over ``points`` values;
- one bucket update for ``brands`` brands (``VolumeDetector`` and the
  combined ``CrisisDetector``), on warmed-up state;
- state bytes per brand for each signal.

>>> r = run_benchmarks(points=10_000, brands=1_000, repeats=1)
>>> sorted(r["state_bytes_per_brand"])
['mean_sentiment', 'negative_share', 'volume']
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

import numpy as np

from . import kernels
from .base import BucketStats, Detector
from .combined import CrisisDetector
from .negative_share import NegativeShareDetector
from .sentiment import SentimentShiftDetector
from .volume import DAY_SLOTS, PARALLEL_MIN_BRANDS, VolumeDetector, volume_series

BEGIN, END = "<!-- BEGIN detectors -->", "<!-- END detectors -->"


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: compile or load from cache
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def kernel_throughput(points: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = rng.poisson(20.0, points).astype(np.float64)
    z = rng.standard_normal(points)
    slots = ((np.arange(points) * 300 % 86400) // 3600).astype(np.int64)
    o1, o2 = np.empty(points), np.empty(points)
    v = VolumeDetector()
    cases: dict[str, Callable[[], object]] = {
        "ewm": lambda: kernels.ewm(z, 0.01, o1, o2),
        "robust": lambda: kernels.robust(z, 0.005, 0.01, 3.0, 1.0, 1e-6, o1, o2),
        "cusum": lambda: kernels.cusum(z, 0.5, o1, o2),
        "page_hinkley": lambda: kernels.page_hinkley(z, 0.5, 0.99, o1),
        "seasonal": lambda: kernels.seasonal(z, slots, DAY_SLOTS, 3.0, 0.01, 0.01, o1),
        "volume (full detector)": lambda: volume_series(
            x,
            slots,
            v.offset,
            v._a_level,
            v._a_profile,
            v._a_smooth,
            v._eta_loc,
            v._a_scale,
            v.clip,
            v._warmup,
            v.event_low,
            v.event_drop,
            True,
            o1,
            o2,
        ),
    }
    return {name: points / _median_time(fn, repeats) for name, fn in cases.items()}


def _stats(n: int, rng: np.random.Generator) -> BucketStats:
    count = rng.poisson(20.0, n).astype(np.float64)
    neg = rng.binomial(count.astype(np.int64), 0.2).astype(np.float64)
    return BucketStats(count, count, neg, rng.standard_normal(n) * np.sqrt(count + 1))


def bucket_update(brands: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    out: dict[str, float] = {}
    dets: dict[str, Detector] = {"volume": VolumeDetector(), "crisis (3 signals)": CrisisDetector()}
    for name, det in dets.items():
        for _ in range(3):  # warm state and compile
            det.update(_stats(brands, rng))
        s = _stats(brands, rng)
        out[name] = 1e3 * _median_time(lambda det=det, s=s: det.update(s), repeats)  # type: ignore[misc]
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


def run_benchmarks(
    points: int = 10_000_000, brands: int = 100_000, repeats: int = 5
) -> dict[str, Any]:
    return {
        "kernel_points_per_s": kernel_throughput(points, repeats),
        "bucket_update_ms": bucket_update(brands, repeats),
        "state_bytes_per_brand": state_bytes(),
        "points": points,
        "brands": brands,
        "repeats": repeats,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
    }


def format_markdown(r: dict[str, Any]) -> str:
    lines = [
        "## Detectors",
        "",
        f"Measured {r['date']} on {r['machine']} (1-minute load average {r['load']:.1f} at "
        f"the end: other work on the machine makes these conservative). Kernels run on one "
        f"thread; the volume bucket update uses numba threads from "
        f"{PARALLEL_MIN_BRANDS:,} brands. Medians of {r['repeats']} runs after a warm-up run.",
        f"Reproduce: `crisiswatch bench-detectors --points {r['points']} --brands {r['brands']}"
        f" --repeats {r['repeats']}`.",
        "",
        f"Kernel throughput over {r['points']:,} points (one core; target >= 50 M points/s):",
        "",
        "| kernel | M points/s |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v / 1e6:.1f} |" for k, v in r["kernel_points_per_s"].items()]
    lines += ["", f"One bucket update for {r['brands']:,} brands (target <= 5 ms):", ""]
    lines += ["| detector | ms |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in r["bucket_update_ms"].items()]
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
