"""The batch-oriented hot path: ingest as a batch consumer, envelopes to detect.

Why: Faust pays a fixed Python cost for every record it hands an agent
(about 10,000-13,000 records/s for an *empty* agent on the development
machine, against 200,000+ records/s for a bare aiokafka consumer; see
``docs/performance.md``). Paying it per mention caps the whole pipeline.
So per-mention records never pass through a Faust stream:

- :class:`IngestService` is a :class:`mode.Service` started with the Faust
  app (same worker process, CLI, web server and lifecycle). It reads
  ``mentions.raw`` with its own aiokafka consumer (group
  ``<app_id>-ingest``, so Kafka still balances partitions across workers),
  ``getmany`` in large batches, validates and scores a whole batch at once,
  and writes with the producer's batch builder:

  * ``mentions.scored``: one record per mention, the documented public topic;
  * ``<app_id>-scored-batches``: one *envelope* per target partition and
    batch (a JSON array of the same scored mentions, at most
    :data:`ENVELOPE_MAX_BYTES`), the detect agent's input;
  * dead letters, as before.

  Source offsets are committed only after every output record of the batch
  is acknowledged (at-least-once; the detect engine drops duplicate mention
  ids, so a re-delivered batch is counted once).

- The detect Faust agent consumes envelopes: a few dozen Faust events per
  second carry tens of thousands of mentions. Checkpoints and the replay of
  :mod:`streams.recovery` work on envelope offsets with the same exactness
  argument as before (an envelope is counted whole or not at all).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import operator
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder
from mode import Service

from . import metrics as m
from .columns import Mentions
from .ingest import DeadLetter, RawRecord
from .lean_fetch import lean_records
from .recovery import aiokafka_config, envelope_topic
from .settings import Settings

if TYPE_CHECKING:
    from .ingest import Ingestor

log = logging.getLogger(__name__)

#: Largest envelope value. Brokers refuse records over ``message.max.bytes``
#: (1 MiB by default, and an existing envelope topic may have that default);
#: 900 KiB leaves room for the record overhead. A batch of 5,000 tweets for
#: four partitions then needs no split, and one envelope decodes in ~3 ms.
ENVELOPE_MAX_BYTES = 900 * 1024
#: Records per ingest batch (``getmany``): large enough that the per-batch
#: costs (a scoring call, a produce round trip, a commit) vanish per mention,
#: small enough to keep a batch well under 100 ms.
INGEST_MAX_RECORDS = 5000


#: The ingest producer's settings (beside the connection's); bench-pipeline's relay uses them too.
INGEST_PRODUCER: dict[str, Any] = {
    "acks": "all",  # as Faust's producer_acks=-1
    # Retries after a broker failure must not reorder a partition's
    # envelopes: a later batch landing first would advance the detect
    # watermark and make the earlier one late.
    "enable_idempotence": True,
    "linger_ms": 5,
    "max_batch_size": 1024 * 1024,
    "max_request_size": 8 * 1024 * 1024,
    "request_timeout_ms": 60_000,
}

_value = operator.attrgetter("value")


def ingest_group(settings: Settings) -> str:
    return f"{settings.app_id}-ingest"


class Partitioner:
    """Kafka's default key partitioner (murmur2, as the Java client), cached per key.

    The same brand lands on the same partition of ``mentions.raw``,
    ``mentions.scored`` and the envelope topic (when they have the same
    partition count), so one detect task sees every mention of a brand.

    >>> Partitioner(4)(b"acme") == Partitioner(4)(b"acme")
    True
    """

    __slots__ = ("_cache", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self._cache: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        p = self._cache.get(key)
        if p is None:
            if len(self._cache) > 1_000_000:  # bounded: brands are many, not unbounded
                self._cache.clear()
            p = self._cache[key] = (murmur2(key) & 0x7FFFFFFF) % self.n
        return p


async def send_batched(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    records: Iterable[tuple[bytes | None, bytes]],
    timestamp_ms: int | None = None,
    headers: Iterable[list[tuple[str, bytes]]] | None = None,
) -> list[asyncio.Future[Any]]:
    """Write records to one partition with the producer's batch builder.

    ``send()`` costs a coroutine, a future and a partitioner call per record;
    the builder appends into a C buffer. ``headers``: one list per record, or
    None for none. Returns the delivery futures.
    """
    futs: list[asyncio.Future[Any]] = []
    pairs: Iterator[tuple[tuple[bytes | None, bytes], list[tuple[str, bytes]]]] = (
        zip(records, itertools.repeat([]))
        if headers is None
        else zip(records, headers, strict=True)
    )
    batch = producer.create_batch()
    while (rest := _fill(batch, pairs, timestamp_ms)) is not None:
        # The batch is full: send it, and start the next with the record that did not fit.
        if batch.record_count():
            futs.append(await producer.send_batch(batch, topic, partition=partition))
        batch = producer.create_batch()
        (key, value), h = rest
        if batch.append(key=key, value=value, timestamp=timestamp_ms, headers=h) is None:
            raise ValueError(f"record of {len(value)} bytes does not fit a batch for {topic}")
    if batch.record_count():
        futs.append(await producer.send_batch(batch, topic, partition=partition))
    return futs


def _fill(
    batch: BatchBuilder,
    pairs: Iterator[tuple[tuple[bytes | None, bytes], list[tuple[str, bytes]]]],
    timestamp_ms: int | None,
) -> tuple[tuple[bytes | None, bytes], list[tuple[str, bytes]]] | None:
    """Append ``pairs`` to an empty ``batch`` until one does not fit; that one (or None: all fitted).

    Calls the C builder inside aiokafka's ``BatchBuilder`` directly (its
    ``append`` wrapper, a keyword call and two attribute tests per record, was
    half of the append's cost), keeping what the wrapper keeps: the relative
    offset, and the batch closed once it is full. An aiokafka whose batch
    builder differs gets its public ``append``.
    """
    builder = getattr(batch, "_builder", None)
    if (
        type(batch) is not BatchBuilder
        or builder is None
        or batch._key_serializer is not None
        or batch._value_serializer is not None
    ):
        for rec, h in pairs:
            if batch.append(key=rec[0], value=rec[1], timestamp=timestamp_ms, headers=h) is None:
                return rec, h
        return None
    append, off = builder.append, batch._relative_offset
    try:
        for rec, h in pairs:
            if append(off, timestamp_ms, rec[0], rec[1], h) is None:
                batch.close()
                return rec, h
            off += 1
    finally:
        batch._relative_offset = off
    return None


async def send_by_key(
    producer: AIOKafkaProducer,
    topic: str,
    part: Partitioner,
    records: Iterable[tuple[bytes, bytes]],
) -> list[asyncio.Future[Any]]:
    """Keyed records, grouped by ``part`` (arrival order kept inside a partition),
    written with :func:`send_batched`, one batch (or a few) per partition."""
    by_p: dict[int, list[tuple[bytes | None, bytes]]] = {}
    for key, value in records:
        by_p.setdefault(part(key), []).append((key, value))
    futs: list[asyncio.Future[Any]] = []
    for p, recs in by_p.items():
        futs += await send_batched(producer, topic, p, recs)
    return futs


#: Header of an envelope whose batch this worker also keeps decoded (:class:`Handoff`).
HANDOFF_HEADER = "crisiswatch-handoff"


class Handoff:
    """Envelopes this worker wrote for its own detect partitions, kept as the batches they encode.

    Detect reads every envelope from Kafka, in offset order, as before: the
    topic stays the only source of order, offsets, checkpoints and replays.
    But an envelope that ingest wrote in this process for a partition whose
    engine is here carries a token header (a random per-process prefix and a
    counter); the detect agent takes the batch kept under it instead of
    decoding the JSON again (the decode was 8-11% of a worker's event loop).
    The kept batch is the one the envelope's bytes were encoded from, so both
    paths count the same columns (``tests/test_fastpath.py`` holds the
    decoded envelope equal to it). Anything else decodes as before: an
    envelope of another worker or an earlier process, one evicted because
    detect fell behind (at most ``max_rows`` mentions are kept), or one whose
    length differs from the one the token was given for.
    """

    def __init__(self, max_rows: int = 200_000) -> None:
        self.max_rows = max_rows
        self._prefix = uuid.uuid4().bytes
        self._count = itertools.count()
        self._kept: OrderedDict[bytes, tuple[int, Mentions]] = OrderedDict()
        self._rows = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._kept)

    def put(self, batch: Mentions, envelope: bytes) -> bytes:
        """Keep ``batch`` (encoded as ``envelope``); the token for the envelope's header."""
        token = self._prefix + next(self._count).to_bytes(8, "big")
        self._kept[token] = (len(envelope), batch)
        self._rows += len(batch)
        while self._rows > self.max_rows and self._kept:
            _, (_, old) = self._kept.popitem(last=False)
            self._rows -= len(old)
        return token

    def take(self, headers: Any, envelope: bytes | None) -> Mentions | None:
        """The batch kept for an envelope with these headers, or None (decode it)."""
        token = _header(headers, HANDOFF_HEADER)
        got = self._kept.pop(token, None) if token is not None else None
        if got is None:
            self.misses += token is not None
            return None
        self._rows -= len(got[1])
        if envelope is None or len(envelope) != got[0]:
            self.misses += 1
            return None
        self.hits += 1
        return got[1]


def _header(headers: Any, name: str) -> bytes | None:
    if not headers:
        return None
    for k, v in headers.items() if isinstance(headers, dict) else headers:
        if k == name:
            return bytes(v) if v is not None else None
    return None


def _by_partition(parts: npt.NDArray[np.int64]) -> list[tuple[int, npt.NDArray[np.intp]]]:
    """Row indices per partition number (rows in input order)."""
    if not len(parts):
        return []
    first = int(parts[0])
    if (parts == first).all():
        return [(first, np.arange(len(parts)))]
    return [(int(p), np.flatnonzero(parts == p)) for p in np.unique(parts).tolist()]


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, service: IngestService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Finish (deliver and commit) the batch in flight before the partitions
        # move, so the next owner starts after it: no duplicates in the common case.
        async with self.service.lock:
            await self.service.drain()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("ingest assigned %s", sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))


DeadLetterHook = Callable[[Sequence[DeadLetter]], None]


class IngestService(Service):
    """mentions.raw -> validate, score -> mentions.scored + envelopes + dead letters, in batches."""

    def __init__(
        self,
        settings: Settings,
        ingestor: Ingestor,
        counters: dict[str, int],
        on_dead: DeadLetterHook,
        **kwargs: Any,
    ) -> None:
        self.s = settings
        self.ingestor = ingestor
        self.counters = counters
        self.on_dead = on_dead
        self.envelope_topic = envelope_topic(settings)
        self.lock = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.sending = False  # the producer is started and not stopping
        #: Next offset to read per raw partition, as committed by this service.
        self.committed: dict[TopicPartition, int] = {}
        self._inflight: asyncio.Task[None] | None = None
        self._parts: dict[str, Partitioner] = {}
        self.max_records = max(INGEST_MAX_RECORDS, settings.batch_size)
        #: Envelopes kept decoded for this worker's detect agent (None: off).
        self.handoff: Handoff | None = Handoff() if settings.envelope_handoff else None
        #: Whether detect partition p is counted in this process (set by the app).
        self.detects_here: Callable[[int], bool] = lambda p: False
        #: Envelope bytes per mention of the last envelope written (Mentions.split_parts).
        self._env_bytes_per_row = 0.0
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        cfg = aiokafka_config(self.s)
        self.producer = AIOKafkaProducer(**cfg, **INGEST_PRODUCER)
        await self.producer.start()
        self.sending = True
        self.consumer = AIOKafkaConsumer(
            **cfg,
            group_id=ingest_group(self.s),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            max_poll_records=self.max_records,
            session_timeout_ms=int(self.s.consumer_session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(self.s.consumer_heartbeat_seconds * 1000),
        )
        self.consumer.subscribe([self.s.topic_raw], listener=_Rebalance(self))
        await self.consumer.start()
        lean_records(self.consumer)

    async def on_stop(self) -> None:
        try:
            async with self.lock:
                await self.drain()
        finally:
            if self.consumer is not None:
                await self.consumer.stop()
            if self.producer is not None:
                self.sending = False
                await self.producer.stop()

    def assignment(self) -> set[TopicPartition]:
        return set(self.consumer.assignment()) if self.consumer is not None else set()

    async def lag(self) -> dict[tuple[str, int], int]:
        """Highwater minus committed offset per assigned raw partition (Kafka's view of our lag)."""
        out: dict[tuple[str, int], int] = {}
        cons = self.consumer
        if cons is None:
            return out
        for tp in cons.assignment():
            end = cons.highwater(tp)
            if end is None:
                continue
            done = self.committed.get(tp)
            if done is None:  # before the first commit here, the position stands in
                done = await cons.position(tp)
            out[(tp.topic, tp.partition)] = max(int(end) - int(done), 0)
        return out

    async def processed(self, partitions: Sequence[int], timeout: float) -> set[int]:
        """The raw ``partitions`` whose every record the ingest group has processed, per the broker now.

        Whoever owns a partition (this worker, another one, or nobody during a
        failover), the group's committed offset moves only after the batch's
        envelopes are acknowledged, so committed >= end means every record
        written so far has its envelope in the envelope topic. Both offsets
        are asked of the broker each time, never taken from cached highwater
        marks: while the broker is down or a leader is moving those make a
        partition look finished when it is not. An error or a timeout answers
        "not processed".
        """
        cons = self.consumer
        if cons is None or not partitions:
            return set()
        tps = [TopicPartition(self.s.topic_raw, p) for p in partitions]
        try:
            ends = await asyncio.wait_for(cons.end_offsets(tps), timeout)
            committed = await asyncio.wait_for(
                asyncio.gather(*(cons.committed(tp) for tp in tps)), timeout
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            log.debug("ingest progress of %s unknown: %r", partitions, exc)
            return set()
        busy = self._inflight is not None and not self._inflight.done()
        mine = cons.assignment()
        out: set[int] = set()
        for tp, done in zip(tps, committed, strict=True):
            end = ends.get(tp)
            if end is None or (busy and tp in mine):
                continue
            if (done or 0) >= end:  # None: never committed, fine only for an empty partition
                out.add(tp.partition)
        return out

    async def drain(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    @Service.task
    async def _run(self) -> None:
        assert self.consumer is not None
        timeout_ms = max(int(self.s.batch_seconds * 1000), 1)
        while not self.should_stop:
            try:
                batch = await self.consumer.getmany(
                    timeout_ms=timeout_ms, max_records=self.max_records
                )
            except KafkaError as exc:
                log.warning("ingest fetch failed (%r); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            if not batch:
                continue
            async with self.lock:
                assigned = self.consumer.assignment()
                batch = {tp: recs for tp, recs in batch.items() if tp in assigned and recs}
                if batch:
                    await self.process(batch)

    def _partitioner(self, topic: str) -> Partitioner:
        p = self._parts.get(topic)
        assert self.producer is not None
        n = len(self.producer.client.cluster.partitions_for_topic(topic) or ())
        if p is None or p.n != n:
            if not n:
                raise RuntimeError(f"no metadata for topic {topic}")
            p = self._parts[topic] = Partitioner(n)
        return p

    async def process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """One fetched batch: everything produced, then (in the background) delivered and committed."""
        assert self.producer is not None
        t0 = time.perf_counter()
        s, ing = self.s, self.ingestor
        records = list(itertools.chain.from_iterable(batch.values()))
        # Records carry no topic or partition (streams.lean_fetch): the batch says.
        starts = list(itertools.accumulate((len(recs) for recs in batch.values()), initial=0))
        tps = list(batch)
        dead: list[DeadLetter] = []

        def refuse(i: int, reason: str) -> None:
            r, tp = records[i], tps[bisect.bisect_right(starts, i) - 1]
            headers = tuple((str(k), bytes(v or b"")) for k, v in (r.headers or ()))
            raw = RawRecord(r.key, r.value, tp.topic, tp.partition, r.offset, headers)
            dead.append(DeadLetter(raw, reason))

        ib = ing.decode_columns(list(map(_value, records)), refuse)
        if len(ib.pending):
            # The numba kernels release the GIL: the event loop (the detect
            # agent, the web server) runs meanwhile on the other core.
            scores = await asyncio.to_thread(ing.score_batch, ib)
            assert scores is not None
            ib.apply(scores, ing.scorer.name)
        scored = ib.scored_values() if s.publish_scored else []

        await self._producer_metadata()
        p_scored = self._partitioner(s.topic_scored)
        p_env = self._partitioner(self.envelope_topic)
        # The batch's columns once (envelope parts are cut from them); keys and
        # partitions per distinct brand, then per row by index.
        cols = ib.mentions()
        bcode = cols.bcode
        keys = [b.encode() for b in cols.brands]
        part_scored = np.fromiter(map(p_scored, keys), dtype=np.int64, count=len(keys))[bcode]
        part_env = np.fromiter(map(p_env, keys), dtype=np.int64, count=len(keys))[bcode]
        row_keys = np.array(keys, dtype=object)[bcode].tolist() if s.publish_scored else []

        # Previous batch delivered and committed first: commits stay in order.
        await self.drain()
        futs: list[Awaitable[Any]] = []
        for p, rows in _by_partition(part_scored) if s.publish_scored else ():
            if len(rows) == len(scored):
                recs = zip(row_keys, scored, strict=True)
            else:
                rl = rows.tolist()
                recs = zip([row_keys[k] for k in rl], [scored[k] for k in rl], strict=True)
            futs += await send_batched(self.producer, s.topic_scored, p, recs)
        now_ms = int(time.time() * 1000)
        n_env = 0
        handoff = self.handoff
        for p, rows in _by_partition(part_env):
            part = cols if len(rows) == len(cols) else cols.take(rows)
            pieces = part.split_parts(ENVELOPE_MAX_BYTES, self._env_bytes_per_row)
            self._env_bytes_per_row = sum(len(v) for _, v in pieces) / max(len(part), 1)
            envs: list[tuple[bytes | None, bytes]] = [(None, v) for _, v in pieces]
            headers = None
            if handoff is not None and self.detects_here(p):
                headers = [[(HANDOFF_HEADER, handoff.put(c, v))] for c, v in pieces]
            n_env += len(envs)
            futs += await send_batched(self.producer, self.envelope_topic, p, envs, now_ms, headers)
        if dead:
            self.on_dead(dead)
            for dl in dead:
                futs.append(
                    await self.producer.send(
                        s.topic_deadletter,
                        key=dl.record.key,
                        value=dl.record.value or b"",
                        headers=dl.headers(),
                    )
                )
        offsets = {tp: recs[-1].offset + 1 for tp, recs in batch.items()}
        n, n_ok = len(records), len(ib)

        async def finish() -> None:
            await asyncio.gather(*futs)
            assert self.consumer is not None
            try:
                await self.consumer.commit(offsets)
            except KafkaError as exc:  # a rebalance took the partitions: the next owner redoes it
                log.warning("ingest commit of %s failed: %r", offsets, exc)
            else:
                self.committed.update(offsets)
            self.counters["ingest.in"] += n
            self.counters["ingest.scored"] += n_ok
            m.BATCH_DURATION.labels("ingest").observe(time.perf_counter() - t0)

        self._inflight = asyncio.ensure_future(finish())
        m.RECORDS_CONSUMED.labels("ingest", s.topic_raw).inc(n)
        m.faust_sensor_received(s.topic_raw, n)
        m.RECORDS_PROCESSED.labels("ingest", "scored").inc(n_ok)
        m.RECORDS_PRODUCED.labels(s.topic_scored).inc(n_ok if s.publish_scored else 0)
        m.RECORDS_PRODUCED.labels(self.envelope_topic).inc(n_env)
        m.observe_many(m.EVENT_TO_PROCESSED.labels("ingest"), time.time() - ib.event_time)

    async def send_keyed(
        self, topic: str, records: list[tuple[bytes, bytes]]
    ) -> list[asyncio.Future[Any]] | None:
        """Write keyed records (Kafka's partitioner) with the batch builder, one batch
        per partition; None if the producer is not running (start-up, shutdown).

        For the crisis events of a bucket close: a close of many brands emits
        hundreds of 2-4 KB events at once, and one ``send()`` each filled a
        16 KB batch every few events, so the sends kept waiting for the sender
        and handed the loop to ingest batches between them (1.5-3 ms per
        event; envelopes of the other partitions queued behind the close).
        """
        prod = self.producer
        if prod is None or not self.sending:
            return None
        await prod.partitions_for(topic)  # waits only if the metadata is missing
        return await send_by_key(prod, topic, self._partitioner(topic), records)

    async def _producer_metadata(self) -> None:
        assert self.producer is not None
        for topic in (self.s.topic_scored, self.envelope_topic):
            await self.producer.partitions_for(topic)  # waits only if missing
