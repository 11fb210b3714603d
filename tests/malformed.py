"""A fixed mix of malformed mention records, each with the reason it must be refused."""

from __future__ import annotations

import random

import orjson

GOOD = {"id": "x", "brand": "acme", "text": "fine", "created_at": "2026-01-01T00:00:00Z"}


def _variant(i: int) -> tuple[bytes | None, str]:
    kind = i % 12
    d = dict(GOOD, id=f"bad{i:03d}")
    if kind == 0:
        return b'{"id": "bad%03d", "brand": "acme", "text": ' % i, "invalid JSON"
    if kind == 1:
        del d["created_at"]
        return orjson.dumps(d), "'created_at' is a required property"
    if kind == 2:
        del d["brand"]
        return orjson.dumps(d), "'brand' is a required property"
    if kind == 3:
        d["text"] = 12345
        return orjson.dumps(d), "text: 12345 is not of type 'string'"
    if kind == 4:
        d["created_at"] = "yesterday at noon"
        return orjson.dumps(d), "created_at"
    if kind == 5:
        d["created_at"] = "2026-02-30T10:00:00Z"
        return orjson.dumps(d), "created_at"
    if kind == 6:
        d["text"] = "x" * (2 * 1024 * 1024)
        return orjson.dumps(d), "record too large"
    if kind == 7:
        return (
            b'{"id": "bad%03d", "brand": "acme", "text": "caf\xe9 \xff\xfe", "created_at": "2026-01-01T00:00:00Z"}'
            % i,
            "invalid JSON",
        )
    if kind == 8:
        return b"[1, 2, 3]", "must be a JSON object"
    if kind == 9:
        d["author_followers"] = -5
        return orjson.dumps(d), "author_followers"
    if kind == 10:
        return (
            b'{"id": "bad%03d", "brand": "acme", "text": "t", "created_at": "2026-01-01T00:00:00Z", "sentiment": NaN}'
            % i,
            "invalid JSON",
        )
    d["created_at"] = "2999-01-01T00:00:00Z"
    return orjson.dumps(d), "in the future"


def malformed(n: int = 100) -> list[tuple[bytes | None, bytes, str]]:
    """``n`` records (key, value, expected reason fragment); every value is distinct."""
    out = []
    for i in range(n):
        value, reason = _variant(i)
        assert value is not None
        out.append((b"acme", value, reason))
    return out


def mix(good: list[bytes], bad: list[bytes], seed: int = 0) -> list[bytes]:
    """Insert ``bad`` at random positions of ``good``, keeping each list's order."""
    rng = random.Random(seed)
    slots = sorted(rng.sample(range(len(good) + len(bad)), len(bad)))
    out, gi, bi = [], 0, 0
    for pos in range(len(good) + len(bad)):
        if bi < len(bad) and slots[bi] == pos:
            out.append(bad[bi])
            bi += 1
        else:
            out.append(good[gi])
            gi += 1
    return out
