"""bench-pipeline's Kafka-only relay on the real broker: it writes what ingest writes."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from streams import bench_pipeline as bp

pytestmark = pytest.mark.kafka


def test_the_relay_writes_every_value_back_and_as_envelopes(kafka_bootstrap: str) -> None:
    topic = f"relay-test-{time.time_ns()}"
    bp.create_topic(kafka_bootstrap, topic)
    records = bp.make_mentions(6000, 20, start=time.time() - 600, span=600)
    bp.produce(kafka_bootstrap, topic, records)
    got = bp.relay(kafka_bootstrap, topic, len(records))
    assert got["rate"] > 0 and got["cpu_s_per_m"] > 0
    admin = KafkaAdminClient(bootstrap_servers=[kafka_bootstrap])
    outs = sorted(t for t in admin.list_topics() if t.startswith(f"{topic}.relay-"))
    admin.close()
    assert len(outs) == 2 and outs[1] == f"{outs[0]}.envelopes"
    cons = KafkaConsumer(bootstrap_servers=[kafka_bootstrap], enable_auto_commit=False)
    ends = {
        t: sum(cons.end_offsets([TopicPartition(t, p) for p in range(bp.PARTITIONS)]).values())
        for t in outs
    }
    cons.close()
    # Every value once, keyed; envelopes: at least one per partition, far fewer than values.
    assert ends[outs[0]] == len(records)
    assert bp.PARTITIONS <= ends[outs[1]] < len(records) // 100
