"""A set of 64-bit mention-id hashes for duplicate detection: open addressing in numba.

One per event-time bucket (see :class:`streams.detect.DetectEngine`). A batch
is checked and added in one call, in arrival order, so a second copy inside
the same batch is a duplicate too. 16 bytes of table per id at most (load
factor kept at or below one half); checkpoints carry the ids, 8 bytes each.

>>> s = IdSet()
>>> s.add(np.array([5, 7, 5], dtype=np.uint64)).tolist()
[False, False, True]
>>> s.contains(np.array([7, 9], dtype=np.uint64)).tolist(), len(s)
([True, False], 2)
"""

from __future__ import annotations

import base64

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["IdSet"]


@numba.njit(cache=True, nogil=True)
def _add(
    table: npt.NDArray[np.uint64],
    zero: npt.NDArray[np.bool_],
    h: npt.NDArray[np.uint64],
    insert: bool,
    dup: npt.NDArray[np.bool_],
) -> int:
    """Mark in ``dup`` the hashes already in ``table`` (or earlier in ``h``); insert the others.

    0 marks an empty slot, so the hash 0 is kept in ``zero[0]`` instead.
    """
    mask = np.uint64(table.shape[0] - 1)
    added = 0
    for j in range(h.shape[0]):
        x = h[j]
        if x == 0:
            dup[j] = zero[0]
            if insert and not zero[0]:
                zero[0] = True
                added += 1
            continue
        i = x & mask
        while True:
            y = table[i]
            if y == x:
                dup[j] = True
                break
            if y == 0:
                dup[j] = False
                if insert:
                    table[i] = x
                    added += 1
                break
            i = (i + np.uint64(1)) & mask
    return added


class IdSet:
    """Hashes of the mention ids one bucket has counted."""

    __slots__ = ("count", "table", "zero")

    def __init__(self, capacity: int = 64) -> None:
        size = 64
        while size < 2 * capacity:
            size *= 2
        self.table = np.zeros(size, dtype=np.uint64)
        self.zero = np.zeros(1, dtype=np.bool_)
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def _reserve(self, more: int) -> None:
        if 2 * (self.count + more) > len(self.table):
            old = self.table[self.table != 0]
            grown = IdSet(self.count + more)
            _add(grown.table, grown.zero, old, True, np.empty(len(old), dtype=np.bool_))
            self.table = grown.table

    def add(self, h: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        """Add ``h`` in order; True where a hash was already there (a duplicate)."""
        self._reserve(len(h))
        dup = np.empty(len(h), dtype=np.bool_)
        self.count += _add(
            self.table, self.zero, np.ascontiguousarray(h, dtype=np.uint64), True, dup
        )
        return dup

    def contains(self, h: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        dup = np.empty(len(h), dtype=np.bool_)
        _add(self.table, self.zero, np.ascontiguousarray(h, dtype=np.uint64), False, dup)
        return dup

    def to_text(self) -> str:
        """The ids, unordered, as base64 of little-endian uint64s."""
        ids = self.table[self.table != 0]
        if self.zero[0]:
            ids = np.append(ids, np.uint64(0))
        return base64.b64encode(ids.astype("<u8").tobytes()).decode()

    @classmethod
    def from_text(cls, text: str) -> IdSet:
        ids = np.frombuffer(base64.b64decode(text), dtype="<u8").astype(np.uint64)
        s = cls(len(ids))
        s.count = _add(s.table, s.zero, ids, True, np.empty(len(ids), dtype=np.bool_))
        return s
