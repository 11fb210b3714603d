"""The fast decode path (msgspec + numba date-times) agrees with the reference path exactly.

The reference is ``Ingestor._decode``: orjson, the mention.v1 schema (jsonschema-rs, explained by
the reference jsonschema) and ``schemas.parse_rfc3339``. The fast path may hand a record to the
reference when unsure, but must never accept what the reference refuses, nor read a field or a
time differently.
"""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import parse_rfc3339
from schemas.rfc3339 import seconds
from streams.ingest import MAX_REACH, Ingestor
from streams.sentiment import load_scorer
from streams.settings import Settings

NOW = time.time()
ING = Ingestor(Settings(), load_scorer("vader"))

_digits = st.integers(0, 99).map(lambda v: f"{v:02d}")
datetimes = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, off: f"{y:04d}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{off}",
    st.sampled_from([1, 1685, 1686, 1970, 2000, 2024, 2026, 2254, 2255, 9999]),
    _digits,
    _digits,
    st.sampled_from(["T", "t", " ", "x", "TT"]),
    _digits,
    _digits,
    _digits,
    st.one_of(st.just(""), st.text("0123456789", min_size=0, max_size=11).map(lambda f: "." + f)),
    st.sampled_from(
        [
            "Z",
            "z",
            "+00:00",
            "-00:00",
            "+05:30",
            "-23:59",
            "+24:00",
            "+12:60",
            "",
            "+0530",
            "Z\n",
            " Z",
            "+1:00",
        ]
    ),
)


@settings(max_examples=3000, deadline=None)
@given(datetimes)
def test_rfc3339_kernel_equals_the_reference(value: str) -> None:
    ts, ok = seconds([value])
    if ok[0]:
        # Accepted: the reference accepts too (pattern and format) and gives the same float.
        assert not isinstance(ING._decode(_doc(created_at=value), 1e13), str)
        assert float(ts[0]) == parse_rfc3339(value).timestamp()


def _doc(**fields: Any) -> bytes:
    d = {"id": "1", "brand": "acme", "text": "hi", "created_at": "2026-01-01T00:00:00Z"}
    d.update(fields)
    return orjson.dumps({k: v for k, v in d.items() if v is not _DROP})


_DROP = object()
tricky_str = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            " ",
            "a\n",
            "\nacme",
            "acme ",
            "a\x00",
            "\u2028x",
            "x\u2029",
            "é",
            "a" * 129,
            "a" * 257,
        ]
    ),
)
field_values = st.one_of(
    st.none(),
    st.just(_DROP),
    tricky_str,
    st.integers(-5, 10),
    st.sampled_from([2**63, 2**64 - 1, 10**30, 1.0, 1.5, -0.0, True, 1e300]),
    st.floats(-2, 2, allow_nan=False),
    st.lists(st.integers(-10, 10), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
mentions = st.fixed_dictionaries(
    {},
    optional={
        "id": field_values,
        "brand": field_values,
        "text": field_values,
        "created_at": st.one_of(datetimes, field_values),
        "author": field_values,
        "author_followers": field_values,
        "platform": field_values,
        "lang": field_values,
        "url": field_values,
        "in_reply_to": field_values,
        "sentiment": field_values,
        "event_time": field_values,
        "extra": field_values,
    },
)
base = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=5),
        "brand": st.sampled_from(["acme", "globex", "a b", "café"]),
        "text": st.text(max_size=30),
        "created_at": st.sampled_from(
            ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123456789+01:00"]
        ),
    }
)


def _encode(d: dict[str, Any]) -> bytes:
    # The standard library writes any int (orjson stops at 64 bits).
    return json.dumps({k: v for k, v in d.items() if v is not _DROP}, ensure_ascii=False).encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(base, mentions), min_size=1, max_size=12), st.data())
def test_fast_path_accepts_exactly_what_the_reference_accepts(
    rows: list[tuple[dict[str, Any], dict[str, Any]]], data: st.DataObject
) -> None:
    values: list[bytes | None] = []
    for b, extra in rows:
        v = _encode({**b, **extra})
        mangle = data.draw(st.sampled_from(["none", "none", "none", "dup", "ws", "trunc", "null"]))
        if mangle == "dup":  # a duplicate key: the last one wins in both paths
            v = v[:-1] + b',"brand":"dup"}'
        elif mangle == "ws":
            v = b" " + v + b"\n"
        elif mangle == "trunc":
            v = v[:-1]
        elif mangle == "null":
            v = None
        values.append(v)
    refused: dict[int, str] = {}
    batch = ING.decode_columns(values, refused.__setitem__, now=NOW)
    want = {i: ING._decode(v, NOW) for i, v in enumerate(values)}
    accepted = [i for i, out in want.items() if not isinstance(out, str)]
    assert batch.index == accepted
    assert sorted(refused) == [i for i in want if i not in accepted]
    for i, reason in refused.items():
        assert reason == want[i]
    cols = batch.mentions()
    for k, i in enumerate(batch.index):
        doc, t = want[i]  # type: ignore[misc]
        assert float(batch.event_time[k]) == t
        row = cols.doc(k)
        for name in ("id", "brand", "text", "created_at", "author", "platform"):
            assert row[name] == doc.get(name), name
        f = doc.get("author_followers")
        assert row["author_followers"] == (None if f is None else min(int(f), MAX_REACH))
    # And the scored output is the input object plus the fields ingest writes.
    for k, v in enumerate(batch.scored_values()):
        out = orjson.loads(v)
        doc = want[batch.index[k]][0]  # type: ignore[index]
        assert {key: out[key] for key in doc if key not in ("event_time", "sentiment")} == {
            key: val for key, val in doc.items() if key not in ("event_time", "sentiment")
        }
        assert out["event_time"] == float(batch.event_time[k])


def test_what_the_fast_decoder_cannot_handle_goes_to_the_reference() -> None:
    head = b'{"id":"1","brand":"a","text":"x","created_at":"2026-01-01T00:00:00Z","deep":'
    too_deep = head + b"[" * 5000 + b"]" * 5000 + b"}"  # msgspec raises RecursionError here
    deep_ok = head + b"[" * 500 + b"]" * 500 + b"}"
    refused: dict[int, str] = {}
    batch = ING.decode_columns([too_deep, deep_ok], refused.__setitem__, now=NOW)
    assert batch.index == [1]
    assert refused[0].startswith("invalid JSON: depth limit exceeded")
