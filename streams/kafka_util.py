"""kafka-python helpers: clients from settings, topic creation, clear errors."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)

from .errors import BrokerUnavailable, ConfigError, NotAuthorized
from .settings import Settings

log = logging.getLogger(__name__)


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
    new: list[NewTopic] = []
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
    except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
        names = ", ".join(t.name for t in new) or "(listing them was refused)"
        raise NotAuthorized(
            f"Kafka at {settings.kafka_bootstrap}: {identity(settings)} may not see or create "
            f"the topics {names}; create them beforehand as a user who may (crisiswatch "
            "topics) and grant this one its operations on them, or let it create them "
            "(docs/operations.md, 'Kafka ACLs')"
        ) from None
    finally:
        admin.close()


def identity(settings: Settings) -> str:
    """Who the broker sees, for an error message (never a secret)."""
    if settings.oauthbearer:
        return (
            f"the OAuth client {settings.kafka_sasl_username!r} (OAUTHBEARER: the "
            "principal is its token's subject)"
        )
    if settings.kafka_security_protocol.startswith("SASL"):
        return f"the user {settings.kafka_sasl_username!r} ({settings.kafka_sasl_mechanism})"
    if settings.kafka_ssl_certfile:
        return f"the client certificate {settings.kafka_ssl_certfile}"
    return "this client (no authentication: the broker's ANONYMOUS user)"


def required_access(settings: Settings) -> tuple[dict[str, set[str]], list[str]]:
    """What a worker does on the broker: operations per topic, and its consumer groups."""
    from .fastpath import ingest_group
    from .recovery import checkpoint_topic, envelope_topic

    topics: dict[str, set[str]] = {
        settings.topic_raw: {"READ"},
        settings.topic_deadletter: {"WRITE"},
        settings.topic_events: {"WRITE"},
        envelope_topic(settings): {"READ", "WRITE"},
        checkpoint_topic(settings): {"READ", "WRITE"},
    }
    if settings.publish_scored:
        topics.setdefault(settings.topic_scored, set()).add("WRITE")
    return topics, [settings.app_id, ingest_group(settings)]


def responder_access(settings: Settings) -> tuple[dict[str, set[str]], list[str]]:
    """What the responders do on the broker: operations per topic, and their group."""
    topics = {settings.topic_events: {"READ"}, settings.topic_responder_deadletter: {"WRITE"}}
    return topics, [settings.responder_group]


def responder_acl_recipe(settings: Settings) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """The ACLs a responder's principal needs (``acl_recipe``'s shape), every one literal.

    Create the dead-letter topic beforehand, or add CREATE on it.
    """
    topics, groups = responder_access(settings)
    return [("TOPIC", t, "LITERAL", (*sorted(ops), "DESCRIBE")) for t, ops in topics.items()] + [
        ("GROUP", g, "LITERAL", ("READ",)) for g in groups
    ]


def acl_recipe(settings: Settings) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """The ACLs a worker's principal needs: (resource type, name, pattern type, operations).

    The public topics are named one by one (create them beforehand, or add
    CREATE on them); the worker's own topics (envelopes, checkpoints, Faust's
    leader topic) and its consumer groups all start with the app id.
    """
    topics, _ = required_access(settings)
    out: list[tuple[str, str, str, tuple[str, ...]]] = [
        ("TOPIC", t, "LITERAL", (*sorted(ops), "DESCRIBE"))
        for t, ops in topics.items()
        if not t.startswith(settings.app_id)
    ]
    out.append(("TOPIC", settings.app_id, "PREFIXED", ("ALL",)))
    out.append(("GROUP", settings.app_id, "PREFIXED", ("READ",)))
    return out


def check_access(
    settings: Settings, access: tuple[dict[str, set[str]], list[str]] | None = None
) -> None:
    """Raise NotAuthorized, naming every missing permission, if the broker's ACLs
    would stop the worker (or the client whose ``access``, topic operations and
    groups, is given: ``responder_access``); otherwise return.

    Without it a worker whose user may not join its consumer groups waits
    forever and logs nothing, and one that may not read or write a topic fails
    later, one topic at a time. A broker that does not report the authorized
    operations (no authorizer, an old version) is taken at its word: nothing
    is refused here.
    """
    from kafka.errors import GroupAuthorizationFailedError

    topics, groups = access or required_access(settings)
    admin = KafkaAdminClient(**_common(settings), request_timeout_ms=10_000)
    missing: list[str] = []
    try:
        try:
            described = admin.describe_topics(sorted(topics))
        except KafkaError as exc:  # the check is a courtesy: the clients will say it later
            log.warning("could not check the access to the topics: %r", exc)
            described = []
        for t in described:
            allowed = t.get("authorized_operations")
            if t.get("error_code") == 29:  # TOPIC_AUTHORIZATION_FAILED: not even DESCRIBE
                allowed = []
            elif not allowed:  # not reported (a visible topic allows DESCRIBE at least)
                continue
            missing += [
                f"{op} on topic {t['name']}" for op in sorted(topics[t["name"]] - set(allowed))
            ]
        for g in groups:
            try:
                desc = _describe_group(admin, g)
            except GroupAuthorizationFailedError:
                missing.append(f"READ on group {g}")
                continue
            except KafkaError as exc:  # the check is a courtesy: the consumers will retry
                log.warning("could not check the access to group %s: %r", g, exc)
                continue
            ops = desc.get("authorized_operations")
            if ops is not None and "READ" not in ops:
                missing.append(f"READ on group {g}")
    finally:
        admin.close()
    if missing:
        raise NotAuthorized(
            f"Kafka at {settings.kafka_bootstrap}: {identity(settings)} lacks "
            + "; ".join(missing)
            + ". Grant them (docs/operations.md, 'Kafka ACLs')"
        )


def _describe_group(admin: KafkaAdminClient, group: str, timeout: float = 15.0) -> dict[str, Any]:
    """``describe_groups`` of one group, retried while its coordinator is not ready
    (a new broker creates ``__consumer_offsets`` at the first lookup)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            res: dict[str, Any] = admin.describe_groups(
                [group], include_authorized_operations=True
            ).get(group, {})
            return res
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
