"""Three-broker KRaft cluster, RF 3, min.insync.replicas 2: one broker killed mid-stream, nothing lost.

A private three-node cluster (own state folder, free ports). Every topic the
worker uses (raw, scored, dead letters, events, the detect checkpoints, the
consumer offsets) has three replicas, and acks=all needs two in sync, so
losing any one node loses no acknowledged record. Node 2 is SIGKILLed while
the worker counts (partition leadership moves to the survivors), then
started again; it must rejoin the ISR.

It is also the test of kafka.sh's cluster commands (cluster-start, node-kill,
node-start, cluster-status, cluster-stop, KAFKA_JVM_OPTS reaching every node,
a second cluster-start on other ports refused),
so that CI starts one three-node cluster, not two.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient

import streams.kafka_util as kafka_util
from streams.recovery import checkpoint_topic
from streams.settings import Settings
from streams.synth import surge_stream
from tests.kafka_support import WorkerFactory
from tests.reliability.support import (
    LocalKafka,
    counted,
    dead_letter_reasons,
    loss,
    send_checked,
    summary,
    wait_counts,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.reliability, pytest.mark.ci]

BRANDS = [f"brand{i:02d}" for i in range(12)]
N = 30_000


def isr_sizes(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Smallest in-sync replica set per topic."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        out = {}
        for t in admin.describe_topics(topics):
            out[t["name"]] = min((len(p["isr_nodes"]) for p in t["partitions"]), default=0)
        return out
    finally:
        admin.close()


@pytest.mark.timeout(480)
def test_cluster_node_loss_mid_stream_loses_nothing(tmp_path: Path) -> None:
    mark = f"-Dcrisiswatch.test={uuid.uuid4().hex[:8]}"
    kafka = LocalKafka(tmp_path / "kafka", cluster=True, jvm_opts=mark)
    t_start = time.monotonic()
    kafka.cluster_start()
    # KAFKA_JVM_OPTS reaches every node's JVM.
    assert all(mark in kafka.node_cmdline(n) for n in (1, 2, 3))
    # cluster-start on other ports is refused while the cluster runs: it would
    # have pointed cluster.port (and so node-start, cluster-status) elsewhere.
    port_file = kafka.home / "cluster.port"
    assert kafka.sh("cluster-start", "--port", str(kafka.port + 10), check=False) != 0
    assert port_file.read_text().strip() == str(kafka.port)
    assert kafka.cluster_status() == 0, kafka.log
    factory = WorkerFactory(kafka.bootstrap, tmp_path)
    try:
        w = factory.start(ready_timeout=120, checkpoint_seconds="2", replication_factor="3")
        mentions = surge_stream(BRANDS, N, surge_brand="brand05", seed=8, duration_s=12 * 3600)
        values = [orjson.dumps(m) for m in mentions]
        want = Counter(m["brand"] for m in mentions)
        records = [(m["brand"].encode(), v) for m, v in zip(mentions, values, strict=True)]
        topics = [factory.topic(t) for t in ("raw", "scored", "deadletter", "events")]
        assert wait_until(
            lambda: all(v == 3 for v in isr_sizes(kafka.bootstrap, topics).values()), 60, 1.0
        )

        sent: list[int] = []
        errors: list[BaseException] = []

        def produce() -> None:
            try:
                sent.append(send_checked(kafka.bootstrap, factory.topic("raw"), records, pause=0.3))
            except BaseException as exc:
                errors.append(exc)

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()

        assert wait_until(lambda: counted(w) >= 0.3 * N, 240), w.log_text()[-3000:]
        t_kill = time.monotonic()
        kafka.node_kill(2)
        faults = 1
        # Degraded (2 of 3): the pipeline must keep going on its own.
        assert wait_until(lambda: counted(w) >= 0.65 * N, 240), w.log_text()[-3000:]
        degraded_s = time.monotonic() - t_kill
        kafka.node_start(2)
        producer.join(300)
        assert not errors, errors
        assert sent == [N], sent
        got = wait_counts(w, want, timeout=240)
        lost, extra = loss(want, got)
        # The checkpoint topic exists once the first checkpoint was written.
        s = Settings(app_id=factory.env()["CRISISWATCH_APP_ID"])
        topics += [checkpoint_topic(s), *getattr(kafka_util, "internal_topic_names", list)(s)]
        rejoined = wait_until(
            lambda: all(v == 3 for v in isr_sizes(kafka.bootstrap, topics).values()), 90, 1.0
        )
        summary(
            "cluster-node-loss",
            sent=N,
            faults=faults,
            lost=lost,
            deadlettered=dead_letter_reasons(factory) if lost else "-",
            extra=extra,
            counted=sum(got.values()),
            degraded_s=f"{degraded_s:.1f}",
            node2_rejoined_isr=rejoined,
            elapsed_s=f"{time.monotonic() - t_start:.0f}",
        )
        assert w.alive(), f"worker died: {w.log_text()[-3000:]}"
        assert kafka.cluster_status() == 0, kafka.log
        assert mark in kafka.node_cmdline(2)  # the restarted node too
        assert lost == 0 and extra == 0, {b: (want[b], got.get(b)) for b in want}
        assert got == dict(want)
        assert rejoined, isr_sizes(kafka.bootstrap, topics)
    finally:
        factory.stop_all()
        kafka.cluster_stop()
