"""Detect-state recovery: checkpoints in a compacted topic plus a catch-up replay.

Why not Faust tables: a table changelog entry per mention costs more than the
detection itself, and Faust commits source offsets independently of when a
whole-partition snapshot was written. Instead each detect partition ``p``
periodically writes ``(engine state, last offset included)`` to partition
``p`` of ``<app_id>-detect-envelope-checkpoints`` (compacted, key ``p``).

The detect agent consumes *envelopes* (``<app_id>-scored-batches``: one
record holds a batch of scored mentions, see :mod:`streams.fastpath`), and
an envelope is counted whole or not at all, so offsets of the envelope topic
are exactly as good a position as offsets of a per-mention topic were. When
a worker gets partition ``p`` (start, restart after a crash, rebalance),
before it processes the first envelope at offset ``o`` it:

1. loads the newest checkpoint of ``p`` (offset ``c``), or starts empty
   (``c = -1``);
2. replays envelopes ``[p]`` from ``c + 1`` up to ``o - 1`` with its own
   consumer (the records Faust had already committed but the checkpoint did
   not include);
3. skips envelopes of the stream with offsets ``<= c`` (already in the state).

Every mention is therefore counted exactly once whatever the moment of a
crash (an ingest batch delivered twice is dropped by the engine's duplicate
filter on mention ids); crisis events of the replayed stretch are emitted
again, identical (same ``crisis_id``, status and ``detected_at``), so
consumers that deduplicate at-least-once delivery see no contradiction.

The checkpoint topic name changed with the envelope topic
(``-detect-checkpoints`` held offsets of ``mentions.scored``): an old
checkpoint is never applied to offsets of another topic.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from . import checkpoint
from .detect import DetectEngine
from .oauth import REFUSED as OAUTH_REFUSED
from .settings import Settings

log = logging.getLogger(__name__)


def checkpoint_topic(settings: Settings) -> str:
    return f"{settings.app_id}-detect-envelope-checkpoints"


def envelope_topic(settings: Settings) -> str:
    """The internal topic between ingest and detect (one envelope per batch and partition)."""
    return f"{settings.app_id}-scored-batches"


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (None otherwise); one place for every client."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    ctx = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    if settings.kafka_ssl_certfile:
        ctx.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile or None)
    return ctx


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """Connection and security settings in aiokafka's keyword names."""
    cfg: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    ctx = ssl_context(settings)
    if ctx is not None:
        cfg["ssl_context"] = ctx
    if settings.oauthbearer:
        from .oauth import AioKafkaTokens, credentials

        cfg.update(
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_provider=AioKafkaTokens(credentials(settings)),
        )
    elif settings.kafka_security_protocol.startswith("SASL"):
        cfg.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    return cfg


#: TLS alerts a broker sends about the client's certificate, and what they mean here.
_CLIENT_CERT_ALERTS = {
    "ALERT_BAD_CERTIFICATE": "refused",
    "ALERT_CERTIFICATE_REQUIRED": "refused",
    "ALERT_CERTIFICATE_UNKNOWN": "untrusted",
    "ALERT_UNKNOWN_CA": "untrusted",
}

#: Failures that no retry will mend (wrong credentials, an untrusted certificate, a
#: client certificate the broker refuses or requires).
PERMANENT = (
    "SaslAuthenticationFailed",
    OAUTH_REFUSED,
    "UnsupportedSaslMechanism",
    "CERTIFICATE_VERIFY_FAILED",
    *_CLIENT_CERT_ALERTS,
)


def tls_alert(settings: Settings, timeout: float = 5.0) -> str | None:
    """The broker's TLS alert about this client's certificate, as a sentence (None: none).

    A broker that requires client certificates (``ssl.client.auth=required``)
    finishes the TLS 1.3 handshake and then sends an alert; the Kafka clients
    see only a closed connection and retry. Here the first request (an
    ApiVersions v0) is sent over a bare TLS socket so that the alert is read.
    """
    import socket
    import struct

    ctx = ssl_context(settings)
    if ctx is None:
        return None
    body = struct.pack(">hhih", 18, 0, 1, 5) + b"probe"
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            with (
                socket.create_connection((host, int(port)), timeout=timeout) as raw,
                ctx.wrap_socket(raw, server_hostname=host) as tls,
            ):
                tls.sendall(struct.pack(">i", len(body)) + body)
                tls.recv(4)
        except ssl.SSLError as exc:
            reason = str(exc.reason or "")
            kind = next((v for k, v in _CLIENT_CERT_ALERTS.items() if k in reason), None)
            if kind is None:
                continue
            cert = settings.kafka_ssl_certfile
            if not cert:
                return (
                    f"the broker requires a client certificate ({reason}): set "
                    "CRISISWATCH_KAFKA_SSL_CERTFILE and CRISISWATCH_KAFKA_SSL_KEYFILE"
                )
            what = "does not trust" if kind == "untrusted" else "refused"
            return f"the broker {what} the client certificate {cert} ({reason})"
        except (OSError, ValueError):
            continue
    return None


def connect_problem(settings: Settings, timeout: float = 15.0) -> str | None:
    """Why a client with these settings cannot bootstrap (None: it can).

    aiokafka logs the reason of each failed address (refused, TLS, SASL) and
    then raises a generic "Unable to bootstrap"; kafka-python only sees the
    broker close the socket after a failed SASL handshake. The reasons are
    collected here so that an error can name them. Runs in a thread of its
    own, so it may be called with or without a running event loop.
    """
    import asyncio
    import concurrent.futures

    from aiokafka import AIOKafkaClient
    from aiokafka.errors import KafkaError

    if settings.oauthbearer:
        from .oauth import OAuthError, credentials

        try:  # the clients would only log it, and retry until their timeout
            credentials(settings).token()
        except OAuthError as exc:
            return str(exc)
    reasons: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reasons.append(record.getMessage())

    async def probe() -> None:
        client = AIOKafkaClient(**aiokafka_config(settings), request_timeout_ms=int(timeout * 1000))
        try:
            await asyncio.wait_for(client.bootstrap(), timeout)
        finally:
            await client.close()

    catch = Catch(logging.WARNING)
    aio_log = logging.getLogger("aiokafka")
    aio_log.addHandler(catch)
    propagate, aio_log.propagate = aio_log.propagate, False
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, probe()).result()
    except (KafkaError, OSError, TimeoutError) as exc:
        why = "; ".join(dict.fromkeys(reasons)) or f"{type(exc).__name__}: {exc}"
    else:
        return None
    finally:
        aio_log.removeHandler(catch)
        aio_log.propagate = propagate
    alert = tls_alert(settings) if "closed" in why else None
    return f"{alert}; {why}" if alert else why


class Recovery:
    """Loads checkpoints and replays the gap for one worker."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.topic = checkpoint_topic(settings)

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **aiokafka_config(self.s),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=32 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )

    async def committed(self, partitions: list[int]) -> dict[int, int | None]:
        """The detect group's committed envelope offsets of ``partitions``, from the broker.

        Whoever committed them: a worker that missed a generation learns here
        that another member counted its partitions further than it did.
        """
        cons = AIOKafkaConsumer(
            **aiokafka_config(self.s), group_id=self.s.app_id, enable_auto_commit=False
        )
        await cons.start()  # no subscribe(): it never joins the group
        try:
            topic = envelope_topic(self.s)
            return {p: await cons.committed(TopicPartition(topic, p)) for p in partitions}
        finally:
            await cons.stop()

    async def load(self, partition: int) -> tuple[DetectEngine, int]:
        """The newest checkpoint of ``partition`` as (engine, offset), or a fresh engine and -1."""
        tp = TopicPartition(self.topic, partition)
        cons = self._consumer()
        await cons.start()
        try:
            cons.assign([tp])
            end = (await cons.end_offsets([tp]))[tp]
            if end == 0:
                return DetectEngine(self.s), -1
            # Compaction keeps the newest record of the partition's one key.
            cons.seek(tp, end - 1)
            while True:
                batch = await cons.getmany(tp, timeout_ms=5000)
                records = batch.get(tp, [])
                if not records:
                    raise TimeoutError(
                        f"checkpoint {self.topic}[{partition}]@{end - 1} not readable"
                    )
                rec = records[-1]
                if rec.offset >= end - 1:
                    break
        finally:
            await cons.stop()
        try:
            engine, offset = checkpoint.decode(self.s, rec.value or b"")
        except ValueError as exc:
            log.error(
                "checkpoint %s[%d] unusable (%s); rebuilding from the topic",
                self.topic,
                partition,
                exc,
            )
            return DetectEngine(self.s), -1
        log.info("restored detect state of partition %d at offset %d", partition, offset)
        return engine, offset

    async def replay(
        self, partition: int, start: int, stop: int
    ) -> AsyncIterator[list[tuple[int, bytes]]]:
        """Batches of (offset, value) of the envelope topic's ``partition`` in ``[start, stop)``."""
        if start >= stop:
            return
        tp = TopicPartition(envelope_topic(self.s), partition)
        cons = self._consumer()
        await cons.start()
        try:
            cons.assign([tp])
            first = (await cons.beginning_offsets([tp]))[tp]
            if first > start:
                log.warning(
                    "partition %d: offsets %d..%d are past retention; they cannot be replayed",
                    partition,
                    start,
                    first - 1,
                )
                start = first
            cons.seek(tp, start)
            pos = start
            while pos < stop:
                batch = await cons.getmany(tp, timeout_ms=5000, max_records=100)
                records = batch.get(tp, [])
                if not records:
                    raise TimeoutError(f"replay of {tp} stalled at {pos} (want {stop})")
                out = [(r.offset, r.value or b"") for r in records if r.offset < stop]
                if out:
                    yield out
                pos = records[-1].offset + 1
        finally:
            await cons.stop()
