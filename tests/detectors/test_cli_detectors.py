"""The detect-series / evaluate / bench-detectors commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from streams import cli as cli_mod

cli_mod._attach()
RUNNER = CliRunner()


def write_series(path: Path, n: int = 600, surge_at: int | None = 450) -> list[str]:
    rng = np.random.default_rng(0)
    ts = [
        f"2015-03-{1 + i // 288:02d} {(i % 288) // 12:02d}:{(i % 12) * 5:02d}:00" for i in range(n)
    ]
    v = rng.poisson(30, n)
    if surge_at is not None:
        v[surge_at : surge_at + 30] *= 8
    path.write_text("timestamp,value\n" + "".join(f"{t},{x}\n" for t, x in zip(ts, v, strict=True)))
    return ts


def test_detect_series_row_for_row(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    ts = write_series(src)
    r = RUNNER.invoke(cli_mod.cli, ["detect-series", str(src), str(dst)])
    assert r.exit_code == 0, r.output
    lines = dst.read_text().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score" and len(lines) == len(ts) + 1
    rows = [ln.split(",") for ln in lines[1:]]
    assert [row[0] for row in rows] == ts
    scores = np.array([float(row[2]) for row in rows])
    assert ((scores >= 0) & (scores <= 1)).all() and scores[450:500].max() > 0.5


def test_detect_series_param_override_and_errors(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    write_series(src)
    r = RUNNER.invoke(
        cli_mod.cli,
        ["detect-series", str(src), str(tmp_path / "o.csv"), "-p", "scale_memory_hours=0"],
    )
    assert r.exit_code == 2 and "scale_memory_hours" in r.output
    r = RUNNER.invoke(
        cli_mod.cli, ["detect-series", str(src), str(tmp_path / "o.csv"), "-p", "nope=1"]
    )
    assert r.exit_code == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("time,count\n1,2\n")
    r = RUNNER.invoke(cli_mod.cli, ["detect-series", str(bad), str(tmp_path / "o.csv")])
    assert r.exit_code == 4 and "header" in r.output
    r = RUNNER.invoke(
        cli_mod.cli, ["detect-series", str(tmp_path / "missing.csv"), str(tmp_path / "o.csv")]
    )
    assert r.exit_code == 4


def test_evaluate_reports_profiles_and_files(tmp_path: Path) -> None:
    src, out = tmp_path / "data" / "s.csv", tmp_path / "out"
    src.parent.mkdir()
    ts = write_series(src)
    assert RUNNER.invoke(cli_mod.cli, ["detect-series", str(src.parent), str(out)]).exit_code == 0
    windows = tmp_path / "windows.json"
    windows.write_text(json.dumps({"data/s.csv": [[ts[420], ts[480]]]}))
    r = RUNNER.invoke(cli_mod.cli, ["evaluate", str(out), "--windows", str(windows)])
    assert r.exit_code == 0, r.output
    assert "reward_low_FP_rate" in r.output and "| s.csv |" in r.output
    r = RUNNER.invoke(cli_mod.cli, ["evaluate", str(out), "--windows", str(tmp_path / "none.json")])
    assert r.exit_code == 4


def test_bench_writes_only_its_section(tmp_path: Path) -> None:
    md = tmp_path / "benchmarks.md"
    md.write_text(
        "# Benchmarks\n\nother section\n<!-- BEGIN detectors -->\nold\n<!-- END detectors -->\ntail\n"
    )
    args = [
        "bench-detectors",
        "--points",
        "20000",
        "--brands",
        "500",
        "--repeats",
        "1",
        "--output",
        str(md),
    ]
    r = RUNNER.invoke(cli_mod.cli, args)
    assert r.exit_code == 0, r.output
    text = md.read_text()
    assert "other section" in text and text.endswith("tail\n") and "old" not in text
    assert text.count("<!-- BEGIN detectors -->") == 1 and "points/s" in text
