"""Offline backtest: the stream's validation, scoring, buckets, detectors and
lifecycle over a JSONL file, without Kafka.

Brands are split over ``settings.partitions`` engines with Kafka's default
partitioner (murmur2 of the brand key, as the replay tool and the ingest
agent produce them), so each engine sees exactly the brands, in the same
order, that the detect agent of that partition sees; the events are the
stream's events.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from kafka.partitioner.default import murmur2

from detectors import BucketStats

from .detect import DetectEngine
from .errors import InputFileError
from .ingest import DeadLetter, Ingestor, RawRecord
from .sentiment import SentimentScorer, load_scorer
from .settings import Settings


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partition for a keyed record (murmur2, positive, modulo)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass
class Series:
    """Per-brand bucket series recorded during a backtest, for the report."""

    buckets: list[int] = field(default_factory=list)
    volume: list[float] = field(default_factory=list)
    negative_share: list[float] = field(default_factory=list)
    score: list[float] = field(default_factory=list)


@dataclass
class BacktestResult:
    events: list[dict[str, Any]]
    dead: list[DeadLetter]
    late: int
    duplicates: int
    mentions: int
    seconds: float
    series: dict[str, Series]
    totals: dict[str, int]


class Backtest:
    def __init__(
        self,
        settings: Settings,
        scorer: SentimentScorer | None = None,
        *,
        record_series: bool = False,
    ) -> None:
        # History is judged by its own clock: no wall-clock cap on the watermark
        # (in a live stream it only matters for mentions from fast clocks).
        self.s = settings = settings.model_copy(update={"watermark_future_skew_seconds": None})
        self.ingestor = Ingestor(settings, scorer or load_scorer(settings.sentiment_model))
        self.engines: dict[int, DetectEngine] = {}
        self.record_series = record_series
        self.series: dict[str, Series] = defaultdict(Series)
        self._pcache: dict[str, int] = {}

    def _engine(self, p: int) -> DetectEngine:
        eng = self.engines.get(p)
        if eng is None:
            eng = self.engines[p] = DetectEngine(self.s)
            if self.record_series:
                eng.on_close = self._recorder(eng)
        return eng

    def _recorder(self, eng: DetectEngine) -> Callable[[int, BucketStats, np.ndarray], None]:
        def record(b: int, st: BucketStats, scores: np.ndarray) -> None:
            share = np.divide(
                st.negative, st.scored, out=np.full(len(st.count), np.nan), where=st.scored > 0
            )
            for i, brand in enumerate(eng.brands):
                ser = self.series[brand]
                ser.buckets.append(b)
                ser.volume.append(float(st.count[i]))
                ser.negative_share.append(float(share[i]))
                ser.score.append(float(scores[i]))

        return record

    def _partition(self, brand: str) -> int:
        p = self._pcache.get(brand)
        if p is None:
            p = self._pcache[brand] = partition_for(brand.encode(), self.s.partitions)
        return p

    def run(
        self,
        lines: Iterable[bytes],
        *,
        batch: int = 5000,
        progress: Callable[[int], None] | None = None,
    ) -> BacktestResult:
        t0 = time.perf_counter()
        events: list[dict[str, Any]] = []
        dead: list[DeadLetter] = []
        late = dups = n = 0
        for chunk in _chunks(lines, batch):
            recs = [RawRecord(None, line, "file", 0, n + k) for k, line in enumerate(chunk)]
            n += len(chunk)
            res = self.ingestor.process(recs)
            dead.extend(res.dead)
            by_p: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for r in res.scored:
                by_p[self._partition(r.brand)].append(r.value)
            for p in sorted(by_p):
                out = self._engine(p).add(by_p[p])
                events.extend(out.events)
                late += len(out.late)
                dups += out.duplicates
            if progress:
                progress(len(chunk))
        for p in sorted(self.engines):
            events.extend(self.engines[p].flush())
        totals: dict[str, int] = defaultdict(int)
        for eng in self.engines.values():
            for b, c in eng.totals.items():
                totals[b] += c
        return BacktestResult(
            events=events,
            dead=dead,
            late=late,
            duplicates=dups,
            mentions=n,
            seconds=time.perf_counter() - t0,
            series=dict(self.series),
            totals=dict(totals),
        )


def _chunks(lines: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for line in lines:
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def read_lines(path: Path) -> Iterator[bytes]:
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        with path.open("rb") as f:
            yield from f
    except OSError as exc:
        raise InputFileError(f"{path}: {exc.strerror}") from None
