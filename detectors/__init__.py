"""Rolling crisis detectors: numba kernels and detector classes.

Pure computation over numpy arrays; no Kafka, Faust or Prometheus imports.
Every detector follows the API of :class:`detectors.base.Detector`.
"""

from __future__ import annotations

from .base import BucketStats, Detector, available, make_detector
from .negative_share import NegativeShareDetector

__all__ = ["BucketStats", "Detector", "NegativeShareDetector", "available", "make_detector"]
