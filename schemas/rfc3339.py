"""RFC 3339 date-times to Unix seconds for a whole batch, in numba.

The fast path of ``created_at`` validation. :func:`parse_rfc3339` (the
reference, used by the schema's ``date-time`` format check) costs about a
microsecond per value in Python; this kernel parses a batch of values
concatenated into one byte buffer in a few tens of nanoseconds each.

It accepts only what both checks of ``mention.v1`` accept (the schema's
``created_at`` pattern and the ``date-time`` format, i.e. Python's
``datetime.fromisoformat``), and gives the same float: the microseconds
since the epoch, truncated as ``fromisoformat`` truncates extra fraction
digits, divided by 10**6 (IEEE division of two exact doubles is correctly
rounded, as Python's int / int is). Anything it is not sure of (an unusual
shape, a year outside 1686-2254 where microseconds no longer fit 53 bits)
is reported as not ok, and the caller asks the reference.

>>> seconds(["2026-01-01T00:00:00.5Z", "2026-01-01T01:00:00+01:00", "nope"])
(array([1.7672256e+09, 1.7672256e+09, 0.0000000e+00]), array([ True,  True, False]))
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["parse_batch", "seconds", "utf8_batch"]

# |microseconds since 1970| below 2**53: exact as a double (years 1686..2254).
_MAX_EXACT_US = 2**53


@numba.njit(cache=True, nogil=True, inline="always")
def _digits(buf: npt.NDArray[np.uint8], i: int, n: int) -> int:
    """The value of ``n`` ASCII digits at ``i``, or -1 if one is not a digit."""
    v = 0
    for k in range(i, i + n):
        c = buf[k]
        if c < 48 or c > 57:
            return -1
        v = v * 10 + (c - 48)
    return v


@numba.njit(cache=True, nogil=True, inline="always")
def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = m + 9 if m <= 2 else m - 3
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@numba.njit(cache=True, nogil=True)
def _parse(
    buf: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    out: npt.NDArray[np.float64],
    ok: npt.NDArray[np.bool_],
) -> None:
    dim = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    for r in range(offsets.shape[0] - 1):
        ok[r] = False
        out[r] = 0.0
        i = offsets[r]
        end = offsets[r + 1]
        if end - i < 20:
            continue
        y = _digits(buf, i, 4)
        mo = _digits(buf, i + 5, 2)
        d = _digits(buf, i + 8, 2)
        h = _digits(buf, i + 11, 2)
        mi = _digits(buf, i + 14, 2)
        s = _digits(buf, i + 17, 2)
        sep = buf[i + 10]
        if (
            y < 1
            or mo < 1
            or mo > 12
            or d < 1
            or h < 0
            or h > 23
            or mi < 0
            or mi > 59
            or s < 0
            or s > 59
            or buf[i + 4] != 45  # -
            or buf[i + 7] != 45
            or buf[i + 13] != 58  # :
            or buf[i + 16] != 58
            or not (sep == 84 or sep == 116 or sep == 32)  # T t space
        ):
            continue
        leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
        if d > dim[mo - 1] + (1 if (mo == 2 and leap) else 0):
            continue
        j = i + 19
        us = 0
        if j < end and buf[j] == 46:  # . then 1..9 digits; microseconds truncated
            j += 1
            nd = 0
            while j < end and 48 <= buf[j] <= 57:
                if nd < 6:
                    us = us * 10 + (buf[j] - 48)
                nd += 1
                j += 1
            if nd == 0 or nd > 9:
                continue
            for _ in range(nd, 6):
                us *= 10
        if j >= end:
            continue
        c = buf[j]
        off = 0
        if c == 90 or c == 122:  # Z z
            if j + 1 != end:
                continue
        elif c == 43 or c == 45:  # + -
            if j + 6 != end or buf[j + 3] != 58:
                continue
            oh = _digits(buf, j + 1, 2)
            om = _digits(buf, j + 4, 2)
            if oh < 0 or oh > 23 or om < 0 or om > 59:
                continue
            off = oh * 3600 + om * 60
            if c == 45:
                off = -off
        else:
            continue
        secs = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - off
        total = secs * 1_000_000 + us
        if total >= _MAX_EXACT_US or total <= -_MAX_EXACT_US:
            continue
        out[r] = np.float64(total) / 1e6
        ok[r] = True


def parse_batch(
    buf: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Unix seconds of each value ``buf[offsets[r]:offsets[r + 1]]`` and whether it parsed."""
    n = len(offsets) - 1
    out = np.empty(n, dtype=np.float64)
    ok = np.empty(n, dtype=np.bool_)
    _parse(buf, offsets, out, ok)
    return out, ok


def utf8_batch(values: Sequence[str]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The UTF-8 bytes of ``values`` back to back, and each value's offsets into them.

    >>> buf, off = utf8_batch(["ab", "é", ""])
    >>> bytes(buf), off.tolist()
    (b'ab\\xc3\\xa9', [0, 2, 4, 4])
    """
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    joined = "".join(values).encode("utf-8", "surrogatepass")
    if len(joined) != int(lengths.sum()):  # non-ASCII somewhere: byte lengths differ
        enc = [v.encode("utf-8", "surrogatepass") for v in values]
        lengths = np.fromiter(map(len, enc), dtype=np.int64, count=len(enc))
        joined = b"".join(enc)
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.frombuffer(joined, dtype=np.uint8), offsets


def seconds(values: Sequence[str]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """:func:`parse_batch` of Python strings (non-ASCII values are simply not ok)."""
    return parse_batch(*utf8_batch(values))
