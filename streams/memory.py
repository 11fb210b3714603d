"""The C heap of a worker: what it holds, and handing freed pages back to the OS.

A worker allocates and frees large numpy arrays at every bucket close (the
duplicate-id tables, the columns of a batch, evidence rows). glibc serves
them from its heap once its adaptive mmap threshold has risen, and keeps
pages it has freed there unless the top of the heap is free, so RSS can
stay high, and wander, while the memory in use is flat. The long-running
Python services that hit this (Dask's workers, Ray) call ``malloc_trim(0)``
periodically; so does the worker (``CRISISWATCH_MALLOC_TRIM_SECONDS``).
Trimming only gives back whole free pages, though, and at a high rate the
freed memory glibc kept still grew (the 30-minute soak at 32,000/s: heap in
use flat, free 302 -> 367 MiB, RSS +7.9%; docs/reliability.md problem 15).
So the worker also fixes glibc's mmap threshold at 4 MiB
(``CRISISWATCH_MALLOC_MMAP_THRESHOLD``, :func:`fix_mmap_threshold`): every
block that large (the bucket-sized arrays) is mapped on its own and unmapped
when freed, and never lands in the heap to fragment it; the per-batch buffers
(about 2 MiB each: joined texts, spliced output) are reused from the heap. It
is what ``MALLOC_MMAP_THRESHOLD_`` in the environment does, set by the worker
so no deployment can lose it. Fixing it also freezes glibc's trim threshold
at 128 KiB, so the heap shrank after every batch and the next one faulted
its pages in again; the worker raises that one to 32 MiB
(``CRISISWATCH_MALLOC_TRIM_THRESHOLD``, :func:`fix_trim_threshold`).
Measured (docs/reliability.md, problem 15): RSS flat at 682-705 MiB over the
soak at 32,000/s (-0.2%), for 3% of one worker's throughput and 0.16 minor
page faults per mention (adaptive 0.09); 1 MiB with glibc's trim threshold
was as flat but cost 12% (1.09 faults per mention), 128 KiB 27%.

Everything here is a no-op where the C library is not glibc (musl, macOS):
:func:`heap` returns None and :func:`trim` returns False.

>>> h = heap()
>>> h is None or h.in_use > 0
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any


class _Mallinfo2(ctypes.Structure):
    # struct mallinfo2 (glibc >= 2.33): every field is a size_t.
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@dataclass(frozen=True)
class Heap:
    """Bytes of the C heap (all arenas), from glibc's ``mallinfo2``."""

    #: Obtained from the OS by sbrk/mmap for the arenas (not counting big mmapped blocks).
    arena: int
    #: Blocks allocated directly with mmap (returned to the OS when freed).
    mmapped: int
    #: Allocated and not freed (arenas only).
    in_use: int
    #: Free inside the arenas: RSS that trimming may give back.
    free: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@cache
def _libc() -> Any | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name or None)
        lib.mallinfo2.restype = _Mallinfo2
        lib.mallinfo2.argtypes = []
        lib.malloc_trim.restype = ctypes.c_int
        lib.malloc_trim.argtypes = [ctypes.c_size_t]
        lib.mallopt.restype = ctypes.c_int
        lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):  # not glibc, or glibc < 2.33
        return None
    return lib


def heap() -> Heap | None:
    """The heap's figures now, or None without glibc >= 2.33."""
    lib = _libc()
    if lib is None:
        return None
    mi = lib.mallinfo2()
    return Heap(arena=mi.arena, mmapped=mi.hblkhd, in_use=mi.uordblks, free=mi.fordblks)


def trim() -> bool:
    """``malloc_trim(0)``: return free pages of every arena to the OS.

    ctypes releases the GIL for the call, so a caller may run it in a thread
    while the event loop goes on (glibc locks each arena while it walks it).
    True if memory was released.
    """
    lib = _libc()
    return bool(lib.malloc_trim(0)) if lib is not None else False


#: glibc's ``M_MMAP_THRESHOLD`` parameter of ``mallopt`` (malloc.h).
_M_MMAP_THRESHOLD = -3
#: The largest threshold glibc accepts on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``).
MMAP_THRESHOLD_MAX = 32 * 2**20


def _mallopt(param: int, name: str, nbytes: int, maximum: int) -> bool:
    """``mallopt(param, nbytes)``: False for 0 or without glibc, ValueError over ``maximum`` or refused."""
    if nbytes <= 0:
        return False
    if nbytes > maximum:
        raise ValueError(f"{name} {nbytes} is over the maximum {maximum}")
    lib = _libc()
    if lib is None:
        return False
    if not lib.mallopt(param, nbytes):
        raise ValueError(f"glibc refused {name} {nbytes}")
    return True


def fix_mmap_threshold(nbytes: int) -> bool:
    """Serve blocks of ``nbytes`` or more by mmap from now on, with the threshold fixed.

    By default glibc starts at 128 KiB and raises the threshold to the size of
    any mapped block that is freed (up to 32 MiB), so after the first bucket
    closes a worker's large numpy buffers come from the heap, where freed ones
    leave holes. Setting the threshold turns that adaptation off, as the
    ``MALLOC_MMAP_THRESHOLD_`` variable does. Call it early: blocks already
    allocated stay where they are. ``nbytes`` 0 changes nothing. True if set;
    False without glibc; ValueError for a size glibc refuses.

    >>> fix_mmap_threshold(0)
    False
    """
    return _mallopt(_M_MMAP_THRESHOLD, "mmap threshold", nbytes, MMAP_THRESHOLD_MAX)


#: glibc's ``M_TRIM_THRESHOLD`` parameter of ``mallopt`` (malloc.h).
_M_TRIM_THRESHOLD = -1
#: The largest trim threshold the worker sets (mallopt takes an int).
TRIM_THRESHOLD_MAX = 2**30


def fix_trim_threshold(nbytes: int) -> bool:
    """Keep up to ``nbytes`` free at the top of the heap instead of handing it back at once.

    glibc shrinks the heap whenever more than the trim threshold is free at
    its top. Its adaptive mode raises that threshold with the mmap threshold
    (to twice the largest mapped block freed), but fixing the mmap threshold
    (:func:`fix_mmap_threshold`) freezes it at 128 KiB: each batch's buffers
    then grow the heap, are freed, and the heap shrinks again, so the next
    batch faults fresh pages in (about 0.5 page faults per mention in the
    worker). The periodic :func:`trim` still returns whatever stays free.
    Like the mmap threshold, setting it turns glibc's adaptation off, so the
    worker sets it only beside a fixed mmap threshold. ``nbytes`` 0 changes
    nothing. True if set; False without glibc.

    >>> fix_trim_threshold(0)
    False
    """
    return _mallopt(_M_TRIM_THRESHOLD, "trim threshold", nbytes, TRIM_THRESHOLD_MAX)


def fix_thresholds(mmap_bytes: int, trim_bytes: int) -> tuple[bool, bool]:
    """The worker's malloc set-up: :func:`fix_mmap_threshold`, then
    :func:`fix_trim_threshold` only if the mmap threshold was fixed (setting
    the trim threshold alone would turn glibc's adaptation off and leave the
    mmap threshold at 128 KiB, which cost 27% of throughput). Which were set.

    >>> fix_thresholds(0, 32 << 20)
    (False, False)
    """
    if not fix_mmap_threshold(mmap_bytes):
        return False, False
    return True, fix_trim_threshold(trim_bytes)


#: Young-generation threshold while a batch job runs (CPython's default is 700).
BATCH_GC_THRESHOLD = 50_000


def _freeze_and_raise(threshold: int) -> tuple[int, int, int]:
    """``gc.freeze()`` and the young threshold set to ``threshold``; the thresholds before."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(threshold, old[1], old[2])
    return old


def service_gc(threshold: int = BATCH_GC_THRESHOLD) -> bool:
    """:func:`batch_gc` for a long-running worker, once its start-up is done, never undone.

    Start-up's garbage is collected first, so only live objects are frozen.
    In the worker the fetched record objects are most of the containers: the
    fetch of 300,000 records took 2.8 us each with CPython's defaults and
    1.7-2.0 us with the collector frozen or off (docs/performance.md).
    ``threshold`` 0 changes nothing. Returns whether it changed anything.

    >>> import gc; old = gc.get_threshold()
    >>> service_gc(0), gc.get_threshold() == old
    (False, True)
    """
    if threshold <= 0:
        return False
    gc.collect()
    _freeze_and_raise(threshold)
    return True


@contextmanager
def batch_gc(threshold: int = BATCH_GC_THRESHOLD) -> Iterator[None]:
    """Fewer garbage collections while a long batch job runs (a backtest).

    A batch allocates hundreds of thousands of short-lived containers that
    reference counting frees, yet every 700 of them start a young-generation
    collection, and some of those go on to the older generations, which hold
    the loaded model, the engines and their state (3-4% of a backtest's CPU
    time, measured with ``gc.callbacks``). Objects alive at the start are
    moved out of the collector's sight (``gc.freeze``, as Instagram's servers
    do after start-up) and the young threshold is raised; cycles are still
    collected, less often. Both are undone on exit.
    """
    old = _freeze_and_raise(threshold)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
