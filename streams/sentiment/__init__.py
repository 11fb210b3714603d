"""Sentiment scoring behind one interface.

A scorer turns a batch of texts into a continuous score in [-1, 1] and a
class (negative / neutral / positive). The ingest agent, ``crisiswatch
score`` and the backtest all call :func:`load_scorer` with the configured
name, so a trained model replaces the lexicon scorer without touching them.
"""

from __future__ import annotations

from pathlib import Path

from detectors.numba_cache import drop_if_sources_changed

# Before the kernel modules are imported: model.py's kernels call features.py's.
drop_if_sources_changed(Path(__file__).parent)

from .base import LABELS, ScoreBatch, SentimentScorer, load_scorer  # noqa: E402

__all__ = ["LABELS", "ScoreBatch", "SentimentScorer", "load_scorer"]
