"""Helpers for the fault scenarios: private brokers, checked producers, count polling.

Every scenario compares what it *sent* (acknowledged by the broker) with what
the worker *counted* (``/stats`` per brand) and prints one summary line::

    reliability <scenario>: sent=N faults=K lost=L extra=E ...

``lost`` is the number of mentions sent but not counted, ``extra`` the number
counted more than once (both must be 0).
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer

from streams.ports import free_port_block
from streams.synth import surge_stream
from tests.kafka_support import PROJECT, SASL_SSL_OFFSET, Worker, WorkerFactory

KAFKA_SH = PROJECT / "deploy" / "kafka" / "kafka.sh"


@dataclass
class LocalKafka:
    """A private broker (or three-node cluster) in its own state folder, via deploy/kafka/kafka.sh."""

    home: Path
    cluster: bool = False
    port: int = 0
    #: KAFKA_JVM_OPTS for every node it starts.
    jvm_opts: str = ""
    #: KAFKA_EXTRA_PROPERTIES: server.properties lines appended last.
    extra_properties: str = ""
    #: A single node also gets kafka.sh's SASL_SSL listener, on port + SASL_SSL_OFFSET.
    sasl_ssl: bool = False
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.port:
            offsets = [0, 1, 2, 1000, 1001, 1002] if self.cluster else [0, 1000]
            if self.sasl_ssl:
                offsets.append(SASL_SSL_OFFSET)
            self.port = free_port_block(offsets)

    @property
    def bootstrap(self) -> str:
        n = 3 if self.cluster else 1
        return ",".join(f"127.0.0.1:{self.port + i}" for i in range(n))

    def sh(self, *args: str, check: bool = True, timeout: float = 180) -> int:
        env = {
            **os.environ,
            "KAFKA_HOME_DIR": str(self.home),
            "KAFKA_JVM_OPTS": self.jvm_opts,
            "KAFKA_EXTRA_PROPERTIES": self.extra_properties,
        }
        t0 = time.monotonic()
        r = subprocess.run(
            ["bash", str(KAFKA_SH), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.log.append(f"{' '.join(args)} -> {r.returncode} in {time.monotonic() - t0:.1f}s")
        if check and r.returncode != 0:
            raise RuntimeError(f"kafka.sh {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
        return r.returncode

    # single node
    def start(self) -> None:
        sasl = ["--sasl-ssl-port", str(self.port + SASL_SSL_OFFSET)] if self.sasl_ssl else []
        self.sh("start", "--port", str(self.port), *sasl)

    def kill(self) -> None:
        self.sh("kill")

    def stop(self) -> None:
        self.sh("stop", check=False)

    # cluster
    def cluster_start(self) -> None:
        self.sh("cluster-start", "--port", str(self.port))

    def cluster_stop(self) -> None:
        self.sh("cluster-stop", check=False)

    def node_kill(self, n: int) -> None:
        self.sh("node-kill", str(n))

    def node_start(self, n: int) -> None:
        self.sh("node-start", str(n))

    def cluster_status(self) -> int:
        """kafka.sh cluster-status's exit code: 0 when every node runs and listens."""
        return self.sh("cluster-status", check=False)

    def node_cmdline(self, n: int) -> list[str]:
        """The JVM command line of cluster node ``n``."""
        pid = (self.home / "kafka-cluster" / f"node{n}" / "pid").read_text().strip()
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


@dataclass
class EnvWorkerFactory(WorkerFactory):
    """A WorkerFactory that also passes non-CRISISWATCH variables (e.g. Faust's own
    ``BROKER_SESSION_TIMEOUT``) to the worker processes."""

    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **overrides: str) -> dict[str, str]:
        return {**super().env(**overrides), **self.extra_env}


def brand_key(value: bytes) -> bytes:
    """The brand of a serialised mention (the record key producers use)."""
    return str(orjson.loads(value)["brand"]).encode()


def send_checked(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    *,
    chunk: int = 2000,
    pause: float = 0.0,
    on_chunk: Callable[[int], None] | None = None,
    **producer_kw: Any,
) -> int:
    """Produce and wait for every acknowledgement; raise if any record was not acked.

    acks=all with kafka-python's idempotent producer and a long delivery
    timeout, so a broker restart or a node loss delays records but neither
    drops nor duplicates them. Returns the number of acknowledged records.
    """
    kw: dict[str, Any] = {
        "acks": "all",
        "linger_ms": 10,
        "max_request_size": 8 * 1024 * 1024,
        "request_timeout_ms": 20_000,
        "delivery_timeout_ms": 300_000,
        "retry_backoff_ms": 200,
        "reconnect_backoff_max_ms": 2000,
    }
    kw.update(producer_kw)
    prod = KafkaProducer(bootstrap_servers=bootstrap, **kw)
    acked = 0
    try:
        futs: list[Any] = []
        for key, value in records:
            futs.append(prod.send(topic, key=key, value=value))
            if len(futs) >= chunk:
                prod.flush()
                for f in futs:
                    f.get(timeout=300)
                acked += len(futs)
                futs = []
                if on_chunk is not None:
                    on_chunk(acked)
                if pause:
                    time.sleep(pause)
        prod.flush()
        for f in futs:
            f.get(timeout=300)
        acked += len(futs)
    finally:
        prod.close(timeout=10)
    return acked


def stats(worker: Worker) -> dict[str, Any]:
    try:
        return dict(worker.get("/stats"))
    except (OSError, ValueError):
        return {}


def metrics_text(worker: Worker) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5) as r:
            return str(r.read().decode())
    except OSError:
        return ""


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0 if absent)."""
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def counted(worker: Worker) -> int:
    return sum(stats(worker).get("brands", {}).values())


def wait_counts(
    worker: Worker,
    want: Counter[str],
    timeout: float,
    *,
    stable: float = 0.0,
    stall: float = 45.0,
) -> dict[str, int]:
    """Poll ``/stats`` until the per-brand counts equal ``want``; the last counts seen.

    Gives up after ``timeout`` seconds, or after ``stall`` seconds without any
    progress (a pipeline that stopped counting will not finish).
    """
    deadline = time.monotonic() + timeout
    got: dict[str, int] = {}
    last_total, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        if not worker.alive():
            break
        got = stats(worker).get("brands", got)
        if got == dict(want):
            if stable:
                time.sleep(stable)
                got = stats(worker).get("brands", got)
            return got
        total = sum(got.values())
        if total != last_total:
            last_total, last_change = total, time.monotonic()
        elif time.monotonic() - last_change > stall:
            break
        time.sleep(0.5)
    return got


def dead_letters(factory: WorkerFactory, *, idle: float = 4.0) -> list[Any]:
    """Every record of the dead-letter topic so far."""
    return factory.consume(factory.topic("deadletter"), idle=idle, timeout=120)


def dead_letter_reasons(factory: WorkerFactory) -> str:
    """Dead letters by stage and reason class, e.g. ``detect/late:1298,ingest/future:12`` ('-' if none).

    For the summary line of a scenario that lost mentions: a valid mention
    that was not counted is usually in the dead-letter topic, and the reason
    says which rule refused it.
    """
    reasons: Counter[str] = Counter()
    for msg in dead_letters(factory):
        h = {k: bytes(v or b"").decode(errors="replace") for k, v in msg.headers or ()}
        error = h.get("crisiswatch.error", "")
        kind = "late" if error.startswith("late") else "future" if "future" in error else "other"
        reasons[f"{h.get('crisiswatch.stage', '?')}/{kind}"] += 1
    return ",".join(f"{k}:{n}" for k, n in sorted(reasons.items())) or "-"


def wait_until(cond: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


def loss(want: Counter[str], got: dict[str, int]) -> tuple[int, int]:
    """(lost, extra): mentions sent but not counted, and counted beyond what was sent."""
    lost = sum(max(0, n - got.get(b, 0)) for b, n in want.items())
    extra = sum(max(0, n - want.get(b, 0)) for b, n in got.items())
    return lost, extra


def summary(scenario: str, **fields: Any) -> str:
    line = f"reliability {scenario}: " + " ".join(f"{k}={v}" for k, v in fields.items())
    print(line, flush=True)
    return line


def assigned(worker: Worker) -> set[str]:
    """``topic:partition`` of everything a ready worker consumes (empty while not ready)."""
    try:
        body = worker.get("/ready")
    except (OSError, ValueError):
        return set()
    return set(body.get("assigned", [])) if body.get("ready") else set()


def owns_all(worker: Worker, topics: set[str], partitions: int) -> bool:
    want = {f"{t}:{p}" for t in topics for p in range(partitions)}
    return want <= assigned(worker)


def work_topics(*workers: Worker) -> set[str]:
    """The input topics of the workers' consumers (raw and detect's input), not Faust's own."""
    names = {a.rsplit(":", 1)[0] for w in workers for a in assigned(w)}
    return {n for n in names if "__assignor" not in n}


def group_progress(bootstrap: str, group: str, topic: str, partitions: int) -> str:
    """``p:committed/end`` per partition of ``topic`` for consumer ``group`` (for a failure's summary).

    Shows where a scenario that lost mentions stopped: a raw partition whose
    ingest commit lags its end was never fully ingested; an envelope partition
    whose detect commit lags was never fully counted.
    """
    from kafka import KafkaConsumer, TopicPartition

    cons = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = cons.end_offsets(tps)
        return ",".join(f"{tp.partition}:{cons.committed(tp)}/{ends[tp]}" for tp in tps)
    finally:
        cons.close(autocommit=False)


def live_surge(brands: list[str], n: int, surge_brand: str, seed: int) -> list[dict[str, Any]]:
    """A live stream (created_at in the last 15 minutes, as in production) with one surge.

    The surge ends inside the stream: surge_stream's default 30-minute surge
    would date a sixth of the mentions up to 23 minutes ahead, and ingest
    rightly refuses created_at more than max_future_seconds ahead.
    """
    now = time.time()
    mentions = surge_stream(
        brands,
        n,
        surge_brand=surge_brand,
        seed=seed,
        start=now - 900,
        duration_s=840,
        surge_at=0.6,
        surge_len_s=180,
    )
    newest = max(datetime.fromisoformat(m["created_at"]).timestamp() for m in mentions)
    assert newest <= now, "the test stream must not reach into the future"
    return mentions
