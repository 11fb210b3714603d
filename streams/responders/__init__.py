"""Responders: deliver crisis events to the people and systems that act on them.

- :mod:`.playbooks` loads the YAML that maps crisis kinds and severities to
  prepared first responses and owners.
- :mod:`.sinks` renders one notification per sink (generic signed webhook,
  Slack, PagerDuty Events v2, Alertmanager webhook, JSONL file, stdout) and
  delivers it.
- :mod:`.runner` is the kafka-python consume loop behind ``crisiswatch
  respond``: deliver with bounded retries, dead-letter what keeps failing,
  commit only after delivery or dead-lettering.
"""

from __future__ import annotations

from .playbooks import PlaybookEntry, Playbooks, load_playbooks
from .sinks import (
    DeliveryError,
    Payload,
    Sink,
    idempotency_key,
    parse_sink,
    sign,
    verify_signature,
)

__all__ = [
    "DeliveryError",
    "Payload",
    "PlaybookEntry",
    "Playbooks",
    "Sink",
    "idempotency_key",
    "load_playbooks",
    "parse_sink",
    "sign",
    "verify_signature",
]
