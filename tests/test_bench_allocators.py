"""The allocator variants of ``benchmarks/bench_mmap_threshold.py`` reach the worker's environment."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_mmap_threshold.py"
_spec = importlib.util.spec_from_file_location("bench_mmap_threshold", _PATH)
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.parametrize(
    ("text", "parsed", "label"),
    [
        ("0", (0, 0, 0), "adaptive"),
        ("4M:32M", (4 << 20, 32 << 20, 0), "4M:32M"),
        ("128K", (128 << 10, 0, 0), "128K"),
        ("4M:32M/a2", (4 << 20, 32 << 20, 2), "4M:32M/a2"),
        ("jemalloc", (-1, 0, 0), "jemalloc"),
    ],
)
def test_variants_parse_and_label(text: str, parsed: tuple[int, int, int], label: str) -> None:
    if parsed[0] < 0 and not bench.JEMALLOC.exists():
        with pytest.raises(argparse.ArgumentTypeError, match="libjemalloc2"):
            bench.variant(text)
        return
    assert bench.variant(text) == parsed
    assert bench.label(parsed) == label


@pytest.mark.parametrize("text", ["4M/a0", "4M/x", "4M/a", "-1", "12Q"])
def test_bad_variants_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        bench.variant(text)


def test_worker_environment_carries_the_variant(tmp_path: Path) -> None:
    env = bench.run_for((4 << 20, 32 << 20, 2), "127.0.0.1:9", tmp_path, "t").env(8000, 0)
    assert env["MALLOC_ARENA_MAX"] == "2"
    assert env["CRISISWATCH_MALLOC_MMAP_THRESHOLD"] == str(4 << 20)
    assert env["CRISISWATCH_MALLOC_TRIM_THRESHOLD"] == str(32 << 20)
    assert "LD_PRELOAD" not in env or env["LD_PRELOAD"] != str(bench.JEMALLOC)
    jem = bench.run_for((-1, 0, 0), "127.0.0.1:9", tmp_path, "t").env(8000, 0)
    assert jem["LD_PRELOAD"] == str(bench.JEMALLOC)
    assert jem["CRISISWATCH_MALLOC_MMAP_THRESHOLD"] == "0"
    assert "MALLOC_ARENA_MAX" not in jem or jem["MALLOC_ARENA_MAX"] != "2"
