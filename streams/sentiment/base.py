"""The scorer interface and the registry of scorers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError

#: Class index -> label; ``ScoreBatch.labels`` holds these indices.
LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class ScoreBatch:
    """Scores for one batch, aligned with the input texts."""

    scores: npt.NDArray[np.float64]  # in [-1, 1]
    labels: npt.NDArray[np.int8]  # indices into LABELS

    def __len__(self) -> int:
        return len(self.scores)


class SentimentScorer(Protocol):
    """Scores batches of texts. Implementations must be pure and thread-safe."""

    #: Name and version, written to every scored mention as ``sentiment_source``.
    name: str

    def score(self, texts: Sequence[str]) -> ScoreBatch: ...


_FACTORIES: dict[str, Callable[[], SentimentScorer]] = {}


def register(name: str) -> Callable[[Callable[[], SentimentScorer]], Callable[[], SentimentScorer]]:
    def deco(factory: Callable[[], SentimentScorer]) -> Callable[[], SentimentScorer]:
        _FACTORIES[name] = factory
        return factory

    return deco


def load_scorer(name: str) -> SentimentScorer:
    """Build the scorer called ``name`` (``vader``, or one registered by a module)."""
    # Both modules register their scorers on import.
    from . import model, vader  # noqa: F401

    if name not in _FACTORIES:
        raise ConfigError(
            f"unknown sentiment model {name!r} (CRISISWATCH_SENTIMENT_MODEL); "
            f"known: {', '.join(sorted(_FACTORIES))}"
        )
    return _FACTORIES[name]()
