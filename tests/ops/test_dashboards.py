"""The Grafana dashboard and provisioning files, checked against the metrics the code exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from streams import metrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RULES = ROOT / "deploy" / "prometheus" / "rules" / "crisiswatch.rules.yml"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

# Names a query may use besides ours: Prometheus's own, and PromQL functions/keywords.
OTHER_METRICS = {"up"}


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def exprs(dash: dict[str, Any]) -> list[str]:
    found = [t["expr"] for p in panels(dash) for t in p.get("targets", []) if t.get("expr")]
    found += [a["expr"] for a in dash.get("annotations", {}).get("list", []) if a.get("expr")]
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if v.get("type") == "query" and q:
            found.append(q)
    return found


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(crisiswatch_[a-z0-9_]+)", expr)) | (
        {"up"} if re.search(r"\bup\{", expr) else set()
    )


def recorded() -> set[str]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}


def test_there_is_a_dashboard() -> None:
    assert [d.name for d in DASHBOARDS] == ["crisiswatch.json"]


def test_every_query_uses_exported_metric_names() -> None:
    known = set(metrics.EXPORTED) | OTHER_METRICS | recorded()
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        used: set[str] = set()
        for e in exprs(dash):
            names = metric_names(e)
            assert names, f"{path.name}: no metric in {e!r}"
            assert names <= known, (path.name, names - known, e)
            used |= names
        # The dashboard covers what the issue asks for.
        for family in (
            "crisiswatch_records_consumed_total",
            "crisiswatch_event_to_processed_seconds_bucket",
            "crisiswatch_ingest_to_crisis_event_seconds_bucket",
            "crisiswatch_consumer_lag_records",
            "crisiswatch_watermark_lag_seconds",
            "crisiswatch_dead_letters_total",
            "crisiswatch_open_crises",
            "crisiswatch_crisis_events_total",
            "crisiswatch_detector_score_bucket",
            "crisiswatch_brand_mentions_total",
            "crisiswatch_responder_deliveries_total",
        ):
            assert family in used, family


def test_queries_never_group_by_an_unbounded_label() -> None:
    # Only the opt-in brand series may carry a brand.
    for path in DASHBOARDS:
        for e in exprs(json.loads(path.read_text())):
            if re.search(r"\bbrand\b", e):
                assert metric_names(e) <= {
                    "crisiswatch_brand_mentions_total",
                    "crisiswatch_brand_crisis_events_total",
                    "crisiswatch_brand_open_crises",
                }, e


def test_dashboard_structure() -> None:
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
        ids = [p["id"] for p in panels(dash)]
        assert len(ids) == len(set(ids)), "panel ids must be unique"
        variables = {v["name"] for v in dash["templating"]["list"]}
        assert {"datasource", "instance", "brand"} <= variables
        for p in panels(dash):
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
            if p["type"] == "row":
                continue
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs)) and refs, p["title"]
            for t in p["targets"]:
                used = set(re.findall(r"\$(\w+)", t["expr"]))
                assert used <= variables | {"__rate_interval", "__interval", "__range"}, t["expr"]
                assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]
                assert t["expr"].count("{") == t["expr"].count("}"), t["expr"]


def test_provisioning_matches_compose() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus"
    host_port = source["url"].removeprefix("http://")
    host, port = host_port.split(":")
    assert host in COMPOSE["services"]
    assert any(p.endswith(f":{port}") for p in COMPOSE["services"][host]["ports"])
    dash_cur = {v["name"]: v for v in json.loads(DASHBOARDS[0].read_text())["templating"]["list"]}[
        "datasource"
    ]["current"]
    assert dash_cur["value"] == source["uid"]

    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "crisiswatch.yml").read_text())
    (provider,) = prov["providers"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in COMPOSE["services"]["grafana"]["volumes"]}
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"


def dashboard_queries_for_prometheus() -> list[str]:
    """Every query with Grafana's variables filled in, for a real Prometheus to parse."""
    subs = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
    out = []
    for path in DASHBOARDS:
        for e in exprs(json.loads(path.read_text())):
            if e.startswith("label_values("):
                continue
            for k, v in subs.items():
                e = e.replace(k, v)
            out.append(re.sub(r"\$\w+", ".*", e))
    return out
