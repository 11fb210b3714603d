"""The Faust app: topics, the ``ingest`` and ``detect`` agents, web pages.

Values travel as raw bytes and are decoded by the stages themselves
(:mod:`streams.ingest`, :mod:`streams.detect`), so a record Faust cannot
deserialise never crashes an agent: it becomes a dead letter with a reason.
Both agents take batches (``stream.take_events`` with a time bound) and
await delivery of everything they produce before the batch is acknowledged,
so offsets are committed only after a record is processed or dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast

import faust
import orjson
from aiohttp import web as aiohttp_web
from faust.types import EventT
from faust.web import Request, Response, View

from detectors import Detector

from . import checkpoint
from . import metrics as m
from .detect import DetectEngine
from .ingest import DeadLetter, Ingestor, RawRecord
from .logging_json import logging_config
from .recovery import Recovery, checkpoint_topic, decode_scored
from .sentiment import load_scorer
from .settings import Settings

log = logging.getLogger(__name__)


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
    ssl_context = None
    if proto.endswith("SSL"):
        import ssl

        ssl_context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
        if settings.kafka_ssl_certfile:
            ssl_context.load_cert_chain(
                settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile or None
            )
    if proto.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            ssl_context=ssl_context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    return faust.SSLCredentials(ssl_context)


class Pipeline:
    """The stages and their per-partition state, owned by one worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ingestor = Ingestor(settings, load_scorer(settings.sentiment_model))
        self.engines: dict[int, DetectEngine] = {}
        self.last_seen: dict[int, float] = {}
        self.counters: dict[str, int] = defaultdict(int)
        self.ops = m.OpsState(settings)
        self.timing = m.DetectTiming(settings.bucket_seconds)
        self.recovery = Recovery(settings)
        #: Per detect partition: records at or below this offset are in the restored state.
        self.skip_through: dict[int, int] = {}
        #: Per detect partition: the last offset counted into the engine.
        self.offsets: dict[int, int] = {}
        self.last_checkpoint: dict[int, float] = {}

    def drop(self, partition: int) -> None:
        for d in (
            self.engines,
            self.skip_through,
            self.offsets,
            self.last_checkpoint,
            self.last_seen,
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
        stream_buffer_maxsize=max(4 * settings.batch_size, 4096),
        broker_max_poll_records=max(settings.batch_size, 500),
        producer_max_request_size=32 * 1024 * 1024,
        producer_linger_ms=5,
        producer_acks=-1,
        web_transport=f"tcp://{settings.web_host}",
        logging_config=logging_config(settings),
    )
    pipe = Pipeline(settings)
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

    raw_t = topic(settings.topic_raw)
    scored_t = topic(settings.topic_scored)
    dead_t = topic(settings.topic_deadletter)
    events_t = topic(settings.topic_events)

    async def dead_letter(dls: Sequence[DeadLetter]) -> list[Any]:
        futs = []
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
            futs.append(
                await dead_t.send(
                    key=d.record.key, value=d.record.value or b"", headers=d.headers()
                )
            )
        m.RECORDS_PRODUCED.labels(settings.topic_deadletter).inc(len(dls))
        return futs

    @app.agent(raw_t, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        async for batch in cast(faust.Stream, stream).take_events(
            settings.batch_size, within=settings.batch_seconds
        ):
            t0 = time.perf_counter()
            m.RECORDS_CONSUMED.labels("ingest", settings.topic_raw).inc(len(batch))
            res = pipe.ingestor.process([_raw(e) for e in batch])
            futs = [await scored_t.send(key=r.brand.encode(), value=r.encode()) for r in res.scored]
            futs += await dead_letter(res.dead)
            await asyncio.gather(*futs)
            pipe.counters["ingest.in"] += len(batch)
            pipe.counters["ingest.scored"] += len(res.scored)
            m.RECORDS_PROCESSED.labels("ingest", "scored").inc(len(res.scored))
            m.RECORDS_PRODUCED.labels(settings.topic_scored).inc(len(res.scored))
            now = time.time()
            lag = m.EVENT_TO_PROCESSED.labels("ingest")
            for r in res.scored:
                lag.observe(now - r.value["event_time"])
            m.BATCH_DURATION.labels("ingest").observe(time.perf_counter() - t0)

    async def publish(events: list[dict[str, Any]]) -> list[Any]:
        futs = []
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
            futs.append(await events_t.send(key=ev["brand"].encode(), value=orjson.dumps(ev)))
        m.RECORDS_PRODUCED.labels(settings.topic_events).inc(len(events))
        return futs

    ckpt_t = app.topic(
        checkpoint_topic(settings),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        compacting=True,
    )

    async def count(p: int, docs: list[dict[str, Any]]) -> list[Any]:
        """Feed one partition's scored mentions to its engine; publish what comes out."""
        eng = pipe.engines[p]
        res = eng.add(docs)
        pipe.timing.closed(p, eng.next_close, res.events)
        m.RECORDS_PROCESSED.labels("detect", "counted").inc(
            len(docs) - len(res.late) - res.duplicates
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
        """Checkpoint + replay of the gap up to ``first_offset`` (see streams.recovery)."""
        eng, ckpt = await pipe.recovery.load(p)
        eng.detector = cast(Detector, m.ObservedDetector(eng.detector))
        pipe.engines[p] = eng
        pipe.skip_through[p] = ckpt
        replayed = 0
        async for chunk in pipe.recovery.replay(p, ckpt + 1, first_offset):
            docs = [d for d in (decode_scored(v) for _, v in chunk) if d is not None]
            replayed += len(chunk)
            await asyncio.gather(*await count(p, docs))
        pipe.offsets[p] = max(ckpt, first_offset - 1)
        pipe.last_checkpoint[p] = time.monotonic()
        log.info(
            "partition %d: state from checkpoint at offset %d, %d records replayed up to %d",
            p,
            ckpt,
            replayed,
            first_offset - 1,
            extra={"partition": p, "checkpoint_offset": ckpt, "replayed": replayed},
        )

    async def save_checkpoint(p: int) -> Any:
        blob = checkpoint.encode(pipe.engines[p], pipe.offsets[p])
        pipe.last_checkpoint[p] = time.monotonic()
        return await ckpt_t.send(key=str(p).encode(), value=blob, partition=p)

    @app.agent(scored_t, name="detect")
    async def detect(stream: faust.StreamT) -> None:
        async for batch in cast(faust.Stream, stream).take_events(
            settings.batch_size, within=settings.batch_seconds
        ):
            t0 = time.perf_counter()
            m.RECORDS_CONSUMED.labels("detect", settings.topic_scored).inc(len(batch))
            by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
            bad: list[DeadLetter] = []
            wall = time.time()
            lag = m.EVENT_TO_PROCESSED.labels("detect")
            for e in batch:
                p, offset = e.message.partition, e.message.offset
                if p not in pipe.engines:
                    await restore(p, offset)
                if offset <= pipe.skip_through.get(p, -1):
                    continue  # already inside the restored checkpoint
                pipe.offsets[p] = max(pipe.offsets.get(p, -1), offset)
                doc = decode_scored(e.message.value or b"")
                if doc is None:
                    bad.append(DeadLetter(_raw(e), "not a scored mention", stage="detect"))
                    continue
                by_partition[p].append(doc)
                event_time = float(doc["event_time"])
                lag.observe(wall - event_time)
                # The scored record's timestamp is when ingest produced it.
                pipe.timing.seen(p, event_time, e.message.timestamp or wall)
            futs = await dead_letter(bad)
            now = time.monotonic()
            for p, docs in by_partition.items():
                pipe.last_seen[p] = now
                futs += await count(p, docs)
            for p in {e.message.partition for e in batch}:
                if now - pipe.last_checkpoint.get(p, 0.0) >= settings.checkpoint_seconds:
                    futs.append(await save_checkpoint(p))
            await asyncio.gather(*futs)
            pipe.counters["detect.in"] += len(batch)
            m.BATCH_DURATION.labels("detect").observe(time.perf_counter() - t0)

    async def forget_revoked(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        # The next owner (maybe this worker again) restores from the checkpoint
        # and replays; stale in-memory state must not be reused.
        revoked = args[0] if args else kwargs.get("revoked", ())
        for tp in revoked:
            if tp.topic == settings.topic_scored:
                pipe.drop(tp.partition)

    app.on_partitions_revoked.connect(cast(Any, forget_revoked))

    async def caught_up(partition: int) -> bool:
        """Nothing left to read on this partition of the raw and scored topics (where assigned here)."""
        consumer = app.consumer
        tps = [
            tp
            for tp in consumer.assignment()
            if tp.partition == partition and tp.topic in (settings.topic_raw, settings.topic_scored)
        ]
        if not tps:
            return False
        ends = await consumer.highwaters(*tps)
        for tp in tps:
            pos = await consumer.position(tp)
            end = ends.get(tp)
            if pos is None or end is None or pos < end:
                return False
        return True

    @app.timer(interval=1.0)
    async def close_idle_buckets() -> None:
        # Processing-time fallback: a partition that has been quiet for a while
        # and has nothing left to read closes the buckets that ended longer ago
        # (wall clock) than the allowed lateness, so a feed that stops still
        # reports its last buckets. The caught-up check keeps a slow replay of
        # old data (or a stalled ingest) from closing buckets still being filled.
        now = time.monotonic()
        horizon = time.time() - settings.allowed_lateness_seconds
        futs: list[Any] = []
        for p, eng in list(pipe.engines.items()):
            if now - pipe.last_seen.get(p, now) < settings.idle_flush_seconds or not eng.buckets:
                continue
            if not await caught_up(p):
                continue
            events = eng.advance_to(horizon)
            pipe.timing.closed(p, eng.next_close, events)
            futs += await publish(events)
        await asyncio.gather(*futs)

    lag_failed: list[BaseException] = []  # warn once, not every interval

    @app.timer(interval=settings.metrics_interval_seconds)
    async def refresh_metrics() -> None:
        pipe.ops.refresh(pipe.engines)
        try:
            pipe.ops.consumer_lag(
                await consumer_lag(app, {settings.topic_raw, settings.topic_scored})
            )
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
            assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment())
            ready = bool(assigned) and app.rebalancing is False
            return self.json({"ready": ready, "assigned": assigned}, status=200 if ready else 503)

    class Stats(View):
        async def get(self, request: Request) -> Response:
            return self.json({"counters": dict(pipe.counters), "brands": pipe.brand_totals()})

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
