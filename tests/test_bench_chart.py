"""The picture and the section bench-pipeline writes (no broker: a result dict as the run returns it)."""

from __future__ import annotations

import copy

import pytest

from streams import bench_chart, benchdoc
from streams import bench_pipeline as bp


def result(**rates: float) -> dict:
    base = {"bare": 300_000, "bare_gc": 350_000, "relay": 150_000, "empty": 7_000}
    base |= {"one": 70_000, "lean": 95_000, "two": 88_000, "two_lean": 120_000} | rates
    res: dict = {
        "n": 1_000_000,
        "brands": 1_000,
        "date": "2026-12-02 16:00 UTC",
        "machine": "x86_64, 2 CPUs (test)",
        "loads": [1.0, 1.5],
        "latency": {
            "rate": 35_000,
            "achieved_rate": 34_990,
            "events": 240,
            "statuses": {"opened": 55, "updated": 185},
            "p50": 0.1,
            "p99": 0.2,
            "max": 0.25,
        },
        "scale": {"brands": 100_000, "rss_mib": 576.0, "rate": 46_000.0, "close_ms": 4.0},
    }
    for k, (key, rate) in enumerate(base.items()):
        row = {"rate": float(rate), "cpu_s_per_m": 3.0 + k, "all": [rate, rate]}
        if key != "empty":
            row["broker_cpu_s_per_m"] = 0.5 * k
        if key in bench_chart.PIPELINE:
            row["rss_mib"] = 380.0
        res[key] = row
    return res


def test_bars_are_the_measured_rates_and_costs():
    res = result()
    fig = bench_chart.figure(res)
    try:
        left, right = fig.axes[:2]
        bars = left.patches
        assert [b.get_width() for b in bars] == [res[k]["rate"] for k, _ in bench_chart.PHASES]
        labels = [t.get_text() for t in left.get_yticklabels()]
        assert labels == [label for _, label in bench_chart.PHASES]
        # The 50% target sits at half the bare consumer's rate, the absolute one at 50,000/s.
        xs = sorted(line.get_xdata()[0] for line in left.get_lines())
        assert xs == [50_000, res["bare"]["rate"] * 0.5]
        # CPU: process then broker, stacked; the empty agent's is left to the table.
        n = len(bench_chart.PHASES)
        proc, brk = right.patches[:n], right.patches[n : 2 * n]
        for (key, _), p, b in zip(bench_chart.PHASES, proc, brk, strict=True):
            want = (0.0, 0.0)
            if key != "empty":
                want = (res[key]["cpu_s_per_m"], res[key]["broker_cpu_s_per_m"])
            assert (p.get_width(), b.get_width()) == pytest.approx(want)
            assert b.get_x() == pytest.approx(p.get_width())
    finally:
        bench_chart.plt.close(fig)


def test_phases_missing_from_an_older_run_are_left_out():
    res = result()
    del res["relay"], res["bare_gc"]
    fig = bench_chart.figure(res)
    try:
        assert len(fig.axes[0].patches) == len(bench_chart.PHASES) - 2
    finally:
        bench_chart.plt.close(fig)


def test_a_run_without_a_bare_rate_is_refused():
    res = result(bare=0)
    with pytest.raises(ValueError, match="bare consumer"):
        bench_chart.figure(res)


def test_png_written(tmp_path):
    out = bench_chart.write(result(), tmp_path / "docs" / bp.CHART)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000


def test_section_links_the_picture_and_history_drops_the_old_link(tmp_path):
    page = tmp_path / "benchmarks.md"
    first, second = result(one=60_000), result(one=80_000)
    second["date"] = "2026-12-02 17:00 UTC"
    assert "![" not in bp.report(copy.deepcopy(first), "crisiswatch bench-pipeline")
    bp.write_section(page, bp.report(first, "crisiswatch bench-pipeline", bp.CHART))
    bp.write_section(page, bp.report(second, "crisiswatch bench-pipeline", bp.CHART))
    text = page.read_text()
    # One picture: the file shows the latest run, so the earlier run keeps only its tables.
    assert text.count(f"]({bp.CHART})") == 1
    latest, _, earlier = text.partition("### Earlier run")
    assert bp.CHART in latest and "80,000" in latest and "17:00" in latest
    assert "60,000" in earlier and "16:00" in earlier and "\n\n\n" not in earlier


def test_history_keeps_pictures_of_no_other_kind_of_line(tmp_path):
    page = tmp_path / "b.md"
    benchdoc.write_section(page, "x", "## X\n\nrun 1\n\n![p](p.png)\n\ntail 1")
    benchdoc.write_section(page, "x", "## X\n\nrun 2", keep_history=True)
    text = page.read_text()
    assert "run 1\n\ntail 1" in text and "p.png" not in text


def test_the_cpu_budget_line_sits_where_half_the_bare_rate_needs_it():
    res = result()
    res["cores"] = 2
    fig = bench_chart.figure(res)
    try:
        right = fig.axes[1]
        (line,) = right.get_lines()
        # 2 cores x 1e6 / 150,000 mentions/s = 13.3 CPU s per million.
        assert line.get_xdata()[0] == pytest.approx(2e6 / 150_000)
        assert "2 cores" in line.get_label()
        assert right.get_xlim()[1] >= line.get_xdata()[0]
    finally:
        bench_chart.plt.close(fig)
    del res["cores"]  # an older result: no line, nothing guessed
    fig = bench_chart.figure(res)
    try:
        assert fig.axes[1].get_lines() == []
    finally:
        bench_chart.plt.close(fig)


def test_the_table_bounds_each_phase_by_its_cost_on_the_cores():
    res = result()
    res["cores"] = 2
    # (b): 7.0 + 2.0 CPU s per M -> 2e6 / 9 = 222,222/s, 74% of bare; (c) 9.0 + 3.0 -> 166,667.
    res["one"] |= {"cpu_s_per_m": 7.0, "broker_cpu_s_per_m": 2.0}
    res["two"] |= {"cpu_s_per_m": 9.0, "broker_cpu_s_per_m": 3.0}
    res["two_lean"] |= {"cpu_s_per_m": 8.0, "broker_cpu_s_per_m": 2.0}  # 2e6 / 10: 200,000, 67%
    text = bp.report(res, "crisiswatch bench-pipeline")
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| (")}
    assert "| most on 2 cores: mentions/s (of bare) |" in text
    assert " 222,222 (74%) |" in rows["| (b) pipeline, 1 worker"]
    assert " 166,667 (56%) |" in rows["| (c) pipeline, 2 workers"]
    lean2 = rows["| (c') pipeline, 2 workers, `CRISISWATCH_PUBLISH_SCORED=false`"]
    assert lean2.startswith(
        "| (c') pipeline, 2 workers, `CRISISWATCH_PUBLISH_SCORED=false` | 120,000 | 40% |"
    )
    assert " 200,000 (67%) |" in lean2
    # The empty agent has no broker figure: no bound claimed.
    empty = next(line for line in text.splitlines() if line.startswith("| empty"))
    assert " - | - |" in empty
    assert "Every pipeline row" in text and "13.3 CPU s per M" in text
    # A phase whose cost cannot reach half the bare rate on these cores is named.
    res["one"] |= {"cpu_s_per_m": 14.0, "broker_cpu_s_per_m": 4.0}  # 2e6 / 18 = 111,111 < 150,000
    text = bp.report(res, "crisiswatch bench-pipeline")
    assert "(b) would miss 50% of (a) even with every core busy" in text
    res["two_lean"] |= {"cpu_s_per_m": 12.0, "broker_cpu_s_per_m": 2.0}  # 142,857 < 150,000
    text = bp.report(res, "crisiswatch bench-pipeline")
    assert "(b), (c') would miss 50% of (a)" in text
    # Columns line up: every table row has as many cells as the header.
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len({line.count(" | ") for line in table if not line.startswith("|---")}) == 1


def test_a_result_without_the_two_lean_workers_keeps_its_table():
    res = result()
    res["cores"] = 2
    del res["two_lean"]  # a run from before (c') was measured
    text = bp.report(res, "crisiswatch bench-pipeline")
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert not any(line.startswith("| (c')") for line in table)
    assert any(line.startswith("| (c) pipeline, 2 workers |") for line in table)
    assert len({line.count(" | ") for line in table if not line.startswith("|---")}) == 1
    assert "Every pipeline row" in text


def test_a_result_without_cores_keeps_the_old_table():
    text = bp.report(result(), "crisiswatch bench-pipeline")
    assert "most on" not in text and "Most on" not in text


def test_cpu_ceiling_refuses_nonsense():
    assert bp.cpu_ceiling(20.0, 2) == pytest.approx(100_000)
    with pytest.raises(ValueError):
        bp.cpu_ceiling(0.0, 2)


def test_the_core_count_in_the_texts_is_the_runs_own():
    # A result from a 4-core machine must not be described as a 2-core one.
    res = result()
    res["cores"] = 4
    text = bp.report(res, "crisiswatch bench-pipeline")
    assert "2 cores" not in text
    assert "(4 cores shared with the broker" in text and "Both share the 4 cores" in text
    fig = bench_chart.figure(res)
    try:
        assert fig.axes[1].get_xlabel().endswith("(process + broker, 4 shared cores)")
    finally:
        bench_chart.plt.close(fig)
    # An older result without the count claims none.
    del res["cores"]
    text = bp.report(res, "crisiswatch bench-pipeline")
    assert " cores shared" in text and not any(f"{k} cores" in text for k in range(1, 65))
    fig = bench_chart.figure(res)
    try:
        assert fig.axes[1].get_xlabel().endswith("(process + broker, shared cores)")
    finally:
        bench_chart.plt.close(fig)
