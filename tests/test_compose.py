"""docker-compose.yml cannot run here (no Docker engine); check it against the code."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from streams.cli_commands import commands
from streams.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
POM = (ROOT / "deploy" / "kafka" / "pom.xml").read_text()


def services() -> dict:
    return COMPOSE["services"]


def test_kafka_image_matches_the_local_broker_version() -> None:
    version = re.search(r"<kafka.version>(.+)</kafka.version>", POM).group(1)  # type: ignore[union-attr]
    assert services()["kafka"]["image"] == f"apache/kafka:{version}"
    env = services()["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]


def test_crisiswatch_services_use_real_commands_and_settings() -> None:
    names = {c.name for c in commands()}
    fields = {f"CRISISWATCH_{f.upper()}" for f in Settings.model_fields}
    cw = {n: s for n, s in services().items() if s.get("image", "").startswith("crisiswatch")}
    assert {"worker-1", "worker-2", "topics", "replay"} <= set(cw)
    for name, svc in cw.items():
        assert svc["command"][0] in names, (name, svc["command"])
        for var in svc["environment"]:
            assert var in fields, (name, var)
        host, port = svc["environment"]["CRISISWATCH_KAFKA_BOOTSTRAP"].split(":")
        assert host == "kafka" and port == "9092"


def test_worker_ports_match_the_web_port_setting() -> None:
    for name in ("worker-1", "worker-2"):
        svc = services()[name]
        web_port = svc["environment"]["CRISISWATCH_WEB_PORT"]
        assert any(p.endswith(f":{web_port}") for p in svc["ports"])


def test_replayed_file_is_bundled() -> None:
    cmd = services()["replay"]["command"]
    assert cmd[1].startswith("/app/")
    assert (ROOT / cmd[1].removeprefix("/app/")).is_file()
