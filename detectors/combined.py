"""Crisis score: one number per brand and bucket, and which signals drove it.

Three signals, each turned into "digits of surprise" ``S`` and then into
``S / (S + 3)`` so they share one scale (0.5 = one-in-a-thousand):

- ``volume``: :class:`~detectors.volume.VolumeDetector` in dense mode (the
  surprise of the current seasonal, count-aware volume z);
- ``negative_share``: the binomial z of the bucket's negative count from
  :class:`~detectors.negative_share.NegativeShareDetector`, as a one-sided
  Gaussian tail;
- ``mean_sentiment``: :class:`~detectors.sentiment.SentimentShiftDetector`
  (CUSUM of the count-aware drop in mean sentiment).

The crisis score is the largest of the three (so its meaning is the
strongest single piece of evidence; no signal can be outvoted). After each
``update``, ``last_scores`` holds every signal's score and ``last_drivers``
a bitmask (``DRIVER_BITS``) of the signals scoring ``>= driver_threshold``;
:meth:`CrisisDetector.drivers` names them for one brand.

Gaps and warm-up are each signal's own (see their modules): a brand with no
mentions in a bucket keeps a volume observation (0 mentions) and no
negativity or sentiment evidence.

>>> import numpy as np
>>> det = CrisisDetector(volume={"bucket_seconds": 3600, "warmup_hours": 24})
>>> calm = BucketStats(*(np.array([v]) for v in (100.0, 100.0, 10.0, 20.0)))
>>> for _ in range(48):
...     _ = det.update(calm)
>>> angry = BucketStats(*(np.array([v]) for v in (100.0, 100.0, 70.0, -50.0)))
>>> float(det.update(angry)[0]) > 0.9, det.drivers(0)
(True, ['negative_share', 'mean_sentiment'])
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .base import BucketStats, Detector, FloatArray, register
from .kernels import gauss_scores
from .negative_share import NegativeShareDetector
from .sentiment import SentimentShiftDetector
from .volume import VolumeDetector

SIGNALS = ("volume", "negative_share", "mean_sentiment")
DRIVER_BITS = {name: 1 << i for i, name in enumerate(SIGNALS)}


def _z_score(z: FloatArray) -> FloatArray:
    out = np.zeros(len(z))
    gauss_scores(np.ascontiguousarray(z, dtype=np.float64), out)
    return out


@register
class CrisisDetector(Detector):
    """Combined crisis score over volume, negative share and mean sentiment."""

    name: ClassVar[str] = "crisis"
    state_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        volume: dict[str, Any] | None = None,
        negative_share: dict[str, Any] | None = None,
        mean_sentiment: dict[str, Any] | None = None,
        driver_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        if not 0 < driver_threshold < 1:
            raise ValueError(f"driver_threshold must be in (0, 1), got {driver_threshold}")
        vol = dict(volume or {})
        if vol.get("sparse", False):
            raise ValueError("the crisis detector needs the dense volume score: drop volume.sparse")
        vol["sparse"] = False
        self.volume = VolumeDetector(**vol)
        self.negative_share = NegativeShareDetector(**(negative_share or {}))
        self.mean_sentiment = SentimentShiftDetector(**(mean_sentiment or {}))
        self.driver_threshold = float(driver_threshold)
        self.last_scores: dict[str, FloatArray] = {s: np.zeros(0) for s in SIGNALS}
        self.last_drivers = np.zeros(0, dtype=np.int64)

    @property
    def params(self) -> dict[str, Any]:
        return {
            "volume": self.volume.params,
            "negative_share": self.negative_share.params,
            "mean_sentiment": self.mean_sentiment.params,
            "driver_threshold": self.driver_threshold,
        }

    def _grow(self, n: int) -> None:
        for d in (self.volume, self.negative_share, self.mean_sentiment):
            d.ensure_rows(n)

    def update(self, stats: BucketStats, timestamp: float | None = None) -> FloatArray:
        stats = stats.check(1)
        self.ensure_rows(stats.count.shape[0])
        vol = self.volume.update(stats, timestamp)
        _, z_neg = self.negative_share.update_z(stats)
        sent = self.mean_sentiment.update(stats)
        scores = {"volume": vol, "negative_share": _z_score(z_neg), "mean_sentiment": sent}
        self.last_scores = scores
        drivers = np.zeros(len(vol), dtype=np.int64)
        for s in SIGNALS:
            drivers |= np.where(scores[s] >= self.driver_threshold, DRIVER_BITS[s], 0)
        self.last_drivers = drivers
        return np.maximum(np.maximum(vol, scores["negative_share"]), sent)

    def drivers(self, i: int) -> list[str]:
        """Names of the signals that drove brand ``i``'s last score (>= driver_threshold)."""
        return [s for s in SIGNALS if int(self.last_drivers[i]) & DRIVER_BITS[s]]

    def to_state(self) -> dict[str, Any]:
        return {
            "__detector__": self.name,
            "__params__": dict(self.params),
            "n": self.n,
            "parts": {s: getattr(self, s).to_state() for s in SIGNALS},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CrisisDetector:
        if state.get("__detector__") != cls.name:
            raise ValueError(
                f"state is for detector {state.get('__detector__')!r}, not {cls.name!r}"
            )
        det = cls(**state["__params__"])
        det.volume = VolumeDetector.from_state(state["parts"]["volume"])
        det.negative_share = NegativeShareDetector.from_state(state["parts"]["negative_share"])
        det.mean_sentiment = SentimentShiftDetector.from_state(state["parts"]["mean_sentiment"])
        det.n = int(state["n"])
        det._grow(det.n)
        return det
