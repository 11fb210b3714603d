"""Crisis events for responder tests, derived from the schema's valid example."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from schemas import validator
from tests.kafka_support import PROJECT

EXAMPLES = json.loads(
    (PROJECT / "schemas" / "examples" / "crisis_event.v1.valid.json").read_text(encoding="utf-8")
)
OPENED: dict[str, Any] = EXAMPLES[0]
RESOLVED: dict[str, Any] = EXAMPLES[1]


def event(
    *,
    status: str = "opened",
    kind: str = "negativity_surge",
    severity: str = "critical",
    brand: str = "globex",
    n: int = 0,
    detected_at: str | None = None,
) -> dict[str, Any]:
    """A schema-valid event; ``n`` makes a distinct crisis."""
    ev = copy.deepcopy(RESOLVED if status == "resolved" else OPENED)
    ev.update(status=status, kind=kind, severity=severity, brand=brand)
    ev["crisis_id"] = hashlib.sha256(f"{brand}:{kind}:{n}".encode()).hexdigest()[:32]
    if detected_at:
        ev["detected_at"] = detected_at
    validator("crisis_event.v1").validate(ev)
    return ev
