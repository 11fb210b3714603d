"""The README's first command: ``crisiswatch demo`` end to end against a real broker.

``scripts/demo.sh`` is set-up plus this command; here it runs as a newcomer
runs it (a subprocess, no ``CRISISWATCH_*`` settings in its environment),
pointed with ``--port`` at the session's broker, which it finds already
listening (kafka.sh's own start and stop are tested in test_local_kafka.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from schemas import validator
from streams.demo import DEMO_FILE
from tests.kafka_support import PROJECT

pytestmark = pytest.mark.kafka


def demo_counts() -> tuple[int, int]:
    """Records of the bundled stream: all of them, and those mention.v1 refuses."""
    check = validator("mention.v1")
    total = invalid = 0
    for line in DEMO_FILE.read_bytes().splitlines():
        if not line.strip():
            continue
        total += 1
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            invalid += 1
            continue
        invalid += not check.is_valid(doc)
    return total, invalid


@pytest.mark.timeout(240)
def test_demo_prints_a_crisis_opened_and_resolved_and_stops_its_worker(
    kafka_bootstrap: str,
) -> None:
    host, port = kafka_bootstrap.split(",")[0].rsplit(":", 1)
    if host != "127.0.0.1":
        pytest.skip("the demo's --port path is for a broker on 127.0.0.1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRISISWATCH_")}
    env["NO_COLOR"] = "1"
    r = subprocess.run(
        [sys.executable, "-m", "streams", "demo", "--port", port, "--timeout", "150"],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    out = r.stdout
    assert r.returncode == 0, out[-3000:] + r.stderr[-3000:]
    assert f"using the Kafka broker already listening on 127.0.0.1:{port}" in out
    # One crisis: opened, then resolved (the demo stops once every opened one resolved).
    assert re.search(r"^■ OPENED\s+\w+", out, re.M), out[-3000:]
    assert re.search(r"^■ RESOLVED\s+\w+", out, re.M), out[-3000:]
    total, invalid = demo_counts()
    assert f"sent {total} records" in out
    done = re.search(
        r": (\d+) mentions scored, (\d+) dead-lettered, (\d+) crisis opened, (\d+) resolved", out
    )
    assert done, out[-2000:]
    scored, dead, opened, resolved = (int(g) for g in done.groups())
    # Nothing lost: every record is either scored or dead-lettered with a reason.
    assert scored + dead == total, (scored, dead, total)
    assert dead == invalid == 3, (dead, invalid)  # the demo announces 3 malformed records
    assert opened >= 1 and resolved >= opened
    # The worker the demo started is gone (its log names its pid) and it shut down cleanly.
    log = re.search(r"starting a worker \(log: (\S+)\)", out)
    assert log, out[:2000]
    text = Path(log.group(1)).read_text(errors="replace")
    pid = re.search(r"^\[[^]]+\] \[(\d+)\] \[", text, re.M)
    assert pid, text[:2000]
    assert not Path(f"/proc/{pid.group(1)}").exists(), "the demo left its worker running"
    assert "Closing event loop" in text  # stopped by SIGTERM, not killed
