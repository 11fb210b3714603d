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


PROMETHEUS_YML = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())


def _mounts(svc: dict) -> dict[str, str]:
    """container path -> host path for bind mounts."""
    out = {}
    for v in svc.get("volumes", []):
        host, container, *_ = v.split(":")
        out[container] = host
    return out


def test_stack_has_the_operable_services() -> None:
    assert {"responder", "prometheus", "grafana", "replay"} <= set(services())
    for name in ("prometheus", "grafana"):
        image = services()[name]["image"]
        assert ":" in image and not image.endswith(":latest"), image


def test_responder_runs_the_respond_command_with_its_playbooks() -> None:
    svc = services()["responder"]
    assert svc["command"][:2] == ["respond", "--sink"]
    mounts = _mounts(svc)
    # The respond command's default playbook path, relative to the image's WORKDIR /app.
    assert (ROOT / mounts["/app/deploy/playbooks.yaml"]).is_file()


def test_prometheus_scrapes_the_compose_services_on_their_web_ports() -> None:
    svc = services()["prometheus"]
    mounts = _mounts(svc)
    assert mounts["/etc/prometheus"] == "./deploy/prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in svc["command"]
    targets = {
        t
        for job in PROMETHEUS_YML["scrape_configs"]
        for sc in job.get("static_configs", [])
        for t in sc["targets"]
    }
    cw = {n: s for n, s in services().items() if s.get("image", "").startswith("crisiswatch")}
    long_running = {n for n, s in cw.items() if s["command"][0] in {"worker", "respond"}}
    assert long_running == {"worker-1", "worker-2", "responder"}
    for name in long_running:
        port = cw[name]["environment"]["CRISISWATCH_WEB_PORT"]
        assert f"{name}:{port}" in targets, (name, port, targets)
    # Rule files are relative to the mounted config folder and exist.
    for pattern in PROMETHEUS_YML["rule_files"]:
        assert list((ROOT / "deploy" / "prometheus").glob(pattern)), pattern


def test_grafana_gets_the_dashboard_and_datasource() -> None:
    mounts = _mounts(services()["grafana"])
    assert (ROOT / mounts["/etc/grafana/provisioning"] / "datasources").is_dir()
    assert (ROOT / mounts["/var/lib/grafana/dashboards"] / "crisiswatch.json").is_file()
    home = services()["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith("/var/lib/grafana/dashboards/")
