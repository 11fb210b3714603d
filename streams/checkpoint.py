"""Serialising detect-engine checkpoints: compact, versioned, no pickle.

A checkpoint is the engine state plus the offset of the last record of the
source partition it includes. Encoded as zlib-compressed JSON (numpy arrays
as lists), so it is portable across versions of numpy and Python and safe to
load from a topic anyone can write to.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from .detect import DetectEngine
from .settings import Settings

MAGIC = b"CWCK1"


def encode(engine: DetectEngine, offset: int) -> bytes:
    return pack(state_body(engine, offset))


def state_body(engine: DetectEngine, offset: int) -> bytes:
    """The uncompressed JSON of a checkpoint: the engine's state as of now.

    Taken on the event loop (the state must not move while it is read);
    :func:`pack` may then run in another thread.
    """
    return orjson.dumps(
        {"offset": offset, "engine": engine.to_state()},
        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
    )


def pack(body: bytes) -> bytes:
    """A checkpoint record from :func:`state_body`'s bytes.

    Level 1: speed matters more than the last few percent of size (mention
    ids hash to incompressible bytes). zlib releases the GIL while it
    compresses, so the worker calls this in a thread.
    """
    return MAGIC + zlib.compress(body, 1)


def decode(settings: Settings, blob: bytes) -> tuple[DetectEngine, int]:
    """Return (engine, offset); raise ValueError with a reason for anything unusable."""
    if not blob.startswith(MAGIC):
        raise ValueError("not a crisiswatch checkpoint (bad magic)")
    try:
        doc: dict[str, Any] = orjson.loads(zlib.decompress(blob[len(MAGIC) :]))
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise ValueError(f"corrupt checkpoint: {exc}") from exc
    return DetectEngine.from_state(settings, doc["engine"]), int(doc["offset"])
