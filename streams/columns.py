"""Columnar batches of scored mentions: the hot path's unit of work.

A :class:`Mentions` batch holds what the detect stage needs of every
mention, one list or array per field, brands dictionary-encoded. Ingest
builds it once per batch, the envelope between ingest and detect carries it
(:meth:`Mentions.to_envelope`), and :meth:`streams.detect.DetectEngine.add_columns`
counts it with numpy, so no stage after decoding touches a mention as a
Python dict. The backtest builds the same batches from a file.

The envelope is a JSON object (orjson, numbers exact to the last bit):

``{"v": 2, "brands": [...], "b": [...], "id": [...], "t": [...], "s": [...],
"label": [...], "created_at": [...], "text": [...], "author": [...],
"followers": [...], "platform": [...]}``

``brands`` lists each brand of the batch once; ``b`` is each mention's index
into it; ``s`` is the sentiment (null when not scored); ``label`` the code of
:data:`LABEL_NAMES`. Version-1 envelopes (a JSON array of scored mentions)
are still read, so a topic written by an older worker replays.

>>> m = Mentions.from_docs([{"id": "1", "brand": "acme", "text": "bad", "event_time": 60.0,
...     "created_at": "1970-01-01T00:01:00Z", "sentiment": -0.7, "sentiment_label": "negative"}])
>>> back = Mentions.from_envelope(m.to_envelope())
>>> back.brand_of(0), back.label.tolist(), back.sentiment.tolist()
('acme', [0], [-0.7])
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
import orjson

from schemas.rfc3339 import utf8_batch

__all__ = ["LABEL_NAMES", "NEGATIVE", "UNSCORED", "Mentions", "encode_brands", "hash_ids"]

#: Label codes (``Mentions.label``): the sentiment labels in ScoredMention v1.
LABEL_NAMES: tuple[str, str, str, str] = ("negative", "neutral", "positive", "unscored")
NEGATIVE = 0
UNSCORED = 3
_LABEL_CODE = {name: i for i, name in enumerate(LABEL_NAMES)}

_ENVELOPE_OPTS = orjson.OPT_SERIALIZE_NUMPY


@numba.njit(cache=True, nogil=True)
def _hash64(
    buf: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64], out: npt.NDArray[np.uint64]
) -> None:
    # FNV-1a over the bytes, then the splitmix64 finaliser so that ids which
    # differ in one character spread over all 64 bits.
    for r in range(offsets.shape[0] - 1):
        h = np.uint64(0xCBF29CE484222325)
        for k in range(offsets[r], offsets[r + 1]):
            h = (h ^ np.uint64(buf[k])) * np.uint64(0x100000001B3)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        out[r] = h ^ (h >> np.uint64(31))


def hash_ids(ids: Sequence[str]) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of each mention id, the same in every process (duplicate detection).

    Two different ids share a hash with probability about 2**-64 per pair: in a
    window of a million ids, about 3 in 10**8 that any one mention is taken for
    a duplicate.

    >>> h = hash_ids(["m1", "m2", "m1"]); bool(h[0] == h[2]), bool(h[0] == h[1])
    (True, False)
    """
    buf, offsets = utf8_batch(ids)
    out = np.empty(len(ids), dtype=np.uint64)
    _hash64(buf, offsets, out)
    return out


def encode_brands(brands: Sequence[str]) -> tuple[list[str], npt.NDArray[np.int32]]:
    """Each distinct brand once (first-seen order) and every row's index into that list.

    >>> encode_brands(["b", "a", "b"])
    (['b', 'a'], array([0, 1, 0], dtype=int32))
    """
    names = list(dict.fromkeys(brands))  # first-seen order, in C
    index = {b: i for i, b in enumerate(names)}
    return names, np.array(list(map(index.__getitem__, brands)), dtype=np.int32)


@dataclass(slots=True)
class Mentions:
    """Validated, scored mentions, column by column (row ``k`` is one mention)."""

    brands: list[str]  # distinct brands of the batch
    bcode: npt.NDArray[np.int32]  # row -> index into brands
    id: list[str]
    event_time: npt.NDArray[np.float64]
    sentiment: npt.NDArray[np.float64]  # NaN: not scored
    label: npt.NDArray[np.int8]  # index into LABEL_NAMES
    created_at: list[str]
    text: list[str]
    author: list[str | None]
    followers: list[int | None]
    platform: list[str | None]
    _hashes: npt.NDArray[np.uint64] | None = None

    def __len__(self) -> int:
        return len(self.id)

    def hashes(self) -> npt.NDArray[np.uint64]:
        """:func:`hash_ids` of every row's id, computed once per batch."""
        h = self._hashes
        if h is None:
            h = self._hashes = hash_ids(self.id)
        return h

    def brand_of(self, k: int) -> str:
        return self.brands[int(self.bcode[k])]

    @classmethod
    def empty(cls) -> Mentions:
        return cls(
            [],
            np.zeros(0, np.int32),
            [],
            np.zeros(0),
            np.zeros(0),
            np.zeros(0, np.int8),
            [],
            [],
            [],
            [],
            [],
        )

    @classmethod
    def from_docs(cls, docs: Sequence[dict[str, Any]]) -> Mentions:
        """Columns of scored mention dicts (ScoredMention v1, or anything with those fields)."""
        brands, bcode = encode_brands([str(d["brand"]) for d in docs])
        n = len(docs)
        sentiment = np.fromiter(
            (np.nan if d.get("sentiment") is None else d["sentiment"] for d in docs),
            dtype=np.float64,
            count=n,
        )
        label = np.fromiter(
            (_LABEL_CODE.get(d.get("sentiment_label"), UNSCORED) for d in docs),  # type: ignore[arg-type]
            dtype=np.int8,
            count=n,
        )
        return cls(
            brands,
            bcode,
            [str(d["id"]) for d in docs],
            np.fromiter((d["event_time"] for d in docs), dtype=np.float64, count=n),
            sentiment,
            label,
            [str(d.get("created_at", "")) for d in docs],
            [str(d.get("text", "")) for d in docs],
            [d.get("author") for d in docs],
            [d.get("author_followers") for d in docs],
            [d.get("platform") for d in docs],
        )

    def take(self, rows: npt.NDArray[np.intp] | Sequence[int]) -> Mentions:
        """The rows ``rows`` (in that order) as a batch of their own; brands re-encoded."""
        idx = np.asarray(rows, dtype=np.intp)
        rl = idx.tolist()
        return self._subset(idx, lambda col: [col[k] for k in rl])

    def slice(self, start: int, stop: int) -> Mentions:
        """Rows ``start:stop`` as a batch of their own (:meth:`take` of a range, by list slices)."""
        return self._subset(np.arange(start, stop), operator.itemgetter(slice(start, stop)))

    def _subset(
        self, idx: npt.NDArray[np.intp], pick: Callable[[list[Any]], list[Any]]
    ) -> Mentions:
        """The rows ``idx``: arrays indexed by it, list columns by ``pick`` (the same rows)."""
        used, inverse = np.unique(self.bcode[idx], return_inverse=True)
        return Mentions(
            [self.brands[u] for u in used.tolist()],
            inverse.astype(np.int32).reshape(-1),
            pick(self.id),
            self.event_time[idx],
            self.sentiment[idx],
            self.label[idx],
            pick(self.created_at),
            pick(self.text),
            pick(self.author),
            pick(self.followers),
            pick(self.platform),
        )

    def doc(self, k: int) -> dict[str, Any]:
        """Row ``k`` as a scored mention dict (the fields the detect stage carries)."""
        s = float(self.sentiment[k])
        return {
            "id": self.id[k],
            "brand": self.brand_of(k),
            "text": self.text[k],
            "created_at": self.created_at[k],
            "author": self.author[k],
            "author_followers": self.followers[k],
            "platform": self.platform[k],
            "event_time": float(self.event_time[k]),
            "sentiment": None if s != s else s,
            "sentiment_label": LABEL_NAMES[int(self.label[k])],
        }

    # -- the envelope between ingest and detect --------------------------------
    def to_envelope(self) -> bytes:
        return orjson.dumps(
            {
                "v": 2,
                "brands": self.brands,
                "b": self.bcode,
                "id": self.id,
                "t": self.event_time,
                # NaN (not scored) is written as null.
                "s": self.sentiment,
                "label": self.label,
                "created_at": self.created_at,
                "text": self.text,
                "author": self.author,
                "followers": self.followers,
                "platform": self.platform,
            },
            option=_ENVELOPE_OPTS,
        )

    def split(self, max_bytes: int) -> list[bytes]:
        """Envelopes of at most ``max_bytes`` each, in row order (a single row always goes)."""
        return [env for _, env in self.split_parts(max_bytes)]

    def split_parts(
        self, max_bytes: int, bytes_per_row: float = 0.0
    ) -> list[tuple[Mentions, bytes]]:
        """:meth:`split`, each envelope with the batch it encodes (``self`` when one does).

        ``bytes_per_row``: the expected envelope bytes per row (say, of the last
        batch). A batch it puts over ``max_bytes`` is cut before it is encoded,
        instead of being encoded whole to learn its size first.
        """
        n = len(self)
        expect = n * bytes_per_row
        if expect > max_bytes and n > 1:
            env_len = int(expect)
        else:
            env = self.to_envelope()
            if len(env) <= max_bytes or n <= 1:
                return [(self, env)]
            env_len = len(env)
        # Parts of equal row counts, sized from this encoding; a part that still
        # comes out too large (long texts bunched together) is split again.
        parts = min(n, -(-env_len * 11 // (10 * max_bytes)))
        out: list[tuple[Mentions, bytes]] = []
        bounds = np.linspace(0, n, parts + 1).astype(np.intp).tolist()  # as np.array_split
        for a, b in itertools.pairwise(bounds):
            out += self.slice(a, b).split_parts(max_bytes)
        return out

    @classmethod
    def from_envelope(cls, value: bytes | None) -> Mentions | None:
        """The batch an envelope holds, or None if it is not a well-formed envelope.

        Every column is checked (lengths, types, brand indices), so a damaged
        envelope is refused whole: the engine never half-counts one.
        """
        try:
            doc = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            return None
        if type(doc) is list:  # version 1: an array of scored mentions
            try:
                for d in doc:
                    float(d["event_time"])
                    str(d["brand"])
                    str(d["id"])
                return cls.from_docs(doc)
            except (KeyError, TypeError, ValueError):
                return None
        if type(doc) is not dict or doc.get("v") != 2:
            return None
        try:
            ids = doc["id"]
            n = len(ids)
            brands = doc["brands"]
            cols = [doc[k] for k in ("created_at", "text", "author", "followers", "platform")]
            if (
                type(ids) is not list
                or type(brands) is not list
                or any(type(c) is not list or len(c) != n for c in cols)
                or not _all_type(ids, str)
                or not _all_type(brands, str)
                or not _all_type(cols[0], str)
                or not _all_type(cols[1], str)
                or not _all_type(cols[2], str, type(None))
                or not _all_type(cols[3], int, type(None))
                or not _all_type(cols[4], str, type(None))
            ):
                return None
            bcode = np.asarray(doc["b"], dtype=np.int32)
            t = np.asarray(doc["t"], dtype=np.float64)
            s = np.asarray(doc["s"], dtype=np.float64)  # null -> NaN
            label = np.asarray(doc["label"], dtype=np.int8)
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        if not (bcode.shape == t.shape == s.shape == label.shape == (n,)):
            return None
        if n and (
            bcode.min() < 0
            or bcode.max() >= len(brands)
            or label.min() < 0
            or label.max() > UNSCORED
            or not np.isfinite(t).all()
        ):
            return None
        return cls(brands, bcode, ids, t, s, label, *cols)


def _all_type(values: list[Any], *types: type) -> bool:
    return set(map(type, values)) <= set(types)
