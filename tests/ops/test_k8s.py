"""deploy/k8s validated offline against the Kubernetes JSON schemas, and against the code.

The schemas come with the ``kubernetes-validate`` package (vendored per
Kubernetes version), so no network is needed. The ServiceMonitor is a CRD
(prometheus-operator) that package does not carry; it is checked against the
fields of its CRD that we use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.cli_commands import commands
from streams.settings import Settings

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.30.0"


def docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for d in yaml.safe_load_all(path.read_text()):
            if d:
                out.append((path.name, d))
    return out


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in docs() if d["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    (d,) = [d for d in by_kind(kind) if d["metadata"]["name"] == name]
    return d


def test_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kust["resources"]) == files


@pytest.mark.parametrize("name,doc", docs(), ids=lambda v: v if isinstance(v, str) else "")
def test_manifest_matches_the_kubernetes_schema(name: str, doc: dict[str, Any]) -> None:
    if doc["apiVersion"].startswith("monitoring.coreos.com/"):
        check_service_monitor(doc)
        return
    # strict: unknown fields are errors too (typos in a manifest are silent otherwise).
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def check_service_monitor(doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "ServiceMonitor"
    spec = doc["spec"]
    assert set(spec) <= {"jobLabel", "selector", "namespaceSelector", "endpoints", "targetLabels"}
    assert spec["selector"]["matchLabels"]
    for ep in spec["endpoints"]:
        assert set(ep) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings"}
        assert ep["path"] == "/metrics"


def pod_spec(deploy: dict[str, Any]) -> dict[str, Any]:
    return dict(deploy["spec"]["template"]["spec"])


def env_of(container: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        if "configMapRef" in src:
            env.update(named("ConfigMap", src["configMapRef"]["name"])["data"])
        if "secretRef" in src:
            env.update(named("Secret", src["secretRef"]["name"])["stringData"])
    env.update({e["name"]: e.get("value", "") for e in container.get("env", [])})
    return env


def test_settings_in_configmap_and_secret_are_real_settings() -> None:
    names = {f"CRISISWATCH_{f.upper()}" for f in Settings.model_fields}
    for kind in ("ConfigMap", "Secret"):
        for d in by_kind(kind):
            for key in d.get("data", d.get("stringData", {})):
                if key.startswith("CRISISWATCH_"):
                    assert key in names, (kind, key)
    # Secrets live in the Secret, never in the ConfigMap.
    secret_fields = {
        f"CRISISWATCH_{n.upper()}" for n, i in Settings.model_fields.items() if i.repr is False
    } | {"CRISISWATCH_KAFKA_SASL_USERNAME"}
    for cm in by_kind("ConfigMap"):
        assert not set(cm["data"]) & secret_fields
    # The settings parse (pydantic validates every value).
    env = env_of(
        named("Deployment", "crisiswatch-worker")["spec"]["template"]["spec"]["containers"][0]
    )
    fields: dict[str, Any] = {
        k.removeprefix("CRISISWATCH_").lower(): v
        for k, v in env.items()
        if k.startswith("CRISISWATCH_")
    }
    Settings(**fields)


def test_workloads_match_the_code() -> None:
    names = {c.name for c in commands()}
    for deploy in by_kind("Deployment"):
        (c,) = pod_spec(deploy)["containers"]
        assert c["args"][0] in names, c["args"]
        env = env_of(c)
        port = int(env["CRISISWATCH_WEB_PORT"])
        assert [p["containerPort"] for p in c["ports"]] == [port]
        assert env["CRISISWATCH_WEB_HOST"] == "0.0.0.0"
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
        assert c["livenessProbe"]
        assert pod_spec(deploy)["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
        # Every referenced ConfigMap/Secret volume exists (or is documented as made by hand).
        for v in pod_spec(deploy).get("volumes", []):
            if "secret" in v:
                named("Secret", v["secret"]["secretName"])
    worker = named("Deployment", "crisiswatch-worker")
    (c,) = pod_spec(worker)["containers"]
    assert c["args"] == ["worker"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    # More workers than partitions would sit idle.
    assert worker["spec"]["replicas"] <= int(env_of(c)["CRISISWATCH_PARTITIONS"])
    responder = named("Deployment", "crisiswatch-responder")
    assert pod_spec(responder)["containers"][0]["args"][:2] == ["respond", "--sink"]


def test_services_and_service_monitor_select_the_pods() -> None:
    (sm,) = by_kind("ServiceMonitor")
    sm_ports = {e["port"] for e in sm["spec"]["endpoints"]}
    for svc in by_kind("Service"):
        sel = svc["spec"]["selector"]
        pods = [
            d
            for d in by_kind("Deployment")
            if sel.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(pods) == 1, svc["metadata"]["name"]
        pod_ports = {
            p["name"]: p["containerPort"] for p in pod_spec(pods[0])["containers"][0]["ports"]
        }
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in pod_ports
            assert p["port"] == pod_ports[p["targetPort"]]
        assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        assert sm_ports <= {p["name"] for p in svc["spec"]["ports"]}
    (pdb,) = by_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"] == named("Deployment", "crisiswatch-worker")["spec"]["selector"]
