"""streams.memory: heap figures and malloc_trim give freed heap pages back to the OS."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from streams import memory

pytestmark = pytest.mark.skipif(memory.heap() is None, reason="needs glibc >= 2.33")


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_trim_returns_freed_heap_pages_to_the_os() -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    # 64 KiB blocks stay below glibc's mmap threshold, so they come from the
    # heap; freeing every other one leaves 64 KiB holes between blocks still
    # in use, which free() cannot give back by shrinking the heap.
    blocks = []
    for _ in range(4000):  # 250 MiB
        p = libc.malloc(64 * 1024)
        ctypes.memset(p, 1, 64 * 1024)  # touch: resident
        blocks.append(p)
    memory.trim()
    before = memory.heap()
    assert before is not None
    for p in blocks[::2]:
        libc.free(p)
    freed = memory.heap()
    assert freed is not None and freed.free >= before.free + 100 * 2**20
    rss_held = rss_bytes()
    assert memory.trim() is True
    # The holes' pages are madvised away: RSS falls by most of what was
    # freed, though malloc still counts the chunks as free, not in use.
    assert rss_bytes() <= rss_held - 100 * 2**20
    after = memory.heap()
    # Trimming moves no memory into use (other threads of the test session may
    # allocate a few bytes meanwhile: a full-suite run saw 224).
    assert after is not None and abs(after.in_use - freed.in_use) < 64 * 1024
    for p in blocks[1::2]:
        libc.free(p)


def test_heap_figures_are_consistent() -> None:
    h = memory.heap()
    assert h is not None
    assert h.in_use + h.free <= h.arena + 4096
    assert set(h.as_dict()) == {"arena", "mmapped", "in_use", "free"}


def test_batch_gc_hides_old_objects_and_restores_the_collector() -> None:
    import gc

    before = gc.get_threshold()
    with memory.batch_gc(12_345):
        assert gc.get_threshold() == (12_345, before[1], before[2])
        assert gc.get_freeze_count() > 0  # what existed at the start is out of sight
        cycle: list[object] = []
        cycle.append(cycle)  # a cycle made inside is still collectable
        del cycle
        assert gc.collect() >= 1
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_batch_gc_restores_the_collector_after_an_error() -> None:
    import gc

    before = gc.get_threshold()
    try:
        with memory.batch_gc():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_service_gc_freezes_start_up_and_raises_the_young_threshold() -> None:
    import gc

    old = gc.get_threshold()
    frozen = gc.get_freeze_count()
    try:
        kept = [[i] for i in range(1000)]  # start-up state: lists the collector tracks
        assert memory.service_gc(12_345) is True
        assert gc.get_threshold() == (12_345, old[1], old[2])
        assert gc.get_freeze_count() >= frozen + len(kept)
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
    assert memory.service_gc(0) is False
    assert gc.get_threshold() == old


_MMAP_PROBE = """
import ctypes, json, sys
from streams import memory
if sys.argv[1] != "0":
    assert memory.fix_mmap_threshold(int(sys.argv[1]))
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = int(sys.argv[2])
libc.free(libc.malloc(size))  # glibc's adaptive threshold rises past ``size`` here
base = memory.heap().mmapped
p = libc.malloc(size)
print(json.dumps({"mapped": memory.heap().mmapped - base}))
libc.free(p)
"""


def _mapped_after_a_free(threshold: int, size: int = 1 << 20) -> int:
    """Bytes mapped for a block of ``size`` after one as large was freed."""
    import json
    import subprocess
    import sys

    # A child process: the threshold is process-wide and cannot be unset.
    out = subprocess.run(
        [sys.executable, "-c", _MMAP_PROBE, str(threshold), str(size)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    mapped: int = json.loads(out)["mapped"]
    return mapped


def test_a_fixed_mmap_threshold_keeps_large_blocks_out_of_the_heap() -> None:
    # glibc's default: once a mapped 1 MiB block is freed, the next one comes
    # from the heap (where freed blocks fragment it and RSS creeps).
    assert _mapped_after_a_free(0) == 0
    # Fixed at 1 MiB (the worker's default), it is mapped on its own again.
    assert _mapped_after_a_free(1 << 20) >= 1 << 20
    # The threshold is the one asked for, not merely glibc's adaptation turned off.
    assert _mapped_after_a_free(4 << 20) == 0
    assert _mapped_after_a_free(4 << 20, size=8 << 20) >= 8 << 20


def test_mmap_threshold_bounds() -> None:
    assert memory.fix_mmap_threshold(0) is False  # 0 changes nothing
    with pytest.raises(ValueError, match="maximum"):
        memory.fix_mmap_threshold(memory.MMAP_THRESHOLD_MAX + 1)


def test_the_worker_default_maps_bucket_sized_blocks() -> None:
    from streams.settings import Settings

    # 4 MiB with a 32 MiB trim threshold: flat RSS in the soak at 3% of
    # throughput (1 MiB with glibc's trim threshold cost 12%, 128 KiB 27%).
    assert Settings().malloc_mmap_threshold == 4 << 20


_TRIM_PROBE = """
import ctypes, json, sys
from streams import memory
print(json.dumps(memory.fix_thresholds(int(sys.argv[1]), int(sys.argv[2]))))
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = int(sys.argv[3])
libc.free(libc.malloc(size))  # the adaptive threshold rises past ``size`` here, if adaptive
blocks = [libc.malloc(size) for _ in range(8)]  # the heap grows at its top, or blocks are mapped
grown = memory.heap().arena
for p in reversed(blocks):
    libc.free(p)
print(json.dumps({"grown": grown, "after_free": memory.heap().arena}))
"""


def _heap_after_frees(mmap: int, trim: int, size: int = 512 << 10) -> tuple[list[bool], int]:
    """What fix_thresholds set, and the bytes the heap gave back when 8 blocks of ``size`` were freed."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _TRIM_PROBE, str(mmap), str(trim), str(size)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    heap = json.loads(out[1])
    given_back: int = heap["grown"] - heap["after_free"]
    return json.loads(out[0]), given_back


def test_a_raised_trim_threshold_keeps_the_heap_top_between_batches() -> None:
    # A fixed mmap threshold freezes glibc's trim threshold at 128 KiB: 4 MiB of
    # freed 512 KiB blocks at the heap's top go straight back to the OS (and
    # the next batch faults them in again).
    assert _heap_after_frees(1 << 20, 0) == ([True, False], pytest.approx(4 << 20, abs=1 << 20))
    # Raised to 32 MiB, the heap keeps them for the next batch.
    assert _heap_after_frees(1 << 20, 32 << 20) == ([True, True], 0)
    # The trim threshold counts: more than it is still given back.
    set_, given = _heap_after_frees(1 << 20, 1 << 20)
    assert set_ == [True, True] and given >= 2 << 20


def test_the_trim_threshold_is_not_set_without_a_fixed_mmap_threshold() -> None:
    # Setting it alone would end glibc's adaptation, which mmap threshold 0 asks for.
    set_, _ = _heap_after_frees(0, 32 << 20)
    assert set_ == [False, False]


def test_trim_threshold_bounds() -> None:
    from streams.settings import Settings

    assert memory.fix_trim_threshold(0) is False
    with pytest.raises(ValueError, match="over"):
        memory.fix_trim_threshold(memory.TRIM_THRESHOLD_MAX + 1)
    assert Settings().malloc_trim_threshold == 32 << 20
