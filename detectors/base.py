"""The detector API shared by the stream and every offline tool.

A detector owns struct-of-arrays state with one row per brand (of one
partition) and scores one event-time bucket of *all* its brands per call:

- ``update(stats) -> scores``: one bucket; ``stats`` arrays have shape (n,),
  row i is brand i. Rows beyond the current state are new brands and get
  fresh state. Returns anomaly scores in [0, 1] (meaning documented per
  detector); 0 during warm-up and for buckets without data.
- ``run(stats) -> scores``: a whole history; ``stats`` arrays have shape
  (T, n); returns (T, n). Equal to calling ``update`` T times.
- Both take an optional bucket start time (``timestamp``, seconds since the
  Unix epoch, UTC; ``timestamps`` of shape (T,) for ``run``). Detectors with
  a time-of-day profile use it; without it they advance their own clock by
  one bucket per call. Detectors that do not need it ignore it.
- ``to_state()`` / ``from_state(state)``: plain dict of numpy arrays and
  numbers, for checkpoints; a round trip changes no future score.

State is struct-of-arrays with brands on the *last* axis: a vector ``(n,)``
per field, or a table ``(fields, n)`` whose rows are fields, so one bucket
update streams each field through memory once.

Detectors are causal: the score for bucket t uses nothing after t.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class BucketStats(NamedTuple):
    """Per-brand sums for one bucket (shape (n,)) or a history (shape (T, n)).

    ``count``: mentions; ``scored``: mentions with a sentiment score;
    ``negative``: mentions labelled negative; ``sentiment_sum``: sum of
    sentiment scores of the scored mentions.
    """

    count: FloatArray  # type: ignore[assignment]  # shadows tuple.count; kept for the API
    scored: FloatArray
    negative: FloatArray
    sentiment_sum: FloatArray

    @classmethod
    def zeros(cls, *shape: int) -> BucketStats:
        return cls(*(np.zeros(shape, dtype=np.float64) for _ in range(4)))

    def row(self, t: int) -> BucketStats:
        return BucketStats(*(a[t] for a in self))

    def check(self, ndim: int) -> BucketStats:
        """Coerce to float64 arrays of equal shape with ``ndim`` dimensions."""
        arrs = [np.ascontiguousarray(a, dtype=np.float64) for a in self]
        shape = arrs[0].shape
        if len(shape) != ndim or any(a.shape != shape for a in arrs):
            raise ValueError(
                f"BucketStats arrays must all have {ndim} dimension(s) and one shape; "
                f"got {[a.shape for a in arrs]}"
            )
        return BucketStats(*arrs)


class Detector(ABC):
    """Base class: subclasses implement ``_grow``, ``update`` and the state fields."""

    name: ClassVar[str]
    #: Names of the state arrays (one row per brand); scalars go in ``params``.
    state_fields: ClassVar[tuple[str, ...]]
    #: Names of scalar state attributes shared by all brands (e.g. a clock).
    scalar_fields: ClassVar[tuple[str, ...]] = ()
    #: Version of the state layout; ``from_state`` refuses states of another version.
    state_layout: ClassVar[int] = 1
    #: True where ``update_many`` is cheaper than ``update`` per bucket (its own kernel).
    native_update_many: ClassVar[bool] = False

    def __init__(self) -> None:
        self.n = 0

    @property
    @abstractmethod
    def params(self) -> dict[str, Any]: ...

    @abstractmethod
    def update(self, stats: BucketStats, timestamp: float | None = None) -> FloatArray: ...

    def update_many(
        self, stats: BucketStats, timestamps: Sequence[float]
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        """``update`` for each row of ``stats`` (shape (T, n)) in order, at ``timestamps``.

        Returns the scores (T, n) and, for a detector that keeps per-signal
        scores (``last_scores``), each signal's scores (T, n); otherwise an
        empty dict. Afterwards the detector is as if ``update`` had been called
        T times. Subclasses may do it in one kernel call (the results must be
        identical); this default calls ``update``.
        """
        scores, per = [], []
        for t, ts in enumerate(timestamps):
            scores.append(self.update(stats.row(t), ts))
            last = getattr(self, "last_scores", None)
            if last:
                per.append(dict(last))
        signals = {k: np.stack([p[k] for p in per]) for k in per[0]} if per else {}
        return np.stack(scores), signals

    def run(self, stats: BucketStats, timestamps: npt.ArrayLike | None = None) -> FloatArray:
        stats = stats.check(2)
        T = stats.count.shape[0]
        ts = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        if ts is not None and ts.shape != (T,):
            raise ValueError(f"timestamps must have shape ({T},), got {ts.shape}")
        out = np.zeros(stats.count.shape, dtype=np.float64)
        for t in range(T):
            out[t] = self.update(stats.row(t), None if ts is None else float(ts[t]))
        return out

    def ensure_rows(self, n: int) -> None:
        """Give brands n-1, n-2, ... beyond the current rows fresh state."""
        if n > self.n:
            self._grow(n)
            self.n = n

    @abstractmethod
    def _grow(self, n: int) -> None: ...

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            f: getattr(self, f)[..., : self.n].copy() for f in self.state_fields
        }
        state["__detector__"] = self.name
        state["__params__"] = dict(self.params)
        if self.state_layout != 1:
            state["__layout__"] = self.state_layout
        if self.scalar_fields:
            state["__scalars__"] = {f: getattr(self, f) for f in self.scalar_fields}
        return state

    @classmethod
    def from_state(cls: type[D], state: dict[str, Any]) -> D:
        if state.get("__detector__") != cls.name:
            raise ValueError(
                f"state is for detector {state.get('__detector__')!r}, not {cls.name!r}"
            )
        layout = state.get("__layout__", 1)
        if layout != cls.state_layout:
            raise ValueError(
                f"{cls.name} state has layout version {layout}, this version reads "
                f"{cls.state_layout}: it was written by another version of the detector; "
                "start from an empty state"
            )
        det = cls(**state["__params__"])
        n = np.shape(state[cls.state_fields[0]])[-1]
        det.ensure_rows(n)
        for f in cls.state_fields:
            target = getattr(det, f)
            if np.shape(state[f])[:-1] != target.shape[:-1]:
                raise ValueError(
                    f"{cls.name} state field {f!r} has shape {np.shape(state[f])}, "
                    f"expected {(*target.shape[:-1], n)}"
                )
            target[..., :n] = state[f]
        for f, v in state.get("__scalars__", {}).items():
            if f not in cls.scalar_fields:
                raise ValueError(f"unknown scalar state {f!r} for detector {cls.name!r}")
            setattr(det, f, v)
        return det


D = TypeVar("D", bound=Detector)

_REGISTRY: dict[str, Callable[..., Detector]] = {}


def register(cls: type[D]) -> type[D]:
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    return sorted(_REGISTRY)


def make_detector(name: str, **params: Any) -> Detector:
    """Build a registered detector by name, with validated parameters."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(available())}")
    return _REGISTRY[name](**params)


def grow(a: FloatArray, n: int, fill: float) -> FloatArray:
    """Return ``a`` with capacity >= n brands (amortised doubling), new brands = fill.

    Brands are the last axis: per-brand vectors (n,) and field tables (k, n).
    """
    have = a.shape[-1]
    if have >= n:
        return a
    cap = max(n, 2 * have, 16)
    out = np.full((*a.shape[:-1], cap), fill, dtype=a.dtype)
    out[..., :have] = a
    return out
