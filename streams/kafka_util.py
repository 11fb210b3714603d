"""kafka-python helpers: clients from settings, topic creation, clear errors."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from .errors import BrokerUnavailable, ConfigError
from .settings import Settings


def require_bootstrap(settings: Settings) -> list[str]:
    if not settings.bootstrap_servers:
        raise ConfigError(
            "no Kafka configured: set CRISISWATCH_KAFKA_BOOTSTRAP=host:port "
            "(or start the local broker with `crisiswatch broker start`)"
        )
    return settings.bootstrap_servers


def wait_reachable(settings: Settings, timeout: float = 10.0) -> None:
    """Raise BrokerUnavailable unless some bootstrap server accepts TCP within ``timeout``."""
    servers = require_bootstrap(settings)
    deadline = time.monotonic() + timeout
    while True:
        for hp in servers:
            host, _, port = hp.rpartition(":")
            try:
                with socket.create_connection((host, int(port)), timeout=1.0):
                    return
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise BrokerUnavailable(
                f"Kafka at {settings.kafka_bootstrap} is not reachable; is the broker running? "
                "(`crisiswatch broker start` starts a local one)"
            )
        time.sleep(0.3)


def _common(settings: Settings) -> dict[str, Any]:
    return {"bootstrap_servers": require_bootstrap(settings), **settings.kafka_python_config()}


def producer(settings: Settings, **kw: Any) -> KafkaProducer:
    wait_reachable(settings)
    try:
        return KafkaProducer(**_common(settings), **kw)
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka at {settings.kafka_bootstrap}: {exc}") from None


def consumer(settings: Settings, *topics: str, **kw: Any) -> KafkaConsumer:
    wait_reachable(settings)
    try:
        return KafkaConsumer(*topics, **_common(settings), **kw)
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka at {settings.kafka_bootstrap}: {exc}") from None


def topic_names(settings: Settings) -> list[str]:
    return [
        settings.topic_raw,
        settings.topic_scored,
        settings.topic_deadletter,
        settings.topic_events,
    ]


def internal_topic_names(settings: Settings) -> list[str]:
    """Topics the worker owns besides the public ones (the ingest -> detect envelopes)."""
    from .recovery import envelope_topic

    return [envelope_topic(settings)]


#: A detect checkpoint holds a whole partition's state: with 100,000 brands it
#: is several MiB, over the broker's default 1 MiB record limit.
CHECKPOINT_MAX_BYTES = 64 * 1024 * 1024


def _checkpoint_topic(settings: Settings) -> NewTopic:
    from .recovery import checkpoint_topic

    return NewTopic(
        checkpoint_topic(settings),
        num_partitions=settings.partitions,
        replication_factor=settings.replication_factor,
        topic_configs={
            "cleanup.policy": "compact",
            "max.message.bytes": str(CHECKPOINT_MAX_BYTES),
        },
    )


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the pipeline's topics (public and internal) with the configured partitions.

    Returns those created.
    """
    wait_reachable(settings)
    why = None
    if settings.kafka_security_protocol != "PLAINTEXT":
        # kafka-python cannot tell a refused login from a lost connection, and
        # retries it until its timeout: ask aiokafka first, which says why.
        from .recovery import PERMANENT, connect_problem

        why = connect_problem(settings)
        if why is not None and any(p in why for p in PERMANENT):
            raise BrokerUnavailable(f"Kafka at {settings.kafka_bootstrap}: {why}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(**_common(settings), request_timeout_ms=10_000)
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"Kafka at {settings.kafka_bootstrap}: {why or exc}"
                ) from None
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(
                t,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
            )
            for t in topic_names(settings) + internal_topic_names(settings)
            if t not in existing
        ]
        ckpt = _checkpoint_topic(settings)
        if ckpt.name not in existing:
            new.append(ckpt)
        if new:
            # Another worker may win the race to create them.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new, timeout_ms=15_000)
        return [t.name for t in new]
    finally:
        admin.close()
