"""Core subcommands: worker, replay, tail, topics, broker, demo."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import orjson

from .errors import ConfigError, CrisiswatchError, InputFileError
from .settings import Settings, load_settings

PROJECT = Path(__file__).resolve().parent.parent
KAFKA_SH = PROJECT / "deploy" / "kafka" / "kafka.sh"


@click.command()
@click.option(
    "--loglevel", default=None, help="debug, info, warning, error (default: CRISISWATCH_LOG_LEVEL)"
)
def worker(loglevel: str | None) -> None:
    """Run a stream worker (ingest + detect agents) until stopped."""
    import faust

    from . import memory
    from .app import create_app
    from .kafka_util import check_access, ensure_topics

    settings = load_settings()
    # Before the model and the kernels load: blocks allocated earlier stay put.
    memory.fix_thresholds(settings.malloc_mmap_threshold, settings.malloc_trim_threshold)
    created = ensure_topics(settings)
    if created:
        click.echo(f"created topics: {', '.join(created)}", err=True)
    check_access(settings)
    app = create_app(settings)
    # Start-up (model, numba kernels, app) is done: tune the collector for the hot path.
    memory.service_gc(settings.gc_young_threshold)
    w = faust.Worker(app, loglevel=loglevel or settings.log_level, quiet=True)
    # No terminal spinner: at level warning or above Faust keeps one and sets the
    # root logger to DEBUG so that it turns on every record, which made every
    # aiokafka debug call build a LogRecord (1.4% of the event loop in a profile).
    w.spinner = None
    w.execute_from_commandline()


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def replay_file(
    settings: Settings,
    path: Path,
    *,
    topic: str | None = None,
    rate: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Send every line of a JSONL file to ``topic`` keyed by its brand; return a summary.

    Lines that are not JSON objects with a brand are sent too (key = null) so
    the worker dead-letters them with a reason; blank lines are skipped.
    """
    from tqdm import tqdm

    from .kafka_util import producer

    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    topic = topic or settings.topic_raw
    try:
        total = _count_lines(path)
    except OSError as exc:
        raise InputFileError(f"{path}: {exc.strerror}") from None
    prod = producer(settings, acks="all", linger_ms=20, max_request_size=8 * 1024 * 1024, retries=5)
    failures: list[str] = []
    sent = unkeyed = blank = 0

    def on_error(exc: BaseException) -> None:
        failures.append(repr(exc))

    t0 = time.monotonic()
    try:
        with (
            path.open("rb") as f,
            tqdm(
                total=total,
                unit="msg",
                disable=not progress,
                desc=f"replay → {topic}",
                file=sys.stderr,
            ) as bar,
        ):
            for line in f:
                bar.update(1)
                line = line.rstrip(b"\r\n")
                if not line.strip():
                    blank += 1
                    continue
                key: bytes | None = None
                try:
                    doc = orjson.loads(line)
                    if isinstance(doc, dict) and isinstance(doc.get("brand"), str):
                        key = doc["brand"].encode()
                except orjson.JSONDecodeError:
                    pass
                if key is None:
                    unkeyed += 1
                prod.send(topic, key=key, value=line).add_errback(on_error)
                sent += 1
                if rate:
                    # Pace against the start time, not per message, so sleeps don't drift.
                    ahead = sent / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            prod.flush()
    finally:
        prod.close()
    elapsed = time.monotonic() - t0
    return {
        "file": str(path),
        "topic": topic,
        "sent": sent - len(failures),
        "failed": len(failures),
        "unkeyed": unkeyed,
        "blank_lines": blank,
        "seconds": round(elapsed, 3),
        "rate": round(sent / elapsed, 1) if elapsed > 0 else None,
        "errors": failures[:5],
    }


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--rate",
    type=click.FloatRange(min=0.001),
    default=None,
    help="mentions per second (default: as fast as possible)",
)
@click.option("--topic", default=None, help="target topic (default: CRISISWATCH_TOPIC_RAW)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def replay(file: Path, rate: float | None, topic: str | None, quiet: bool) -> None:
    """Replay a JSONL file of mentions into Kafka (key = brand)."""
    settings = load_settings()
    s = replay_file(settings, file, topic=topic, rate=rate, progress=not quiet)
    click.echo(
        f"replayed {s['sent']} records from {s['file']} to {s['topic']} in {s['seconds']}s "
        f"({s['rate']}/s); {s['unkeyed']} without a brand key (the worker will dead-letter invalid ones), "
        f"{s['blank_lines']} blank lines skipped, {s['failed']} failed"
    )
    if s["failed"]:
        raise CrisiswatchError(f"{s['failed']} records could not be delivered: {s['errors']}")


_STATUS_COLOUR = {"opened": "red", "escalated": "magenta", "updated": "yellow", "resolved": "green"}


def format_event(ev: dict[str, Any], colour: bool = True) -> str:
    """Human-readable block for one crisis event."""

    def c(text: str, **style: Any) -> str:
        return click.style(text, **style) if colour else text

    m = ev.get("metrics", {})

    def ovb(name: str, fmt: str) -> str:
        o, b = m.get(name, {}).get("observed"), m.get(name, {}).get("baseline")
        fo = format(o, fmt) if isinstance(o, int | float) else "-"
        fb = format(b, fmt) if isinstance(b, int | float) else "-"
        return f"{name.replace('_', ' ')} {fo} (baseline {fb})"

    status = str(ev.get("status", "?"))
    lines = [
        c(f"■ {status.upper():9}", fg=_STATUS_COLOUR.get(status, "white"), bold=True)
        + c(f" {ev.get('brand')}", bold=True)
        + f"  {ev.get('kind')}  severity={ev.get('severity')}  score={ev.get('score', 0):.4f}"
        + f"  crisis={str(ev.get('crisis_id', ''))[:12]}",
        f"  window {ev.get('window_start')} → {ev.get('window_end')}",
        "  "
        + " · ".join(
            [ovb("volume", ".0f"), ovb("negative_share", ".2f"), ovb("mean_sentiment", "+.2f")]
        ),
    ]
    evidence = ev.get("evidence", {})
    terms = ", ".join(t["term"] for t in evidence.get("top_terms", [])[:6])
    if terms:
        lines.append(f"  top terms: {terms}")
    for ex in evidence.get("examples", [])[:2]:
        lines.append(
            f"  “{ex.get('text', '')[:100]}” — @{ex.get('author')} ({ex.get('reach')} followers)"
        )
    return "\n".join(lines)


@click.command()
@click.argument("topic", required=False)
@click.option("--from-beginning", is_flag=True, help="start at the oldest retained event")
@click.option("--max-events", type=int, default=None, help="exit after this many events")
@click.option("--timeout", type=float, default=None, help="exit after this many seconds")
@click.option("--json", "as_json", is_flag=True, help="print raw JSON lines")
def tail(
    topic: str | None,
    from_beginning: bool,
    max_events: int | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Print crisis events as they arrive (default topic: CRISISWATCH_TOPIC_EVENTS)."""
    from .kafka_util import consumer

    settings = load_settings()
    topic = topic or settings.topic_events
    cons = consumer(
        settings,
        topic,
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    seen = 0
    t0 = time.monotonic()
    try:
        while True:
            for msg in cons:
                seen += 1
                try:
                    ev = orjson.loads(msg.value)
                    click.echo(
                        msg.value.decode()
                        if as_json
                        else format_event(ev, colour=sys.stdout.isatty())
                    )
                except (orjson.JSONDecodeError, AttributeError, TypeError):
                    click.echo(f"[{msg.partition}@{msg.offset}] {msg.value[:300]!r}")
                if max_events and seen >= max_events:
                    return
            if timeout and time.monotonic() - t0 > timeout:
                return
    finally:
        cons.close()


@click.command()
def topics() -> None:
    """Create the pipeline's topics (idempotent)."""
    from .kafka_util import ensure_topics, topic_names

    settings = load_settings()
    created = ensure_topics(settings)
    for t in topic_names(settings):
        click.echo(f"{t}: {'created' if t in created else 'exists'}")


def run_kafka_sh(*args: str, env: dict[str, str] | None = None, check: bool = True) -> int:
    if not KAFKA_SH.is_file():
        raise ConfigError(f"{KAFKA_SH} not found: the local broker commands need a source checkout")
    rc = subprocess.call(["bash", str(KAFKA_SH), *args], env={**os.environ, **(env or {})})
    if check and rc != 0:
        raise CrisiswatchError(f"deploy/kafka/kafka.sh {' '.join(args)} failed (exit {rc})")
    return rc


@click.group()
def broker() -> None:
    """Local Apache Kafka for development (deploy/kafka/kafka.sh)."""


@broker.command("start")
@click.option("--port", type=int, default=9092, show_default=True)
@click.option("--cluster", is_flag=True, help="three KRaft nodes on port, port+1, port+2")
@click.option(
    "--sasl-ssl-port",
    type=int,
    default=None,
    help="also a SASL_SSL listener (SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN, TLS from a "
    "local CA) on this port (single node; user KAFKA_SCRAM_USER / KAFKA_SCRAM_PASSWORD, "
    "default crisiswatch / crisiswatch-local)",
)
@click.option(
    "--ssl-port",
    type=int,
    default=None,
    help="also an SSL listener on this port that requires a client certificate signed "
    "by the local CA (mutual TLS; single node)",
)
def broker_start(port: int, cluster: bool, sasl_ssl_port: int | None, ssl_port: int | None) -> None:
    """Fetch (once) and start the local broker; waits until it accepts connections.

    Prints the ``export`` lines that reach it: the secured listener's when one is
    asked for (SASL_SSL first, if both are).
    """
    for opt, val in (("--sasl-ssl-port", sasl_ssl_port), ("--ssl-port", ssl_port)):
        if val is not None and cluster:
            raise ConfigError(f"{opt} is for the single-node broker, not --cluster")
    extra = [
        *(["--sasl-ssl-port", str(sasl_ssl_port)] if sasl_ssl_port is not None else []),
        *(["--ssl-port", str(ssl_port)] if ssl_port is not None else []),
    ]
    run_kafka_sh("cluster-start" if cluster else "start", "--port", str(port), *extra)
    if sasl_ssl_port is None and ssl_port is None:
        servers = ",".join(f"127.0.0.1:{port + i}" for i in range(3 if cluster else 1))
        click.echo(f"export CRISISWATCH_KAFKA_BOOTSTRAP={servers}")
        return
    tls = Path(os.environ.get("KAFKA_HOME_DIR") or PROJECT / ".cache") / "kafka-single" / "tls"
    mtls = [
        f"CRISISWATCH_KAFKA_BOOTSTRAP=127.0.0.1:{ssl_port}",
        "CRISISWATCH_KAFKA_SECURITY_PROTOCOL=SSL",
        f"CRISISWATCH_KAFKA_SSL_CERTFILE={tls / 'client.pem'}",
        f"CRISISWATCH_KAFKA_SSL_KEYFILE={tls / 'client.key'}",
    ]
    if sasl_ssl_port is not None:
        lines = [
            f"CRISISWATCH_KAFKA_BOOTSTRAP=127.0.0.1:{sasl_ssl_port}",
            "CRISISWATCH_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
            "CRISISWATCH_KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
            f"CRISISWATCH_KAFKA_SASL_USERNAME={os.environ.get('KAFKA_SCRAM_USER', 'crisiswatch')}",
            # The variable itself when one is set (its value stays out of the output).
            "CRISISWATCH_KAFKA_SASL_PASSWORD="
            + (
                '"$KAFKA_SCRAM_PASSWORD"'
                if os.environ.get("KAFKA_SCRAM_PASSWORD")
                else "crisiswatch-local"
            ),
        ]
    else:
        lines = mtls
    for line in (*lines, f"CRISISWATCH_KAFKA_SSL_CAFILE={tls / 'ca.pem'}"):
        click.echo(f"export {line}")
    if sasl_ssl_port is not None and ssl_port is not None:
        click.echo(f"# mutual TLS instead: {' '.join(mtls)}")


@broker.command("stop")
@click.option("--cluster", is_flag=True)
def broker_stop(cluster: bool) -> None:
    """Stop the local broker."""
    run_kafka_sh("cluster-stop" if cluster else "stop")


@broker.command("status")
@click.option("--cluster", is_flag=True)
def broker_status(cluster: bool) -> None:
    """Say whether the local broker runs, where, and where its logs are."""
    sys.exit(run_kafka_sh("cluster-status" if cluster else "status", check=False))


@click.command()
@click.option(
    "--port",
    type=int,
    default=9092,
    show_default=True,
    help="local broker port if no Kafka is configured",
)
@click.option("--timeout", type=float, default=120.0, show_default=True)
def demo(port: int, timeout: float) -> None:
    """End to end: local broker, a worker, a replayed stream with a crisis, events printed."""
    from .demo import run_demo

    sys.exit(run_demo(port=port, timeout=timeout))


COMMANDS: list[click.Command] = [worker, replay, tail, topics, broker, demo]
