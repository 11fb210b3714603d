"""``crisiswatch respond``: deliver crisis events to webhooks, Slack, PagerDuty, Alertmanager, files."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from types import FrameType

import click

from .errors import ConfigError
from .settings import load_settings

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_PLAYBOOKS = Path("deploy/playbooks.yaml")


def _playbooks_path(given: Path | None) -> Path:
    if given is not None:
        return given
    # Relative to the working directory first (a deployment's own file), then
    # the one shipped in the source checkout.
    for p in (DEFAULT_PLAYBOOKS, PROJECT / DEFAULT_PLAYBOOKS):
        if p.is_file():
            return p
    raise ConfigError(f"no playbooks file: {DEFAULT_PLAYBOOKS} not found; pass --playbooks PATH")


@click.command()
@click.option(
    "--sink",
    "sinks",
    multiple=True,
    metavar="SPEC",
    help="stdout | file:PATH | webhook[:URL] | slack[:URL] | pagerduty[:URL] | alertmanager[:URL]; "
    "repeat for several (each delivered and dead-lettered independently). Without :URL the "
    "URL comes from CRISISWATCH_WEBHOOK_URL, _SLACK_WEBHOOK_URL, _PAGERDUTY_URL, _ALERTMANAGER_URL.",
)
@click.option(
    "--playbooks",
    "playbooks_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=f"playbook YAML (default: {DEFAULT_PLAYBOOKS})",
)
@click.option(
    "--from-beginning",
    is_flag=True,
    help="a group with no committed offsets starts at the oldest retained event (else the newest)",
)
@click.option("--max-events", type=click.IntRange(min=1), default=None, help="exit after N events")
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=None, help="exit after this many seconds"
)
@click.option(
    "--metrics/--no-metrics",
    "metrics_enabled",
    default=True,
    show_default=True,
    help="serve Prometheus /metrics on CRISISWATCH_WEB_HOST:CRISISWATCH_WEB_PORT",
)
def respond(
    sinks: tuple[str, ...],
    playbooks_path: Path | None,
    from_beginning: bool,
    max_events: int | None,
    timeout: float | None,
    metrics_enabled: bool,
) -> None:
    """Consume crisis events (group CRISISWATCH_RESPONDER_GROUP) and notify every --sink.

    Each notification carries the matching playbook entry. Deliveries retry
    with backoff; what keeps failing goes to CRISISWATCH_TOPIC_RESPONDER_DEADLETTER.
    Offsets commit only after delivery or dead-lettering (at-least-once:
    receivers deduplicate by the Idempotency-Key header).

    \b
    Example:
      CRISISWATCH_WEBHOOK_SECRET=... crisiswatch respond \\
          --sink stdout --sink webhook:https://ops.example.com/crisis
    """
    from .responders.playbooks import load_playbooks
    from .responders.runner import Responder
    from .responders.sinks import parse_sinks

    settings = load_settings()
    # Validate everything a user can get wrong before touching Kafka.
    sink_list = parse_sinks(sinks, settings)
    playbooks = load_playbooks(_playbooks_path(playbooks_path))
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if settings.log_level != "debug":
        # kafka-python narrates every connection attempt at INFO.
        logging.getLogger("kafka").setLevel(logging.WARNING)
    if metrics_enabled:
        from .metrics import start_metrics_server

        try:
            start_metrics_server(settings.web_host, settings.web_port)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {settings.web_host}:{settings.web_port} ({exc.strerror}); "
                "set CRISISWATCH_WEB_PORT to a free port or pass --no-metrics"
            ) from None
    responder = Responder(settings, sink_list, playbooks)

    def on_term(signum: int, frame: FrameType | None) -> None:
        # Finish (or abandon, uncommitted) the current record, then close cleanly.
        responder.stop()

    signal.signal(signal.SIGTERM, on_term)
    counters = responder.run(max_events=max_events, timeout=timeout, from_beginning=from_beginning)
    parts = [f"{k}={v}" for k, v in sorted(counters.items()) if k != "events"]
    click.echo(
        f"responded to {counters.get('events', 0)} events"
        + (f" ({', '.join(parts)})" if parts else ""),
        err=True,
    )


COMMANDS: list[click.Command] = [respond]
