"""Helpers for tests against the real broker: worker processes, topic I/O."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.ports import free_port
from streams.settings import Settings
from streams.synth import QUICK_SETTINGS

PROJECT = Path(__file__).resolve().parent.parent
#: A test broker's SASL_SSL listener is on its port + this, its mutual-TLS one on + 1 more.
SASL_SSL_OFFSET = 2
#: The OAuth client secret of the test identity provider's clients (tests/conftest.py).
OAUTH_SECRET = "oauth-51e0-never-print"
SSL_OFFSET = 3


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass(frozen=True)
class SecureKafka:
    """The secured listeners of a local broker (deploy/kafka/kafka.sh --sasl-ssl-port
    --ssl-port): SASL_SSL at ``bootstrap``, SSL with a client certificate at ``ssl_bootstrap``."""

    bootstrap: str
    cafile: str
    password: str
    username: str = "crisiswatch"
    ssl_bootstrap: str = ""
    certfile: str = ""
    keyfile: str = ""
    #: The same broker's PLAINTEXT listener (a super user: topics and ACLs for the tests).
    admin_bootstrap: str = ""

    @classmethod
    def local(cls, sasl_port: int, ssl_port: int, tls: Path, password: str) -> SecureKafka:
        """The listeners of a kafka.sh broker whose TLS material is in ``tls``."""
        return cls(
            f"127.0.0.1:{sasl_port}",
            str(tls / "ca.pem"),
            password,
            ssl_bootstrap=f"127.0.0.1:{ssl_port}",
            certfile=str(tls / "client.pem"),
            keyfile=str(tls / "client.key"),
            admin_bootstrap=f"127.0.0.1:{sasl_port - SASL_SSL_OFFSET}",
        )

    def guest_settings(self) -> dict[str, str]:
        """The worker's settings as "guest", who may do only what ACLs grant it."""
        return self.settings(kafka_sasl_mechanism="PLAIN", kafka_sasl_username="guest")

    @property
    def oauth_key(self) -> Path:
        """The key kafka.sh made for a local OAuth identity provider (tls/oauth.key)."""
        return Path(self.cafile).parent / "oauth.key"

    def oauth_settings(self, token_url: str, secret: str, **overrides: str) -> dict[str, str]:
        """The worker's settings for OAUTHBEARER over the SASL_SSL listener (client = user)."""
        return self.settings(
            kafka_sasl_mechanism="OAUTHBEARER",
            kafka_sasl_password=secret,
            kafka_sasl_oauth_token_url=token_url,
            **overrides,
        )

    def mtls_settings(self, **overrides: str) -> dict[str, str]:
        """The worker's settings for the mutual-TLS listener (bootstrap: ``ssl_bootstrap``)."""
        return {
            "kafka_security_protocol": "SSL",
            "kafka_ssl_cafile": self.cafile,
            "kafka_ssl_certfile": self.certfile,
            "kafka_ssl_keyfile": self.keyfile,
        } | overrides

    def settings(self, **overrides: str) -> dict[str, str]:
        """The worker's settings (WorkerFactory.settings keys) for this listener."""
        return {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": self.username,
            "kafka_sasl_password": self.password,
            "kafka_ssl_cafile": self.cafile,
        } | overrides

    def env(self, **overrides: str) -> dict[str, str]:
        """The same as CRISISWATCH_* environment variables, with the bootstrap."""
        return {"CRISISWATCH_KAFKA_BOOTSTRAP": self.bootstrap} | {
            f"CRISISWATCH_{k.upper()}": v for k, v in self.settings(**overrides).items()
        }

    def kafka_python(self) -> dict[str, Any]:
        """kafka-python's keyword arguments for this listener (the project's own mapping)."""
        return Settings(kafka_bootstrap=self.bootstrap, **self.settings()).kafka_python_config()


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    web_port: int
    log: Path

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=5) as r:
            return orjson.loads(r.read())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class WorkerFactory:
    bootstrap: str
    tmp: Path
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    workers: list[Worker] = field(default_factory=list)
    #: Short-stream detector settings (streams.synth.QUICK_SETTINGS); False = shipped defaults.
    quick: bool = True
    #: Settings every worker gets (before the overrides of ``env``): e.g. SecureKafka.settings().
    settings: dict[str, str] = field(default_factory=dict)
    #: Keyword arguments of this factory's kafka-python clients (produce, consume).
    client: dict[str, Any] = field(default_factory=dict)

    def env(self, **overrides: str) -> dict[str, str]:
        r = self.run
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CRISISWATCH_")},
            "CRISISWATCH_KAFKA_BOOTSTRAP": self.bootstrap,
            "CRISISWATCH_APP_ID": f"cw-test-{r}",
            "CRISISWATCH_TOPIC_RAW": f"t{r}.mentions.raw",
            "CRISISWATCH_TOPIC_SCORED": f"t{r}.mentions.scored",
            "CRISISWATCH_TOPIC_DEADLETTER": f"t{r}.mentions.deadletter",
            "CRISISWATCH_TOPIC_EVENTS": f"t{r}.crisis.events",
            "CRISISWATCH_PARTITIONS": "4",
            "CRISISWATCH_IDLE_FLUSH_SECONDS": "6",
            **{
                f"CRISISWATCH_{k.upper()}": v
                for k, v in (QUICK_SETTINGS if self.quick else {}).items()
            },
        }
        env.update({f"CRISISWATCH_{k.upper()}": v for k, v in (self.settings | overrides).items()})
        return env

    def topic(self, name: str) -> str:
        return self.env()[f"CRISISWATCH_TOPIC_{name.upper()}"]

    def start(self, ready_timeout: float = 90, **overrides: str) -> Worker:
        port = free_port()
        n = len(self.workers)
        log = self.tmp / f"worker{n}.log"
        env = self.env(web_port=str(port), data_dir=str(self.tmp / f"worker{n}"), **overrides)
        with log.open("wb") as f:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker"],
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=PROJECT,
            )
        w = Worker(proc, port, log)
        self.workers.append(w)
        deadline = time.monotonic() + ready_timeout
        while True:
            if not w.alive():
                raise RuntimeError(f"worker exited during start:\n{w.log_text()[-3000:]}")
            try:
                if w.get("/ready").get("ready"):
                    return w
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready in {ready_timeout}s:\n{w.log_text()[-3000:]}")
            time.sleep(0.3)

    def stop_all(self) -> None:
        for w in self.workers:
            w.stop()

    def produce(self, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
        prod = KafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=10,
            max_request_size=8 * 1024 * 1024,
            **self.client,
        )
        try:
            for key, value in records:
                prod.send(topic, key=key, value=value)
            prod.flush()
        finally:
            prod.close()

    def consume(
        self, topic: str, *, until: int | None = None, idle: float = 5.0, timeout: float = 120.0
    ) -> list[Any]:
        """Read a topic from the beginning until ``until`` records or ``idle`` seconds with nothing new."""
        cons = KafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=500,
            fetch_max_bytes=64 * 1024 * 1024,
            **self.client,
        )
        out: list[Any] = []
        t0 = last = time.monotonic()
        try:
            while time.monotonic() - t0 < timeout:
                for msg in cons:
                    out.append(msg)
                    last = time.monotonic()
                    if until is not None and len(out) >= until:
                        return out
                if until is None and time.monotonic() - last > idle:
                    return out
        finally:
            cons.close()
        return out


def committed_equals_end(bootstrap: str, group: str, topic: str, **client: Any) -> bool:
    # committed() asks the group coordinator without joining the group.
    cons = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **client
    )
    try:
        tps = [TopicPartition(topic, p) for p in cons.partitions_for_topic(topic) or []]
        assert tps, f"no partitions for {topic}"
        end = cons.end_offsets(tps)
        return all(cons.committed(tp) == off for tp, off in end.items() if off > 0)
    finally:
        cons.close()
