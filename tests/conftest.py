"""Shared fixtures. Broker-backed tests use a real Apache Kafka broker.

The session fixture ``kafka_bootstrap`` uses ``CRISISWATCH_TEST_BOOTSTRAP``
if set, else starts the project's local broker (deploy/kafka/kafka.sh) on
``CRISISWATCH_TEST_KAFKA_PORT`` (default 29092) with its own state folder,
and stops it at the end if it started it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka_support import PROJECT, WorkerFactory, port_open

TEST_STATE = PROJECT / ".cache" / "test-kafka"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("CRISISWATCH_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    port = int(os.environ.get("CRISISWATCH_TEST_KAFKA_PORT", "29092"))
    env = {**os.environ, "KAFKA_HOME_DIR": str(TEST_STATE)}
    script = PROJECT / "deploy" / "kafka" / "kafka.sh"
    started = not port_open(port)
    if started:
        subprocess.run(["bash", str(script), "reset"], env=env, check=True, capture_output=True)
        subprocess.run(["bash", str(script), "start", "--port", str(port)], env=env, check=True)
    yield f"127.0.0.1:{port}"
    if started:
        subprocess.run(["bash", str(script), "stop"], env=env, check=False)


@pytest.fixture
def workers(kafka_bootstrap: str, tmp_path: Path) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(kafka_bootstrap, tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()
