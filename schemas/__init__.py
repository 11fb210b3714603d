"""JSON Schemas for crisiswatch topics, and the one loader/validator.

Each ``<name>.v<N>.schema.json`` beside this file is compiled once, on first
use, into a Draft 2020-12 validator; every failure becomes a
:class:`SchemaError` whose message names the field and the problem.

>>> v = validator("mention.v1")
>>> v.validate({"id": "1", "brand": "acme", "text": "hi", "created_at": "2026-01-01T00:00:00Z"})
>>> v.validate({"id": "1", "brand": "acme", "text": "hi"})
Traceback (most recent call last):
...
schemas.SchemaError: mention.v1: 'created_at' is a required property
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

__all__ = ["SchemaError", "Validator", "names", "parse_rfc3339", "schema", "validator"]

_BASE = "https://crisiswatch.dev/schemas/"
_DIR = Path(__file__).resolve().parent


class SchemaError(ValueError):
    """A document does not match its schema, or a schema name is unknown."""


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (with offset) into an aware datetime.

    >>> parse_rfc3339("2026-11-25T12:00:00.5+01:00").isoformat()
    '2026-11-25T12:00:00.500000+01:00'
    """
    if len(value) < 20 or value[10] not in "Tt ":
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    dt = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    if dt.tzinfo is None:
        raise ValueError(f"RFC 3339 date-time needs an offset or Z: {value!r}")
    return dt


_formats = FormatChecker(formats=())


@_formats.checks("date-time", raises=ValueError)
def _check_datetime(value: object) -> bool:
    if isinstance(value, str):
        parse_rfc3339(value)
    return True


def names() -> list[str]:
    """Schema names available, for example ``['crisis_event.v1', 'mention.v1', ...]``."""
    return sorted(f.name.removesuffix(".schema.json") for f in _DIR.glob("*.schema.json"))


@functools.cache
def _registry() -> Registry:
    resources_: list[tuple[str, Resource]] = []
    for name in names():
        doc = json.loads((_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
        resources_.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources_)


def schema(name: str) -> dict[str, Any]:
    """The schema document for ``name`` (for example ``"mention.v1"``)."""
    if name not in names():
        raise SchemaError(f"unknown schema {name!r}; known: {', '.join(names())}")
    contents: dict[str, Any] = _registry()[f"{_BASE}{name}.schema.json"].contents
    return contents


def _is_datetime(value: str) -> bool:
    try:
        parse_rfc3339(value)
    except ValueError:
        return False
    return True


class Validator:
    """A compiled schema. ``validate`` raises SchemaError; ``errors`` lists every problem.

    Valid documents (nearly all of them on the hot path) are checked by the
    Rust validator ``jsonschema-rs``, about 15x faster; the reference
    ``jsonschema`` implementation only runs to explain a failure, so both the
    messages and the verdicts are the reference's.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        doc = schema(name)
        Draft202012Validator.check_schema(doc)
        self._v = Draft202012Validator(doc, registry=_registry(), format_checker=_formats)
        self._fast: Any = None
        if "$ref" not in json.dumps(doc):  # the fast path takes self-contained schemas
            import jsonschema_rs

            self._fast = jsonschema_rs.validator_for(
                doc, formats={"date-time": _is_datetime}, validate_formats=True
            )

    def validate(self, document: Any) -> None:
        if self._fast is not None and self._fast.is_valid(document):
            return
        err = best_match(self._v.iter_errors(document))
        if err is not None:
            raise SchemaError(f"{self.name}: {_describe(err)}")

    def errors(self, document: Any) -> list[str]:
        return [_describe(e) for e in self._v.iter_errors(document)]

    def is_valid(self, document: Any) -> bool:
        if self._fast is not None:
            return bool(self._fast.is_valid(document))
        return bool(self._v.is_valid(document))


def _describe(err: Any) -> str:
    where = "/".join(str(p) for p in err.absolute_path)
    msg = str(err.message)
    if len(msg) > 200:
        msg = msg[:200] + "..."
    return f"{where}: {msg}" if where else msg


@functools.cache
def validator(name: str) -> Validator:
    """The compiled validator for ``name``, built once per process."""
    return Validator(name)
