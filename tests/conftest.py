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

from tests.kafka_support import (
    OAUTH_SECRET,
    PROJECT,
    SASL_SSL_OFFSET,
    SSL_OFFSET,
    SecureKafka,
    WorkerFactory,
    port_open,
)
from tests.oauth_support import LocalIdP

TEST_STATE = PROJECT / ".cache" / "test-kafka"
KAFKA_SH = PROJECT / "deploy" / "kafka" / "kafka.sh"
#: The SCRAM password of the test brokers' user: distinctive, so a leak is found.
SCRAM_PASSWORD = "scram-7c41-never-print"


def fresh_broker(state: Path, port: int) -> dict[str, str]:
    """kafka.sh reset + start in ``state``: PLAINTEXT on ``port``, SASL_SSL and SSL
    (client certificates required) on port + their offsets.

    Returns the environment that stops it again.
    """
    env = {**os.environ, "KAFKA_HOME_DIR": str(state), "KAFKA_SCRAM_PASSWORD": SCRAM_PASSWORD}
    subprocess.run(["bash", str(KAFKA_SH), "reset"], env=env, check=True, capture_output=True)
    sasl = ["--sasl-ssl-port", str(port + SASL_SSL_OFFSET), "--ssl-port", str(port + SSL_OFFSET)]
    subprocess.run(
        ["bash", str(KAFKA_SH), "start", "--port", str(port), *sasl], env=env, check=True
    )
    return env


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("CRISISWATCH_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    port = int(os.environ.get("CRISISWATCH_TEST_KAFKA_PORT", "29092"))
    env = fresh_broker(TEST_STATE, port) if not port_open(port) else None
    yield f"127.0.0.1:{port}"
    if env is not None:
        subprocess.run(["bash", str(KAFKA_SH), "stop"], env=env, check=False)


@pytest.fixture(scope="session")
def kafka_secure(kafka_bootstrap: str) -> Iterator[SecureKafka]:
    """The secured listeners of a real local broker: SASL_SSL (SCRAM-SHA-512,
    SCRAM-SHA-256, PLAIN) and SSL with client certificates. The session broker's,
    or (an external or older session broker without them) a broker of its own,
    started here and stopped at the end."""
    port = int(kafka_bootstrap.rsplit(":", 1)[1])
    tls = TEST_STATE / "kafka-single" / "tls"
    external = os.environ.get("CRISISWATCH_TEST_BOOTSTRAP")
    if (
        not external
        and port_open(port + SASL_SSL_OFFSET)
        and port_open(port + SSL_OFFSET)
        and (tls / "client.pem").is_file()
        and (tls / "jwks.json").is_file()  # a broker from before OAUTHBEARER: start one
    ):
        yield SecureKafka.local(port + SASL_SSL_OFFSET, port + SSL_OFFSET, tls, SCRAM_PASSWORD)
        return
    state = PROJECT / ".cache" / "test-kafka-secure"
    own = int(os.environ.get("CRISISWATCH_TEST_SECURE_KAFKA_PORT", "29192"))
    env = fresh_broker(state, own)
    try:
        tls = state / "kafka-single" / "tls"
        yield SecureKafka.local(own + SASL_SSL_OFFSET, own + SSL_OFFSET, tls, SCRAM_PASSWORD)
    finally:
        subprocess.run(["bash", str(KAFKA_SH), "stop"], env=env, check=False)


@pytest.fixture(scope="session")
def oauth_idp(kafka_secure: SecureKafka) -> Iterator[LocalIdP]:
    """A local OAuth identity provider whose tokens the secured broker accepts: it signs
    with the key kafka.sh made for it. Clients: the broker's super user and "guest"."""
    clients = {kafka_secure.username: OAUTH_SECRET, "guest": OAUTH_SECRET}
    with LocalIdP(kafka_secure.oauth_key, clients) as idp:
        yield idp


@pytest.fixture
def workers(kafka_bootstrap: str, tmp_path: Path) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(kafka_bootstrap, tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()
