"""Sentiment scoring behind one interface.

A scorer turns a batch of texts into a continuous score in [-1, 1] and a
class (negative / neutral / positive). The ingest agent, ``crisiswatch
score`` and the backtest all call :func:`load_scorer` with the configured
name, so a trained model replaces the lexicon scorer without touching them.
"""

from __future__ import annotations

from .base import LABELS, ScoreBatch, SentimentScorer, load_scorer

__all__ = ["LABELS", "ScoreBatch", "SentimentScorer", "load_scorer"]
