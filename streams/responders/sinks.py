"""Notification sinks: one class per destination, one small interface.

Every sink turns a crisis event and its playbook entry into a
:class:`Payload` with :meth:`Sink.render` (pure: same input, same bytes, no
clock, no I/O, so it is unit-testable) and sends it with
:meth:`Sink.deliver`, which raises :class:`DeliveryError` saying whether a
retry can help. Retries, backoff and dead-lettering live in the runner.

>>> from streams.responders.playbooks import PlaybookEntry
>>> entry = PlaybookEntry(match="default", owners=("Comms lead",), first_response="Call.")
>>> event = {"crisis_id": "a1417dc893e9195e", "status": "resolved", "brand": "globex",
...          "kind": "volume_spike", "severity": "high", "score": 0.4,
...          "detected_at": "2026-01-01T04:40:00Z"}
>>> PagerDutySink("pagerduty", "https://events.pagerduty.com/v2/enqueue", "R0UTING").render(
...     event, entry).json()["event_action"]
'resolve'

Signed webhooks: the body is signed with HMAC-SHA256 over
``"<timestamp>." + body`` and sent with ``X-Crisiswatch-Timestamp`` and
``X-Crisiswatch-Signature: sha256=<hex>``; receivers check with
:func:`verify_signature`.

>>> sig = sign("s3cret", b'{"a":1}', 1767225600)
>>> verify_signature("s3cret", b'{"a":1}',
...     {"X-Crisiswatch-Signature": sig, "X-Crisiswatch-Timestamp": "1767225600"},
...     now=1767225610)
True
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import http.client
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol

import orjson

from .. import __version__
from ..errors import ConfigError
from ..settings import Settings
from .playbooks import PlaybookEntry

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AlertmanagerSink",
    "DeliveryError",
    "FileSink",
    "PagerDutySink",
    "Payload",
    "Sink",
    "SlackSink",
    "StdoutSink",
    "WebhookSink",
    "idempotency_key",
    "parse_sink",
    "parse_sinks",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Crisiswatch-Signature"
TIMESTAMP_HEADER = "X-Crisiswatch-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = f"crisiswatch/{__version__}"

# ----------------------------------------------------------------------------
# Identity and signatures


def idempotency_key(event: dict[str, Any]) -> str:
    """sha256 hex of ``crisis_id:status:detected_at``: one key per distinct crisis event.

    ``opened`` and ``resolved`` happen once per crisis, so for them this is
    as unique as crisis_id+status. ``updated`` and ``escalated`` recur within
    one crisis; ``detected_at`` (the close of the event's bucket, in event
    time) tells them apart while staying identical when the same event is
    redelivered or re-emitted after a worker restart.

    >>> idempotency_key({"crisis_id": "ab12", "status": "opened",
    ...                  "detected_at": "2026-01-01T03:40:00Z"})[:16]
    '467f98e5e3a39d23'
    """
    material = (
        f"{event.get('crisis_id', '')}:{event.get('status', '')}:{event.get('detected_at', '')}"
    )
    return hashlib.sha256(material.encode()).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """``sha256=<hex>`` HMAC of ``b"<timestamp>." + body`` under ``secret``.

    The timestamp is inside the signed material so a captured request cannot
    be replayed later with a fresh timestamp header.
    """
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, str(int(timestamp)).encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class _Headers(Protocol):
    def items(self) -> Iterable[tuple[str, Any]]: ...


def _header(headers: _Headers, name: str) -> str | None:
    # HTTP header names are case-insensitive; frameworks hand them over as
    # dicts in any case, or as email.message.Message (http.server).
    lname = name.lower()
    for k, v in headers.items():
        if k.lower() == lname:
            return str(v)
    return None


def verify_signature(
    secret: str | bytes,
    body: bytes,
    headers: _Headers,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """True if ``headers`` carry a valid signature of the exact ``body`` bytes, made recently.

    ``headers`` is anything with ``.items()`` (a dict, ``http.server``'s
    ``self.headers``, a framework's header mapping). The timestamp must be
    within ``tolerance`` seconds of ``now`` (default: the current time), which
    bounds replays. Several ``sha256=`` values separated by commas are
    accepted, so a sender can sign with an old and a new secret while they
    rotate. Verify the raw body before parsing it: re-serialised JSON is not
    the same bytes.
    """
    ts_raw = _header(headers, TIMESTAMP_HEADER)
    sig_raw = _header(headers, SIGNATURE_HEADER)
    if not ts_raw or not sig_raw:
        return False
    try:
        ts = int(ts_raw.strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        return False
    expected = sign(secret, body, ts)
    return any(hmac.compare_digest(expected, s.strip()) for s in sig_raw.split(","))


# ----------------------------------------------------------------------------
# Payloads and errors


@dataclass(frozen=True)
class Payload:
    """What one sink sends for one event. Body and headers stay out of repr: they may hold secrets."""

    body: bytes = field(repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    idempotency_key: str = ""
    content_type: str = "application/json"

    def json(self) -> Any:
        return orjson.loads(self.body)


class DeliveryError(Exception):
    """A delivery failed. The message is safe to log and to put in dead-letter headers."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


# ----------------------------------------------------------------------------
# Sinks


class Sink(ABC):
    """Common interface. ``name`` is unique among the configured sinks and bounded
    (``webhook``, ``webhook2``, ``slack``...), fit for metric labels and headers."""

    kind: ClassVar[str]
    name: str

    @abstractmethod
    def render(self, event: dict[str, Any], entry: PlaybookEntry) -> Payload:
        """Build the payload: pure, no I/O, no clock."""

    @abstractmethod
    def deliver(self, payload: Payload) -> None:
        """Send it; raise DeliveryError on failure."""

    def describe(self) -> str:
        """Where it goes, safe for logs (no tokens, no secrets)."""
        return self.kind

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} → {self.describe()}>"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # Following a redirect would resend a signed alert to wherever the
    # redirect points (and urllib turns POST into GET on 301/302). Fail
    # loudly instead: the sink should name the final URL.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _one_line(raw: bytes, limit: int = 200) -> str:
    text = raw.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def _retry_after(value: str | None) -> float | None:
    # Only the delta-seconds form; an HTTP-date falls back to our own backoff.
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` only: paths and queries of webhook URLs often are the token.

    >>> redact_url("https://hooks.slack.com/services/T000/B000/XXXX")
    'https://hooks.slack.com/…'
    """
    u = urllib.parse.urlsplit(url)
    host = u.hostname or "?"
    try:
        port = f":{u.port}" if u.port else ""
    except ValueError:  # out of range or not a number
        port = ":?"
    rest = "/…" if (u.path not in ("", "/") or u.query) else ""
    return f"{u.scheme}://{host}{port}{rest}"


@dataclass(repr=False)
class HttpSink(Sink):
    """POST the payload's body; 2xx is success. 5xx, 408, 425, 429 and network errors are retryable."""

    kind: ClassVar[str] = "http"
    name: str
    url: str = field(repr=False)
    timeout: float = 10.0

    def describe(self) -> str:
        return f"{self.kind} {redact_url(self.url)}"

    def _send_headers(self, payload: Payload) -> dict[str, str]:
        return dict(payload.headers)

    def deliver(self, payload: Payload) -> None:
        headers = {
            "Content-Type": payload.content_type,
            "User-Agent": USER_AGENT,
            **self._send_headers(payload),
        }
        req = urllib.request.Request(self.url, data=payload.body, headers=headers, method="POST")
        target = redact_url(self.url)
        try:
            with _OPENER.open(req, timeout=self.timeout) as resp:
                resp.read(65_536)  # drain so the connection closes cleanly
        except urllib.error.HTTPError as exc:
            try:
                detail = _one_line(exc.read(400))
            except Exception:  # the error body is a nicety
                detail = ""
            code = exc.code
            retryable = code >= 500 or code in (408, 425, 429)
            hint = (
                " (redirects are not followed; configure the final URL)"
                if 300 <= code < 400
                else ""
            )
            msg = f"HTTP {code} {exc.reason} from {target}{hint}" + (
                f": {detail}" if detail else ""
            )
            raise DeliveryError(
                msg, retryable=retryable, retry_after=_retry_after(exc.headers.get("Retry-After"))
            ) from None
        except urllib.error.URLError as exc:
            raise DeliveryError(f"cannot reach {target}: {exc.reason}", retryable=True) from None
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            what = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            raise DeliveryError(f"{target}: {what}", retryable=True) from None


def _notification(event: dict[str, Any], entry: PlaybookEntry) -> dict[str, Any]:
    return {
        "type": f"crisis.{event.get('status')}",
        "idempotency_key": idempotency_key(event),
        "event": event,
        "playbook": entry.to_json(),
    }


@dataclass(repr=False)
class WebhookSink(HttpSink):
    """Generic JSON webhook, HMAC-signed.

    Body: ``{"type": "crisis.<status>", "idempotency_key", "event", "playbook"}``.
    Headers: ``Idempotency-Key``, ``X-Crisiswatch-Event``, ``X-Crisiswatch-Crisis-Id``,
    and at send time ``X-Crisiswatch-Timestamp`` + ``X-Crisiswatch-Signature``
    (signed per attempt, so a retry after a long backoff is not rejected as stale).
    """

    kind: ClassVar[str] = "webhook"
    secret: str = field(default="", repr=False)
    clock: Callable[[], float] = field(default=time.time, repr=False)

    def render(self, event: dict[str, Any], entry: PlaybookEntry) -> Payload:
        key = idempotency_key(event)
        body = orjson.dumps(_notification(event, entry))
        return Payload(
            body=body,
            headers={
                IDEMPOTENCY_HEADER: key,
                "X-Crisiswatch-Event": str(event.get("status", "")),
                "X-Crisiswatch-Crisis-Id": str(event.get("crisis_id", "")),
            },
            idempotency_key=key,
        )

    def _send_headers(self, payload: Payload) -> dict[str, str]:
        ts = int(self.clock())
        return {
            **payload.headers,
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(self.secret, payload.body, ts),
        }


_KIND_LABEL = {
    "negativity_surge": "negativity surge",
    "sentiment_shift": "sentiment shift",
    "volume_spike": "volume spike",
    "sustained_negativity": "sustained negativity",
}
_SLACK_STATUS = {
    "opened": (":rotating_light:", "Crisis opened"),
    "escalated": (":arrow_double_up:", "Crisis escalated"),
    "updated": (":arrows_counterclockwise:", "Crisis update"),
    "resolved": (":white_check_mark:", "Crisis resolved"),
}


def _slack_escape(text: Any) -> str:
    # Slack's mrkdwn treats <...> as links and mentions: a tweet containing
    # "<!channel>" must not ping a whole channel.
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(v: Any, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, int | float) else "-"


def _ovb(event: dict[str, Any], name: str, fmt: str) -> str:
    m = event.get("metrics", {}).get(name, {}) or {}
    return f"{_num(m.get('observed'), fmt)} (baseline {_num(m.get('baseline'), fmt)})"


def _summary(event: dict[str, Any]) -> str:
    kind = _KIND_LABEL.get(str(event.get("kind")), str(event.get("kind")))
    return (
        f"[{str(event.get('severity', '?')).upper()}] {event.get('brand')}: {kind} "
        f"{event.get('status')} (score {_num(event.get('score'), '.2f')})"
    )


@dataclass(repr=False)
class SlackSink(HttpSink):
    """Slack incoming webhook: ``text`` (notification fallback) plus Block Kit ``blocks``."""

    kind: ClassVar[str] = "slack"

    def render(self, event: dict[str, Any], entry: PlaybookEntry) -> Payload:
        status = str(event.get("status", ""))
        icon, headline = _SLACK_STATUS.get(status, (":warning:", f"Crisis {status}"))
        kind = _KIND_LABEL.get(str(event.get("kind")), str(event.get("kind")))
        e = _slack_escape
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": _cut(f"{icon} {headline}: {event.get('brand')} — {kind}", 150),
                    "emoji": True,
                },
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*Severity*\n{e(event.get('severity'))}"},
                    {
                        "type": "mrkdwn",
                        "text": f"*Score*\n{_num(event.get('score'), '.2f')}"
                        f" (peak {_num(event.get('peak_score', event.get('score')), '.2f')})",
                    },
                    {"type": "mrkdwn", "text": f"*Volume*\n{_ovb(event, 'volume', '.0f')}"},
                    {
                        "type": "mrkdwn",
                        "text": f"*Negative share*\n{_ovb(event, 'negative_share', '.2f')}",
                    },
                    {
                        "type": "mrkdwn",
                        "text": f"*Window*\n{e(event.get('window_start'))} → {e(event.get('window_end'))}",
                    },
                    {
                        "type": "mrkdwn",
                        "text": _cut(f"*Owners*\n{e(', '.join(entry.owners))}", 2000),
                    },
                ],
            },
        ]
        title = f" — {e(entry.title)}" if entry.title else ""
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _cut(f"*First response*{title}\n{e(entry.first_response)}", 3000),
                },
            }
        )
        if entry.steps:
            steps = "\n".join(f"• {e(s)}" for s in entry.steps)
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": _cut(f"*Steps*\n{steps}", 3000)},
                }
            )
        if entry.holding_statement:
            quoted = "\n".join(f"> {e(line)}" for line in entry.holding_statement.splitlines())
            blocks.append(
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": _cut(f"*Holding statement*\n{quoted}", 3000),
                    },
                }
            )
        evidence = event.get("evidence", {}) or {}
        examples = evidence.get("examples", [])[:3]
        if examples and status != "resolved":
            lines = [
                f"> “{e(_cut(str(x.get('text', '')), 280))}” — {e(x.get('author') or 'unknown')}"
                f" ({_num(x.get('reach'), 'd')} reach)"
                for x in examples
            ]
            blocks.append(
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": _cut("*What people are saying*\n" + "\n".join(lines), 3000),
                    },
                }
            )
        terms = ", ".join(str(t.get("term")) for t in evidence.get("top_terms", [])[:8])
        context = f"crisis `{e(event.get('crisis_id'))}` · playbook `{e(entry.match)}`"
        if terms:
            context += f" · top terms: {e(terms)}"
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(context, 3000)}]}
        )
        text = f"{icon} {e(_summary(event))}. First response: {e(entry.first_response)}"
        key = idempotency_key(event)
        body = orjson.dumps({"text": _cut(text, 3000), "blocks": blocks})
        return Payload(body=body, idempotency_key=key)


# Crisis severity → PagerDuty's fixed severity vocabulary.
PAGERDUTY_SEVERITY = {"low": "info", "medium": "warning", "high": "error", "critical": "critical"}


@dataclass(repr=False)
class PagerDutySink(HttpSink):
    """PagerDuty Events API v2: ``trigger`` for opened/escalated/updated, ``resolve`` for resolved.

    ``dedup_key`` is the crisis_id, so every event of one crisis lands on one
    PagerDuty alert and ``resolve`` closes it.
    """

    kind: ClassVar[str] = "pagerduty"
    routing_key: str = field(default="", repr=False)
    external_url: str = ""

    def render(self, event: dict[str, Any], entry: PlaybookEntry) -> Payload:
        key = idempotency_key(event)
        crisis_id = str(event.get("crisis_id", ""))
        body: dict[str, Any] = {
            "routing_key": self.routing_key,
            "dedup_key": crisis_id,
        }
        if event.get("status") == "resolved":
            body["event_action"] = "resolve"
        else:
            evidence = event.get("evidence", {}) or {}
            body["event_action"] = "trigger"
            body["payload"] = {
                "summary": _cut(_summary(event), 1024),
                "source": f"crisiswatch:{event.get('brand')}",
                "severity": PAGERDUTY_SEVERITY.get(str(event.get("severity")), "warning"),
                "timestamp": event.get("detected_at"),
                "component": event.get("brand"),
                "group": "brand-crisis",
                "class": event.get("kind"),
                "custom_details": {
                    "status": event.get("status"),
                    "crisis_id": crisis_id,
                    "idempotency_key": key,
                    "score": event.get("score"),
                    "peak_score": event.get("peak_score"),
                    "window_start": event.get("window_start"),
                    "window_end": event.get("window_end"),
                    "metrics": event.get("metrics"),
                    "top_terms": [t.get("term") for t in evidence.get("top_terms", [])[:10]],
                    "examples": [x.get("text") for x in evidence.get("examples", [])[:3]],
                    "playbook": entry.to_json(),
                },
            }
            body["client"] = "crisiswatch"
            if self.external_url:
                body["client_url"] = self.external_url
        return Payload(body=orjson.dumps(body), idempotency_key=key)


_AM_ZERO_TIME = "0001-01-01T00:00:00Z"  # what Alertmanager sends as endsAt of a firing alert


@dataclass(repr=False)
class AlertmanagerSink(HttpSink):
    """The body Alertmanager's webhook receiver sends (version "4"), so tools that
    already take Alertmanager webhooks take crisis events unchanged.

    One alert per crisis: ``fingerprint`` and ``groupKey`` come from the
    crisis_id, ``status`` is ``firing`` until the crisis is resolved.
    """

    kind: ClassVar[str] = "alertmanager"
    external_url: str = ""
    receiver: str = "crisiswatch"

    def render(self, event: dict[str, Any], entry: PlaybookEntry) -> Payload:
        key = idempotency_key(event)
        crisis_id = str(event.get("crisis_id", ""))
        resolved = event.get("status") == "resolved"
        status = "resolved" if resolved else "firing"
        labels = {
            "alertname": "BrandCrisis",
            "brand": str(event.get("brand", "")),
            "kind": str(event.get("kind", "")),
            "severity": str(event.get("severity", "")),
            "crisis_id": crisis_id,
        }
        annotations = {
            "summary": _summary(event),
            "description": (
                f"{_KIND_LABEL.get(str(event.get('kind')), event.get('kind'))} for "
                f"{event.get('brand')}: volume {_ovb(event, 'volume', '.0f')}, negative share "
                f"{_ovb(event, 'negative_share', '.2f')}, mean sentiment "
                f"{_ovb(event, 'mean_sentiment', '+.2f')}"
            ),
            "crisis_status": str(event.get("status", "")),
            "idempotency_key": key,
            "playbook": entry.match,
            "owners": ", ".join(entry.owners),
            "first_response": entry.first_response,
        }
        if entry.title:
            annotations["playbook_title"] = entry.title
        if entry.steps:
            annotations["steps"] = "\n".join(f"- {s}" for s in entry.steps)
        if entry.holding_statement:
            annotations["holding_statement"] = entry.holding_statement
        alert = {
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": event.get("window_start"),
            "endsAt": event.get("detected_at") if resolved else _AM_ZERO_TIME,
            "generatorURL": self.external_url,
            "fingerprint": crisis_id[:16],
        }
        body = {
            "version": "4",
            "groupKey": f'{{}}:{{crisis_id="{crisis_id}"}}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": self.receiver,
            "groupLabels": {"crisis_id": crisis_id},
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": self.external_url,
            "alerts": [alert],
        }
        return Payload(body=orjson.dumps(body), idempotency_key=key)


@dataclass(repr=False)
class FileSink(Sink):
    """Append one JSON line per event (same document as the webhook body); fsync before returning,
    so a committed offset never points past a line that is not on disk."""

    kind: ClassVar[str] = "file"
    name: str
    path: Path

    def describe(self) -> str:
        return f"file {self.path}"

    def render(self, event: dict[str, Any], entry: PlaybookEntry) -> Payload:
        key = idempotency_key(event)
        return Payload(
            body=orjson.dumps(_notification(event, entry)) + b"\n",
            idempotency_key=key,
            content_type="application/x-ndjson",
        )

    def deliver(self, payload: Payload) -> None:
        try:
            with self.path.open("ab") as f:
                f.write(payload.body)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            # A full disk may clear; a missing directory or no permission will not.
            retryable = exc.errno not in (errno.ENOENT, errno.EACCES, errno.ENOTDIR, errno.EISDIR)
            raise DeliveryError(
                f"cannot write {self.path}: {exc.strerror}", retryable=retryable
            ) from None


@dataclass(repr=False)
class StdoutSink(Sink):
    """Human-readable block per event (``crisiswatch tail``'s format) plus the playbook entry."""

    kind: ClassVar[str] = "stdout"
    name: str
    colour: bool = False
    stream: IO[str] | None = None

    def render(self, event: dict[str, Any], entry: PlaybookEntry) -> Payload:
        from ..cli_core import format_event

        lines = [format_event(event, colour=self.colour)]
        title = f" — {entry.title}" if entry.title else ""
        lines.append(f"  playbook [{entry.match}]{title}")
        lines.append(f"  owners: {', '.join(entry.owners)}")
        lines.append(f"  first response: {entry.first_response}")
        lines.extend(f"    - {s}" for s in entry.steps)
        return Payload(
            body=("\n".join(lines) + "\n").encode(),
            idempotency_key=idempotency_key(event),
            content_type="text/plain; charset=utf-8",
        )

    def deliver(self, payload: Payload) -> None:
        out = self.stream or sys.stdout
        try:
            out.write(payload.body.decode())
            out.flush()
        except (OSError, ValueError) as exc:  # closed pipe or stream
            raise DeliveryError(f"cannot write to stdout: {exc}", retryable=False) from None


# ----------------------------------------------------------------------------
# Sink specs from the command line

SINK_KINDS = ("stdout", "file", "webhook", "slack", "pagerduty", "alertmanager")
_SPEC_HELP = "stdout, file:PATH, webhook[:URL], slack[:URL], pagerduty[:URL], alertmanager[:URL]"


def _url(spec_kind: str, value: str, setting: str) -> str:
    if not value:
        raise ConfigError(
            f"--sink {spec_kind}: no URL; write --sink {spec_kind}:URL or set CRISISWATCH_{setting}"
        )
    u = urllib.parse.urlsplit(value)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ConfigError(
            f"--sink {spec_kind}: {redact_url(value) if u.hostname else repr(value[:40])} "
            "is not an http(s) URL"
        )
    try:
        u.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"--sink {spec_kind}: bad port in URL {redact_url(value)}") from None
    return value


def parse_sink(spec: str, settings: Settings, *, name: str | None = None) -> Sink:
    """Build a sink from a ``--sink`` spec; ConfigError (one line) if it is wrong.

    >>> from streams.settings import Settings
    >>> parse_sink("file:/tmp/events.jsonl", Settings()).describe()
    'file /tmp/events.jsonl'
    >>> parse_sink("teams:https://x", Settings())
    Traceback (most recent call last):
    ...
    streams.errors.ConfigError: --sink 'teams': unknown sink; expected one of stdout, file:PATH, webhook[:URL], slack[:URL], pagerduty[:URL], alertmanager[:URL]
    """
    kind, _, arg = spec.strip().partition(":")
    kind = kind.strip().lower()
    name = name or kind
    timeout = settings.responder_http_timeout_seconds
    if kind == "stdout":
        if arg:
            raise ConfigError("--sink stdout takes no argument")
        return StdoutSink(name, colour=sys.stdout.isatty())
    if kind == "file":
        if not arg:
            raise ConfigError("--sink file:PATH needs a path, e.g. --sink file:out/events.jsonl")
        path = Path(arg).expanduser()
        if path.is_dir():
            raise ConfigError(f"--sink file:{arg}: is a directory; name a .jsonl file")
        if not path.parent.is_dir():
            raise ConfigError(f"--sink file:{arg}: directory {path.parent} does not exist")
        return FileSink(name, path)
    if kind == "webhook":
        url = _url(kind, arg or settings.webhook_url, "WEBHOOK_URL")
        if not settings.webhook_secret:
            raise ConfigError(
                "--sink webhook signs every request: set CRISISWATCH_WEBHOOK_SECRET "
                "to the secret shared with the receiver"
            )
        return WebhookSink(name, url, timeout, secret=settings.webhook_secret)
    if kind == "slack":
        return SlackSink(
            name, _url(kind, arg or settings.slack_webhook_url, "SLACK_WEBHOOK_URL"), timeout
        )
    if kind == "pagerduty":
        url = _url(kind, arg or settings.pagerduty_url, "PAGERDUTY_URL")
        if not settings.pagerduty_routing_key:
            raise ConfigError(
                "--sink pagerduty needs the integration's routing key: "
                "set CRISISWATCH_PAGERDUTY_ROUTING_KEY"
            )
        return PagerDutySink(
            name,
            url,
            timeout,
            routing_key=settings.pagerduty_routing_key,
            external_url=settings.responder_external_url,
        )
    if kind == "alertmanager":
        url = _url(kind, arg or settings.alertmanager_url, "ALERTMANAGER_URL")
        return AlertmanagerSink(name, url, timeout, external_url=settings.responder_external_url)
    # Only the kind is echoed: the argument may be a token-bearing URL.
    raise ConfigError(f"--sink {kind!r}: unknown sink; expected one of {_SPEC_HELP}")


def parse_sinks(specs: Sequence[str], settings: Settings) -> list[Sink]:
    """Sinks for every ``--sink``; repeated kinds get names ``webhook``, ``webhook2``..."""
    if not specs:
        raise ConfigError(f"give at least one --sink ({_SPEC_HELP})")
    seen: dict[str, int] = {}
    sinks: list[Sink] = []
    for spec in specs:
        kind = spec.strip().partition(":")[0].strip().lower()
        seen[kind] = seen.get(kind, 0) + 1
        name = kind if seen[kind] == 1 else f"{kind}{seen[kind]}"
        sinks.append(parse_sink(spec, settings, name=name))
    return sinks
