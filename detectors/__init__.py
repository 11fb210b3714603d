"""Rolling crisis detectors: numba kernels and detector classes.

Pure computation over numpy arrays; no Kafka, Faust or Prometheus imports.
Every detector follows the API of :class:`detectors.base.Detector` and is
registered for :func:`make_detector`: ``negative_share``, ``volume``,
``mean_sentiment`` and the combined ``crisis``. See ``docs/detectors.md``.
"""

from __future__ import annotations

from pathlib import Path

from .numba_cache import drop_if_sources_changed

# Before any kernel module is imported: their cache is keyed on their own file only.
drop_if_sources_changed(Path(__file__).parent)

from .base import BucketStats, Detector, available, make_detector  # noqa: E402
from .combined import CrisisDetector  # noqa: E402
from .negative_share import NegativeShareDetector  # noqa: E402
from .sentiment import SentimentShiftDetector  # noqa: E402
from .volume import VolumeDetector  # noqa: E402

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
