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
  ``exp(r)`` by its Taylor series to ``r^13``; relative error about
  ``1e-15``. Domain: ``|x| < 700``.
- :func:`fast_log10`: ``fast_log(x) * log10(e)``.

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
import numpy as np
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


# fast_log: 1/c and -log(1/c) for the 128 mantissa intervals [c, c + 1/128),
# c = 1 + j/128 (so log(1) is exactly 0). -log(inv) is taken of the *rounded*
# inverse, so log(m) = -log(inv) + log(m * inv) holds whatever its rounding.
_LOG_BITS = 7
_LOG_N = 1 << _LOG_BITS
_LOG_INV = np.array([1.0 / (1.0 + j / _LOG_N) for j in range(_LOG_N)])
_LOG_NEGLOGINV = np.array([-math.log(v) for v in _LOG_INV])
_LOG_SHIFT = 52 - _LOG_BITS
# fast_exp: 2^(j/64) for j = 0..63.
_EXP_BITS = 6
_EXP_N = 1 << _EXP_BITS
_EXP_TABLE = np.array([2.0 ** (j / _EXP_N) for j in range(_EXP_N)])
_EXP_SCALE = _EXP_N / _LN2
_LN2_N_HI = _LN2_HI / _EXP_N  # exact: a power-of-two division
_LN2_N_LO = _LN2_LO / _EXP_N
_ROUND_MAGIC = 1.5 * 2.0**52
_ROUND_MAGIC_BITS = 0x4338000000000000  # the bits of _ROUND_MAGIC


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def fast_log(x: float) -> float:
    """Natural log of a finite, normal ``x > 0`` (error ~1e-16 absolute near 1, ~1e-15 relative).

    ``x = 2^e m``, ``m`` in [1, 2); the top 7 bits of ``m`` pick ``c <= m``
    from a table, and ``log m = log c + log1p(m / c - 1)`` with ``0 <= m / c -
    1 < 2^-7``, where six terms of the series leave an error below ``3e-16``.
    No division and a short dependency chain (the series is evaluated in
    Estrin's scheme), so a loop carrying a value through it stays fast.
    Exact at powers of two (``fast_log(1.0) == 0.0``).
    """
    b = f64_bits(x)
    e = (b >> 52) - 1023
    j = (b >> _LOG_SHIFT) & (_LOG_N - 1)
    m = bits_f64((b & _MANTISSA) | _EXP_ONE)  # the mantissa, in [1, 2)
    r = fma(m, _LOG_INV[j], -1.0)
    r2 = r * r
    # log1p(r) = r - r^2/2 + r^3 (1/3 - r/4 + r^2 (1/5 - r/6)) + O(r^7)
    hi = fma(r, -0.25, 1.0 / 3.0)
    lo = fma(r, -1.0 / 6.0, 0.2)
    p = fma(r2 * r, fma(r2, lo, hi), fma(r2, -0.5, r))
    ef = float(e)
    return fma(ef, _LN2_HI, _LOG_NEGLOGINV[j]) + fma(ef, _LN2_LO, p)


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def fast_log10(x: float) -> float:
    """Base-10 log of a finite, normal ``x > 0``."""
    return fast_log(x) * _LOG10E


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def fast_exp(x: float) -> float:
    """``exp(x)`` for ``|x| < 700`` (relative error ~1e-15).

    ``x = (64 k + j) log(2) / 64 + r`` with ``|r| <= log(2) / 128``:
    ``exp(x) = 2^k 2^(j/64) exp(r)``, ``2^(j/64)`` from a table, ``exp(r)``
    by five terms of its series (error below ``4e-14`` relative, usually
    far less), ``2^k`` by writing the exponent bits.
    """
    # Round to an integer by adding 1.5 * 2^52: the sum's low bits are the
    # integer (faster than floor and a conversion, and vectorisable).
    t = x * _EXP_SCALE + _ROUND_MAGIC
    ni = f64_bits(t) - _ROUND_MAGIC_BITS
    n = t - _ROUND_MAGIC
    r = fma(n, -_LN2_N_LO, fma(n, -_LN2_N_HI, x))
    r2 = r * r
    p = fma(r2, fma(r2, fma(r, 1.0 / 120.0, 1.0 / 24.0), fma(r, 1.0 / 6.0, 0.5)), 1.0 + r)
    return (p * _EXP_TABLE[ni & (_EXP_N - 1)]) * bits_f64(((ni >> _EXP_BITS) + 1023) << 52)
