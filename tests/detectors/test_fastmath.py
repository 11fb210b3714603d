"""The vectorisable log/exp against the C library, and that loops using them do vectorise."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import fastmath as F


@numba.njit(error_model="numpy")
def _logs(x: np.ndarray, out: np.ndarray) -> None:
    for i in range(x.shape[0]):
        out[i] = F.fast_log(x[i])


@numba.njit(error_model="numpy")
def _exps(x: np.ndarray, out: np.ndarray) -> None:
    for i in range(x.shape[0]):
        out[i] = F.fast_exp(x[i])


@numba.njit(error_model="numpy")
def _fma(a: float, b: float, c: float) -> float:
    return F.fma(a, b, c)


def test_fast_log_relative_error_over_the_whole_range() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [np.exp(rng.uniform(-700, 700, 200_000)), rng.uniform(0.5, 2.0, 100_000), [1.0, 2.0]]
    )
    out = np.empty_like(x)
    _logs(x, out)
    ref = np.log(x)
    err = np.abs(out - ref)
    assert (err <= 4e-16 + 2e-15 * np.abs(ref)).all()
    assert out[-2] == 0.0 and out[-1] == math.log(2.0)  # exact at powers of two


def test_fast_exp_relative_error() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-20, 20, 200_000), rng.uniform(-700, 700, 100_000), [0.0]])
    out = np.empty_like(x)
    _exps(x, out)
    ref = np.exp(x)
    small = np.abs(x) <= 20
    assert (np.abs(out - ref)[small] <= 2e-15 * ref[small]).all()
    assert (np.abs(out - ref) <= 5e-14 * ref).all()
    assert out[-1] == 1.0


@settings(max_examples=300, deadline=None)
@given(st.floats(1e-300, 1e300))
def test_fast_log_property(x: float) -> None:
    assert math.isclose(F.fast_log(x), math.log(x), rel_tol=2e-15, abs_tol=4e-16)
    assert math.isclose(F.fast_log10(x), math.log10(x), rel_tol=3e-15, abs_tol=4e-16)


@settings(max_examples=300, deadline=None)
@given(st.floats(-700, 700))
def test_fast_exp_property(x: float) -> None:
    assert math.isclose(F.fast_exp(x), math.exp(x), rel_tol=5e-14)


def test_fma_rounds_once() -> None:
    a = 1.0 + 2.0**-30
    # a * a = 1 + 2^-29 + 2^-60: a separate multiply loses the 2^-60, the fused one keeps it
    assert _fma(a, a, -(1.0 + 2.0**-29)) == 2.0**-60
    assert a * a - (1.0 + 2.0**-29) == 0.0


@pytest.mark.parametrize("kernel", [_logs, _exps])
def test_loops_over_fast_math_vectorise(kernel: numba.core.registry.CPUDispatcher) -> None:
    """The point of the module: LLVM vectorises a loop using them (a C library call would stop it)."""
    x, out = np.linspace(1.0, 2.0, 64), np.empty(64)
    kernel(x, out)
    ir = next(iter(kernel.inspect_llvm().values()))
    assert "vector.body" in ir
