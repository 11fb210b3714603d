"""End-to-end pipeline benchmark against a real local broker (``crisiswatch bench-pipeline``).

One command, one broker, one data set, every figure in the same run:

(a) the practical ceiling: a bare aiokafka consumer that fetches and
    JSON-decodes the preloaded topic;
(r) a Kafka-only relay: (a) plus the writes ingest makes (every value back,
    keyed, and the values joined as envelopes), with ingest's producer
    settings and nothing else: the part of the gap between (a) and (b) that
    is Kafka's, not the pipeline's own work;
(e) an empty Faust agent (raw values, ``stream.take(5000)``, large buffers)
    on the same topic: what Faust's per-record path costs by itself;
(b) the full pipeline (``crisiswatch worker``: validate, score, bucket,
    detect, publish) with one worker process, and (c) with two;
(l) latency from a mention's arrival to the crisis event it triggers, beyond
    the bucket close, under a steady produced rate of 50% of (b);
(s) scale: 100,000 active brands in one worker (peak RSS) and the bucket
    close of 100,000 brands (the engine the worker runs, in process).

Mentions are real tweets from the sentiment corpus with a brand handle
prepended, spread over ``--brands`` brands; their ``created_at`` spans the
last hour so buckets close during the run. The broker is the project's own
(``deploy/kafka/kafka.sh``) in a temporary ``KAFKA_HOME_DIR`` on a free port,
or ``CRISISWATCH_KAFKA_BOOTSTRAP`` if set; everything started is stopped and
removed at the end. Every phase has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from . import benchdoc, memory
from .benchdoc import machine
from .errors import ConfigError
from .ports import free_port, free_port_block
from .recovery import aiokafka_config, connect_problem
from .settings import Settings, load_settings

PROJECT = Path(__file__).resolve().parent.parent
KAFKA_SH = PROJECT / "deploy" / "kafka" / "kafka.sh"
PARTITIONS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK")

#: Templates for the injected crises of the latency run (clearly negative).
NEGATIVE = (
    "@{b} this is disgusting, how could you post that",
    "Absolutely awful ad from @{b}, boycott them",
    "I am so angry at @{b} right now, terrible and offensive",
    "@{b} should be ashamed, worst company ever",
    "Never buying from @{b} again, hateful and tone-deaf",
)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _texts() -> list[str]:
    try:
        from .sentiment.data import load_corpus

        return list(load_corpus().texts)
    except Exception:  # the corpus is optional: fall back to the synthetic templates
        from .synth import NEGATIVE as N
        from .synth import NEUTRAL, POSITIVE

        return [t.format(b="it") for t in (*POSITIVE, *NEUTRAL, *N)]


def make_mentions(
    n: int, brands: int, *, seed: int = 7, start: float, span: float, prefix: str = "m"
) -> list[tuple[bytes, bytes]]:
    """``n`` (key, value) mention records over ``brands`` brands, ``created_at`` in [start, start+span)."""
    rng = np.random.default_rng(seed)
    texts = _texts()
    names = [f"brand{i:06d}" for i in range(brands)]
    keys = [b.encode() for b in names]
    bi = rng.integers(0, brands, n).tolist()
    ti = rng.integers(0, len(texts), n).tolist()
    ts = np.sort(rng.uniform(start, start + span, n))
    # Formatting a timestamp is the slow part: once per distinct millisecond.
    stamps = [_iso(t) for t in ts.tolist()]
    authors = rng.integers(0, 200_000, n).tolist()
    followers = rng.lognormal(5, 2, n).astype(np.int64).tolist()
    platforms = ("twitter", "reddit", "instagram", "tiktok")
    plat = rng.integers(0, 4, n).tolist()
    dumps = orjson.dumps
    out = []
    for k in range(n):
        b = names[bi[k]]
        out.append(
            (
                keys[bi[k]],
                dumps(
                    {
                        "id": f"{prefix}{k:09d}",
                        "brand": b,
                        "text": f"@{b} {texts[ti[k]]}",
                        "created_at": stamps[k],
                        "author": f"user{authors[k]}",
                        "author_followers": followers[k],
                        "platform": platforms[plat[k]],
                        "lang": "en",
                    }
                ),
            )
        )
    return out


# -- Kafka helpers -------------------------------------------------------------


def create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=20_000,
        **kafka_settings(bootstrap).kafka_python_config(),
    )
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


async def _produce(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes, bytes]],
    rate: float | None = None,
    chunk: int = 2000,
) -> tuple[float, float]:
    """Write records (keyed, Kafka's partitioner) with the batch builder; paced if ``rate``.

    Returns (seconds taken, wall-clock time of the first send).
    """
    from aiokafka import AIOKafkaProducer

    from .fastpath import Partitioner, send_by_key

    prod = AIOKafkaProducer(
        **aiokafka_config(kafka_settings(bootstrap)),
        acks=1,
        linger_ms=5,
        max_batch_size=1024 * 1024,
    )
    await prod.start()
    try:
        part = Partitioner(len(await prod.partitions_for(topic)))
        t0, wall0 = time.monotonic(), time.time()
        pending: list[Any] = []
        for i in range(0, len(records), chunk):
            pending += await send_by_key(prod, topic, part, records[i : i + chunk])
            if rate:
                ahead = (i + chunk) / rate - (time.monotonic() - t0)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if len(pending) > 200:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        return time.monotonic() - t0, wall0
    finally:
        await prod.stop()


def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], rate: float | None = None
) -> tuple[float, float]:
    return asyncio.run(_produce(bootstrap, topic, records, rate))


#: The settings that say how to reach a secured broker, passed on to the workers.
SECURITY_FIELDS = tuple(
    name
    for name in Settings.model_fields
    if name.startswith(("kafka_security_", "kafka_sasl_", "kafka_ssl_"))
)


def kafka_settings(bootstrap: str) -> Settings:
    """How the benchmark's clients and workers reach ``bootstrap``.

    The broker named by CRISISWATCH_KAFKA_BOOTSTRAP is reached with the security
    settings of the environment (CRISISWATCH_KAFKA_SECURITY_PROTOCOL, SASL, TLS),
    as a worker would reach it; a broker the benchmark starts itself is PLAINTEXT.
    """
    if bootstrap == os.environ.get("CRISISWATCH_KAFKA_BOOTSTRAP"):
        return load_settings()
    return Settings(kafka_bootstrap=bootstrap)


def security_env(bootstrap: str) -> dict[str, str]:
    """The CRISISWATCH_* variables of :func:`kafka_settings` (for the workers)."""
    st = kafka_settings(bootstrap)
    return {f"CRISISWATCH_{name.upper()}": str(getattr(st, name)) for name in SECURITY_FIELDS}


def reachable(bootstrap: str) -> None:
    """One clear error up front if ``bootstrap`` cannot be reached with its settings
    (address, TLS, SASL), instead of every phase running to its deadline."""
    st = kafka_settings(bootstrap)  # a malformed setting: ConfigError, naming it
    why = connect_problem(st)
    if why is not None:
        raise ConfigError(
            f"bench-pipeline cannot reach the broker at {bootstrap} over "
            f"{st.kafka_security_protocol} ({why}); check CRISISWATCH_KAFKA_BOOTSTRAP and the "
            "CRISISWATCH_KAFKA_SECURITY_PROTOCOL, _SASL_* and _SSL_* settings, or unset "
            "CRISISWATCH_KAFKA_BOOTSTRAP to benchmark against a local broker it starts"
        )


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """CRISISWATCH_KAFKA_BOOTSTRAP, or a fresh local broker in a temporary directory."""
    external = os.environ.get("CRISISWATCH_KAFKA_BOOTSTRAP")
    if external:
        reachable(external)
        yield external
        return
    home = Path(tempfile.mkdtemp(prefix="cw-bench-kafka-"))
    port = free_port_block((0, 1000))  # kafka.sh puts the controller on port + 1000
    env = {
        **os.environ,
        "KAFKA_HOME_DIR": str(home),
        "KAFKA_LIBS_ROOT": str(PROJECT / ".cache"),
        "KAFKA_HEAP": os.environ.get("KAFKA_HEAP", "1g"),
    }
    log(f"starting a broker on 127.0.0.1:{port} (state in {home})")
    subprocess.run(["bash", str(KAFKA_SH), "start", "--port", str(port)], env=env, check=True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", str(KAFKA_SH), "stop"], env=env, check=False)
        shutil.rmtree(home, ignore_errors=True)


def broker_pid(bootstrap: str) -> int | None:
    """The local broker's JVM (to report its CPU), if it runs here."""
    port = bootstrap.rsplit(":", 1)[-1]
    out = subprocess.run(["pgrep", "-f", "kafka.Kafka"], capture_output=True, text=True).stdout
    for pid in out.split():
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        props = [w for w in cmd.split() if w.endswith(".properties")]
        for pf in props:
            with contextlib.suppress(OSError):
                if f":{port}" in Path(pf).read_text():
                    return int(pid)
    return None


# -- process accounting ----------------------------------------------------------


class BrokerCpu:
    """CPU seconds of the local broker's JVM over an interval (nothing if it is not local).

    The broker shares the machine's cores with what is measured, so its work
    per mention (fetches served, records written) is part of the cost.
    """

    def __init__(self, bootstrap: str) -> None:
        self.pid = broker_pid(bootstrap)
        self.c0: float | None = None

    def start(self) -> None:
        self.c0 = self._now()

    def _now(self) -> float | None:
        if self.pid is None:
            return None
        try:
            return cpu_seconds(self.pid)
        except OSError:
            return None

    def per_million(self, n: int) -> dict[str, float]:
        """``{"broker_cpu_s_per_m": ...}`` since :meth:`start`, or {} if unknown."""
        c1 = self._now()
        if self.c0 is None or c1 is None or n <= 0:
            return {}
        return {"broker_cpu_s_per_m": (c1 - self.c0) / n * 1e6}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def minor_faults(pid: int) -> int:
    """Minor page faults of a process so far, all its threads (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load1() -> float:
    return os.getloadavg()[0]


# -- (a) bare consumer and (e) empty Faust agent, in child processes ------------------


def bare(bootstrap: str, topic: str, n: int, tuned_gc: bool = False) -> dict[str, Any]:
    """The bare consumer; ``tuned_gc``: inside ``memory.batch_gc`` (frozen heap, young
    threshold 50,000: the worker's ``service_gc``, undone afterwards)."""
    if not tuned_gc:
        return asyncio.run(_bare(bootstrap, topic, n))
    with memory.batch_gc():
        return asyncio.run(_bare(bootstrap, topic, n))


async def _bare(
    bootstrap: str,
    topic: str,
    n: int,
    handle: Callable[[dict[Any, list[Any]]], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Fetch and ``orjson.loads`` ``n`` records of ``topic`` from its start; then
    ``handle(batch)`` for each fetched batch, if given, and once more with ``{}`` at the end."""
    broker = BrokerCpu(bootstrap)
    from aiokafka import AIOKafkaConsumer, TopicPartition

    cons = AIOKafkaConsumer(
        **aiokafka_config(kafka_settings(bootstrap)),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await cons.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]  # created by create_topic
        cons.assign(tps)
        await cons.seek_to_beginning(*tps)
        loads = orjson.loads
        got = 0
        t0 = c0 = 0.0
        first = 0
        while got < n:
            batch = await cons.getmany(timeout_ms=1000, max_records=5000)
            for recs in batch.values():
                for r in recs:
                    loads(r.value)
                got += len(recs)
            if handle is not None:
                await handle(batch)
            if batch and not t0:
                t0, c0, first = time.perf_counter(), time.process_time(), got
                broker.start()
        if handle is not None:
            await handle({})
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        return {
            "rate": (got - first) / dt,
            "cpu_s_per_m": dc / (got - first) * 1e6,
            **broker.per_million(got - first),
        }
    finally:
        await cons.stop()


def relay(bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    """(r) The pipeline's Kafka work without its processing, GC tuned as in the worker."""
    with memory.batch_gc():
        return asyncio.run(_relay(bootstrap, topic, n))


async def _relay(bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    """The bare consumer, writing what ingest writes, with ingest's producer settings:
    every value back, one record each and keyed (as ``mentions.scored``), and the
    values of each fetched partition joined into one record (as an envelope, about
    the same bytes). As ingest does, a batch is sent once the previous one is
    acknowledged. No validation, scoring, counting or commits: what is left of the
    pipeline when its own work costs nothing.
    """
    from aiokafka import AIOKafkaProducer

    from .fastpath import INGEST_PRODUCER, send_batched

    out_one = f"{topic}.relay-{uuid.uuid4().hex[:6]}"
    out_env = f"{out_one}.envelopes"
    for t in (out_one, out_env):
        create_topic(bootstrap, t)
    prod = AIOKafkaProducer(**aiokafka_config(kafka_settings(bootstrap)), **INGEST_PRODUCER)
    pending: list[Any] = []

    async def write(batch: dict[Any, list[Any]]) -> None:
        await asyncio.gather(*pending)  # the previous batch acknowledged first
        pending.clear()
        for tp, recs in batch.items():
            pending.extend(
                await send_batched(prod, out_one, tp.partition, [(r.key, r.value) for r in recs])
            )
            values = [r.value for r in recs]
            for k in range(0, len(values), 2500):  # envelopes stay under 900 KiB
                env = b"[" + b",".join(values[k : k + 2500]) + b"]"
                pending.extend(await send_batched(prod, out_env, tp.partition, [(None, env)]))

    await prod.start()
    try:
        return await _bare(bootstrap, topic, n, write)
    finally:
        await prod.stop()


_EMPTY_AGENT = """
import json, os, sys, time
import faust
bootstrap, topic, out = os.environ["B_BOOTSTRAP"], os.environ["B_TOPIC"], os.environ["B_OUT"]
n, port = int(os.environ["B_N"]), int(os.environ["B_PORT"])
creds = None
if os.environ.get("B_SECURED") == "1":  # only then the project's modules (numba, numpy...)
    from streams.app import faust_broker_credentials
    from streams.bench_pipeline import kafka_settings
    creds = faust_broker_credentials(kafka_settings(bootstrap))
app = faust.App(f"bench-empty-{os.getpid()}", broker=f"kafka://{bootstrap}", web_port=port,
    broker_credentials=creds,
    web_host="127.0.0.1", web_bind="127.0.0.1", consumer_auto_offset_reset="earliest",
    stream_buffer_maxsize=65536, broker_max_poll_records=20000, store="memory://",
    datadir=os.path.dirname(out))
t = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
state = {"n": 0, "first": 0, "t0": 0.0, "c0": 0.0}
@app.agent(t)
async def empty(stream):
    async for batch in stream.take(5000, within=1.0):
        state["n"] += len(batch)
        if not state["t0"]:
            state.update(t0=time.perf_counter(), c0=time.process_time(), first=state["n"])
        elif state["n"] >= n and state["t0"] > 0:
            got = state["n"] - state["first"]
            dt, dc = time.perf_counter() - state["t0"], time.process_time() - state["c0"]
            with open(out, "w") as f:
                json.dump({"rate": got / dt, "cpu_s_per_m": dc / got * 1e6, "records": got}, f)
            state["t0"] = -1.0
app.main()
"""


def run_empty_agent(
    bootstrap: str, topic: str, n: int, tmp: Path, timeout: float
) -> dict[str, Any]:
    out = tmp / f"empty-{uuid.uuid4().hex[:6]}.json"
    env = {
        **os.environ,
        "B_BOOTSTRAP": bootstrap,
        "B_TOPIC": topic,
        "B_OUT": str(out),
        "B_N": str(n),
        "B_PORT": str(free_port()),
        # A PLAINTEXT agent imports nothing of the project: the figure stays Faust's own.
        "B_SECURED": str(int(kafka_settings(bootstrap).kafka_security_protocol != "PLAINTEXT")),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _EMPTY_AGENT, "worker", "--loglevel", "warn"],
        cwd=tmp,
        env=env,
        stdout=(tmp / "empty-agent.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while not out.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                return {"rate": float("nan"), "cpu_s_per_m": float("nan"), "records": 0}
            time.sleep(0.5)
        time.sleep(0.2)
        res: dict[str, Any] = json.loads(out.read_text())
        return res
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- (b)/(c) workers ----------------------------------------------------------------


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    port: int

    def stats(self, brands: bool = True) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/stats" + ("" if brands else "?brands=false")
        with urllib.request.urlopen(url, timeout=5) as r:
            res: dict[str, Any] = orjson.loads(r.read())
        return res

    def counters(self) -> dict[str, int]:
        try:
            c: dict[str, int] = self.stats(brands=False)["counters"]
            return c
        except OSError:
            return {}


@dataclass
class Run:
    name: str
    bootstrap: str
    tmp: Path
    raw_topic: str
    settings: dict[str, str] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    workers: list[WorkerProc] = field(default_factory=list)
    #: Other environment for the workers' processes (``LD_PRELOAD``, ``MALLOC_ARENA_MAX``).
    environ: dict[str, str] = field(default_factory=dict)

    def env(self, port: int, k: int) -> dict[str, str]:
        r = self.run_id
        env = {k2: v for k2, v in os.environ.items() if not k2.startswith("CRISISWATCH_")}
        env.update(
            {
                "CRISISWATCH_KAFKA_BOOTSTRAP": self.bootstrap,
                **security_env(self.bootstrap),
                "CRISISWATCH_APP_ID": f"bench-{self.name}-{r}",
                "CRISISWATCH_TOPIC_RAW": self.raw_topic,
                "CRISISWATCH_TOPIC_SCORED": f"bench-{r}.mentions.scored",
                "CRISISWATCH_TOPIC_DEADLETTER": f"bench-{r}.mentions.deadletter",
                "CRISISWATCH_TOPIC_EVENTS": f"bench-{r}.crisis.events",
                "CRISISWATCH_PARTITIONS": str(PARTITIONS),
                "CRISISWATCH_WEB_PORT": str(port),
                "CRISISWATCH_DATA_DIR": str(self.tmp / f"w-{r}-{k}"),
                "CRISISWATCH_LOG_LEVEL": "warning",
            }
        )
        env.update({f"CRISISWATCH_{k2.upper()}": v for k2, v in self.settings.items()})
        env.update(self.environ)
        return env

    def events_topic(self) -> str:
        return f"bench-{self.run_id}.crisis.events"

    def start(self, count: int, timeout: float = 120) -> None:
        for k in range(count):
            port = free_port()
            logf = (self.tmp / f"worker-{self.name}-{self.run_id}-{k}.log").open("wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker"],
                env=self.env(port, k),
                cwd=PROJECT,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.workers.append(WorkerProc(proc, port))
        deadline = time.monotonic() + timeout
        for w in self.workers:
            while True:
                if w.proc.poll() is not None:
                    raise RuntimeError(f"worker exited during start; see {self.tmp}")
                with contextlib.suppress(OSError):
                    url = f"http://127.0.0.1:{w.port}/ready"
                    with urllib.request.urlopen(url, timeout=2) as r:
                        if orjson.loads(r.read()).get("ready"):
                            break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker not ready in {timeout}s; see {self.tmp}")
                time.sleep(0.3)

    def total(self, key: str) -> int:
        return sum(w.counters().get(key, 0) for w in self.workers)

    def cpu(self) -> float:
        return sum(cpu_seconds(w.proc.pid) for w in self.workers)

    def faults(self) -> int:
        return sum(minor_faults(w.proc.pid) for w in self.workers)

    def rss(self) -> float:
        return max(peak_rss_mib(w.proc.pid) for w in self.workers)

    def stop(self) -> None:
        for w in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(w.proc.pid, signal.SIGTERM)
        for w in self.workers:
            try:
                w.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(w.proc.pid, signal.SIGKILL)
                w.proc.wait()


def measure_pipeline(
    run: Run, n: int, workers: int, timeout: float, poll: float = 0.25
) -> dict[str, Any]:
    """Workers drain a preloaded topic: mentions/s from the first ingested to the last detected."""
    broker = BrokerCpu(run.bootstrap)
    run.start(workers)
    try:
        deadline = time.monotonic() + timeout
        t0 = c0 = 0.0
        f0 = 0
        first = 0
        while True:
            if not t0:
                got_in = run.total("ingest.in")
                if got_in:
                    t0, c0, first = time.perf_counter(), run.cpu(), got_in
                    f0 = run.faults()
                    broker.start()
            # A partition's first envelopes may be counted by its restore's replay
            # (an eager restore at assignment), not by the agent.
            done = run.total("detect.in") + run.total("detect.replayed")
            if done >= n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{run.name}: {done}/{n} mentions detected in {timeout}s")
            # Counters only (/stats?brands=false): the brand list costs the worker.
            time.sleep(poll)
        dt, dc, df = time.perf_counter() - t0, run.cpu() - c0, run.faults() - f0
        # The first poll already saw ``first`` mentions ingested: they are not in dt.
        counted = n - first
        if counted < n // 4:
            # The first worker to start drains while the others are starting.
            raise RuntimeError(
                f"{run.name}: {first:,} of {n:,} mentions were ingested before all "
                f"{workers} worker(s) were ready, too few left to time; use more mentions (--mentions)"
            )
        return {
            "rate": counted / dt,
            "cpu_s_per_m": dc / counted * 1e6,
            "faults_per_mention": df / counted,
            **broker.per_million(counted),
            "rss_mib": run.rss(),
            "seconds": dt,
        }
    finally:
        run.stop()


# -- (l) latency under a steady rate -----------------------------------------------------

LATENCY_SETTINGS = {
    "detector": "negative_share",
    "open_threshold": "0.9999",
    "close_threshold": "0.95",
    "bucket_seconds": "5",
    "allowed_lateness_seconds": "1",
    "warmup_buckets": "4",
    "min_volume": "10",
    "update_every_buckets": "1",
    "cooldown_buckets": "0",
}


def latency_stream(
    rate: float, seconds: float, brands: int, start: float, seed: int = 11
) -> list[tuple[bytes, bytes]]:
    """A live stream at ``rate``/s with ``created_at`` = send time; 5% of brands surge later on."""
    n = int(rate * seconds)
    base = make_mentions(n, brands, seed=seed, start=start, span=seconds, prefix="l")
    rng = np.random.default_rng(seed)
    surge = set(rng.choice(brands, max(brands // 20, 1), replace=False).tolist())
    out = []
    for k, (key, value) in enumerate(base):
        b = int(key[5:])
        frac = k / n
        if b in surge and 0.45 + 0.4 * (b % 7) / 7 <= frac < 0.6 + 0.4 * (b % 7) / 7:
            doc = orjson.loads(value)
            doc["text"] = NEGATIVE[k % len(NEGATIVE)].format(b=doc["brand"])
            value = orjson.dumps(doc)
        out.append((key, value))
    return out


def measure_latency(
    bootstrap: str, tmp: Path, rate: float, seconds: float, brands: int
) -> dict[str, Any]:
    from kafka import KafkaConsumer

    topic = f"bench-lat-{uuid.uuid4().hex[:6]}.raw"
    create_topic(bootstrap, topic)
    run = Run("latency", bootstrap, tmp, topic, dict(LATENCY_SETTINGS))
    run.start(1)
    try:
        lateness = float(LATENCY_SETTINGS["allowed_lateness_seconds"])
        # created_at starts at the last bucket boundary before now, so every
        # mention is sent a few seconds (the generation, up to one bucket)
        # after its created_at, as live mentions are, and never ahead of the
        # worker's clock, which caps the watermark (watermark_future_skew_seconds).
        # Latencies are taken against the actual send clock below. The start
        # is on the bucket grid: where the stream starts within a bucket
        # changes how many crisis events it triggers (638 to 2,034 in replays
        # of the same stream), and on the grid is the heaviest case.
        width = float(LATENCY_SETTINGS["bucket_seconds"])
        start = math.floor(time.time() / width) * width
        records = latency_stream(rate, seconds, brands, start)
        took, sent0 = produce(bootstrap, topic, records, rate=rate)
        last_created = _dt.datetime.fromisoformat(
            orjson.loads(records[-1][1])["created_at"]
        ).timestamp()
        time.sleep(3 * float(LATENCY_SETTINGS["bucket_seconds"]))
        cons = KafkaConsumer(
            run.events_topic(),
            bootstrap_servers=bootstrap,
            **kafka_settings(bootstrap).kafka_python_config(),
            group_id=None,
            auto_offset_reset="earliest",
            consumer_timeout_ms=3000,
        )
        lat = []
        statuses: dict[str, int] = {}
        for msg in cons:
            ev = orjson.loads(msg.value)
            statuses[ev["status"]] = statuses.get(ev["status"], 0) + 1
            end = _dt.datetime.fromisoformat(ev["window_end"]).timestamp()
            # The bucket can close once a mention of event time >= end + lateness
            # has arrived; the mention of event time t is sent at sent0 + (t - start).
            closable = sent0 + (end + lateness - start)
            if end + lateness > last_created:
                # Closed by the idle flush after the stream stopped, not by a
                # mention: a different path (CRISISWATCH_IDLE_FLUSH_SECONDS).
                continue
            lat.append(msg.timestamp / 1000 - closable)
        cons.close()
        arr = np.array(lat) if lat else np.array([np.nan])
        return {
            "rate": rate,
            "achieved_rate": len(records) / took,
            "events": len(lat),
            "statuses": statuses,
            "p50": float(np.percentile(arr, 50)),
            "p99": float(np.percentile(arr, 99)),
            "max": float(np.max(arr)),
        }
    finally:
        run.stop()


# -- (s) scale: 100,000 brands --------------------------------------------------------


def bucket_close_ms(brands: int, repeats: int = 3) -> float:
    """Median wall time of one bucket close over ``brands`` brands (default crisis detector)."""
    from .detect import DetectEngine
    from .settings import Settings

    eng = DetectEngine(Settings())
    t0 = 1_767_225_600.0
    docs = [
        {
            "id": f"s{i}",
            "brand": f"brand{i % brands:06d}",
            "text": "hello",
            "sentiment": 0.1,
            "sentiment_label": "neutral",
            "event_time": t0 + (i // brands) * 0.001,
        }
        for i in range(brands)
    ]
    eng.add(docs)
    times = []
    for r in range(repeats + 1):
        tick = t0 + (r + 1) * eng.width
        eng.add([dict(docs[0], id=f"t{r}", event_time=tick)])  # fills the next bucket
        t = time.perf_counter()
        eng.advance_to(tick + eng.width)
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:]) * 1000


# -- the whole run ------------------------------------------------------------------


def cores() -> int:
    """The cores this process (and so the broker and workers it starts) may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def cpu_ceiling(cpu_s_per_m: float, n_cores: int) -> float:
    """The most mentions/s ``n_cores`` can carry when each costs ``cpu_s_per_m`` CPU s per million.

    An upper bound: every core busy on this work alone, nothing waiting.
    """
    if cpu_s_per_m <= 0 or n_cores <= 0:
        raise ValueError(f"need a positive cost and core count, got {cpu_s_per_m}, {n_cores}")
    return n_cores * 1e6 / cpu_s_per_m


def machine_cost(r: Mapping[str, Any]) -> float | None:
    """CPU s per million mentions of the process(es) plus the broker, or None if either is unknown."""
    if "broker_cpu_s_per_m" not in r or not r.get("cpu_s_per_m", 0) > 0:
        return None
    total = float(r["cpu_s_per_m"]) + float(r["broker_cpu_s_per_m"])
    return total if math.isfinite(total) else None


def progress_line(r: Mapping[str, Any]) -> str:
    """One phase's result as the progress log shows it."""
    out = f"{r['rate']:,.0f} mentions/s, {r['cpu_s_per_m']:.1f} CPU s per M"
    if "broker_cpu_s_per_m" in r:
        out += f" + broker {r['broker_cpu_s_per_m']:.1f}"
    if "rss_mib" in r:
        out += f", peak RSS {r['rss_mib']:,.0f} MiB"
    return f"{out} (load {load1():.2f})"


def latency_line(lat: Mapping[str, Any]) -> str:
    return (
        f"p50 {lat['p50']:.2f} s, p99 {lat['p99']:.2f} s over {lat['events']} events "
        f"({lat['achieved_rate']:,.0f} mentions/s achieved of {lat['rate']:,.0f} offered)"
    )


def scale_line(sc: Mapping[str, Any]) -> str:
    return (
        f"peak RSS {sc['rss_mib']:,.0f} MiB, {sc['rate']:,.0f} mentions/s, "
        f"one bucket close {sc['close_ms']:.0f} ms"
    )


def run_benchmark(
    n: int, brands: int, *, empty_n: int, scale_brands: int, latency_seconds: float, repeats: int
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "n": n,
        "brands": brands,
        "machine": machine(),
        "cores": cores(),
        "loads": [],
    }
    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    try:
        with broker() as bootstrap:
            log(f"generating {n:,} mentions over {brands:,} brands")
            now = time.time()
            records = make_mentions(n, brands, start=now - 3600, span=3600)
            topic = f"bench-{uuid.uuid4().hex[:6]}.raw"
            create_topic(bootstrap, topic)
            took, _ = produce(bootstrap, topic, records)
            log(f"preloaded {n:,} records into {topic} in {took:.1f}s")
            del records
            off = {"publish_scored": "false"}
            limit = max(300.0, n / 3000)  # a stalled worker must not hang the run
            # (key in the result, progress label, one measurement), in the table's order.
            phases: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
                ("bare", "bare consumer", lambda: bare(bootstrap, topic, n)),
                (
                    "bare_gc",
                    "bare consumer, GC tuned as in the worker",
                    lambda: bare(bootstrap, topic, n, tuned_gc=True),
                ),
                ("relay", "Kafka-only relay", lambda: relay(bootstrap, topic, n)),
                (
                    "empty",
                    f"empty Faust agent ({empty_n:,} records)",
                    lambda: run_empty_agent(bootstrap, topic, empty_n, tmp, timeout=300),
                ),
                (
                    "one",
                    "pipeline, 1 worker",
                    lambda: measure_pipeline(Run("one", bootstrap, tmp, topic), n, 1, limit),
                ),
                (
                    "lean",
                    "pipeline, 1 worker, mentions.scored off",
                    lambda: measure_pipeline(Run("lean", bootstrap, tmp, topic, off), n, 1, limit),
                ),
                (
                    "two",
                    "pipeline, 2 workers",
                    lambda: measure_pipeline(Run("two", bootstrap, tmp, topic), n, 2, limit),
                ),
                (
                    "two_lean",
                    "pipeline, 2 workers, mentions.scored off",
                    lambda: measure_pipeline(
                        Run("twolean", bootstrap, tmp, topic, off), n, 2, limit
                    ),
                ),
            ]
            got: dict[str, list[dict[str, Any]]] = {key: [] for key, _, _ in phases}
            for r in range(repeats):
                log(f"repeat {r + 1}/{repeats}")
                for key, label, measure in phases:
                    log(f"  {label} ...")
                    got[key].append(measure())
                    log(f"  {label}: {progress_line(got[key][-1])}")
                res["loads"].append(load1())

            def med(rows: list[dict[str, Any]], key: str) -> float:
                return float(statistics.median(r[key] for r in rows))

            for name, rows in got.items():
                res[name] = {k: med(rows, k) for k in rows[0] if isinstance(rows[0][k], float)}
                res[name]["all"] = [round(r["rate"]) for r in rows]
            rate = res["one"]["rate"] * 0.5
            log(f"latency at {rate:,.0f} mentions/s for {latency_seconds:.0f}s")
            res["latency"] = measure_latency(bootstrap, tmp, rate, latency_seconds, brands)
            log(f"  {latency_line(res['latency'])}")
            log(f"scale: {scale_brands:,} brands in one worker")
            res["scale"] = measure_scale(bootstrap, tmp, scale_brands)
            log(f"  {scale_line(res['scale'])}")
        res["loads"].append(load1())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["date"] = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return res


def measure_scale(bootstrap: str, tmp: Path, brands: int) -> dict[str, Any]:
    """Peak RSS of one worker that counted mentions of ``brands`` brands over three buckets."""
    n = brands * 3
    topic = f"bench-scale-{uuid.uuid4().hex[:6]}.raw"
    create_topic(bootstrap, topic)
    now = time.time()
    produce(bootstrap, topic, make_mentions(n, brands, seed=3, start=now - 900, span=900))
    out = measure_pipeline(Run("scale", bootstrap, tmp, topic), n, 1, 600, poll=2.0)
    out["brands"] = brands
    out["close_ms"] = bucket_close_ms(brands)
    return out


#: The run's picture, beside docs/benchmarks.md (``streams.bench_chart``).
CHART = "benchmarks-pipeline.png"


def report(res: dict[str, Any], command: str, chart: str | None = None) -> str:
    """The markdown section of one run; ``chart``: the picture's path relative to the page."""
    bare = res["bare"]["rate"]

    n_cores = res.get("cores")

    def row(label: str, r: dict[str, Any], extra: str = "") -> str:
        rss = f"{r['rss_mib']:,.0f}" if "rss_mib" in r else "-"
        runs = ", ".join(f"{x:,}" for x in r["all"])
        brk = f"{r['broker_cpu_s_per_m']:.1f}" if "broker_cpu_s_per_m" in r else "-"
        bound = ""
        if n_cores:
            cost = machine_cost(r)
            if cost is None:
                bound = " - |"
            else:
                most = cpu_ceiling(cost, n_cores)
                bound = f" {most:,.0f} ({most / bare:.0%}) |"
        return (
            f"| {label} | {r['rate']:,.0f} | {r['rate'] / bare:.0%} | "
            f"{r['cpu_s_per_m']:.1f} | {brk} |{bound} {rss} | {runs}{extra} |"
        )

    lat, sc = res["latency"], res["scale"]
    loads = ", ".join(f"{x:.1f}" for x in res["loads"])
    # A result from before the core count was recorded says nothing about it.
    some, whose = n_cores or "the", n_cores or "machine's"
    lines = [
        "## Pipeline end to end",
        "",
        f"Measured {res['date']} on {res['machine']}. 1-minute load average during the "
        f"repeats: {loads} ({some} cores shared with the broker and other work: figures are "
        "conservative). Medians of the repeats; the last column lists every repeat.",
        f"Reproduce: `{command}`.",
        "",
        f"{res['n']:,} mentions (corpus tweets with a brand handle, {res['brands']:,} brands, "
        f"`created_at` over the last hour), preloaded into a {PARTITIONS}-partition topic of a "
        "local Apache Kafka broker (KRaft, single node, same machine). Default settings "
        "(crisis detector, 5-minute buckets).",
        "",
        "| consumer | mentions/s | of bare | CPU s per M mentions | broker CPU s per M "
        + (f"| most on {n_cores} cores: mentions/s (of bare) " if n_cores else "")
        + "| peak RSS MiB | repeats |",
        "|---|---:|---:|---:|---:|" + ("---:|" if n_cores else "") + "---:|---|",
        row("(a) bare aiokafka consumer, getmany + orjson.loads", res["bare"]),
        *(
            [
                row(
                    "(a') the same, GC tuned as in the worker (frozen, young threshold 50,000)",
                    res["bare_gc"],
                )
            ]
            if "bare_gc" in res
            else []
        ),
        *(
            [
                row(
                    "(r) Kafka-only relay: (a'), and ingest's writes (every value back, "
                    "keyed, plus the values joined as envelopes), nothing else",
                    res["relay"],
                )
            ]
            if "relay" in res
            else []
        ),
        row("empty Faust agent (raw values, take(5000), tuned buffers)", res["empty"]),
        row("(b) pipeline, 1 worker", res["one"]),
        row("(b') pipeline, 1 worker, `CRISISWATCH_PUBLISH_SCORED=false`", res["lean"]),
        row("(c) pipeline, 2 workers", res["two"]),
        *(
            [row("(c') pipeline, 2 workers, `CRISISWATCH_PUBLISH_SCORED=false`", res["two_lean"])]
            if "two_lean" in res
            else []
        ),
        "",
        *(
            [f"![Throughput and CPU per mention of every phase of this run]({chart})", ""]
            if chart
            else []
        ),
        "CPU s per M: the measured process(es), user + system, over the timed interval; "
        f"broker CPU: the broker's JVM over the same interval. Both share the {whose} cores, so "
        "the machine's cost of a mention is their sum. (r) is the part of the gap between "
        "(a) and (b) that Kafka's writes take; the rest is the pipeline's own work.",
        *(["", ceiling_text(res)] if n_cores else []),
        "",
        f"Latency at 50% of (b) ({lat['rate']:,.0f} mentions/s offered, "
        f"{lat['achieved_rate']:,.0f}/s achieved, live `created_at`, 5 s buckets, 1 s allowed "
        f"lateness, 5% of brands surge): crisis event published minus the moment its bucket "
        f"could close (the first mention past window end + allowed lateness was sent) over "
        f"{lat['events']} events closed by the stream (end-of-stream idle flushes excluded) "
        f"({', '.join(f'{k} {v}' for k, v in sorted(lat['statuses'].items()))}): "
        f"**p50 {lat['p50']:.2f} s, p99 {lat['p99']:.2f} s** (max {lat['max']:.2f} s).",
        "",
        f"Scale, {sc['brands']:,} active brands in one worker ({3 * sc['brands']:,} mentions "
        f"over 3 buckets): peak RSS **{sc['rss_mib']:,.0f} MiB**, {sc['rate']:,.0f} mentions/s; "
        f"one bucket close of {sc['brands']:,} brands (crisis detector, lifecycle, baselines): "
        f"**{sc['close_ms']:.0f} ms**.",
    ]
    return "\n".join(lines)


#: The pipeline's rows: key in the result, label in the table.
PIPELINE_ROWS = (("one", "(b)"), ("lean", "(b')"), ("two", "(c)"), ("two_lean", "(c')"))


def budget_s_per_m(res: Mapping[str, Any], share: float = 0.5) -> float:
    """The most CPU s per million mentions (process + broker) that still lets ``res["cores"]``
    cores carry ``share`` of the bare consumer's rate."""
    return float(res["cores"]) * 1e6 / (share * float(res["bare"]["rate"]))


def ceiling_text(res: Mapping[str, Any]) -> str:
    """The paragraph under the table that reads the "most on N cores" column."""
    n_cores, bare = int(res["cores"]), float(res["bare"]["rate"])
    budget = budget_s_per_m(res)  # a cost above it bounds the row under 50% of (a)
    short = [
        label
        for key, label in PIPELINE_ROWS
        if key in res and (cost := machine_cost(res[key])) is not None and cost > budget
    ]
    verdict = (
        f"{', '.join(short)} would miss 50% of (a) even with every core busy: on this machine "
        "only a cheaper mention (fewer CPU seconds, worker or broker) closes that gap, not "
        "more parallelism."
        if short
        else "Every pipeline row's cost leaves room for 50% of (a) on these cores."
    )
    return (
        f"Most on {n_cores} cores: {n_cores} × 10^6 / (process + broker CPU s per M), the rate "
        "this cost per mention allows with every core busy on it and nothing waiting (an upper "
        "bound: kernel threads, the demand poller and other load are not counted). 50% of (a) "
        f"is {0.5 * bare:,.0f}/s, so a mention may cost the machine at most {budget:.1f} CPU s "
        f"per M. {verdict}"
    )


def write_section(path: Path, body: str) -> None:
    """Replace the pipeline section of ``docs/benchmarks.md``, the previous run kept below."""
    benchdoc.write_section(path, "pipeline", body, keep_history=True)
