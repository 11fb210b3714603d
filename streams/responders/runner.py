"""The responder loop: consume crisis events, deliver to every sink, commit.

Per record, in partition order:

1. Parse and validate (``crisis_event.v1``). Not JSON, not an object, or not
   the schema: the original bytes go to the responder dead-letter topic with
   the reason; nothing is delivered.
2. Match the playbook entry (kind+severity, kind, default).
3. For each sink independently: render, deliver with bounded retries and
   exponential backoff (jittered; a server's ``Retry-After`` is honoured up to
   the cap). A sink that still fails gets its own dead-letter record
   (original key, value and headers plus ``crisiswatch.*`` reason headers),
   and the other sinks are unaffected.
4. Commit offset+1 synchronously, and only now: every sink has either
   delivered or dead-lettered. A crash anywhere before this redelivers the
   record (at-least-once); receivers deduplicate with the idempotency key.

If the dead-letter write itself fails the loop stops with an error instead of
committing: the event stays in ``crisis.events`` for the next run.

Counters (``Responder.counters``) are plain ints keyed ``events``,
``delivered.<sink>``, ``retries.<sink>``, ``failed.<sink>``,
``deadletter.invalid``, ``aborted``; sink names are bounded (``webhook``,
``slack``, ``webhook2``...), so they map straight to Prometheus labels, e.g.
``crisiswatch_responder_deliveries_total{sink, outcome}`` and
``crisiswatch_responder_retries_total{sink}``, once ``streams/metrics.py``
exists: increment them in :meth:`Responder._count`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata, TopicPartition

from schemas import SchemaError, validator

from .. import metrics
from ..errors import BrokerUnavailable
from ..settings import Settings
from .playbooks import Playbooks
from .sinks import DeliveryError, Payload, Sink, idempotency_key

__all__ = ["DeliveryResult", "Responder", "RetryPolicy", "deliver_with_retries"]

log = logging.getLogger("crisiswatch.responders")

STAGE = "respond"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff: attempt n waits ``backoff * 2**(n-1)``, capped, with
    "equal jitter" (half fixed, half random) so many responders don't retry in step.

    >>> p = RetryPolicy(max_attempts=4, backoff=1.0, backoff_max=3.0, rand=lambda: 1.0)
    >>> [p.delay(n) for n in (1, 2, 3)]
    [1.0, 2.0, 3.0]
    >>> p.delay(1, retry_after=10.0)
    3.0
    """

    max_attempts: int = 5
    backoff: float = 0.5
    backoff_max: float = 30.0
    rand: Callable[[], float] = random.random

    @classmethod
    def from_settings(cls, s: Settings) -> RetryPolicy:
        return cls(
            s.responder_max_attempts, s.responder_backoff_seconds, s.responder_backoff_max_seconds
        )

    def delay(self, failed_attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        d = min(self.backoff * 2 ** (failed_attempt - 1), self.backoff_max)
        return d / 2 + d / 2 * self.rand()


@dataclass(frozen=True)
class DeliveryResult:
    """``ok``: delivered. ``aborted``: stopped during backoff (neither delivered nor failed for good)."""

    sink: str
    ok: bool
    attempts: int
    error: str = ""
    aborted: bool = False


def deliver_with_retries(
    sink: Sink,
    payload: Payload,
    policy: RetryPolicy,
    *,
    wait: Callable[[float], bool] | None = None,
    on_retry: Callable[[str, int, DeliveryError], None] | None = None,
) -> DeliveryResult:
    """Deliver, retrying retryable failures up to ``policy.max_attempts`` in total.

    ``wait(seconds)`` sleeps and returns True if the responder is stopping
    (default: ``time.sleep``, never stopping).
    """

    def _sleep(seconds: float) -> bool:
        time.sleep(seconds)
        return False

    wait = wait or _sleep
    attempt = 0
    while True:
        attempt += 1
        try:
            sink.deliver(payload)
            return DeliveryResult(sink.name, True, attempt)
        except Exception as exc:
            if not isinstance(exc, DeliveryError):
                # A sink bug, not the receiver: retrying won't help, and it
                # must not take the loop down. Dead-letter with the cause.
                log.exception("%s: unexpected error while delivering", sink.name)
                return DeliveryResult(
                    sink.name, False, attempt, f"{type(exc).__name__}: {exc} (not retryable)"
                )
            if not exc.retryable or attempt >= policy.max_attempts:
                why = "" if exc.retryable else " (not retryable)"
                return DeliveryResult(sink.name, False, attempt, f"{exc}{why}")
            if on_retry:
                on_retry(sink.name, attempt, exc)
            if wait(policy.delay(attempt, exc.retry_after)):
                return DeliveryResult(sink.name, False, attempt, str(exc), aborted=True)


def _parse(value: bytes | None) -> dict[str, Any]:
    if not value:
        raise ValueError("empty record value")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    try:
        validator("crisis_event.v1").validate(doc)
    except SchemaError as exc:
        raise ValueError(str(exc)) from None
    except Exception as exc:  # e.g. RecursionError on absurd nesting
        raise ValueError(f"cannot validate: {type(exc).__name__}: {exc}") from None
    return doc


class Responder:
    """Consume ``settings.topic_events`` in group ``settings.responder_group`` and respond.

    Build it, then ``run()``; ``stop()`` (thread- and signal-safe) ends the loop
    after the current record, or during a retry backoff without committing it.
    ``consumer``/``producer`` may be injected (tests); by default they come
    from the settings.
    """

    def __init__(
        self,
        settings: Settings,
        sinks: Sequence[Sink],
        playbooks: Playbooks,
        *,
        policy: RetryPolicy | None = None,
        consumer: KafkaConsumer | None = None,
        producer: KafkaProducer | None = None,
    ) -> None:
        if not sinks:
            raise ValueError("a responder needs at least one sink")
        self.settings = settings
        self.sinks = list(sinks)
        self.playbooks = playbooks
        self.policy = policy or RetryPolicy.from_settings(settings)
        self.counters: Counter[str] = Counter()
        self._consumer = consumer
        self._producer = producer
        self._stop = threading.Event()
        validator("crisis_event.v1")  # compile once, up front

    # -- lifecycle ---------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def _wait(self, seconds: float) -> bool:
        return self._stop.wait(seconds)

    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] += n
        metrics.responder_count(key, n)

    def _max_poll_interval_ms(self) -> int:
        # One record may take every sink's whole retry budget; the group must
        # not evict us meanwhile (default 5 min).
        p = self.policy
        backoffs = sum(min(p.backoff * 2**i, p.backoff_max) for i in range(p.max_attempts - 1))
        per_sink = p.max_attempts * self.settings.responder_http_timeout_seconds + backoffs
        budget = len(self.sinks) * per_sink * 1.5 + 30
        return max(300_000, int(budget * 1000))

    def _make_consumer(self, from_beginning: bool) -> KafkaConsumer:
        from ..kafka_util import consumer

        s = self.settings
        kw: dict[str, Any] = {}
        if s.responder_instance_id:
            kw["group_instance_id"] = s.responder_instance_id
        return consumer(
            s,
            s.topic_events,
            group_id=s.responder_group,
            client_id="crisiswatch-responder",
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            # One record per poll: alerts are few, and a record's retries must
            # fit max_poll_interval_ms (sized for one record above).
            max_poll_records=1,
            max_poll_interval_ms=self._max_poll_interval_ms(),
            session_timeout_ms=s.responder_session_timeout_ms,
            heartbeat_interval_ms=min(3000, s.responder_session_timeout_ms // 3),
            **kw,
        )

    def _make_producer(self) -> KafkaProducer:
        from ..kafka_util import producer

        # acks=all + idempotence (kafka-python 3 default): a dead letter is
        # durable before the offset that it stands for is committed.
        return producer(self.settings, acks="all", linger_ms=0, client_id="crisiswatch-responder")

    def check_access(self) -> None:
        """NotAuthorized, naming each missing permission, if the broker's ACLs would
        stop the responders (a group they may not join crashed them with a traceback)."""
        from ..kafka_util import check_access, responder_access

        check_access(self.settings, responder_access(self.settings))

    def ensure_topics(self) -> None:
        """Create the events and responder dead-letter topics if missing (best effort:
        on a managed cluster they may be pre-created and creation forbidden)."""
        s = self.settings
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=s.bootstrap_servers,
                **s.kafka_python_config(),
                request_timeout_ms=10_000,
            )
        except KafkaError as exc:
            log.warning("cannot check topics (%s); assuming they exist", exc)
            return
        try:
            existing = set(admin.list_topics())
            new = [
                NewTopic(t, num_partitions=s.partitions, replication_factor=s.replication_factor)
                for t in (s.topic_events, s.topic_responder_deadletter)
                if t not in existing
            ]
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(new, timeout_ms=15_000)
                log.info("created topics %s", ", ".join(t.name for t in new))
        except KafkaError as exc:
            log.warning("cannot create topics (%s); assuming they exist", exc)
        finally:
            admin.close()

    # -- the loop ----------------------------------------------------------

    def run(
        self,
        *,
        max_events: int | None = None,
        timeout: float | None = None,
        from_beginning: bool = False,
    ) -> dict[str, int]:
        """Respond until stopped, ``max_events`` records are done, or ``timeout`` seconds pass.

        Returns the counters. ``from_beginning`` matters only for a group with
        no committed offsets (it then starts at the oldest retained event); a
        group always resumes from its commits.
        """
        t0 = time.monotonic()
        deadline = None if timeout is None else t0 + timeout
        if self._consumer is None:
            from ..kafka_util import wait_reachable

            wait_reachable(self.settings)  # one clear error instead of a client's retry loop
            self.ensure_topics()
            self.check_access()
        consumer = self._consumer or self._make_consumer(from_beginning)
        producer = self._producer or self._make_producer()
        log.info(
            "responding to %s (group %s) via %s",
            self.settings.topic_events,
            self.settings.responder_group,
            ", ".join(f"{s.name}={s.describe()}" for s in self.sinks),
        )
        done = 0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                wait_ms = (
                    500 if deadline is None else int(max(0.0, min(0.5, deadline - now)) * 1000)
                )
                batch = consumer.poll(timeout_ms=wait_ms)
                for tp, records in batch.items():
                    for i, rec in enumerate(records):
                        if self._stop.is_set() or not self.process(rec, producer):
                            self._rewind(consumer, tp, records[i].offset)
                            return dict(self.counters)
                        self._count("events")
                        done += 1
                        committed = self._commit(consumer, tp, rec.offset + 1)
                        if max_events is not None and done >= max_events:
                            return dict(self.counters)
                        if not committed:
                            # Partitions moved to another member; it resumes from
                            # the last commit. Don't race it with the rest of the batch.
                            self._rewind(consumer, tp, rec.offset + 1)
                            break
            return dict(self.counters)
        finally:
            with contextlib.suppress(Exception):
                consumer.close(autocommit=False)
            if self._producer is None:
                with contextlib.suppress(Exception):
                    producer.close(timeout=5)

    @staticmethod
    def _rewind(consumer: KafkaConsumer, tp: TopicPartition, offset: int) -> None:
        # poll() already moved the position past records we did not finish.
        with contextlib.suppress(Exception):
            if tp in consumer.assignment():
                consumer.seek(tp, offset)

    def _commit(self, consumer: KafkaConsumer, tp: TopicPartition, offset: int) -> bool:
        try:
            consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
            return True
        except CommitFailedError as exc:
            log.warning(
                "commit of %s@%d failed after a rebalance (%s); it will be redelivered",
                tp,
                offset,
                exc,
            )
            return False
        except KafkaError as exc:
            # A later successful commit covers this offset too.
            log.warning("commit of %s@%d failed (%s); continuing", tp, offset, exc)
            return True

    def process(self, record: Any, producer: KafkaProducer) -> bool:
        """Handle one consumer record. True when it may be committed; False if stopped mid-way."""
        try:
            event = _parse(record.value)
        except Exception as exc:  # whatever the bytes are, the loop goes on
            log.warning(
                "invalid event at %s[%d]@%d: %s; dead-lettered",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
            self._dead_letter(producer, record, f"invalid event: {exc}", sink=None, attempts=0)
            self._count("deadletter.invalid")
            return True

        entry = self.playbooks.match(event["kind"], event["severity"])
        ident = f"crisis {event['crisis_id'][:12]} {event['status']} ({event['brand']})"
        for sink in self.sinks:
            try:
                payload = sink.render(event, entry)
            except Exception as exc:  # a render bug must not stop the loop
                log.exception("%s: rendering %s failed", sink.name, ident)
                self._count(f"failed.{sink.name}")
                self._dead_letter(
                    producer,
                    record,
                    f"render failed: {type(exc).__name__}: {exc}",
                    sink=sink.name,
                    attempts=0,
                    key=idempotency_key(event),
                )
                continue
            result = deliver_with_retries(
                sink, payload, self.policy, wait=self._wait, on_retry=self._on_retry
            )
            if result.aborted:
                self._count("aborted")
                log.info("stopping during retries of %s to %s; not committed", ident, sink.name)
                return False
            if result.ok:
                self._count(f"delivered.{sink.name}")
                log.info("delivered %s to %s (%d attempt(s))", ident, sink.name, result.attempts)
                continue
            self._count(f"failed.{sink.name}")
            log.error(
                "giving up on %s to %s after %d attempt(s): %s; dead-lettered",
                ident,
                sink.name,
                result.attempts,
                result.error,
            )
            self._dead_letter(
                producer,
                record,
                result.error,
                sink=sink.name,
                attempts=result.attempts,
                key=payload.idempotency_key,
            )
        return True

    def _on_retry(self, sink: str, attempt: int, exc: DeliveryError) -> None:
        self._count(f"retries.{sink}")
        log.warning("%s: attempt %d failed: %s; retrying", sink, attempt, exc)

    def _dead_letter(
        self,
        producer: KafkaProducer,
        record: Any,
        reason: str,
        *,
        sink: str | None,
        attempts: int,
        key: str = "",
    ) -> None:
        headers: list[tuple[str, bytes]] = [
            *(tuple(h) for h in (record.headers or [])),
            ("crisiswatch.error", reason.encode("utf-8", "replace")[:1000]),
            ("crisiswatch.stage", STAGE.encode()),
            ("crisiswatch.attempts", str(attempts).encode()),
            ("crisiswatch.source.topic", record.topic.encode()),
            ("crisiswatch.source.partition", str(record.partition).encode()),
            ("crisiswatch.source.offset", str(record.offset).encode()),
        ]
        if sink is not None:
            headers.append(("crisiswatch.sink", sink.encode()))
        if key:
            headers.append(("crisiswatch.idempotency_key", key.encode()))
        topic = self.settings.topic_responder_deadletter
        try:
            producer.send(topic, key=record.key, value=record.value, headers=headers).get(
                timeout=30
            )
        except KafkaError as exc:
            raise BrokerUnavailable(
                f"cannot write to the responder dead-letter topic {topic} ({exc}); "
                f"offset {record.partition}@{record.offset} not committed, it will be redelivered"
            ) from None
