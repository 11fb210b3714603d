"""The Prometheus config and alert rules pass promtool's checks and unit tests."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from streams import metrics
from tests.ops.prom import PROMTOOL

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULES = sorted((PROM / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))


def promtool(*args: str) -> str:
    assert PROMTOOL
    proc = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_config_is_valid() -> None:
    out = promtool("check", "config", str(PROM / "prometheus.yml"))
    assert "SUCCESS" in out


def test_rules_are_valid() -> None:
    assert RULES
    promtool("check", "rules", *map(str, RULES))


def test_rules_unit_tests_pass() -> None:
    assert RULE_TESTS
    out = promtool("test", "rules", *map(str, RULE_TESTS))
    assert "SUCCESS" in out


def _rules() -> list[dict]:
    return [r for f in RULES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]


def test_required_alerts_exist_and_are_unit_tested() -> None:
    alerts = {r["alert"] for r in _rules() if "alert" in r}
    assert {
        "CrisiswatchWorkerDown",
        "CrisiswatchConsumerLagGrowing",
        "CrisiswatchDeadLetterRateHigh",
        "CrisiswatchBrandFeedSilent",
        "CrisiswatchCrisisOpened",
    } <= alerts
    tested = {
        t["alertname"]
        for f in RULE_TESTS
        for case in yaml.safe_load(f.read_text())["tests"]
        for t in case.get("alert_rule_test", [])
    }
    assert alerts <= tested, alerts - tested


def test_rules_only_use_exported_metric_names() -> None:
    known = set(metrics.EXPORTED) | {"up"} | {r["record"] for r in _rules() if "record" in r}
    for r in _rules():
        for name in re.findall(r"\b(crisiswatch[:_][a-z0-9_:]+)", r["expr"]):
            assert name in known, (r.get("alert") or r.get("record"), name)
        runbook = (r.get("annotations") or {}).get("runbook")
        if runbook:
            path, _, anchor = runbook.partition("#")
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), re.M)
            assert anchor in {h.strip().lower().replace(" ", "-") for h in headings}, runbook
