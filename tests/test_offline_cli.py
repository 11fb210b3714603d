"""generate -> backtest (with report) -> evaluate --truth, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRISISWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_generate_backtest_evaluate(tmp_path: Path) -> None:
    m, truth, ev, report = (
        tmp_path / "m.jsonl",
        tmp_path / "truth.json",
        tmp_path / "ev.jsonl",
        tmp_path / "r",
    )
    g = run("generate", "--brands", "3", "--days", "4", "--seed", "3", "--out", str(m), "--truth", str(truth),
            "--scenario", "negativity_surge", "--scenario", "viral_meme")  # fmt: skip
    assert g.returncode == 0, g.stderr
    b = run("backtest", str(m), "--out", str(ev), "--report", str(report), "--quiet")
    assert b.returncode == 0, b.stderr
    assert "mentions counted" in b.stdout
    html = (report / "index.html").read_text()
    brands = {orjson.loads(line)["brand"] for line in m.read_bytes().splitlines()[:2000]}
    for brand in brands:
        assert (report / f"{brand}.png").stat().st_size > 10_000
        assert f"<h2>{brand}</h2>" in html
    e = run("evaluate", str(ev), "--truth", str(truth))
    assert e.returncode == 0, e.stderr
    assert "crises detected: 1/1 (recall 1.0)" in e.stdout
    assert "alarms on distractors: viral_meme 0" in e.stdout


def test_evaluate_needs_one_mode(tmp_path: Path) -> None:
    p = run("evaluate", str(tmp_path))
    assert p.returncode == 2
    assert "exactly one of --windows" in p.stderr
