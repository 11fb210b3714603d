"""Playbooks: prepared first responses and owners per crisis kind and severity.

A playbook file is YAML with a ``default`` entry and a list of ``playbooks``;
each entry names its ``kind`` and optionally its ``severity`` (one or a list).
The most specific match wins: kind+severity, then kind alone, then
``default``. The whole matching entry is used; entries are not merged, so
what a responder reads is exactly what the comms team wrote for that case.

>>> pb = parse_playbooks({
...     "version": 1,
...     "default": {"owners": ["On-call comms"], "first_response": "Look at it."},
...     "playbooks": [
...         {"kind": "volume_spike", "owners": ["Social media manager"],
...          "first_response": "Find the post driving the spike."},
...         {"kind": "volume_spike", "severity": ["high", "critical"],
...          "owners": ["Comms lead"], "first_response": "Call the comms lead."},
...     ],
... })
>>> pb.match("volume_spike", "critical").owners
('Comms lead',)
>>> pb.match("volume_spike", "low").match
'volume_spike'
>>> pb.match("sentiment_shift", "high").match
'default'

Every problem is a :class:`~streams.errors.ConfigError` that names the file
and the bad key, for example ``playbooks.yaml: playbooks[2].severity: 'urgent'
is not a severity (expected one of: low, medium, high, critical)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from schemas import schema

from ..errors import ConfigError

__all__ = ["KINDS", "SEVERITIES", "PlaybookEntry", "Playbooks", "load_playbooks", "parse_playbooks"]


def _enum(prop: str) -> tuple[str, ...]:
    # One source of truth: the crisis event schema's enums.
    return tuple(schema("crisis_event.v1")["properties"][prop]["enum"])


KINDS: tuple[str, ...] = _enum("kind")
SEVERITIES: tuple[str, ...] = _enum("severity")

_ENTRY_KEYS = ("title", "owners", "first_response", "steps", "holding_statement")
_RULE_KEYS = ("kind", "severity", *_ENTRY_KEYS)
_TOP_KEYS = ("version", "default", "playbooks")

# fail(where, message) -> the ConfigError to raise, with the file name in front.
_Fail = Callable[[str, str], ConfigError]


@dataclass(frozen=True)
class PlaybookEntry:
    """One prepared response. ``match`` says which rule chose it (``kind/severity``, ``kind`` or ``default``)."""

    match: str
    owners: tuple[str, ...]
    first_response: str
    title: str = ""
    steps: tuple[str, ...] = ()
    holding_statement: str = ""

    def to_json(self) -> dict[str, Any]:
        """The entry as it travels in every notification."""
        return {
            "match": self.match,
            "title": self.title,
            "owners": list(self.owners),
            "first_response": self.first_response,
            "steps": list(self.steps),
            "holding_statement": self.holding_statement,
        }


@dataclass(frozen=True)
class Playbooks:
    """Validated playbooks; :meth:`match` picks the entry for an event."""

    default: PlaybookEntry
    by_kind: dict[str, PlaybookEntry] = field(default_factory=dict)
    by_kind_severity: dict[tuple[str, str], PlaybookEntry] = field(default_factory=dict)
    source: str = "<playbooks>"

    def match(self, kind: str, severity: str) -> PlaybookEntry:
        return self.by_kind_severity.get((kind, severity)) or self.by_kind.get(kind) or self.default


def load_playbooks(path: str | Path) -> Playbooks:
    """Read and validate a playbook YAML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"playbooks file {p} does not exist (--playbooks PATH)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"playbooks file {p}: cannot read it: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p}: not valid YAML{where}: {problem}") from None
    return parse_playbooks(doc, source=str(p))


def parse_playbooks(doc: Any, *, source: str = "<playbooks>") -> Playbooks:
    """Validate an already-parsed playbook document."""

    def fail(where: str, msg: str) -> ConfigError:
        return ConfigError(f"{source}: {where}: {msg}" if where else f"{source}: {msg}")

    if not isinstance(doc, dict):
        raise fail("", f"expected a mapping with {', '.join(_TOP_KEYS)}; got {_typename(doc)}")
    _no_unknown_keys(doc, _TOP_KEYS, "", fail)
    version = doc.get("version", 1)
    if version != 1:
        raise fail("version", f"unsupported version {version!r} (this crisiswatch reads version 1)")
    if "default" not in doc:
        raise fail(
            "default",
            "missing: a default entry is required so no crisis goes out without an owner",
        )
    default = _entry(doc["default"], "default", "default", _ENTRY_KEYS, fail)

    rules = doc.get("playbooks") or []
    if not isinstance(rules, list):
        raise fail("playbooks", f"expected a list of entries; got {_typename(rules)}")
    by_kind: dict[str, PlaybookEntry] = {}
    by_ks: dict[tuple[str, str], PlaybookEntry] = {}
    first_seen: dict[tuple[str, str | None], str] = {}
    for i, rule in enumerate(rules):
        where = f"playbooks[{i}]"
        if not isinstance(rule, dict):
            raise fail(where, f"expected a mapping; got {_typename(rule)}")
        _no_unknown_keys(rule, _RULE_KEYS, where, fail)
        kind = rule.get("kind")
        if kind is None:
            raise fail(f"{where}.kind", f"missing (one of: {', '.join(KINDS)})")
        if kind not in KINDS:
            raise fail(
                f"{where}.kind",
                f"{kind!r} is not a crisis kind{_hint(kind, KINDS)} (expected one of: {', '.join(KINDS)})",
            )
        severities = _severities(rule.get("severity"), f"{where}.severity", fail)
        keys: list[tuple[str, str | None]] = [(kind, s) for s in severities] or [(kind, None)]
        for k in keys:
            if k in first_seen:
                what = f"{k[0]}/{k[1]}" if k[1] else f"{k[0]} (without severity)"
                raise fail(where, f"duplicate entry for {what}; first defined at {first_seen[k]}")
            first_seen[k] = where
        for k in keys:
            label = f"{k[0]}/{k[1]}" if k[1] else k[0]
            entry = _entry(rule, where, label, _RULE_KEYS, fail)
            if k[1] is None:
                by_kind[kind] = entry
            else:
                by_ks[(kind, k[1])] = entry
    return Playbooks(default=default, by_kind=by_kind, by_kind_severity=by_ks, source=source)


def _severities(value: Any, where: str, fail: _Fail) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    if not values:
        raise fail(where, "empty list; leave severity out to match every severity")
    for v in values:
        if v not in SEVERITIES:
            raise fail(
                where,
                f"{v!r} is not a severity{_hint(v, SEVERITIES)} "
                f"(expected one of: {', '.join(SEVERITIES)})",
            )
    return list(dict.fromkeys(values))


def _entry(
    raw: Any, where: str, label: str, allowed: tuple[str, ...], fail: _Fail
) -> PlaybookEntry:
    if not isinstance(raw, dict):
        raise fail(where, f"expected a mapping; got {_typename(raw)}")
    _no_unknown_keys(raw, allowed, where, fail)
    owners = raw.get("owners")
    if isinstance(owners, str):
        owners = [owners]
    if not owners or not isinstance(owners, list):
        raise fail(f"{where}.owners", "missing or empty: name at least one owner")
    for j, o in enumerate(owners):
        if not isinstance(o, str) or not o.strip():
            raise fail(f"{where}.owners[{j}]", f"expected a non-empty string; got {o!r}")
    first = raw.get("first_response")
    if not isinstance(first, str) or not first.strip():
        raise fail(f"{where}.first_response", "missing or empty: write the prepared first response")
    steps = raw.get("steps") or []
    if not isinstance(steps, list):
        raise fail(f"{where}.steps", f"expected a list of strings; got {_typename(steps)}")
    for j, s in enumerate(steps):
        if not isinstance(s, str) or not s.strip():
            raise fail(f"{where}.steps[{j}]", f"expected a non-empty string; got {s!r}")
    for key in ("title", "holding_statement"):
        v = raw.get(key)
        if v is not None and not isinstance(v, str):
            raise fail(f"{where}.{key}", f"expected a string; got {_typename(v)}")
    return PlaybookEntry(
        match=label,
        owners=tuple(o.strip() for o in owners),
        first_response=first.strip(),
        title=(raw.get("title") or "").strip(),
        steps=tuple(s.strip() for s in steps),
        holding_statement=(raw.get("holding_statement") or "").strip(),
    )


def _no_unknown_keys(
    raw: dict[Any, Any], allowed: tuple[str, ...], where: str, fail: _Fail
) -> None:
    for key in raw:
        if key not in allowed:
            at = f"{where}.{key}" if where else str(key)
            raise fail(at, f"unknown key{_hint(str(key), allowed)} (allowed: {', '.join(allowed)})")


def _hint(value: Any, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _typename(v: Any) -> str:
    return "nothing" if v is None else type(v).__name__
