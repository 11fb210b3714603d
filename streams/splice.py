"""Scored-mention bytes for a whole batch in one numba pass.

Ingest writes every valid mention to ``mentions.scored`` as its original
bytes minus the closing brace, plus the fields it computed
(:meth:`streams.ingest.IngestBatch.scored_values`). Done row by row in
Python that was a slice, a dict lookup and a join per mention, 7-8% of a
worker's event loop. Here the batch's values are joined once, the kernel
writes every output row into one buffer (the GIL released), and one slice
per row gives the records the producer needs.

>>> splice([b'{"a":1}', b'{"b":2} '], b"[1.5,2.0]", b"[null,-0.5]", [b"}"], [0, 0])
[b'{"a":1,"event_time":1.5,"sentiment":null}', b'{"b":2,"event_time":2.0,"sentiment":-0.5}']
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["splice"]

_TIME = np.frombuffer(b',"event_time":', dtype=np.uint8)
_SENT = np.frombuffer(b',"sentiment":', dtype=np.uint8)
_BRACE = 125  # "}"


@numba.njit(cache=True, nogil=True)
def _number(
    src: npt.NDArray[np.uint8], at: int, out: npt.NDArray[np.uint8], o: int
) -> tuple[int, int]:
    # Copies the number at src[at:] up to the next "," or "]" (a JSON array of numbers).
    k = at
    while src[k] != 44 and src[k] != 93:  # "," "]"
        out[o] = src[k]
        o += 1
        k += 1
    return k + 1, o


@numba.njit(cache=True, nogil=True)
def _splice(
    buf: npt.NDArray[np.uint8],
    ends: npt.NDArray[np.int64],
    times: npt.NDArray[np.uint8],
    sents: npt.NDArray[np.uint8],
    tails: npt.NDArray[np.uint8],
    tail_ends: npt.NDArray[np.int64],
    tail_of: npt.NDArray[np.int64],
    p_time: npt.NDArray[np.uint8],
    p_sent: npt.NDArray[np.uint8],
    out: npt.NDArray[np.uint8],
    out_ends: npt.NDArray[np.int64],
) -> None:
    o = 0
    start = 0
    ti = 1  # past the "["
    si = 1
    for r in range(ends.shape[0]):
        end = ends[r]
        e = end - 1
        while e > start and buf[e] != _BRACE:  # whitespace after the closing brace
            e -= 1
        out[o : o + e - start] = buf[start:e]
        o += e - start
        out[o : o + p_time.shape[0]] = p_time
        o += p_time.shape[0]
        ti, o = _number(times, ti, out, o)
        out[o : o + p_sent.shape[0]] = p_sent
        o += p_sent.shape[0]
        si, o = _number(sents, si, out, o)
        t = tail_of[r]
        a = tail_ends[t - 1] if t else 0
        b = tail_ends[t]
        out[o : o + b - a] = tails[a:b]
        o += b - a
        out_ends[r] = o
        start = end


def _joined(parts: Sequence[bytes]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    ends = np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)))
    return np.frombuffer(b"".join(parts), dtype=np.uint8), ends


def splice(
    values: Sequence[bytes],
    times: bytes,
    sentiments: bytes,
    tails: Sequence[bytes],
    tail_of: Sequence[int] | npt.NDArray[np.integer],
) -> list[bytes]:
    """Row ``k``: ``values[k]`` (a JSON object) without its closing brace, then
    ``,"event_time":<t>,"sentiment":<s>`` and ``tails[tail_of[k]]`` (which closes
    the object); ``t`` and ``s`` are the k-th numbers of ``times`` and
    ``sentiments``, JSON arrays of numbers (or nulls) with one per value, as
    orjson writes them from numpy arrays."""
    n = len(values)
    if not n:
        return []
    if len(tail_of) != n or times.count(b",") != n - 1 or sentiments.count(b",") != n - 1:
        raise ValueError("one time, sentiment and tail per value")
    buf, ends = _joined(values)
    tbuf, tail_ends = _joined(tails)
    tix = np.asarray(tail_of, dtype=np.int64)
    if tix.min() < 0 or tix.max() >= len(tails):
        raise ValueError("tail index out of range")
    tlen = np.diff(tail_ends, prepend=0)[tix].sum()
    size = int(ends[-1] + len(times) + len(sentiments) + tlen + n * (len(_TIME) + len(_SENT)))
    out = np.empty(size, dtype=np.uint8)
    out_ends = np.empty(n, dtype=np.int64)
    t8 = np.frombuffer(times, dtype=np.uint8)
    s8 = np.frombuffer(sentiments, dtype=np.uint8)
    _splice(buf, ends, t8, s8, tbuf, tail_ends, tix, _TIME, _SENT, out, out_ends)
    ob = out[: out_ends[-1]].tobytes()
    cuts = out_ends.tolist()
    return [ob[a:b] for a, b in zip([0, *cuts[:-1]], cuts, strict=True)]
