"""Rolling crisis detectors: numba kernels and detector classes.

Pure computation over numpy arrays; no Kafka, Faust or Prometheus imports.
Every detector follows the API of :class:`detectors.base.Detector` and is
registered for :func:`make_detector`: ``negative_share``, ``volume``,
``mean_sentiment`` and the combined ``crisis``. See ``docs/detectors.md``.
"""

from __future__ import annotations

from .base import BucketStats, Detector, available, make_detector
from .combined import CrisisDetector
from .negative_share import NegativeShareDetector
from .sentiment import SentimentShiftDetector
from .volume import VolumeDetector

__all__ = [
    "BucketStats",
    "CrisisDetector",
    "Detector",
    "NegativeShareDetector",
    "SentimentShiftDetector",
    "VolumeDetector",
    "available",
    "make_detector",
]
