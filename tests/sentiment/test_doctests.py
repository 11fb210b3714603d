"""The runnable examples in the sentiment modules' docstrings."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "streams.sentiment.features",
    "streams.sentiment.data",
    "streams.sentiment.model",
    "streams.sentiment.train",
    "streams.sentiment.enrich",
    "streams.sentiment.vader",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0
