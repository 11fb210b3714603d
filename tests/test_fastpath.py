"""The batch hot path: same output as the reference enrich rule, envelopes, vectorised metrics."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from prometheus_client import Histogram

from streams import metrics as m
from streams.fastpath import Partitioner, decode_envelope, split_envelopes
from streams.ingest import Ingestor, RawRecord
from streams.sentiment import load_scorer
from streams.sentiment.enrich import enrich
from streams.settings import Settings
from tests.malformed import GOOD, malformed


@pytest.mark.parametrize("keep", [True, False])
def test_ingest_output_equals_the_enrich_rule_byte_for_byte(keep: bool) -> None:
    ing = Ingestor(Settings(keep_presented_sentiment=keep), load_scorer("vader"))
    docs: list[dict[str, Any]] = [
        dict(GOOD, id="1", text="I love it"),
        dict(GOOD, id="2", text="c'est nul", lang="fr"),
        dict(GOOD, id="3", text="meh", sentiment=-0.5),
        dict(GOOD, id="4", text="meh", sentiment=None, lang="en-GB"),
        dict(GOOD, id="5", text="awful", lang="", event_time="carried"),
        dict(GOOD, id="6", text="fine", lang="EN_us", sentiment=0.01, custom={"a": 1}),
    ]
    want = enrich(docs, ing.scorer, keep_presented=keep)
    got = ing.process([RawRecord(b"k", orjson.dumps(d)) for d in docs]).scored
    assert [orjson.dumps(s.value) for s in got] == [orjson.dumps(w) for w in want]


def test_batch_decode_refuses_what_decode_refuses() -> None:
    ing = Ingestor(Settings(), load_scorer("vader"))
    bad = malformed(100)
    reasons: dict[int, str] = {}
    docs, index = ing.decode_batch([v for _, v, _ in bad], reasons.__setitem__)
    assert docs == [] and index == []
    for i, (_, _, reason) in enumerate(bad):
        assert reason in reasons[i], (reason, reasons[i])


def test_envelopes_split_by_size_and_round_trip() -> None:
    values = [orjson.dumps({"id": str(i), "brand": "b", "event_time": float(i)}) for i in range(50)]
    envs = split_envelopes(values, max_bytes=300)
    assert len(envs) > 1 and all(len(e) <= 300 for e in envs)
    back = [d for e in envs for d in decode_envelope(e) or []]
    assert back == [orjson.loads(v) for v in values]
    assert decode_envelope(b"[{") is None
    assert decode_envelope(b'{"id": "1"}') is None
    assert decode_envelope(b'[{"id": "1", "brand": "b"}]') is None  # no event_time


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
