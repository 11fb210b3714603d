"""End to end on the real broker: mentions.raw -> worker -> scored, dead letters, crisis events."""

from __future__ import annotations

import time
from collections import Counter

import orjson
import pytest
from kafka import KafkaConsumer
from kafka.partitioner.default import murmur2

from schemas import validator
from streams.synth import surge_stream
from tests.kafka_support import WorkerFactory
from tests.malformed import malformed, mix

pytestmark = pytest.mark.kafka

BRANDS = ["acme", "globex", "initech", "umbrella", "hooli"]


def test_surge_opens_exactly_one_crisis_and_malformed_records_are_dead_lettered(
    workers: WorkerFactory,
) -> None:
    w = workers.start()
    mentions = surge_stream(BRANDS, 10_000, surge_brand="initech", seed=11)
    bad = malformed(100)
    good_values = [orjson.dumps(m) for m in mentions]
    values = mix(good_values, [v for _, v, _ in bad], seed=5)
    keys = {v: k for k, v, _ in bad}
    records = [(keys.get(v, b"") or orjson.loads(v)["brand"].encode(), v) for v in values]
    workers.produce(workers.topic("raw"), records)

    scored = workers.consume(workers.topic("scored"), until=10_000, timeout=240)
    dead = workers.consume(workers.topic("deadletter"), until=100, timeout=60)
    assert w.alive(), w.log_text()[-3000:]
    # Every valid record counted once, per brand.
    assert len(scored) == 10_000
    want = Counter(m["brand"] for m in mentions)
    got = Counter(orjson.loads(m.value)["brand"] for m in scored)
    assert got == want
    assert sorted(orjson.loads(m.value)["id"] for m in scored) == sorted(m["id"] for m in mentions)

    # Every malformed record in the dead-letter topic, original bytes and a reason.
    assert len(dead) == 100
    expected = {v: reason for _, v, reason in bad}
    for msg in dead:
        h = {k: v.decode() for k, v in msg.headers}
        assert msg.value in expected
        assert expected[msg.value] in h["crisiswatch.error"], h
        assert h["crisiswatch.stage"] == "ingest"
        assert h["crisiswatch.source.topic"] == workers.topic("raw")
        assert int(h["crisiswatch.source.partition"]) >= 0
        assert int(h["crisiswatch.source.offset"]) >= 0
    assert {m.value for m in dead} == set(expected)

    # Crisis events: wait for the idle flush to close the last buckets.
    msgs = workers.consume(workers.topic("events"), idle=15, timeout=90)
    events = [orjson.loads(m.value) for m in msgs]
    # Keyed by brand, on the partition Kafka's default partitioner gives the key
    # (the worker writes them in batches, partitioned by itself).
    meta = KafkaConsumer(bootstrap_servers=workers.bootstrap)
    n_parts = len(meta.partitions_for_topic(workers.topic("events")) or ())
    meta.close()
    assert n_parts > 1
    for m in msgs:
        assert m.key == orjson.loads(m.value)["brand"].encode()
        assert m.partition == (murmur2(m.key) & 0x7FFFFFFF) % n_parts
    for ev in events:
        validator("crisis_event.v1").validate(ev)
    opened = [e for e in events if e["status"] == "opened"]
    assert [e["brand"] for e in opened] == ["initech"], events
    assert {e["brand"] for e in events} == {"initech"}
    assert {e["crisis_id"] for e in events} == {opened[0]["crisis_id"]}
    assert events[-1]["status"] == "resolved"

    # The detect stage counted every valid mention of every brand.
    stats = w.get("/stats")
    assert stats["brands"] == dict(want)
    assert stats["counters"]["deadletter.ingest"] == 100
    # The counters alone, for pollers (bench-pipeline): the same counts, no brand list.
    light = w.get("/stats?brands=false")
    assert "brands" not in light
    assert light["counters"]["deadletter.ingest"] == 100
    assert light["counters"]["detect.in"] == stats["counters"]["detect.in"]
    assert w.alive()


def test_without_the_scored_topic_every_mention_is_still_counted(workers: WorkerFactory) -> None:
    w = workers.start(publish_scored="false")
    mentions = surge_stream(BRANDS, 3_000, surge_brand="initech", seed=12)
    records = [(m["brand"].encode(), orjson.dumps(m)) for m in mentions]
    # In two waves: once the first is counted, every partition of these brands
    # has its engine here, so the second wave's envelopes are handed over
    # decoded (Handoff) instead of decoded again.
    workers.produce(workers.topic("raw"), records[:1000])
    deadline = time.monotonic() + 120
    while sum(w.get("/stats")["brands"].values()) < 1000:
        assert time.monotonic() < deadline and w.alive(), w.log_text()[-3000:]
        time.sleep(0.2)
    workers.produce(workers.topic("raw"), records[1000:])
    events = workers.consume(workers.topic("events"), idle=15, timeout=120)
    assert w.get("/stats")["counters"].get("detect.handed_over", 0) >= 1
    assert [orjson.loads(e.value)["brand"] for e in events][:1] == ["initech"]
    assert w.get("/stats")["brands"] == dict(Counter(m["brand"] for m in mentions))
    assert workers.consume(workers.topic("scored"), idle=3, timeout=10) == []
