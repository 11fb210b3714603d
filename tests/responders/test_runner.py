"""The responder's per-record logic without a broker: retries, dead letters, secrets."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from kafka.errors import KafkaTimeoutError

from streams.errors import BrokerUnavailable
from streams.responders.playbooks import parse_playbooks
from streams.responders.runner import Responder, RetryPolicy, deliver_with_retries
from streams.responders.sinks import DeliveryError, Payload, Sink, SlackSink, idempotency_key
from streams.settings import Settings
from tests.responders.events import event

PLAYBOOKS = parse_playbooks(
    {
        "default": {"owners": ["On-call comms"], "first_response": "Look."},
        "playbooks": [
            {
                "kind": "negativity_surge",
                "severity": "critical",
                "owners": ["Legal counsel"],
                "first_response": "Call legal.",
            }
        ],
    }
)
FAST = RetryPolicy(max_attempts=3, backoff=0.001, backoff_max=0.002)


@dataclass
class FlakySink(Sink):
    """Fails with the given errors in turn, then succeeds."""

    name: str
    errors: list[DeliveryError] = field(default_factory=list)
    delivered: list[Payload] = field(default_factory=list)
    attempts: int = 0
    kind = "flaky"

    def render(self, event: dict[str, Any], entry: Any) -> Payload:
        return Payload(
            orjson.dumps({"event": event, "playbook": entry.to_json()}),
            idempotency_key=idempotency_key(event),
        )

    def deliver(self, payload: Payload) -> None:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        self.delivered.append(payload)


class BrokenRenderSink(FlakySink):
    def render(self, event: dict[str, Any], entry: Any) -> Payload:
        raise KeyError("oops")


@dataclass
class Record:
    value: bytes | None
    key: bytes | None = b"globex"
    topic: str = "crisis.events"
    partition: int = 2
    offset: int = 41
    headers: list[tuple[str, bytes]] = field(default_factory=lambda: [("trace", b"t-1")])


class FakeFuture:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def get(self, timeout: float) -> None:
        if self.fail:
            raise KafkaTimeoutError("no broker")


@dataclass
class FakeProducer:
    fail: bool = False
    sent: list[dict[str, Any]] = field(default_factory=list)

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> FakeFuture:
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": dict(headers)})
        return FakeFuture(self.fail)


def retryable(msg: str = "HTTP 503 Service Unavailable from http://x") -> DeliveryError:
    return DeliveryError(msg, retryable=True)


def test_retry_policy_is_bounded_and_jittered() -> None:
    p = RetryPolicy(max_attempts=10, backoff=0.5, backoff_max=4.0, rand=lambda: 0.0)
    assert [p.delay(n) for n in range(1, 6)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    p = RetryPolicy(max_attempts=10, backoff=0.5, backoff_max=4.0, rand=lambda: 1.0)
    assert [p.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert p.delay(1, retry_after=2.5) == 2.5
    assert p.delay(1, retry_after=60) == 4.0


def test_retries_until_success() -> None:
    sink = FlakySink("w", [retryable(), retryable()])
    waits: list[float] = []
    retries: list[int] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return False

    res = deliver_with_retries(
        sink,
        sink.render(event(), PLAYBOOKS.default),
        FAST,
        wait=wait,
        on_retry=lambda name, n, e: retries.append(n),
    )
    assert res.ok and res.attempts == 3 and len(sink.delivered) == 1
    assert retries == [1, 2] and len(waits) == 2


def test_gives_up_after_max_attempts() -> None:
    sink = FlakySink("w", [retryable() for _ in range(10)])
    res = deliver_with_retries(
        sink, sink.render(event(), PLAYBOOKS.default), FAST, wait=lambda s: False
    )
    assert not res.ok and res.attempts == 3 and sink.attempts == 3
    assert "HTTP 503" in res.error


def test_non_retryable_fails_at_once() -> None:
    sink = FlakySink("w", [DeliveryError("HTTP 400 Bad Request", retryable=False)])
    res = deliver_with_retries(
        sink, sink.render(event(), PLAYBOOKS.default), FAST, wait=lambda s: False
    )
    assert not res.ok and res.attempts == 1 and "not retryable" in res.error


def test_stop_during_backoff_aborts() -> None:
    sink = FlakySink("w", [retryable()])
    res = deliver_with_retries(
        sink, sink.render(event(), PLAYBOOKS.default), FAST, wait=lambda s: True
    )
    assert res.aborted and not res.ok


def responder(*sinks: Sink, **kw: Any) -> Responder:
    return Responder(
        Settings(topic_responder_deadletter="dlt", **kw), list(sinks), PLAYBOOKS, policy=FAST
    )


def test_each_sink_is_delivered_or_dead_lettered_independently() -> None:
    good = FlakySink("good", [retryable()])
    bad = FlakySink("bad", [retryable() for _ in range(10)])
    broken = BrokenRenderSink("broken")
    r = responder(good, bad, broken)
    prod = FakeProducer()
    ev = event()
    value = orjson.dumps(ev)
    assert r.process(Record(value), prod)
    assert len(good.delivered) == 1
    assert orjson.loads(good.delivered[0].body)["playbook"]["match"] == "negativity_surge/critical"
    assert bad.attempts == 3
    assert [s["headers"].get("crisiswatch.sink") for s in prod.sent] == [b"bad", b"broken"]
    dl = prod.sent[0]
    assert dl["topic"] == "dlt" and dl["key"] == b"globex" and dl["value"] == value
    h = dl["headers"]
    assert h["trace"] == b"t-1"  # original headers are kept
    assert b"HTTP 503" in h["crisiswatch.error"]
    assert h["crisiswatch.attempts"] == b"3"
    assert h["crisiswatch.stage"] == b"respond"
    assert h["crisiswatch.source.topic"] == b"crisis.events"
    assert h["crisiswatch.source.partition"] == b"2"
    assert h["crisiswatch.source.offset"] == b"41"
    assert h["crisiswatch.idempotency_key"] == idempotency_key(ev).encode()
    assert b"render failed: KeyError" in prod.sent[1]["headers"]["crisiswatch.error"]
    assert r.counters["delivered.good"] == 1
    assert r.counters["retries.good"] == 1
    assert r.counters["retries.bad"] == 2
    assert r.counters["failed.bad"] == 1 and r.counters["failed.broken"] == 1


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (b"not json", b"not JSON"),
        (None, b"empty record"),
        (b"[1, 2]", b"expected a JSON object"),
        (orjson.dumps({**event(), "severity": "apocalyptic"}), b"severity"),
        (orjson.dumps({k: v for k, v in event().items() if k != "crisis_id"}), b"crisis_id"),
    ],
)
def test_invalid_events_are_dead_lettered_not_delivered(value: bytes | None, words: bytes) -> None:
    sink = FlakySink("w")
    r = responder(sink)
    prod = FakeProducer()
    assert r.process(Record(value), prod)
    assert sink.attempts == 0
    (dl,) = prod.sent
    assert dl["value"] == value
    h = dl["headers"]
    assert h["crisiswatch.error"].startswith(b"invalid event: ") and words in h["crisiswatch.error"]
    assert h["crisiswatch.attempts"] == b"0"
    assert "crisiswatch.sink" not in h
    assert r.counters["deadletter.invalid"] == 1


def test_dead_letter_write_failure_stops_without_commit() -> None:
    r = responder(FlakySink("w", [DeliveryError("HTTP 400", retryable=False)]))
    with pytest.raises(BrokerUnavailable, match="not committed"):
        r.process(Record(orjson.dumps(event())), FakeProducer(fail=True))


def test_stop_while_retrying_returns_false_quickly() -> None:
    slow = RetryPolicy(max_attempts=5, backoff=30, backoff_max=30)
    sink = FlakySink("w", [retryable() for _ in range(10)])
    r = Responder(Settings(), [sink], PLAYBOOKS, policy=slow)
    threading.Timer(0.2, r.stop).start()
    assert r.process(Record(orjson.dumps(event())), FakeProducer()) is False
    assert r.counters["aborted"] == 1


def test_no_secrets_in_logs_or_dead_letters(caplog: pytest.LogCaptureFixture) -> None:
    from tests.responders.http_support import RecordingServer

    secret_path = "/services/T0/B0/S3CRETTOKEN"
    with RecordingServer() as srv:
        srv.respond(secret_path, 500)
        sink = SlackSink("slack", srv.url(secret_path), 2.0)
        r = responder(sink, webhook_secret="whsec-NEVER-LOG", pagerduty_routing_key="RK-NEVER-LOG")
        prod = FakeProducer()
        with caplog.at_level(logging.DEBUG, logger="crisiswatch"):
            assert r.process(Record(orjson.dumps(event())), prod)
        assert len(srv.at(secret_path)) == 3
    text = caplog.text + repr(prod.sent) + repr(r.settings)
    assert "giving up" in caplog.text
    for secret in ("S3CRETTOKEN", "whsec-NEVER-LOG", "RK-NEVER-LOG"):
        assert secret not in text


class BuggySink(FlakySink):
    def deliver(self, payload: Payload) -> None:
        self.attempts += 1
        raise UnicodeEncodeError("latin-1", "é", 0, 1, "bug")


def test_a_sink_bug_is_dead_lettered_not_fatal() -> None:
    buggy, good = BuggySink("buggy"), FlakySink("good")
    r = responder(buggy, good)
    prod = FakeProducer()
    assert r.process(Record(orjson.dumps(event())), prod)
    assert buggy.attempts == 1 and len(good.delivered) == 1
    (dl,) = prod.sent
    assert dl["headers"]["crisiswatch.sink"] == b"buggy"
    assert dl["headers"]["crisiswatch.error"].startswith(b"UnicodeEncodeError")
