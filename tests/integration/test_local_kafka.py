"""deploy/kafka/kafka.sh: idempotent start, status, and the three-node cluster mode."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from streams.ports import free_port_block
from tests.kafka_support import PROJECT

pytestmark = pytest.mark.kafka
SCRIPT = PROJECT / "deploy" / "kafka" / "kafka.sh"


def sh(
    *args: str, state: Path, check: bool = True, jvm_opts: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_HOME_DIR": str(state), "KAFKA_JVM_OPTS": jvm_opts}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=180,
    )


def test_start_is_idempotent_and_status_says_where_logs_are(kafka_bootstrap: str) -> None:
    if os.environ.get("CRISISWATCH_TEST_BOOTSTRAP"):
        pytest.skip("an external broker is configured; the local script is not in use")
    state = PROJECT / ".cache" / "test-kafka"
    port = kafka_bootstrap.rsplit(":", 1)[1]
    t0 = time.monotonic()
    out = sh("start", "--port", port, state=state)
    assert "already running" in out.stdout
    assert time.monotonic() - t0 < 10
    status = sh("status", state=state)
    assert status.stdout.startswith("running")
    assert f"127.0.0.1:{port}" in status.stdout and "logs" in status.stdout


def test_three_node_cluster_replicates_and_survives_one_node(tmp_path: Path) -> None:
    base = free_port_block((0, 1, 2, 1000, 1001, 1002))
    state = tmp_path / "cluster"
    try:
        mark = f"-Dcrisiswatch.test={uuid.uuid4().hex[:8]}"
        sh("cluster-start", "--port", str(base), state=state, jvm_opts=mark)
        # KAFKA_JVM_OPTS reaches every node's JVM.
        pids = [
            (state / "kafka-cluster" / f"node{i}" / "pid").read_text().strip() for i in (1, 2, 3)
        ]
        for pid in pids:
            assert mark in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        servers = [f"127.0.0.1:{base + i}" for i in range(3)]
        admin = KafkaAdminClient(bootstrap_servers=servers)
        topic = f"rf3-{uuid.uuid4().hex[:6]}"
        admin.create_topics([NewTopic(topic, 3, 3, topic_configs={"min.insync.replicas": "2"})])
        admin.close()
        sh("node-kill", "2", state=state)
        prod = KafkaProducer(bootstrap_servers=servers, acks="all", retries=10)
        for i in range(200):
            prod.send(topic, value=str(i).encode())
        prod.flush(timeout=60)
        prod.close()
        cons = KafkaConsumer(
            topic,
            bootstrap_servers=servers,
            group_id=None,
            auto_offset_reset="earliest",
            consumer_timeout_ms=5000,
        )
        got = sorted(int(m.value) for m in cons)
        cons.close()
        assert got == list(range(200))
        sh("node-start", "2", state=state)
        assert sh("cluster-status", state=state).returncode == 0
    finally:
        sh("cluster-stop", state=state, check=False)
