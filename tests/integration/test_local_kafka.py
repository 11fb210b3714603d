"""deploy/kafka/kafka.sh: idempotent start and status.

The three-node cluster mode (cluster-start, node-kill, node-start, cluster-status,
KAFKA_JVM_OPTS on every node) is tested by
tests/reliability/test_cluster_node_loss.py, which runs in the same suite.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.kafka_support import PROJECT

pytestmark = pytest.mark.kafka
SCRIPT = PROJECT / "deploy" / "kafka" / "kafka.sh"


def sh(*args: str, state: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_HOME_DIR": str(state)}
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
    config = state / "kafka-single" / "server.properties"
    before = config.read_text()
    t0 = time.monotonic()
    # Without the session broker's secured listeners: a running broker keeps the
    # configuration it was started with, on disk as in memory.
    out = sh("start", "--port", port, state=state)
    assert "already running" in out.stdout
    assert config.read_text() == before, "start rewrote the running broker's server.properties"
    assert time.monotonic() - t0 < 10
    status = sh("status", state=state)
    assert status.stdout.startswith("running")
    assert f"127.0.0.1:{port}" in status.stdout and "logs" in status.stdout
