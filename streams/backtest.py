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
from .memory import batch_gc
from .sentiment import SentimentScorer, load_scorer
from .settings import Settings

#: Bytes read at a time by :func:`read_chunks`.
READ_BLOCK = 1 << 22

#: Records per batch: large enough that per-batch costs vanish, small enough to show progress.
CHUNK = 20_000


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
        #: CPU seconds (this thread) spent per stage so far: decode + validate, score, detect.
        self.stage_seconds = {"decode": 0.0, "score": 0.0, "detect": 0.0}

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
        batch: int = CHUNK,
        progress: Callable[[int], None] | None = None,
    ) -> BacktestResult:
        """Backtest JSONL lines (blank lines are skipped)."""
        return self.run_chunks(_chunks(lines, batch), progress=progress)

    def run_chunks(
        self,
        chunks: Iterable[list[bytes]],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> BacktestResult:
        """Backtest batches of records, each batch as the stream's ingest would see it."""
        with batch_gc():
            return self._run_chunks(chunks, progress)

    def _run_chunks(
        self, chunks: Iterable[list[bytes]], progress: Callable[[int], None] | None
    ) -> BacktestResult:
        t0 = time.perf_counter()
        events: list[dict[str, Any]] = []
        dead: list[DeadLetter] = []
        late = dups = n = 0
        parts = self.s.partitions
        for chunk in chunks:
            base = n

            def refuse(i: int, reason: str, base: int = base, chunk: list[bytes] = chunk) -> None:
                dead.append(DeadLetter(RawRecord(None, chunk[i], "file", 0, base + i), reason))

            n += len(chunk)
            c0 = time.thread_time()
            batch = self.ingestor.decode_columns(chunk, refuse)
            c1 = time.thread_time()
            scores = self.ingestor.score_batch(batch)
            if scores is not None:
                batch.apply(scores, self.ingestor.scorer.name)
            c2 = time.thread_time()
            cols = batch.mentions()
            if len(cols):
                if parts == 1:
                    by_p: dict[int, Any] = {0: None}
                else:
                    lut = np.fromiter(
                        map(self._partition, cols.brands), dtype=np.int64, count=len(cols.brands)
                    )
                    of_row = lut[cols.bcode]
                    by_p = {int(p): np.flatnonzero(of_row == p) for p in np.unique(of_row).tolist()}
                for p in sorted(by_p):
                    out = self._engine(p).add_columns(cols, by_p[p])
                    events.extend(out.events)
                    late += len(out.late)
                    dups += out.duplicates
            stage = self.stage_seconds
            stage["decode"] += c1 - c0
            stage["score"] += c2 - c1
            stage["detect"] += time.thread_time() - c2
            if progress:
                progress(len(chunk))
        c0 = time.thread_time()
        for p in sorted(self.engines):
            events.extend(self.engines[p].flush())
        self.stage_seconds["detect"] += time.thread_time() - c0
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


def read_chunks(path: Path, size: int = CHUNK) -> Iterator[list[bytes]]:
    """Non-blank lines of a JSONL file, ``size`` at a time (read in large blocks)."""
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    chunk: list[bytes] = []
    rest = b""
    try:
        with path.open("rb") as f:
            while True:
                block = f.read(READ_BLOCK)
                if not block:
                    break
                lines = block.split(b"\n")
                cr = b"\r" in block
                if rest:  # the line cut at the end of the previous block (no 4 MiB copy)
                    lines[0] = rest + lines[0]
                    cr = cr or b"\r" in rest
                rest = lines.pop()
                if cr:
                    lines = [line.rstrip(b"\r") for line in lines]
                # A blank or whitespace-only line sorts first (every byte of it is <= b" "):
                # one C-level min() says whether any line needs the test.
                if lines and min(lines)[:1] <= b" ":
                    lines = [line for line in lines if line and not line.isspace()]
                chunk.extend(lines)
                while len(chunk) >= size:
                    yield chunk[:size]
                    chunk = chunk[size:]
    except OSError as exc:
        raise InputFileError(f"{path}: {exc.strerror}") from None
    if rest.strip():
        chunk.append(rest.rstrip(b"\r"))
    if chunk:
        yield chunk


def count_lines(path: Path) -> int:
    """Lines in a file (for a progress bar's total), counted in large blocks."""
    n = 0
    last = b"\n"
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def read_lines(path: Path) -> Iterator[bytes]:
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        with path.open("rb") as f:
            yield from f
    except OSError as exc:
        raise InputFileError(f"{path}: {exc.strerror}") from None
