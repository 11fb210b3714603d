"""The runnable examples in the detectors' docstrings."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "detectors.kernels",
    "detectors.fastmath",
    "detectors.tuning",
    "detectors.volume",
    "detectors.negative_share",
    "detectors.sentiment",
    "detectors.combined",
    "detectors.nab",
    "detectors.series",
    "detectors.bench",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0
