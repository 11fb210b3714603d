"""VADER lexicon scorer (Hutto & Gilbert, ICWSM 2014): the baseline.

>>> s = VaderScorer()
>>> b = s.score(["I love this brand", "worst service ever, never again"])
>>> [LABELS[i] for i in b.labels]
['positive', 'negative']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from .base import LABELS, ScoreBatch, register

__all__ = ["LABELS", "VaderScorer"]

#: VADER's own recommended cut-offs on the compound score.
NEUTRAL_BAND = 0.05


class VaderScorer:
    name = "vader-3.3.2"

    def __init__(self) -> None:
        self._sia = SentimentIntensityAnalyzer()

    def score(self, texts: Sequence[str]) -> ScoreBatch:
        scores = np.fromiter(
            (self._sia.polarity_scores(t)["compound"] for t in texts),
            dtype=np.float64,
            count=len(texts),
        )
        labels = np.ones(len(scores), dtype=np.int8)
        labels[scores <= -NEUTRAL_BAND] = 0
        labels[scores >= NEUTRAL_BAND] = 2
        return ScoreBatch(scores=scores, labels=labels)


@register("vader")
def _vader() -> VaderScorer:
    return VaderScorer()
