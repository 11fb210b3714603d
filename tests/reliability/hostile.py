"""Hostile mention records generated with hypothesis, each with the outcome it must have.

Outcomes (the test's oracle, written from the schema and the documented
rules, not from the product's code):

- ``dead``: refused by ingest: the original bytes must appear in the dead-letter
  topic with a ``crisiswatch.error`` header (invalid UTF-8, JSON nested deeper
  than 1024, NaN/Infinity/overflowing numbers, oversized text or record,
  created_at more than ``max_future_seconds`` ahead, schema violations, non-JSON
  garbage, null values);
- ``good``: a valid mention however odd (unknown fields of any JSON shape,
  injection strings in text and other string fields, RFC 3339 variants, large
  but allowed text, unusual brand names): counted once for its brand;
- ``dup``: a re-delivery of an earlier good mention (same id, brand and
  created_at; bytes identical or not): never counted twice;
- ``late``: a valid mention whose created_at is ancient (years 0001-2000): its
  bucket closed long ago, so the detect stage dead-letters it with a reason
  starting ``late`` (valid, not counted, not lost).

Good and duplicate records take the created_at of the stream position they
are inserted at (the placeholder ``@T@``), so they are never late.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

PLACEHOLDER = "@T@"
KNOWN = {
    "id",
    "brand",
    "text",
    "created_at",
    "author",
    "author_followers",
    "platform",
    "lang",
    "url",
    "in_reply_to",
    "sentiment",
    # added by ingest: a producer that sends them is overwritten, not trusted
    "event_time",
    "sentiment_label",
    "sentiment_source",
}
INJECTIONS = [
    "'; DROP TABLE mentions; --",
    '" OR "1"="1',
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
    "${jndi:ldap://127.0.0.1:1389/a}",
    "{{7*7}} {% print 'x' %}",
    "%s%s%s%n%x",
    "$(rm -rf /) `id` && echo pwned",
    "\r\n[ERROR] forged log line\r\n",
    "\x1b[2J\x1b[31mred\x1b[0m",
    "\u202eevil\u202c",
    "\u0000nul\u0000",
    "../../../../etc/passwd",
    "crisiswatch.error: forged header",
    '{"id": "inner", "brand": "x"}',
    "\ufeffbom",
    "🔥" * 500,
    "Z̴̡͕̈́a̸͎̓l̶̰̈g̵̱͌ő̶̬",
]
ASCII = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '\\"')
BAD_UTF8 = [
    b"\xff",
    b"\xfe",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\x80",
    b"\xc0\xaf",
]


#: Case kinds, weighted (huge records are rarer: they cost megabytes each).
KINDS = [
    *["utf8"] * 4,
    *["nesting"] * 3,
    *["deep_ok"] * 3,
    "huge_text",
    "huge_record",
    *["big_ok"] * 2,
    *["nan"] * 3,
    *["future"] * 3,
    *["ancient"] * 2,
    *["garbage"] * 4,
    *["schema"] * 5,
    *["unknown"] * 5,
    *["inject"] * 5,
    *["dup"] * 3,
    *["dup_variant"] * 2,
    *["time_variant"] * 2,
    *["odd_brand"] * 2,
]


@dataclass(frozen=True)
class Case:
    kind: str  # dead | good | dup | late
    key: bytes | None
    value: bytes | None  # with the PLACEHOLDER for good/dup records
    mid: str = ""
    brand: str = ""
    label: str = ""


def _json(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
unknown_keys = st.text(min_size=1, max_size=24).filter(lambda k: k not in KNOWN)
safe_brand = st.text(
    alphabet=st.characters(categories=["L", "N", "P", "S"], exclude_characters="\x85\xa0"),
    min_size=1,
    max_size=24,
)


@st.composite
def cases(draw: st.DrawFn, brands: list[str]) -> Case:
    i = draw(st.integers(0, 10**9))
    mid = f"h{i}"
    brand = draw(st.sampled_from(brands))
    key = brand.encode()
    base: dict[str, Any] = {"id": mid, "brand": brand, "text": "ok", "created_at": PLACEHOLDER}
    kind = draw(st.sampled_from(KINDS))
    if kind == "utf8":
        # ASCII before the bad sequence, so nothing can complete it into valid UTF-8.
        junk = draw(st.text(alphabet=ASCII, max_size=30)).encode()
        junk += draw(st.sampled_from(BAD_UTF8)) + draw(st.binary(max_size=30))
        field = draw(st.sampled_from([b"text", b"brand", b"id", b"author"]))
        value = (
            b'{"id":"%s","brand":"%s","text":"t","created_at":"2026-01-01T00:00:00Z","%s":"%s"}'
            % (
                mid.encode(),
                key,
                field,
                junk.replace(b'"', b"'"),
            )
        )
        return Case("dead", draw(st.sampled_from([key, None, b"\xff\xfe"])), value, label=kind)
    if kind in ("nesting", "deep_ok"):
        depth = draw(st.integers(1100, 30_000) if kind == "nesting" else st.integers(1, 200))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        nested = opener * depth + b"1" + closer * depth
        value = _json(base)[:-1] + b',"nested":' + nested + b"}"
        if kind == "nesting":
            return Case("dead", key, value, label=kind)
        return Case("good", key, value, mid, brand, kind)
    if kind == "huge_text":
        n = draw(st.integers(65_537, 150_000))
        ch = draw(st.sampled_from(["x", "é", "😀"]))
        return Case("dead", key, _json({**base, "text": ch * n}), label=kind)
    if kind == "huge_record":
        n = draw(st.integers(280_000, 600_000))
        return Case("dead", key, _json({**base, "blob": "b" * n}), label=kind)
    if kind == "big_ok":
        n = draw(st.integers(10_000, 65_000))
        return Case("good", key, _json({**base, "text": "w " * (n // 2)}), mid, brand, kind)
    if kind == "nan":
        lit = draw(
            st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999", b"nan"])
        )
        field = draw(st.sampled_from([b"sentiment", b"author_followers", b"extra"]))
        value = _json(base)[:-1] + b',"%s":%s}' % (field, lit)
        return Case("dead", key, value, label=kind)
    if kind == "future":
        year = draw(st.integers(2100, 9999))
        return Case(
            "dead", key, _json({**base, "created_at": f"{year}-06-01T00:00:00Z"}), label=kind
        )
    if kind == "ancient":
        year = draw(st.integers(1, 2000))
        doc = {**base, "created_at": f"{year:04d}-03-01T12:00:00Z"}
        return Case("late", key, _json(doc), mid, brand, kind)
    if kind == "garbage":
        value = draw(
            st.none()
            | st.binary(max_size=300)
            | st.sampled_from([b"", b"[]", b"null", b"1", b'"s"', b"true", b"{}", b"{"])
        )
        # Kafka needs a key or a value: a null value (tombstone) gets the brand key.
        k = key if value is None else draw(st.sampled_from([key, None, b""]))
        return Case("dead", k, value, label=kind)
    if kind == "schema":
        bad = draw(
            st.sampled_from(
                [
                    {"id": ""},
                    {"id": 5},
                    {"id": "x" * 257},
                    {"brand": " lead"},
                    {"brand": "trail "},
                    {"brand": "ctl\x01"},
                    {"brand": ""},
                    {"text": None},
                    {"text": ["a"]},
                    {"created_at": "2026-13-01T00:00:00Z"},
                    {"created_at": "2026-01-01T00:00:00"},
                    {"created_at": "2026-01-01"},
                    {"created_at": 1767225600},
                    {"author_followers": -1},
                    {"author_followers": 1.5},
                    {"sentiment": 1.0001},
                    {"sentiment": "neg"},
                    {"lang": "x" * 17},
                    {"url": "u" * 2049},
                ]
            )
        )
        doc = {**base, **bad}
        drop = draw(st.sampled_from([None, "id", "brand", "text", "created_at"]))
        if drop and draw(st.booleans()):
            doc.pop(drop)
        return Case("dead", key, _json(doc), label=kind)
    if kind == "unknown":
        extra = draw(st.dictionaries(unknown_keys, json_values, min_size=1, max_size=6))
        doc = {**extra, **base}
        overwritten = draw(st.sampled_from([None, "event_time", "sentiment_label"]))
        if overwritten:
            doc[overwritten] = draw(json_values)
        return Case("good", key, _json(doc), mid, brand, kind)
    if kind == "inject":
        text = draw(st.sampled_from(INJECTIONS)) + draw(st.text(max_size=100))
        doc = {**base, "text": text}
        for f in draw(st.lists(st.sampled_from(["author", "platform", "url", "in_reply_to"]))):
            doc[f] = draw(st.sampled_from(INJECTIONS))[:64]
        return Case("good", key, _json(doc), mid, brand, kind)
    if kind in ("dup", "dup_variant"):
        return Case(kind, key, None, label=kind)
    if kind == "time_variant":
        return Case("good", key, _json({**base, "created_at": "@TV@"}), mid, brand, kind)
    # odd_brand
    b = draw(safe_brand)
    return Case("good", b.encode(), _json({**base, "brand": b}), mid, b, kind)


def generate(brands: list[str], n: int, seed: int = 5) -> list[Case]:
    """``n`` cases, the same for every run (derandomized hypothesis)."""
    out: list[Case] = []
    seen_ids: set[str] = set()

    @settings(
        max_examples=n * 3,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(cases(brands))
    def collect(case: Case) -> None:
        if len(out) >= n or (case.mid and case.mid in seen_ids):
            return
        if case.mid:
            seen_ids.add(case.mid)
        out.append(case)

    collect()
    random.Random(seed).shuffle(out)
    return out


@dataclass
class Mixed:
    records: list[tuple[bytes | None, bytes | None]]
    good: dict[str, str]  # mention id -> brand, every counted mention
    dead: list[bytes]  # values expected in the dead letters of ingest
    late: set[str]  # ids expected in the dead letters of detect (late)
    kinds: dict[str, int]


def _time_variant(t: str, rng: random.Random) -> str:
    v = rng.choice(
        [
            lambda s: s.replace("T", " "),
            lambda s: s.replace("T", "t").replace("Z", "z"),
            lambda s: s.replace("Z", "+00:00"),
            lambda s: s.replace("Z", "000000Z"),
        ]
    )
    return v(t)


def mix(
    good_mentions: list[dict[str, Any]],
    hostile: list[Case],
    *,
    head: int,
    seed: int = 3,
) -> Mixed:
    """Insert the hostile cases after the first ``head`` good mentions, at random places."""
    rng = random.Random(seed)
    values = [orjson.dumps(m) for m in good_mentions]
    positions = sorted(rng.randrange(head, len(values)) for _ in hostile)
    out: list[tuple[bytes | None, bytes | None]] = []
    good = {m["id"]: m["brand"] for m in good_mentions}
    dead: list[bytes] = []
    late: set[str] = set()
    kinds: dict[str, int] = {}
    hi = 0
    emitted: list[tuple[bytes, dict[str, Any]]] = []
    for pos, (m, v) in enumerate(zip(good_mentions, values, strict=True)):
        out.append((m["brand"].encode(), v))
        emitted.append((v, m))
        while hi < len(hostile) and positions[hi] == pos:
            c = hostile[hi]
            hi += 1
            kinds[c.label] = kinds.get(c.label, 0) + 1
            t = m["created_at"]
            if c.kind == "dead":
                out.append((c.key, c.value))
                dead.append(c.value or b"")
            elif c.kind == "late":
                out.append((c.key, c.value))
                late.add(c.mid)
            elif c.kind == "good":
                assert c.value is not None
                value = c.value.replace(b"@TV@", _time_variant(t, rng).encode())
                out.append((c.key, value.replace(PLACEHOLDER.encode(), t.encode())))
                good[c.mid] = c.brand
            else:  # a re-delivery of one of the last good mentions
                ov, om = emitted[-rng.randint(1, min(50, len(emitted)))]
                if c.kind == "dup":
                    out.append((om["brand"].encode(), ov))
                else:
                    out.append((om["brand"].encode(), orjson.dumps({**om, "text": "changed"})))
    return Mixed(out, good, dead, late, kinds)


Check = Callable[[Any], bool]
