"""The batch hot path: same output as the reference enrich rule, envelopes, vectorised metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import Histogram

from streams import metrics as m
from streams.columns import Mentions
from streams.fastpath import HANDOFF_HEADER, Handoff, Partitioner
from streams.ingest import Ingestor, RawRecord
from streams.sentiment import load_scorer
from streams.sentiment.enrich import enrich
from streams.settings import Settings
from tests.malformed import GOOD, malformed


@pytest.mark.parametrize("keep", [True, False])
def test_ingest_output_equals_the_enrich_rule(keep: bool) -> None:
    ing = Ingestor(Settings(keep_presented_sentiment=keep), load_scorer("vader"))
    docs: list[dict[str, Any]] = [
        dict(GOOD, id="1", text="I love it"),
        dict(GOOD, id="2", text="c'est nul", lang="fr"),
        dict(GOOD, id="3", text="meh", sentiment=-0.5),
        dict(GOOD, id="4", text="meh", sentiment=None, lang="en-GB"),
        dict(GOOD, id="5", text="awful", lang="", event_time="carried"),
        dict(GOOD, id="6", text="fine", lang="EN_us", sentiment=0.01, custom={"a": 1}),
        dict(
            GOOD, id="7", text="spliced", custom=[1, {"b": None}], created_at="2026-01-01t00:00:00z"
        ),
        dict(GOOD, id="8", text="ünïcode ✓", author="a", author_followers=3, lang='x"y'),
    ]
    want = enrich(docs, ing.scorer, keep_presented=keep)
    values = [orjson.dumps(d) for d in docs]
    values[6] = values[6][:-1] + b" } \n"  # whitespace the splice must not break
    got = ing.process([RawRecord(b"k", v) for v in values]).scored
    # Same fields, same values, same order (spliced rows keep the original bytes).
    assert [list(s.value.items()) for s in got] == [list(w.items()) for w in want]


def test_batch_decode_refuses_what_decode_refuses() -> None:
    ing = Ingestor(Settings(), load_scorer("vader"))
    bad = malformed(100)
    reasons: dict[int, str] = {}
    batch = ing.decode_columns([v for _, v, _ in bad], reasons.__setitem__)
    assert len(batch) == 0
    for i, (_, _, reason) in enumerate(bad):
        assert reason in reasons[i], (reason, reasons[i])


def _columns(n: int = 50) -> Mentions:
    return Mentions.from_docs(
        [
            {
                "id": str(i),
                "brand": f"b{i % 3}",
                "text": "x" * i,
                "event_time": float(i) + 0.1,
                "created_at": "2026-01-01T00:00:00Z",
                "sentiment": None if i % 4 == 0 else -0.5 + i / 100,
                "sentiment_label": "unscored" if i % 4 == 0 else "negative",
                "author": None if i % 2 else f"a{i}",
                "author_followers": i if i % 3 else None,
                "platform": "reddit",
            }
            for i in range(n)
        ]
    )


def test_envelopes_split_by_size_and_round_trip() -> None:
    cols = _columns()
    envs = cols.split(max_bytes=1500)
    assert len(envs) > 1 and all(len(e) <= 1500 for e in envs)
    back = [Mentions.from_envelope(e) for e in envs]
    assert all(b is not None for b in back)
    docs = [b.doc(k) for b in back if b is not None for k in range(len(b))]
    assert docs == [cols.doc(k) for k in range(len(cols))]
    # Cut before encoding from an expected size per row (too small, about right,
    # too large): still every row once, in order, and no envelope over the limit.
    for hint in (0.0, 5.0, 40.0, 1000.0):
        pieces = cols.split_parts(1500, hint)
        assert all(len(e) <= 1500 for _, e in pieces), hint
        got = [Mentions.from_envelope(e) for _, e in pieces]
        assert [b.doc(k) for b in got if b is not None for k in range(len(b))] == docs
    # An envelope of the previous version (an array of scored mentions) still reads.
    old = orjson.dumps([cols.doc(k) for k in range(3)])
    v1 = Mentions.from_envelope(old)
    assert v1 is not None and [v1.doc(k) for k in range(3)] == docs[:3]


def _assert_same_columns(a: Mentions, b: Mentions) -> None:
    """Every column equal, element types included; floats to the bit (NaN too)."""
    assert a.brands == b.brands
    for name in ("bcode", "label", "event_time", "sentiment"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
    for name in ("id", "created_at", "text", "author", "followers", "platform"):
        x, y = getattr(a, name), getattr(b, name)
        assert x == y and list(map(type, x)) == list(map(type, y)), name


def test_a_handed_over_batch_equals_its_decoded_envelope() -> None:
    # The detect agent counts either the batch ingest kept or the envelope
    # decoded from Kafka: both must be the same columns.
    ing = Ingestor(Settings(), load_scorer("vader"))
    docs: list[dict[str, Any]] = [
        dict(GOOD, id=f"m{i}", brand=f"b{i % 4}", text=f"text {i} " * (i % 9)) for i in range(60)
    ]
    docs += [
        dict(GOOD, id="u", text='ünïcode ✓ \u2028 "quoted"', author=None, platform=None),
        dict(GOOD, id="lang", text="c'est nul", lang="fr"),  # not scored: NaN sentiment
        dict(GOOD, id="pres", text="meh", sentiment=-0.25),  # presented
        dict(GOOD, id="big", text="x", author_followers=2**63 + 5),  # capped reach
        dict(GOOD, id="t", text="t", created_at="2026-01-01T00:00:00.123456+05:30"),
    ]
    ib = ing.prepare([orjson.dumps(d) for d in docs], lambda i, r: pytest.fail(r))
    assert len(ib) == len(docs)
    rows = np.flatnonzero(np.arange(len(ib)) % 3 != 1)
    for part in (ib.mentions(), ib.mentions().take(rows)):
        pieces = part.split_parts(2000)
        assert len(pieces) > 1
        for batch, envelope in pieces:
            back = Mentions.from_envelope(envelope)
            assert back is not None
            _assert_same_columns(batch, back)
        assert [e for _, e in pieces] == part.split(2000)


def test_handoff_gives_a_batch_once_and_only_for_its_envelope() -> None:
    h = Handoff(max_rows=120)
    a, b = _columns(50), _columns(40)
    ta = h.put(a, b"A" * 10)
    tb = h.put(b, b"B" * 7)
    assert ta != tb and len(ta) == len(tb) == 24
    assert h.take([(HANDOFF_HEADER, tb)], b"B" * 7) is b
    assert h.take([(HANDOFF_HEADER, tb)], b"B" * 7) is None  # once: a re-delivery decodes
    assert h.take({"other": b"x"}, b"A" * 10) is None and h.take(None, b"") is None
    assert h.take([(HANDOFF_HEADER, ta)], b"A" * 11) is None  # not the envelope it was kept for
    # Another process's token (another random prefix) is never found here.
    assert h.take([(HANDOFF_HEADER, Handoff().put(a, b"A" * 10))], b"A" * 10) is None
    # Bounded: the oldest batches go first once more than max_rows are kept.
    tokens = [h.put(_columns(50), b"x") for _ in range(3)]
    assert len(h) == 2 and h.take([(HANDOFF_HEADER, tokens[0])], b"x") is None
    assert h.take([(HANDOFF_HEADER, tokens[2])], b"x") is not None
    assert h.hits == 2 and h.misses == 4


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.update(v=3),
        lambda d: d.update(b=[*d["b"][:-1], 99]),
        lambda d: d.update(id=d["id"][:-1]),
        lambda d: d.update(t=[*d["t"][:-1], "x"]),
        lambda d: d.update(text=[*d["text"][:-1], 5]),
        lambda d: d.update(followers=[*d["followers"][:-1], True]),
        lambda d: d.update(label=[*d["label"][:-1], 7]),
        lambda d: d.pop("platform"),
    ],
)
def test_a_damaged_envelope_is_refused_whole(damage: Any) -> None:
    doc = orjson.loads(_columns(10).to_envelope())
    damage(doc)
    assert Mentions.from_envelope(orjson.dumps(doc)) is None
    assert Mentions.from_envelope(b"[{") is None
    assert Mentions.from_envelope(b'{"id": "1"}') is None
    assert Mentions.from_envelope(b'[{"id": "1", "brand": "b"}]') is None  # no event_time


def test_partitioner_matches_kafkas_default() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    p = Partitioner(7)
    for key in (b"acme", b"globex", b"brand000123", "café".encode()):
        assert p(key) == DefaultPartitioner()(key, list(range(7)), list(range(7)))


def test_observe_many_equals_observe() -> None:
    values = [0.0, 0.05, 0.07, 1.0, 3.0, 7 * 86400.0, 1e9]
    one = Histogram("t_one_seconds", "t", buckets=m.LAG_BUCKETS, registry=None)
    many = Histogram("t_many_seconds", "t", buckets=m.LAG_BUCKETS, registry=None)
    for v in values:
        one.observe(v)
    m.observe_many(many, values)

    def samples(h: Histogram) -> list[tuple[str, dict[str, str], float]]:
        return [
            (s.name.split("_", 2)[-1], s.labels, s.value) for s in next(iter(h.collect())).samples
        ]

    assert samples(one) == samples(many)


class _BatchSink:
    """The two producer calls send_batched makes, with aiokafka's real batch builder."""

    def __init__(self, batch_size: int, serializer: Any = None) -> None:
        self.batch_size, self.serializer = batch_size, serializer
        self.sent: list[tuple[str, int, bytes]] = []

    def create_batch(self) -> Any:
        from aiokafka.producer.message_accumulator import BatchBuilder

        return BatchBuilder(self.batch_size, 0, key_serializer=self.serializer)

    async def send_batch(self, batch: Any, topic: str, partition: int) -> Any:
        self.sent.append((topic, partition, bytes(batch._build())))
        return len(self.sent)


def _records_of(buffers: list[bytes]) -> list[tuple[int, bytes | None, bytes, list[Any], int]]:
    from aiokafka.record.memory_records import MemoryRecords

    out = []
    for buf in buffers:
        mr = MemoryRecords(buf)
        while (b := mr.next_batch()) is not None:
            out += [(r.offset, r.key, r.value, list(r.headers), r.timestamp) for r in b]
    return out


@pytest.mark.parametrize("serializer", [None, lambda k: k])
def test_send_batched_writes_every_record_in_order_across_full_batches(serializer: Any) -> None:
    import asyncio

    from streams.fastpath import send_batched

    recs = [
        (f"k{i % 7}".encode() if i % 5 else None, b"v" * (i % 97) + b"%d" % i) for i in range(400)
    ]
    heads = [[("h", b"%d" % i)] if i % 3 else [] for i in range(400)]
    for headers in (None, heads):
        sink = _BatchSink(4096, serializer)  # the fallback path when the batch serializes keys
        futs = asyncio.run(send_batched(sink, "t", 2, recs, 1_700_000_000_000, headers))  # type: ignore[arg-type]
        assert len(futs) == len(sink.sent) > 5 and {(t, p) for t, p, _ in sink.sent} == {("t", 2)}
        got = _records_of([b for _, _, b in sink.sent])
        assert [(k, v) for _, k, v, _, _ in got] == recs
        assert [h for _, _, _, h, _ in got] == (heads if headers else [[]] * 400)
        assert {ts for *_, ts in got} == {1_700_000_000_000}
        # Offsets are relative to each batch: 0, 1, ... in every one.
        starts = [i for i, (off, *_) in enumerate(got) if off == 0]
        assert len(starts) == len(sink.sent)
        assert all(got[i][0] == i - max(s for s in starts if s <= i) for i in range(len(got)))


def test_a_contiguous_slice_equals_take() -> None:
    cols = _columns(50)
    for a, b in [(0, 50), (3, 17), (49, 50), (10, 10)]:
        s, t = cols.slice(a, b), cols.take(np.arange(a, b))
        assert s.to_envelope() == t.to_envelope()
        assert len(s) == b - a
