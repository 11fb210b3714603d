"""The pipeline and its benchmark against a real SASL_SSL listener (SCRAM-SHA-512 over TLS
from a local CA; deploy/kafka/kafka.sh --sasl-ssl-port).

tests/reliability/test_security.py checks statically and with stand-in client classes
that every Kafka client gets the security settings, and runs a worker's whole job over
this listener (no secret in its output); here: refused logins and certificates, and
the benchmark.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams import bench_pipeline as bp
from tests.kafka_support import PROJECT, SecureKafka, WorkerFactory
from tests.reliability.support import wait_until

pytestmark = pytest.mark.kafka


def run_worker(kafka: SecureKafka, tmp: Path, **settings: str) -> tuple[int, str, float]:
    """A worker with these settings over the listener, to its exit: (code, output, seconds)."""
    env = WorkerFactory(kafka.bootstrap, tmp, settings=kafka.settings(**settings)).env(
        data_dir=str(tmp / "w")
    )
    t0 = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "streams", "worker"],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return p.returncode, p.stderr + p.stdout, time.monotonic() - t0


def test_a_worker_with_a_wrong_password_says_why_and_exits(
    kafka_secure: SecureKafka, tmp_path: Path
) -> None:
    code, out, took = run_worker(kafka_secure, tmp_path, kafka_sasl_password="not-it")
    assert code == 3, out[-2000:]
    assert "SaslAuthenticationFailed" in out and "invalid credentials" in out
    assert "not-it" not in out
    # Refused at once, not after kafka-python's retries ran out (about 30 s).
    assert took < 25, took


def test_a_worker_that_does_not_trust_the_certificate_says_why(
    kafka_secure: SecureKafka, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    args = [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=not-the-brokers-CA",
    ]
    keys = ["-keyout", str(tmp_path / "k.pem"), "-out", str(other_ca)]
    subprocess.run(["openssl", *args, *keys], check=True, capture_output=True)
    code, out, _ = run_worker(kafka_secure, tmp_path, kafka_ssl_cafile=str(other_ca))
    assert code == 3, out[-2000:]
    assert "CERTIFICATE_VERIFY_FAILED" in out


def test_bench_pipeline_phases_run_against_the_secured_listener(
    kafka_secure: SecureKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The benchmark's clients, its workers and the empty Faust agent all reach
    # the broker with the environment's security settings.
    for k, v in kafka_secure.env().items():
        monkeypatch.setenv(k, v)
    n = 8_000
    with bp.broker() as boot:
        assert boot == kafka_secure.bootstrap
        topic = f"bench-secure-{time.time_ns()}"
        bp.create_topic(boot, topic)
        bp.produce(boot, topic, bp.make_mentions(n, 20, start=time.time() - 600, span=600))
        got = bp.bare(boot, topic, n)
        assert got["rate"] > 0
        relay = bp.relay(boot, topic, n)
        assert relay["rate"] > 0
        empty = bp.run_empty_agent(boot, topic, n, tmp_path, timeout=120)
        assert empty["records"] > 0, (tmp_path / "empty-agent.log").read_text()[-3000:]
        # A worker of the benchmark (measure_pipeline's, without the timing, which
        # needs more mentions than a test should send).
        run = bp.Run("secure", boot, tmp_path, topic)
        run.start(1)
        try:
            done = wait_until(
                lambda: run.total("detect.in") + run.total("detect.replayed") >= n, 120
            )
            assert done, run.workers[0].counters()
        finally:
            run.stop()


def test_bench_pipeline_names_a_refused_login_at_once(
    kafka_secure: SecureKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in kafka_secure.env(kafka_sasl_password="not-it").items():
        monkeypatch.setenv(k, v)
    with pytest.raises(bp.ConfigError, match="SaslAuthenticationFailed"), bp.broker():
        pass
