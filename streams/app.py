"""The Faust app: the ingest service, the ``detect`` agent, timers, web pages.

Values travel as raw bytes and are decoded by the stages themselves
(:mod:`streams.ingest`, :mod:`streams.detect`), so a record that cannot be
decoded never crashes the worker: it becomes a dead letter with a reason.

The per-mention hot path never passes through a Faust stream (Faust's
per-record cost would cap the pipeline; see :mod:`streams.fastpath` and
``docs/performance.md``): ingest is a batch consumer running as a service of
this app, and the ``detect`` agent consumes envelopes, each a batch of
scored mentions. Both await delivery of everything they produce before their
input offsets are committed (ingest) or acknowledged (detect), so offsets
move only after a record is processed or dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
import numpy as np
import orjson
from aiohttp import web as aiohttp_web
from aiokafka.errors import ProducerClosed
from faust.types import EventT
from faust.web import Request, Response, View

from detectors import Detector

from . import checkpoint, memory
from . import metrics as m
from .columns import Mentions
from .detect import DetectEngine
from .fastpath import IngestService
from .ingest import DeadLetter, Ingestor, RawRecord
from .kafka_util import CHECKPOINT_MAX_BYTES
from .logging_json import logging_config
from .recovery import Recovery, checkpoint_topic, envelope_topic, ssl_context
from .sentiment import load_scorer
from .settings import Settings

log = logging.getLogger(__name__)

#: Longest wait for one broker answer of the idle flush's caught-up check; no
#: answer in time counts as "not caught up".
CAUGHT_UP_TIMEOUT_SECONDS = 5.0
#: Bytes of a Kafka record batch besides the checkpoint's value (headers, key, batch header).
CHECKPOINT_RECORD_OVERHEAD = 4096
#: Largest share of the event loop's time that checkpoint encoding may take.
CHECKPOINT_LOOP_SHARE = 0.05


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    if not raw:
        return ()
    items = raw.items() if isinstance(raw, dict) else raw
    return tuple((str(k), bytes(v) if v is not None else b"") for k, v in items)


def _raw(event: EventT) -> RawRecord:
    m = event.message
    return RawRecord(m.key, m.value, m.topic, m.partition, m.offset, _headers(m.headers))


def faust_broker_credentials(settings: Settings) -> Any:
    """SASL/SSL settings as Faust credentials (None for PLAINTEXT)."""
    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return None
    ctx = ssl_context(settings)
    if settings.oauthbearer:
        from .oauth import AioKafkaTokens, credentials

        return faust.OAuthCredentials(
            oauth_cb=AioKafkaTokens(credentials(settings)), ssl_context=ctx
        )
    if proto.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            ssl_context=ctx,
            mechanism=settings.kafka_sasl_mechanism,
        )
    return faust.SSLCredentials(ctx)


class Pipeline:
    """The stages and their per-partition state, owned by one worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ingestor = Ingestor(settings, load_scorer(settings.sentiment_model))
        self.engines: dict[int, DetectEngine] = {}
        self.counters: dict[str, int] = defaultdict(int)
        self.ops = m.OpsState(settings)
        self.timing = m.DetectTiming(settings.bucket_seconds)
        self.recovery = Recovery(settings)
        #: Per detect partition: records at or below this offset are in the restored state.
        self.skip_through: dict[int, int] = {}
        #: Per detect partition: the last offset counted into the engine.
        self.offsets: dict[int, int] = {}
        self.last_checkpoint: dict[int, float] = {}
        #: Per detect partition: seconds between checkpoints (see save_checkpoint).
        self.checkpoint_every: dict[int, float] = {}
        #: Per detect partition: the checkpoint being delivered (deliver_checkpoint never raises).
        self.checkpoint_tasks: dict[int, asyncio.Future[None]] = {}
        self.locks: dict[int, asyncio.Lock] = {}
        #: Per detect partition: since when (monotonic) every caught-up check said yes.
        self.quiet_since: dict[int, float] = {}
        #: Detect partitions whose first envelope since the last assignment is still to come.
        self.first_after_assign: set[int] = set()
        #: Partitions kept across the last rebalance, still to check against the group's commits.
        self.kept: set[int] = set()
        #: The batch ingest stage (set by create_app).
        self.ingest: IngestService | None = None

    def drop(self, partition: int) -> None:
        for d in (
            self.engines,
            self.skip_through,
            self.offsets,
            self.last_checkpoint,
            self.checkpoint_every,
            self.quiet_since,
        ):
            d.pop(partition, None)

    def brand_totals(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for eng in self.engines.values():
            for brand, n in eng.totals.items():
                out[brand] += n
        return dict(out)


def create_app(settings: Settings) -> faust.App:
    if not settings.kafka_bootstrap:
        from .errors import ConfigError

        raise ConfigError("no Kafka configured: set CRISISWATCH_KAFKA_BOOTSTRAP=host:port")
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{hp}" for hp in settings.bootstrap_servers],
        broker_credentials=faust_broker_credentials(settings),
        store="memory://",
        datadir=settings.data_dir,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        # The agent's events are envelopes of up to 512 KiB: a small buffer
        # bounds memory; the fetch size lets one fetch carry several of them.
        stream_buffer_maxsize=64,
        broker_max_poll_records=64,
        broker_session_timeout=settings.consumer_session_timeout_seconds,
        broker_heartbeat_interval=settings.consumer_heartbeat_seconds,
        consumer_max_fetch_size=8 * 1024 * 1024,
        # Checkpoints of many brands are large (see kafka_util.CHECKPOINT_MAX_BYTES).
        producer_max_request_size=CHECKPOINT_MAX_BYTES,
        producer_linger_ms=5,
        producer_acks=-1,
        web_transport=f"tcp://{settings.web_host}",
        logging_config=logging_config(settings),
    )
    pipe = Pipeline(settings)
    pipe.ingestor.warm_up()
    DetectEngine.warm_up(settings)
    app.crisiswatch = pipe  # type: ignore[attr-defined]
    m.set_info(settings, pipe.ingestor.scorer.name, settings.detector)
    m.prime(
        {
            "raw": settings.topic_raw,
            "scored": settings.topic_scored,
            "deadletter": settings.topic_deadletter,
            "events": settings.topic_events,
        }
    )
    if settings.metrics_faust_sensor:
        m.install_faust_sensor(app)

    def topic(name: str) -> faust.TopicT:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )

    env_topic = envelope_topic(settings)
    env_t = topic(env_topic)
    dead_t = topic(settings.topic_deadletter)
    events_t = topic(settings.topic_events)

    def account_dead(dls: Sequence[DeadLetter]) -> None:
        """Counters, metrics and a log line for dead letters (the caller sends them)."""
        for d in dls:
            pipe.counters[f"deadletter.{d.stage}"] += 1
            reason = m.dead_letter_reason_class(d.reason)
            m.DEAD_LETTERS.labels(d.stage, reason).inc()
            m.RECORDS_PROCESSED.labels(d.stage, "dead_letter").inc()
            log.warning(
                "dead letter (%s) %s[%d]@%d: %s",
                d.stage,
                d.record.topic,
                d.record.partition,
                d.record.offset,
                d.reason[:300],
                extra={
                    "stage": d.stage,
                    "reason_class": reason,
                    "topic": d.record.topic,
                    "partition": d.record.partition,
                    "offset": d.record.offset,
                },
            )
        m.RECORDS_PRODUCED.labels(settings.topic_deadletter).inc(len(dls))

    async def dead_letter(dls: Sequence[DeadLetter]) -> list[Any]:
        account_dead(dls)
        return [
            await dead_t.send(key=d.record.key, value=d.record.value or b"", headers=d.headers())
            for d in dls
        ]

    ingest_service = IngestService(settings, pipe.ingestor, pipe.counters, account_dead)
    pipe.ingest = ingest_service
    # Envelopes for partitions counted here are handed over decoded (Handoff).
    ingest_service.detects_here = pipe.engines.__contains__
    handoff = ingest_service.handoff

    @app.task
    async def start_ingest() -> None:
        # A runtime dependency of the app: started now, stopped (after
        # delivering and committing its batch in flight) with the worker.
        await app.add_runtime_dependency(ingest_service)

    async def publish(events: list[dict[str, Any]]) -> list[Any]:
        if not events:
            return []
        records = []
        for ev in events:
            pipe.counters[f"events.{ev['status']}"] += 1
            pipe.ops.crisis_event(ev)
            log.info(
                "crisis %s %s %s score=%.4f",
                ev["status"],
                ev["brand"],
                ev["kind"],
                ev["score"],
                extra={
                    "crisis_id": ev["crisis_id"],
                    "brand": ev["brand"],
                    "status": ev["status"],
                    "kind": ev["kind"],
                    "severity": ev["severity"],
                },
            )
            records.append((ev["brand"].encode(), orjson.dumps(ev)))
        m.RECORDS_PRODUCED.labels(settings.topic_events).inc(len(events))
        # In batches, through ingest's producer (see IngestService.send_keyed);
        # Faust's producer while that one is not running. The agent awaits an
        # envelope's deliveries before the next envelope, so a switch between
        # the two cannot reorder a brand's events.
        futs: list[Any] | None
        try:
            futs = await ingest_service.send_keyed(settings.topic_events, records)
        except ProducerClosed:  # stopping while it waited for a batch slot
            futs = None
        if futs is None:
            futs = [await events_t.send(key=k, value=v) for k, v in records]
        return futs

    ckpt_t = app.topic(
        checkpoint_topic(settings),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        compacting=True,
        config={"max.message.bytes": str(CHECKPOINT_MAX_BYTES)},
    )

    async def count(
        p: int, cols: Mentions, eng: DetectEngine | None = None, ingest_time: float | None = None
    ) -> list[Any]:
        """Feed one partition's scored mentions to its engine; publish what comes out.

        ``ingest_time``: when ingest produced the envelope (live records only;
        a replay passes None), for the log line of a bucket close.
        """
        eng = eng or pipe.engines[p]
        before = eng.next_close
        t0 = time.perf_counter()
        res = eng.add_columns(cols)
        pipe.timing.closed(p, eng.next_close, res.events)
        if ingest_time is not None and eng.next_close != before and before is not None:
            # One line per partition and bucket: where a close's latency goes
            # (the envelope's wait in Kafka and Faust, then the close itself).
            took = time.perf_counter() - t0
            end = eng.next_close or 0
            log.info(
                "partition %d: closed %d bucket(s) up to %s in %.0f ms, %d events; "
                "envelope produced %.2f s before",
                p,
                end - before,
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end * width)),
                1000 * took,
                len(res.events),
                time.time() - ingest_time - took,
                extra={"partition": p},
            )
        m.RECORDS_PROCESSED.labels("detect", "counted").inc(
            len(cols) - len(res.late) - res.duplicates
        )
        m.RECORDS_PROCESSED.labels("detect", "duplicate").inc(res.duplicates)
        futs = await publish(res.events)
        futs += await dead_letter(
            [
                DeadLetter(
                    RawRecord(d["brand"].encode(), orjson.dumps(d), settings.topic_scored, p, -1),
                    f"late: bucket of created_at {d.get('created_at')} already closed",
                    stage="detect",
                )
                for d in res.late
            ]
        )
        return futs

    async def restore(p: int, first_offset: int) -> None:
        """Checkpoint + replay of the gap up to ``first_offset`` (see streams.recovery).

        The engine becomes visible only when complete, and the agent waits on
        the partition's lock meanwhile, so no record is counted twice when the
        eager restore (a timer) and the first record of the partition race.
        """
        eng, ckpt = await pipe.recovery.load(p)
        eng.detector = cast(Detector, m.ObservedDetector(eng.detector))
        replayed = mentions = 0
        async for chunk in pipe.recovery.replay(p, ckpt + 1, first_offset):
            for _, value in chunk:
                cols = Mentions.from_envelope(value)
                if cols is not None and len(cols):
                    mentions += len(cols)
                    await asyncio.gather(*await count(p, cols, eng))
            replayed += len(chunk)
        # Counted here, not by the agent (it skips what the replay covered).
        pipe.counters["detect.replayed"] += mentions
        pipe.skip_through[p] = max(ckpt, first_offset - 1)
        pipe.offsets[p] = max(ckpt, first_offset - 1)
        pipe.last_checkpoint[p] = time.monotonic()
        pipe.engines[p] = eng
        log.info(
            "partition %d: state from checkpoint at offset %d, %d envelopes (%d mentions) "
            "replayed up to %d",
            p,
            ckpt,
            replayed,
            mentions,
            first_offset - 1,
            extra={"partition": p, "checkpoint_offset": ckpt, "replayed": replayed},
        )

    async def ensure_restored(p: int, first_offset: Callable[[], Awaitable[int | None]]) -> None:
        lock = pipe.locks.setdefault(p, asyncio.Lock())
        async with lock:
            if p not in pipe.engines:
                offset = await first_offset()
                if offset is not None:
                    await restore(p, offset)

    async def save_checkpoint(p: int) -> Any:
        t0 = time.perf_counter()
        body = checkpoint.state_body(pipe.engines[p], pipe.offsets[p])
        pipe.last_checkpoint[p] = time.monotonic()
        return deliver_checkpoint(p, body, time.perf_counter() - t0)

    async def deliver_checkpoint(p: int, body: bytes, took: float) -> None:
        """Compress and write one checkpoint; a failure is logged and counted, never raised.

        A checkpoint is an optimisation: a restore replays the envelopes after
        the last one written. So one that cannot be written must not take the
        agent down (a 67 MB checkpoint did, in a 30-minute soak, before
        dedupe_max_ids bounded the id window).
        """
        t0 = time.perf_counter()
        # zlib drops the GIL: the compression (half of a checkpoint's cost) runs
        # on the other core while the loop goes on.
        try:
            blob = await asyncio.to_thread(checkpoint.pack, body)
        except RuntimeError:  # the executor is shut down: the worker is stopping
            blob = checkpoint.pack(body)
        took += time.perf_counter() - t0
        # Encoding grows with the state (the duplicate-id window above all:
        # millions of ids at a few thousand mentions/s). Spacing each
        # partition's checkpoints by a multiple of their cost keeps all of them
        # together to CHECKPOINT_LOOP_SHARE of the worker's time; a crash then
        # replays a longer gap, which costs far less per second of input than
        # re-encoding the whole state every few seconds.
        spacing = took * max(len(pipe.engines), 1) / CHECKPOINT_LOOP_SHARE
        pipe.checkpoint_every[p] = max(settings.checkpoint_seconds, spacing)
        if len(blob) > CHECKPOINT_MAX_BYTES - CHECKPOINT_RECORD_OVERHEAD:
            reason, detail = "too_large", f"over the {CHECKPOINT_MAX_BYTES}-byte record limit"
        else:
            try:
                await (await ckpt_t.send(key=str(p).encode(), value=blob, partition=p))
                return
            except Exception as exc:
                reason, detail = "send_failed", repr(exc)
        m.CHECKPOINT_FAILURES.labels(reason).inc()
        log.error(
            "partition %d: checkpoint of %d bytes not written (%s); a restore replays from "
            "the previous one. If it is too large, lower CRISISWATCH_DEDUPE_MAX_IDS.",
            p,
            len(blob),
            detail,
            extra={"partition": p},
        )

    width = float(settings.bucket_seconds)

    @app.agent(env_t, name="detect")
    async def detect(stream: faust.StreamT) -> None:
        # One event is one envelope (a batch of scored mentions of one
        # partition): Faust's per-event cost is paid per batch, not per mention.
        async for event in cast(faust.Stream, stream).events():
            t0 = time.perf_counter()
            msg = event.message
            p, offset = msg.partition, msg.offset
            if p in pipe.first_after_assign:
                pipe.first_after_assign.discard(p)
                log.info(
                    "partition %d: first envelope since the assignment at offset %d "
                    "(counted through %d, skipping through %d)",
                    p,
                    offset,
                    pipe.offsets.get(p, -1),
                    pipe.skip_through.get(p, -1),
                    extra={"partition": p},
                )
            if p in pipe.engines and offset > pipe.offsets.get(p, -1) + 1:
                # Envelope offsets are consecutive (no transactions, no
                # compaction), so a gap means another member counted the
                # envelopes in between: this worker lost the partition for a
                # generation it never saw (its session expired while it was
                # busy) and kept an engine that misses them. Rebuild it.
                log.warning(
                    "partition %d: envelopes %d..%d were counted elsewhere; restoring",
                    p,
                    pipe.offsets.get(p, -1) + 1,
                    offset - 1,
                    extra={"partition": p},
                )
                pipe.drop(p)
            if p not in pipe.engines:

                async def this_offset(o: int = offset) -> int:
                    return o

                await ensure_restored(p, this_offset)
            if offset <= pipe.skip_through.get(p, -1):
                continue  # already inside the restored checkpoint
            pipe.offsets[p] = max(pipe.offsets.get(p, -1), offset)
            pipe.quiet_since.pop(p, None)
            cols = handoff.take(msg.headers, msg.value) if handoff is not None else None
            if cols is None:
                cols = Mentions.from_envelope(msg.value)
            else:
                pipe.counters["detect.handed_over"] += 1
            futs: list[Any] = []
            if cols is None:
                futs += await dead_letter(
                    [DeadLetter(_raw(event), "not a scored mention envelope", stage="detect")]
                )
            elif len(cols):
                n = len(cols)
                m.RECORDS_CONSUMED.labels("detect", env_topic).inc(n)
                wall = time.time()
                times = cols.event_time
                m.observe_many(m.EVENT_TO_PROCESSED.labels("detect"), wall - times)
                # The envelope's timestamp is when ingest produced it: the
                # ingest time of every mention inside.
                ingest_time = msg.timestamp or wall
                for b in np.unique(times // width).tolist():
                    pipe.timing.seen(p, b * width, ingest_time)
                futs += await count(p, cols, ingest_time=ingest_time)
                pipe.counters["detect.in"] += n
            due = pipe.checkpoint_every.get(p, settings.checkpoint_seconds)
            if time.monotonic() - pipe.last_checkpoint.get(p, 0.0) >= due:
                # Delivered in the background: the agent goes on with the next
                # envelope instead of waiting for a multi-MB write to be
                # acknowledged (a restore replays from whichever checkpoint
                # landed last). One in flight per partition, so they land in order.
                prev = pipe.checkpoint_tasks.get(p)
                if prev is not None:
                    await prev
                pipe.checkpoint_tasks[p] = asyncio.ensure_future(await save_checkpoint(p))
            await asyncio.gather(*futs)
            m.BATCH_DURATION.labels("detect").observe(time.perf_counter() - t0)

    async def keep_assigned(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        # Faust revokes everything at each rebalance and then assigns anew.
        # State of a partition this worker keeps is still exact if nobody else
        # had it in between (verify_kept checks that against the group's
        # commits); Faust re-delivers from the committed offset, so what was
        # already counted is skipped. Partitions that went elsewhere are
        # dropped: the next owner restores them from the checkpoint.
        assigned = args[0] if args else kwargs.get("assigned", ())
        pipe.quiet_since.clear()
        mine = {tp.partition for tp in assigned if tp.topic == env_topic}
        pipe.first_after_assign = set(mine)
        pipe.kept = mine & set(pipe.engines)
        for p in list(pipe.engines):
            if p in mine:
                pipe.skip_through[p] = max(pipe.skip_through.get(p, -1), pipe.offsets.get(p, -1))
            else:
                pipe.drop(p)

    app.on_partitions_assigned.connect(cast(Any, keep_assigned))

    @app.timer(interval=2.0)
    async def restore_assigned() -> None:
        # Restore newly assigned partitions at once, not when their next record
        # arrives: their brands' counts and open crises belong to this worker now.
        if app.rebalancing:
            return
        consumer = app.consumer
        if pipe.kept:
            await verify_kept()
        for tp in list(consumer.assignment()):
            if tp.topic != env_topic or tp.partition in pipe.engines:
                continue

            async def position(tp: Any = tp) -> int | None:
                pos = await consumer.position(tp)
                return None if pos is None else int(pos)

            await ensure_restored(tp.partition, position)

    async def verify_kept() -> None:
        """Rebuild kept engines that another member counted further (its commits are ahead of ours).

        keep_assigned assumes nobody else held a kept partition in between. A
        worker whose session expired while it was alive (a long pause) missed
        a generation in which another member counted its partitions; when the
        input has stopped meanwhile, no later envelope reveals the gap. The
        group's committed offset does: our own commits never pass what this
        worker counted.
        """
        kept, pipe.kept = pipe.kept, set()
        try:
            committed = await asyncio.wait_for(
                pipe.recovery.committed(sorted(kept)), CAUGHT_UP_TIMEOUT_SECONDS
            )
        except Exception as exc:  # checked again at the next tick
            log.warning("committed offsets of kept partitions %s unknown: %r", sorted(kept), exc)
            pipe.kept |= kept
            return
        for p, done in committed.items():
            lock = pipe.locks.setdefault(p, asyncio.Lock())
            async with lock:
                if p not in pipe.engines or done is None or done <= pipe.offsets.get(p, -1) + 1:
                    continue
                log.warning(
                    "partition %d: committed offset %d is past what this worker counted (%d): "
                    "another member counted it meanwhile; restoring",
                    p,
                    done,
                    pipe.offsets.get(p, -1),
                    extra={"partition": p},
                )
                pipe.drop(p)
                await restore(p, done)

    async def caught_up(partitions: list[int]) -> set[int]:
        """The detect partitions with nothing left upstream of them anywhere, per the broker now.

        Raw partition ``p`` fully processed by the ingest group (whoever owns
        it), then envelope partition ``p`` counted here up to its end offset,
        asked in that order: an envelope written before the raw commit is
        below the envelope end read after it. Counted, not fetched: envelopes
        in Faust's buffer are not in the engine yet.
        """
        raw_done = await ingest_service.processed(partitions, CAUGHT_UP_TIMEOUT_SECONDS)
        tps = [
            tp
            for tp in app.consumer.assignment()
            if tp.topic == env_topic and tp.partition in raw_done
        ]
        if not tps:
            return set()
        try:
            ends = await asyncio.wait_for(app.consumer.highwaters(*tps), CAUGHT_UP_TIMEOUT_SECONDS)
        except Exception as exc:  # unknown is "not caught up", whatever the client raised
            log.debug("envelope end offsets unknown: %r", exc)
            return set()
        out: set[int] = set()
        for tp in tps:
            end = ends.get(tp)
            if end is not None and pipe.offsets.get(tp.partition, -1) + 1 >= end:
                out.add(tp.partition)
        return out

    @app.timer(interval=1.0)
    async def close_idle_buckets() -> None:
        # Processing-time fallback, so a feed that stops still reports its last
        # buckets: a partition that the broker has confirmed caught up
        # (caught_up) at every check for idle_flush_seconds in a row closes the
        # buckets that ended longer ago (wall clock) than the allowed lateness.
        # Closing by wall clock ends a historic replay's event time for good,
        # so any doubt restarts the wait: a new envelope, a failed or timed-out
        # check (broker down, leader moving), another worker's ingest behind,
        # a rebalance. After an outage the producers get the whole wait to
        # deliver what they held back.
        if app.rebalancing:
            pipe.quiet_since.clear()
            return
        candidates = [p for p, eng in list(pipe.engines.items()) if eng.buckets]
        if not candidates:
            return
        done = await caught_up(candidates)
        now = time.monotonic()
        horizon = time.time() - settings.allowed_lateness_seconds
        futs: list[Any] = []
        for p in candidates:
            eng = pipe.engines.get(p)
            if p not in done or eng is None or app.rebalancing:
                pipe.quiet_since.pop(p, None)
                continue
            quiet = now - pipe.quiet_since.setdefault(p, now)
            if quiet < settings.idle_flush_seconds:
                continue
            before = eng.next_close
            events = eng.advance_to(horizon)
            pipe.timing.closed(p, eng.next_close, events)
            if eng.next_close != before:
                log.info(
                    "partition %d caught up and quiet for %.0f s: buckets closed by wall clock "
                    "up to %s (%d events)",
                    p,
                    quiet,
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(eng.next_close * width))
                    if eng.next_close is not None
                    else "-",
                    len(events),
                    extra={"partition": p},
                )
            futs += await publish(events)
        await asyncio.gather(*futs)

    lag_failed: list[BaseException] = []  # warn once, not every interval

    if settings.malloc_trim_seconds > 0:

        @app.timer(interval=settings.malloc_trim_seconds)
        async def trim_heap() -> None:
            # Freed numpy buffers stay in glibc's arenas (RSS) until trimmed;
            # in a thread: ctypes drops the GIL, the loop goes on (streams/memory.py).
            if await asyncio.to_thread(memory.trim):
                m.HEAP_TRIMS.inc()

    @app.timer(interval=settings.metrics_interval_seconds)
    async def refresh_metrics() -> None:
        pipe.ops.refresh(pipe.engines)
        h = memory.heap()
        if h is not None:
            for kind, value in h.as_dict().items():
                m.HEAP_BYTES.labels(kind).set(value)
        try:
            lags = await consumer_lag(app, {env_topic})
            lags.update(await ingest_service.lag())
            pipe.ops.consumer_lag(lags)
        except Exception as exc:  # a metric must never take the worker down
            log.log(
                logging.DEBUG if lag_failed else logging.WARNING,
                "consumer lag unavailable: %r",
                exc,
                exc_info=not lag_failed,
            )
            lag_failed[:] = [exc]

    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    class Ready(View):
        async def get(self, request: Request) -> Response:
            tps = app.consumer.assignment()
            assigned = sorted(
                f"{tp.topic}:{tp.partition}" for tp in (*tps, *ingest_service.assignment())
            )
            ready = bool(tps) and app.rebalancing is False
            return self.json({"ready": ready, "assigned": assigned}, status=200 if ready else 503)

    class Stats(View):
        async def get(self, request: Request) -> Response:
            h = memory.heap()
            out: dict[str, Any] = {"counters": dict(pipe.counters)}
            # ?brands=false: the counters alone. The per-brand totals list every
            # brand (100,000 of them at scale): a poller that needs only the
            # counters (bench-pipeline polls 4 times a second) should not pay that.
            if request.query.get("brands", "true").lower() not in ("0", "false", "no"):
                out["brands"] = pipe.brand_totals()
            out["heap"] = h.as_dict() if h is not None else None
            return self.json(out)

    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # aiohttp refuses a charset inside content_type=, so set the header.
            return cast(
                Response,
                aiohttp_web.Response(body=m.render(), headers={"Content-Type": m.CONTENT_TYPE}),
            )

    app.page("/health")(Health)
    app.page("/ready")(Ready)
    app.page("/stats")(Stats)
    app.page("/metrics")(Metrics)
    return app


async def consumer_lag(app: faust.App, topics: set[str]) -> dict[tuple[str, int], int]:
    """Log end offset minus committed offset for every assigned partition of ``topics``.

    Faust has no lag metric. The committed offset is what this worker last
    committed (Kafka's "next offset to read"); before its first commit on a
    partition, the consumer's position stands in.
    """
    consumer = app.consumer
    # Only the agents' input topics: Faust's internal assignor topic is not work.
    assigned = sorted(tp for tp in consumer.assignment() if tp.topic in topics)
    if not assigned:
        return {}
    ends = await consumer.highwaters(*assigned)
    # Faust keeps the last committed offsets only in this private mapping.
    committed: dict[Any, int | None] = getattr(consumer, "_committed_offset", {})
    out: dict[tuple[str, int], int] = {}
    for tp in assigned:
        end = ends.get(tp)
        if end is None:
            continue
        done = committed.get(tp)
        if done is None:
            done = await consumer.position(tp)
        if done is not None:
            out[(tp.topic, tp.partition)] = max(int(end) - int(done), 0)
    return out
