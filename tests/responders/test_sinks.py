"""Sink payload formats, signatures, HTTP delivery against a real local server, sink specs."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.errors import ConfigError
from streams.responders.playbooks import PlaybookEntry
from streams.responders.sinks import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AlertmanagerSink,
    DeliveryError,
    FileSink,
    PagerDutySink,
    SlackSink,
    StdoutSink,
    WebhookSink,
    idempotency_key,
    parse_sink,
    parse_sinks,
    sign,
    verify_signature,
)
from streams.settings import Settings
from tests.responders.events import event
from tests.responders.http_support import RecordingServer

SECRET = "whsec-test-7f3a"
ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/S3CRETTOKEN"
ENTRY = PlaybookEntry(
    match="negativity_surge/critical",
    owners=("Communications lead", "Legal counsel"),
    first_response="Convene the crisis team within 15 minutes.",
    title="Critical negativity surge",
    steps=("Pause scheduled posts.", "Open the crisis log."),
    holding_statement="We're aware of the concerns.",
)
T0 = 1_767_225_600


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as srv:
        yield srv


# -- identity and signatures --------------------------------------------------


def test_idempotency_key_is_stable_per_event_and_distinct_across_events() -> None:
    opened = event(status="opened")
    assert idempotency_key(opened) == idempotency_key(dict(opened))
    assert len(idempotency_key(opened)) == 64
    keys = {
        idempotency_key(event(status="opened")),
        idempotency_key(event(status="resolved")),
        idempotency_key(event(status="updated", detected_at="2026-01-01T03:55:00Z")),
        idempotency_key(event(status="updated", detected_at="2026-01-01T04:10:00Z")),
        idempotency_key(event(status="opened", n=1)),
    }
    assert len(keys) == 5


def _signed(body: bytes, ts: int = T0, secret: str = SECRET) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(secret, body, ts)}


def test_signature_verifies() -> None:
    body = b'{"a":1}'
    assert sign(SECRET, body, T0).startswith("sha256=")
    assert verify_signature(SECRET, body, _signed(body), now=T0 + 5)
    assert verify_signature(SECRET.encode(), body, _signed(body), now=T0 - 5)
    # Header names are case-insensitive.
    lower = {k.lower(): v for k, v in _signed(body).items()}
    assert verify_signature(SECRET, body, lower, now=T0)


@pytest.mark.parametrize(
    "tamper",
    [
        "body",
        "secret",
        "timestamp_header",
        "stale",
        "future",
        "no_signature",
        "no_timestamp",
        "garbage_timestamp",
        "bare_hex",
    ],
)
def test_signature_fails_on_tampering(tamper: str) -> None:
    body = b'{"crisis_id":"a1","status":"opened"}'
    headers = _signed(body)
    now = T0 + 1
    secret = SECRET
    if tamper == "body":
        body = body.replace(b"opened", b"resolved")
    elif tamper == "secret":
        secret = "another"
    elif tamper == "timestamp_header":
        headers[TIMESTAMP_HEADER] = str(T0 + 100)  # replay with a fresh timestamp
        now = T0 + 100
    elif tamper == "stale":
        now = T0 + 301
    elif tamper == "future":
        now = T0 - 301
    elif tamper == "no_signature":
        del headers[SIGNATURE_HEADER]
    elif tamper == "no_timestamp":
        del headers[TIMESTAMP_HEADER]
    elif tamper == "garbage_timestamp":
        headers[TIMESTAMP_HEADER] = "yesterday"
    elif tamper == "bare_hex":
        headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER].removeprefix("sha256=")
    assert not verify_signature(secret, body, headers, now=now)


def test_signature_accepts_any_of_several_during_rotation() -> None:
    body = b"{}"
    headers = {
        TIMESTAMP_HEADER: str(T0),
        SIGNATURE_HEADER: f"{sign('old', body, T0)}, {sign('new', body, T0)}",
    }
    assert verify_signature("new", body, headers, now=T0)
    assert verify_signature("old", body, headers, now=T0)
    assert not verify_signature("other", body, headers, now=T0)


# -- payload formats ----------------------------------------------------------


def webhook(url: str = "http://127.0.0.1:9/hook", clock: Any = None) -> WebhookSink:
    return WebhookSink("webhook", url, 5.0, secret=SECRET, clock=clock or (lambda: float(T0)))


def test_webhook_render_is_pure_and_carries_event_and_playbook() -> None:
    ev = event()
    sink = webhook()
    p1, p2 = sink.render(ev, ENTRY), sink.render(ev, ENTRY)
    assert p1.body == p2.body and p1.headers == p2.headers
    doc = p1.json()
    assert doc["type"] == "crisis.opened"
    assert doc["idempotency_key"] == idempotency_key(ev) == p1.idempotency_key
    assert doc["event"] == ev
    assert doc["playbook"] == ENTRY.to_json()
    assert p1.headers[IDEMPOTENCY_HEADER] == idempotency_key(ev)
    assert p1.headers["X-Crisiswatch-Crisis-Id"] == ev["crisis_id"]
    # The signature is made at send time, not render time.
    assert SIGNATURE_HEADER not in p1.headers


def test_webhook_delivery_is_signed_and_verifiable(server: RecordingServer) -> None:
    ev = event()
    sink = webhook(server.url("/hook"), clock=__import__("time").time)
    sink.deliver(sink.render(ev, ENTRY))
    (got,) = server.wait_for("/hook", 1)
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers[IDEMPOTENCY_HEADER] == idempotency_key(ev)
    assert verify_signature(SECRET, got.body, got.headers)
    assert not verify_signature(SECRET, got.body + b" ", got.headers)
    assert not verify_signature("wrong", got.body, got.headers)
    assert got.json()["playbook"]["match"] == "negativity_surge/critical"


@pytest.mark.parametrize("status", ["opened", "escalated", "updated"])
def test_pagerduty_trigger(status: str) -> None:
    ev = event(status=status, severity="high")
    sink = PagerDutySink(
        "pagerduty",
        "https://events.pagerduty.com/v2/enqueue",
        routing_key=ROUTING_KEY,
        external_url="https://cw.example.com",
    )
    body = sink.render(ev, ENTRY).json()
    assert body["event_action"] == "trigger"
    assert body["routing_key"] == ROUTING_KEY
    assert body["dedup_key"] == ev["crisis_id"]
    p = body["payload"]
    assert set(p) >= {
        "summary",
        "source",
        "severity",
        "timestamp",
        "component",
        "group",
        "class",
        "custom_details",
    }
    assert p["severity"] == "error"
    assert p["timestamp"] == ev["detected_at"]
    assert p["component"] == "globex" and p["class"] == "negativity_surge"
    assert 0 < len(p["summary"]) <= 1024 and "globex" in p["summary"]
    assert p["custom_details"]["playbook"] == ENTRY.to_json()
    assert p["custom_details"]["status"] == status
    assert body["client_url"] == "https://cw.example.com"


def test_pagerduty_resolve_and_severity_mapping() -> None:
    sink = PagerDutySink(
        "pagerduty", "https://events.pagerduty.com/v2/enqueue", routing_key=ROUTING_KEY
    )
    ev = event(status="resolved")
    body = sink.render(ev, ENTRY).json()
    assert body == {
        "routing_key": ROUTING_KEY,
        "dedup_key": ev["crisis_id"],
        "event_action": "resolve",
    }
    sev = {
        s: sink.render(event(severity=s), ENTRY).json()["payload"]["severity"]
        for s in ("low", "medium", "high", "critical")
    }
    assert sev == {"low": "info", "medium": "warning", "high": "error", "critical": "critical"}
    # Every event of one crisis shares the dedup key, so resolve closes the trigger.
    assert sink.render(event(status="opened"), ENTRY).json()["dedup_key"] == body["dedup_key"]


@pytest.mark.parametrize(
    ("status", "am_status"), [("opened", "firing"), ("updated", "firing"), ("resolved", "resolved")]
)
def test_alertmanager_body(status: str, am_status: str) -> None:
    ev = event(status=status)
    sink = AlertmanagerSink(
        "alertmanager", "http://am.example:9093/hook", external_url="https://cw.example.com"
    )
    body = sink.render(ev, ENTRY).json()
    assert set(body) == {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
    assert body["version"] == "4"
    assert body["status"] == am_status
    assert body["truncatedAlerts"] == 0
    assert ev["crisis_id"] in body["groupKey"]
    assert body["externalURL"] == "https://cw.example.com"
    (alert,) = body["alerts"]
    assert set(alert) == {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }
    assert alert["status"] == am_status
    assert alert["labels"] == {
        "alertname": "BrandCrisis",
        "brand": "globex",
        "kind": "negativity_surge",
        "severity": "critical",
        "crisis_id": ev["crisis_id"],
    }
    assert alert["startsAt"] == ev["window_start"]
    assert alert["endsAt"] == (
        ev["detected_at"] if status == "resolved" else "0001-01-01T00:00:00Z"
    )
    assert alert["fingerprint"] == ev["crisis_id"][:16]
    ann = alert["annotations"]
    assert ann["first_response"] == ENTRY.first_response
    assert ann["owners"] == "Communications lead, Legal counsel"
    assert ann["playbook"] == ENTRY.match
    assert "summary" in ann and "description" in ann
    # Alertmanager labels and annotations are string -> string.
    for mapping in (
        alert["labels"],
        ann,
        body["commonLabels"],
        body["commonAnnotations"],
        body["groupLabels"],
    ):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items())


def test_slack_text_and_blocks() -> None:
    ev = event()
    ev["evidence"]["examples"][0]["text"] = (
        "<!channel> globex is <https://evil.example|fine> & awful"
    )
    body = SlackSink("slack", SLACK_URL).render(ev, ENTRY).json()
    assert set(body) == {"text", "blocks"}
    assert "globex" in body["text"] and "CRITICAL" in body["text"]
    assert ENTRY.first_response in body["text"]
    types = [b["type"] for b in body["blocks"]]
    assert types[0] == "header" and types[-1] == "context"
    assert len(body["blocks"][0]["text"]["text"]) <= 150
    flat = orjson.dumps(body["blocks"]).decode()
    assert ENTRY.first_response in flat
    assert "Communications lead, Legal counsel" in flat
    assert "Pause scheduled posts." in flat
    # User content cannot ping a channel or smuggle a link.
    assert "<!channel>" not in flat and "&lt;!channel&gt;" in flat
    assert "<https://evil" not in flat and "&amp; awful" in flat
    for b in body["blocks"]:
        if b["type"] == "section" and "text" in b:
            assert len(b["text"]["text"]) <= 3000


def test_slack_resolved_has_no_examples() -> None:
    body = SlackSink("slack", SLACK_URL).render(event(status="resolved"), ENTRY).json()
    assert ":white_check_mark:" in body["text"]
    assert "What people are saying" not in orjson.dumps(body).decode()


def test_file_sink_appends_json_lines(tmp_path: Path) -> None:
    sink = FileSink("file", tmp_path / "events.jsonl")
    for status in ("opened", "resolved"):
        sink.deliver(sink.render(event(status=status), ENTRY))
    lines = [orjson.loads(x) for x in (tmp_path / "events.jsonl").read_bytes().splitlines()]
    assert [x["type"] for x in lines] == ["crisis.opened", "crisis.resolved"]
    assert lines[0]["playbook"]["owners"] == list(ENTRY.owners)


def test_file_sink_unwritable_is_not_retryable(tmp_path: Path) -> None:
    sink = FileSink("file", tmp_path / "gone" / "events.jsonl")
    with pytest.raises(DeliveryError) as info:
        sink.deliver(sink.render(event(), ENTRY))
    assert not info.value.retryable


def test_stdout_sink() -> None:
    out = io.StringIO()
    sink = StdoutSink("stdout", stream=out)
    sink.deliver(sink.render(event(), ENTRY))
    text = out.getvalue()
    assert "OPENED" in text and "globex" in text
    assert "playbook [negativity_surge/critical] — Critical negativity surge" in text
    assert "first response: Convene the crisis team" in text


# -- HTTP delivery outcomes against a real server -------------------------------


def _deliver(url: str) -> DeliveryError:
    sink = SlackSink("slack", url, 2.0)
    with pytest.raises(DeliveryError) as info:
        sink.deliver(sink.render(event(), ENTRY))
    return info.value


def test_http_outcomes(server: RecordingServer) -> None:
    server.respond("/s/500/TOKEN", 500)
    server.respond("/s/400/TOKEN", 400)
    server.respond("/s/429/TOKEN", 429)
    server.respond("/s/301/TOKEN", 301)
    e500 = _deliver(server.url("/s/500/TOKEN"))
    assert e500.retryable and "HTTP 500" in str(e500) and "server says no" in str(e500)
    e400 = _deliver(server.url("/s/400/TOKEN"))
    assert not e400.retryable and "HTTP 400" in str(e400)
    assert _deliver(server.url("/s/429/TOKEN")).retryable
    e301 = _deliver(server.url("/s/301/TOKEN"))
    assert not e301.retryable and "redirects are not followed" in str(e301)
    for e in (e500, e400, e301):
        assert "TOKEN" not in str(e)  # webhook paths are often the secret
    ok = SlackSink("slack", server.url("/s/ok/TOKEN"))
    ok.deliver(ok.render(event(), ENTRY))
    assert len(server.at("/s/ok/TOKEN")) == 1


def test_retry_after_is_passed_on() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(429)
            self.send_header("Retry-After", "7")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        e = _deliver(f"http://127.0.0.1:{httpd.server_address[1]}/x")
        assert e.retryable and e.retry_after == 7.0
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    e = _deliver(f"http://127.0.0.1:{port}/services/T/B/TOKEN")
    assert e.retryable and "cannot reach http://127.0.0.1" in str(e) and "TOKEN" not in str(e)


# -- sink specs ----------------------------------------------------------------


def settings(**kw: Any) -> Settings:
    return Settings(webhook_secret=SECRET, pagerduty_routing_key=ROUTING_KEY, **kw)


def test_parse_specs(tmp_path: Path) -> None:
    s = settings(slack_webhook_url=SLACK_URL, alertmanager_url="http://am:9093/api/hook")
    assert isinstance(parse_sink("stdout", s), StdoutSink)
    f = parse_sink(f"file:{tmp_path}/e.jsonl", s)
    assert isinstance(f, FileSink) and f.path == tmp_path / "e.jsonl"
    w = parse_sink("webhook:https://ops.example.com/crisis", s)
    assert isinstance(w, WebhookSink) and w.url == "https://ops.example.com/crisis"
    sl = parse_sink("slack", s)
    assert isinstance(sl, SlackSink) and sl.url == SLACK_URL
    pd = parse_sink("pagerduty", s)
    assert isinstance(pd, PagerDutySink) and pd.url == "https://events.pagerduty.com/v2/enqueue"
    am = parse_sink("alertmanager", s)
    assert isinstance(am, AlertmanagerSink) and am.url == "http://am:9093/api/hook"
    names = [k.name for k in parse_sinks(["webhook:http://a/x", "stdout", "webhook:http://b/y"], s)]
    assert names == ["webhook", "stdout", "webhook2"]


@pytest.mark.parametrize(
    ("spec", "words", "kw"),
    [
        ("teams:https://outlook.office.com/webhook/TOKEN", "unknown sink", {}),
        ("webhook", "CRISISWATCH_WEBHOOK_URL", {}),
        ("webhook:ftp://host/x", "not an http(s) URL", {}),
        ("webhook:not a url", "not an http(s) URL", {}),
        ("webhook:http://host:99999/x", "bad port", {}),
        ("webhook:https://ops.example.com/x", "CRISISWATCH_WEBHOOK_SECRET", {"webhook_secret": ""}),
        ("pagerduty", "CRISISWATCH_PAGERDUTY_ROUTING_KEY", {"pagerduty_routing_key": ""}),
        ("slack", "CRISISWATCH_SLACK_WEBHOOK_URL", {}),
        ("file:", "needs a path", {}),
        ("file:/no/such/dir/e.jsonl", "does not exist", {}),
        ("stdout:x", "takes no argument", {}),
    ],
)
def test_bad_specs_are_one_line_config_errors(spec: str, words: str, kw: dict[str, Any]) -> None:
    base: dict[str, Any] = {"webhook_secret": SECRET, "pagerduty_routing_key": ROUTING_KEY, **kw}
    with pytest.raises(ConfigError) as info:
        parse_sink(spec, Settings(**base))
    msg = str(info.value)
    assert words in msg and "\n" not in msg
    assert "TOKEN" not in msg


def test_no_sinks_is_an_error() -> None:
    with pytest.raises(ConfigError, match="at least one --sink"):
        parse_sinks([], settings())


def test_secrets_stay_out_of_reprs() -> None:
    s = settings(slack_webhook_url=SLACK_URL)
    text = repr(s) + str(s)
    for sink in parse_sinks(["webhook:https://ops.example.com/hook", "slack", "pagerduty"], s):
        text += repr(sink) + sink.describe() + repr(sink.render(event(), ENTRY))
    assert SECRET not in text
    assert ROUTING_KEY not in text
    assert "S3CRETTOKEN" not in text
