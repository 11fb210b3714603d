"""Branch-free ``log`` and ``exp`` that LLVM can vectorise, for the many-brand kernels.

numba compiles ``math.log`` / ``math.exp`` to calls into the C library, one
value at a time; a loop over brands that contains such a call is not
vectorised (there is no SVML here), and those calls were most of the cost
of a bucket update. These versions are plain arithmetic on the bits of the
float (a bit cast, not a conversion), so a loop over brands that uses them
runs on SIMD lanes, and a scalar loop pays a few dozen instructions.

- :func:`fast_log`: ``x = 2^e m`` with ``m`` in ``[sqrt(1/2), sqrt(2))``,
  ``log m = 2 atanh(s)``, ``s = (m - 1) / (m + 1)``, by its odd series to
  ``s^17`` (``|s| <= 0.1716``, so the truncation is below ``1e-16``);
  relative error about ``1e-15`` (tested). Domain: finite ``x > 0``, normal
  (not subnormal); callers guarantee it.
- :func:`fast_exp`: ``exp(x) = 2^n exp(r)``, ``n = round(x / log 2)``,
  ``|r| <= log(2) / 2`` (``log 2`` split in two, Cody & Waite 1980),
  ``exp(r)`` by its Taylor series to ``r^12``; relative error about
  ``1e-15``. Domain: ``|x| < 700``.
- :func:`fast_log10`: ``fast_log(x) * log10(e)``.
- :data:`fma`: ``a * b + c`` rounded once, explicitly.

No tables: in a vectorised loop a table lookup is a gather, and gathers
are slow on current x86 cores (more so with the microcode mitigation of
"Gather Data Sampling"); the polynomials are evaluated in Estrin's scheme
with FMAs, so a scalar loop that carries a value through them waits little.

The results differ from the C library's in the last bits, so every kernel
that must agree with another (a series loop and a brand loop, the crisis
detector and a single-signal detector) uses these same functions.

>>> import math
>>> abs(fast_log(10.0) - math.log(10.0)) < 1e-14, abs(fast_exp(1.0) - math.e) < 1e-14
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import numba
from numba.core import types
from numba.extending import intrinsic

_LN2 = math.log(2.0)
# log(2) split so that n * _LN2_HI is exact for |n| < 2^11 (Cody & Waite 1980)
_LN2_HI = 0.693145751953125
_LN2_LO = _LN2 - _LN2_HI
_INV_LN2 = 1.0 / _LN2
_LOG10E = 1.0 / math.log(10.0)
_SQRT2 = math.sqrt(2.0)
_MANTISSA = (1 << 52) - 1
_EXP_ONE = 1023 << 52  # the exponent bits of 1.0


def _f64_bits(typingctx: Any, x: Any) -> Any:
    if x != types.float64:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(types.float64), codegen


def _bits_f64(typingctx: Any, x: Any) -> Any:
    if x != types.int64:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


def _fma(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    if not (a == b == c == types.float64):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.fma(*args)

    return types.float64(types.float64, types.float64, types.float64), codegen


#: The IEEE 754 bits of a float64 as an int64 (a bit cast: no instruction). Compiled code only.
f64_bits = cast(Callable[[float], int], intrinsic(_f64_bits))
#: The float64 whose IEEE 754 bits are the int64 ``x``. Compiled code only.
bits_f64 = cast(Callable[[int], float], intrinsic(_bits_f64))
#: ``a * b + c`` with one rounding (LLVM's ``llvm.fma``: one instruction with FMA3).
#: Explicit, so the scalar and the vectorised copies of a loop round alike
#: (numba does not contract ``a * b + c`` by itself, and letting LLVM choose
#: with ``fastmath`` could round two copies differently). Compiled code only.
fma = cast(Callable[[float, float, float], float], intrinsic(_fma))


_EXP_SCALE = 1.0 / _LN2
_ROUND_MAGIC = 1.5 * 2.0**52
_ROUND_MAGIC_BITS = 0x4338000000000000  # the bits of _ROUND_MAGIC


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def fast_log(x: float) -> float:
    """Natural log of a finite, normal ``x > 0`` (error ~4e-16 absolute near 1, ~1e-15 relative).

    ``x = 2^e m`` with ``m`` in ``[sqrt(1/2), sqrt(2))``; ``log m = 2
    atanh(s)``, ``s = (m - 1) / (m + 1)``, ``|s| <= 0.1716``, by its odd
    series to ``s^17`` (the rest is below ``3e-16``), evaluated in Estrin's
    scheme with FMAs for a short dependency chain. No table: a table lookup
    in a vectorised loop is a gather, which costs more than the polynomial.
    Exact at powers of two (``fast_log(1.0) == 0.0``).
    """
    b = f64_bits(x)
    e = (b >> 52) - 1023
    m = bits_f64((b & _MANTISSA) | _EXP_ONE)  # the mantissa, in [1, 2)
    big = m > _SQRT2  # a select, not a branch, once vectorised
    m = 0.5 * m if big else m
    ef = float(e + 1 if big else e)
    s = (m - 1.0) / (m + 1.0)
    u = s * s
    u2 = u * u
    u4 = u2 * u2
    # 1 + u/3 + u^2/5 + ... + u^8/17, in pairs, then pairs of pairs
    p01 = fma(u, 1.0 / 3.0, 1.0)
    p23 = fma(u, 1.0 / 7.0, 1.0 / 5.0)
    p45 = fma(u, 1.0 / 11.0, 1.0 / 9.0)
    p67 = fma(u, 1.0 / 15.0, 1.0 / 13.0)
    q0 = fma(u2, p23, p01)
    q1 = fma(u2, p67, p45)
    p = fma(u4, fma(u4, 1.0 / 17.0, q1), q0)
    return fma(ef, _LN2_HI, fma(ef, _LN2_LO, 2.0 * s * p))


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def fast_log10(x: float) -> float:
    """Base-10 log of a finite, normal ``x > 0``."""
    return fast_log(x) * _LOG10E


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def fast_exp(x: float) -> float:
    """``exp(x)`` for ``|x| < 700`` (relative error ~1e-15 for ``|x| < 20``, ~3e-14 up to 700).

    ``x = n log(2) + r`` with ``|r| <= log(2) / 2`` (``log 2`` split in
    two, Cody & Waite 1980): ``exp(x) = 2^n exp(r)``, ``exp(r)`` by its
    series to ``r^12`` (the rest is below ``4e-16``) in Estrin's scheme with
    FMAs, ``2^n`` by writing the exponent bits. No table (see :func:`fast_log`).
    """
    # Round to an integer by adding 1.5 * 2^52: the sum's low bits are the
    # integer (faster than floor and a conversion, and vectorisable).
    t = x * _EXP_SCALE + _ROUND_MAGIC
    ni = f64_bits(t) - _ROUND_MAGIC_BITS
    n = t - _ROUND_MAGIC
    r = fma(n, -_LN2_LO, fma(n, -_LN2_HI, x))
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    # sum r^k / k!, k = 0..12: pairs, pairs of pairs, ...
    a0 = fma(r, 1.0, 1.0)
    a1 = fma(r, 1.0 / 6.0, 0.5)
    a2 = fma(r, 1.0 / 120.0, 1.0 / 24.0)
    a3 = fma(r, 1.0 / 5040.0, 1.0 / 720.0)
    a4 = fma(r, 1.0 / 362880.0, 1.0 / 40320.0)
    a5 = fma(r, 1.0 / 39916800.0, 1.0 / 3628800.0)
    b0 = fma(r2, a1, a0)
    b1 = fma(r2, a3, a2)
    b2 = fma(r2, a5, a4)
    c0 = fma(r4, b1, b0)
    c1 = fma(r4, 1.0 / 479001600.0, b2)
    p = fma(r8, c1, c0)
    return p * bits_f64((ni + 1023) << 52)
