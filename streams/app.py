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
from faust.types import EventT
from faust.web import Request, Response, View

from .detect import DetectEngine
from .ingest import DeadLetter, Ingestor, RawRecord
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

    def engine(self, partition: int) -> DetectEngine:
        eng = self.engines.get(partition)
        if eng is None:
            eng = self.engines[partition] = DetectEngine(self.settings)
        return eng

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
        producer_max_request_size=8 * 1024 * 1024,
        producer_linger_ms=5,
        producer_acks=-1,
        web_transport=f"tcp://{settings.web_host}",
    )
    pipe = Pipeline(settings)
    app.crisiswatch = pipe  # type: ignore[attr-defined]

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
            log.warning(
                "dead letter (%s) %s[%d]@%d: %s",
                d.stage,
                d.record.topic,
                d.record.partition,
                d.record.offset,
                d.reason[:300],
            )
            futs.append(
                await dead_t.send(
                    key=d.record.key, value=d.record.value or b"", headers=d.headers()
                )
            )
        return futs

    @app.agent(raw_t, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        async for batch in cast(faust.Stream, stream).take_events(
            settings.batch_size, within=settings.batch_seconds
        ):
            res = pipe.ingestor.process([_raw(e) for e in batch])
            futs = [await scored_t.send(key=r.brand.encode(), value=r.encode()) for r in res.scored]
            futs += await dead_letter(res.dead)
            await asyncio.gather(*futs)
            pipe.counters["ingest.in"] += len(batch)
            pipe.counters["ingest.scored"] += len(res.scored)

    async def publish(events: list[dict[str, Any]]) -> list[Any]:
        futs = []
        for ev in events:
            pipe.counters[f"events.{ev['status']}"] += 1
            log.info(
                "crisis %s %s %s score=%.4f", ev["status"], ev["brand"], ev["kind"], ev["score"]
            )
            futs.append(await events_t.send(key=ev["brand"].encode(), value=orjson.dumps(ev)))
        return futs

    @app.agent(scored_t, name="detect")
    async def detect(stream: faust.StreamT) -> None:
        async for batch in cast(faust.Stream, stream).take_events(
            settings.batch_size, within=settings.batch_seconds
        ):
            by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
            bad: list[DeadLetter] = []
            for e in batch:
                try:
                    doc = orjson.loads(e.message.value or b"")
                    float(doc["event_time"])
                    str(doc["brand"])
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    bad.append(
                        DeadLetter(_raw(e), f"not a scored mention: {exc!r}", stage="detect")
                    )
                    continue
                by_partition[e.message.partition].append(doc)
            futs = await dead_letter(bad)
            now = time.monotonic()
            for p, docs in by_partition.items():
                res = pipe.engine(p).add(docs)
                pipe.last_seen[p] = now
                futs += await publish(res.events)
                futs += await dead_letter(
                    [
                        DeadLetter(
                            RawRecord(
                                d["brand"].encode(), orjson.dumps(d), settings.topic_scored, p, -1
                            ),
                            f"late: bucket of created_at {d.get('created_at')} already closed",
                            stage="detect",
                        )
                        for d in res.late
                    ]
                )
            await asyncio.gather(*futs)
            pipe.counters["detect.in"] += len(batch)

    @app.timer(interval=1.0)
    async def close_idle_buckets() -> None:
        # Processing-time fallback: a partition that has been quiet for a while
        # closes the buckets that ended longer ago (wall clock) than the allowed
        # lateness, so a feed that stops still reports its last buckets.
        now = time.monotonic()
        horizon = time.time() - settings.allowed_lateness_seconds
        futs: list[Any] = []
        for p, eng in list(pipe.engines.items()):
            if now - pipe.last_seen.get(p, now) >= settings.idle_flush_seconds and eng.buckets:
                futs += await publish(eng.advance_to(horizon))
        await asyncio.gather(*futs)

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

    app.page("/health")(Health)
    app.page("/ready")(Ready)
    app.page("/stats")(Stats)
    return app
