"""A real Prometheus server (Debian's ``prometheus``) for tests, and query helpers."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from tests.kafka_support import free_port

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


@dataclass
class Prometheus:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as r:
            doc = orjson.loads(r.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def scalar(self, expr: str) -> float | None:
        """Value of a query that returns at most one series (None when empty)."""
        res = self.query(expr)
        if not res:
            return None
        assert len(res) == 1, res
        return float(res[0]["value"][1])

    def wait_for(
        self, expr: str, want: Callable[[float | None], bool], timeout: float = 60.0
    ) -> float | None:
        deadline = time.monotonic() + timeout
        got: float | None = None
        while time.monotonic() < deadline:
            try:
                got = self.scalar(expr)
            except OSError:
                got = None
            if want(got):
                return got
            time.sleep(0.5)
        raise AssertionError(f"{expr}: last value {got} after {timeout}s\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_prometheus(
    tmp: Path, targets: list[str], *, rule_files: tuple[Path, ...] = (), interval: str = "1s"
) -> Prometheus:
    """Start prometheus on a free loopback port scraping ``targets`` (host:port)."""
    assert PROMETHEUS, "prometheus is not installed (apt-get install prometheus)"
    port = free_port()
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": "crisiswatch",
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": [{"targets": targets}],
            }
        ],
    }
    cfg = tmp / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config))
    log = tmp / "prometheus.log"
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    prom = Prometheus(proc, port, log)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited:\n{prom.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                if r.status == 200:
                    return prom
        except OSError:
            pass
        if time.monotonic() > deadline:
            prom.stop()
            raise RuntimeError(f"prometheus not ready in 30s:\n{prom.log_tail()}")
        time.sleep(0.2)
