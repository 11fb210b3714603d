"""``crisiswatch demo``: the whole pipeline end to end on one machine.

Starts the local broker if no Kafka is configured, a worker in a child
process, replays the bundled mention stream (four brands, six hours, one
negativity surge, a few malformed records), prints crisis events as they
arrive, and shuts everything down again, also on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import click
import orjson

from .cli_core import PROJECT, format_event, replay_file, run_kafka_sh
from .errors import CrisiswatchError
from .ports import free_port
from .settings import load_settings
from .synth import QUICK_SETTINGS

DEMO_FILE = Path(__file__).resolve().parent / "data" / "demo_mentions.jsonl"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            doc = orjson.loads(r.read())
            return doc if isinstance(doc, dict) else None
    except Exception:
        return None


def run_demo(port: int = 9092, timeout: float = 120.0) -> int:
    t_start = time.monotonic()
    base = load_settings()
    started_broker = False
    worker: subprocess.Popen[bytes] | None = None
    run = time.strftime("%Y%m%d%H%M%S")
    workdir = PROJECT / ".cache" / "demo" / run
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "worker.log"
    try:
        bootstrap = base.kafka_bootstrap
        if not bootstrap:
            if not _port_open(port):
                click.secho(f"▶ starting the local Kafka broker on 127.0.0.1:{port}", bold=True)
                run_kafka_sh("start", "--port", str(port))
                started_broker = True
            else:
                click.secho(
                    f"▶ using the Kafka broker already listening on 127.0.0.1:{port}", bold=True
                )
            bootstrap = f"127.0.0.1:{port}"
        web_port = free_port()
        env = {
            **os.environ,
            "CRISISWATCH_KAFKA_BOOTSTRAP": bootstrap,
            "CRISISWATCH_APP_ID": f"crisiswatch-demo-{run}",
            "CRISISWATCH_TOPIC_RAW": f"demo-{run}.mentions.raw",
            "CRISISWATCH_TOPIC_SCORED": f"demo-{run}.mentions.scored",
            "CRISISWATCH_TOPIC_DEADLETTER": f"demo-{run}.mentions.deadletter",
            "CRISISWATCH_TOPIC_EVENTS": f"demo-{run}.crisis.events",
            "CRISISWATCH_PARTITIONS": "2",
            "CRISISWATCH_WEB_PORT": str(web_port),
            "CRISISWATCH_DATA_DIR": str(workdir / "worker"),
            "CRISISWATCH_BUCKET_SECONDS": "300",
            "CRISISWATCH_IDLE_FLUSH_SECONDS": "2",
            **{f"CRISISWATCH_{k.upper()}": v for k, v in QUICK_SETTINGS.items()},
        }
        os.environ.update({k: v for k, v in env.items() if k.startswith("CRISISWATCH_")})
        settings = load_settings()
        click.secho(f"▶ starting a worker (log: {log_path})", bold=True)
        with log_path.open("wb") as logf:
            worker = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker"],
                env=env,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            if worker.poll() is not None:
                tail = log_path.read_text(errors="replace").splitlines()[-15:]
                raise CrisiswatchError("the worker exited during start:\n" + "\n".join(tail))
            ready = _get_json(f"http://127.0.0.1:{web_port}/ready")
            if ready and ready.get("ready"):
                break
            if time.monotonic() > deadline:
                raise CrisiswatchError(f"the worker was not ready within 60 s; see {log_path}")
            time.sleep(0.5)
        click.secho(f"  worker ready after {time.monotonic() - t_start:.1f}s", fg="green")

        from .kafka_util import consumer

        events = consumer(
            settings,
            settings.topic_events,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=250,
        )
        click.secho(
            f"▶ replaying {DEMO_FILE.name} (4 brands, 6 h of mentions, one crisis, 3 malformed records)",
            bold=True,
        )
        summary = replay_file(settings, DEMO_FILE, progress=True)
        click.echo(f"  sent {summary['sent']} records in {summary['seconds']}s")
        click.secho("▶ crisis events as they arrive (Ctrl-C to stop):", bold=True)
        resolved = opened = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (opened and resolved >= opened):
            for msg in events:
                ev = orjson.loads(msg.value)
                click.echo(format_event(ev, colour=sys.stdout.isatty()))
                opened += ev["status"] == "opened"
                resolved += ev["status"] == "resolved"
            if worker.poll() is not None:
                raise CrisiswatchError(f"the worker stopped unexpectedly; see {log_path}")
        events.close()
        stats = _get_json(f"http://127.0.0.1:{web_port}/stats") or {}
        c = stats.get("counters", {})
        click.secho(
            f"▶ done in {time.monotonic() - t_start:.1f}s: {c.get('ingest.scored', 0)} mentions scored, "
            f"{c.get('deadletter.ingest', 0)} dead-lettered, {opened} crisis opened, {resolved} resolved",
            bold=True,
        )
        if not opened:
            raise CrisiswatchError(f"no crisis event within {timeout:.0f}s; see {log_path}")
        return 0
    finally:
        if worker is not None and worker.poll() is None:
            click.echo("▶ stopping the worker")
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        if started_broker:
            click.echo("▶ stopping the local Kafka broker")
            run_kafka_sh("stop", check=False)
