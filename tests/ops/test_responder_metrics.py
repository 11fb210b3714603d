"""The responder serves its Prometheus metrics on the configured web port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.kafka_support import free_port

pytestmark = pytest.mark.kafka


def test_responder_serves_metrics(kafka_bootstrap: str) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CRISISWATCH_")},
        "CRISISWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CRISISWATCH_WEB_PORT": str(port),
        "CRISISWATCH_TOPIC_EVENTS": f"resp-metrics-{port}.crisis.events",
        "CRISISWATCH_RESPONDER_GROUP": f"resp-metrics-{port}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams", "respond", "--sink", "stdout", "--timeout", "20"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        body = ""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "crisiswatch_responder" not in body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.3)
        assert "crisiswatch_responder_deliveries_total" in body
        assert "crisiswatch_build_info" in body
    finally:
        proc.terminate()
        proc.wait(30)
