"""Structured logs: one JSON object per line, and secrets redacted in every format.

The worker's logging is set up by Faust/mode from ``app.conf.logging_config``;
:func:`logging_config` builds that dictConfig for ``CRISISWATCH_LOG_FORMAT``
(``text`` or ``json``). Both formats go through :class:`Redactor`, which
replaces the values of secret settings (SASL password, webhook secrets,
routing keys, tokenised URLs) and anything that looks like
``password=...`` with ``***``, in the message, in extra fields and in
exception text, so a secret never reaches stdout even when a library logs
its config at debug level.

>>> import io, logging
>>> r = Redactor(["hunter22"])
>>> r.redact("sasl_plain_password='hunter22' token=abc")
"sasl_plain_password='***' token=***"
>>> stream = io.StringIO()
>>> handler = logging.StreamHandler(stream)
>>> handler.setFormatter(JsonFormatter(redactor=r, static={"app": "cw"}))
>>> log = logging.getLogger("doctest.json")
>>> log.addHandler(handler); log.propagate = False
>>> log.warning("login as %s with %s", "bob", "hunter22", extra={"partition": 3})
>>> import json; d = json.loads(stream.getvalue())
>>> d["level"], d["message"], d["partition"], d["app"]
('warning', 'login as bob with ***', 3, 'cw')
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from .settings import Settings

MASK = "***"

#: Setting names whose values are secrets even when a field forgot repr=False.
_SECRET_NAME = re.compile(r"password|secret|token|routing_key|api_key|slack_webhook_url", re.I)
#: ``key=value`` / ``"key": "value"`` pairs whose value is a secret, in any text
#: (library config dumps, URLs with credentials).
_SECRET_PAIR = re.compile(
    # Not "api_key": Kafka's protocol logs carry api_key=<number> everywhere.
    r"""(?P<key>\b[\w.-]*(?:password|passwd|secret|token|routing_key)[\w.-]*)"""
    r"""(?P<sep>['"]?\s*[=:]\s*['"]?)"""
    r"""(?P<value>[^'"\s,;}&)]+)""",
    re.I,
)
#: ``scheme://user:password@host``
_URL_CREDENTIALS = re.compile(r"(?P<pre>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(?=@)", re.I)

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def secret_values(settings: Settings) -> list[str]:
    """Values of the settings that are secrets (``repr=False`` or a secret-like name)."""
    out = []
    for name, info in type(settings).model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, str) and value and (info.repr is False or _SECRET_NAME.search(name)):
            out.append(value)
    return out


class Redactor:
    """Replaces known secret values and secret-looking pairs with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first so a secret containing another is masked whole; very
        # short values would mask ordinary words, and a short secret is not
        # one a setting should hold anyway.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, MASK)
        text = _SECRET_PAIR.sub(lambda m: f"{m['key']}{m['sep']}{MASK}", text)
        return _URL_CREDENTIALS.sub(lambda m: f"{m['pre']}{MASK}", text)

    def value(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.redact(v)
        if isinstance(v, bool | int | float) or v is None:
            return v
        if isinstance(v, Mapping):
            return {
                str(k): MASK if _SECRET_NAME.search(str(k)) else self.value(x) for k, x in v.items()
            }
        if isinstance(v, list | tuple | set | frozenset):
            return [self.value(x) for x in v]
        return self.redact(repr(v))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, context, extras, exc."""

    def __init__(
        self, redactor: Redactor | None = None, static: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()
        self.static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        r = self.redactor
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": r.redact(record.getMessage()),
            **self.static,
            "pid": record.process,
        }
        if record.threadName and record.threadName != "MainThread":
            doc["thread"] = record.threadName
        for k, v in record.__dict__.items():
            if k not in _STANDARD_ATTRS and not k.startswith("_") and k not in doc:
                doc[k] = MASK if _SECRET_NAME.search(k) else r.value(v)
        if record.exc_info:
            doc["exc"] = r.redact(self.formatException(record.exc_info))
        elif record.exc_text:
            doc["exc"] = r.redact(record.exc_text)
        if record.stack_info:
            doc["stack"] = r.redact(self.formatStack(record.stack_info))
        return orjson.dumps(doc, default=repr).decode()


class RedactingFormatter(logging.Formatter):
    """The plain text format, with the same redaction as JSON."""

    def __init__(
        self, fmt: str | None = None, datefmt: str | None = None, redactor: Redactor | None = None
    ) -> None:
        super().__init__(fmt, datefmt)
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.redact(super().format(record))


TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


def logging_config(settings: Settings, level: str | None = None) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``CRISISWATCH_LOG_FORMAT``.

    Without ``level`` it is for Faust's ``logging_config`` setting: mode
    merges it into its own config (``merge``), so the level it was given
    (``crisiswatch worker --loglevel``) still applies and only the handler
    and formatter are ours.
    """
    redactor = Redactor(secret_values(settings))
    if settings.log_format == "json":
        formatter: dict[str, Any] = {
            "()": JsonFormatter,
            "redactor": redactor,
            "static": {"app": settings.app_id, "host": socket.gethostname()},
        }
    else:
        formatter = {"()": RedactingFormatter, "fmt": TEXT_FORMAT, "redactor": redactor}
    handler: dict[str, Any] = {
        "class": "logging.StreamHandler",
        "formatter": "crisiswatch",
        "stream": "ext://sys.stdout",
    }
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"crisiswatch": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"]},
    }
    if level is None:
        config["merge"] = True
    else:
        config["root"]["level"] = level.upper()
    return config


def setup_logging(settings: Settings, level: str | None = None) -> None:
    """Configure the root logger for a process that does not run a Faust worker."""
    import logging.config

    logging.config.dictConfig(logging_config(settings, level or settings.log_level))
    logging.captureWarnings(True)
