"""The score / evaluate-sentiment / bench-sentiment commands."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from schemas import validator
from streams import cli as cli_mod
from streams.sentiment.bench import BEGIN, END, write_section

cli_mod._attach()
RUNNER = CliRunner()


def test_score_in_order_with_rejects(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    good = [
        {"id": str(i), "brand": "acme", "text": t, "created_at": "2026-01-01T00:00:00Z", "extra": i}
        for i, t in enumerate(["I love it", "@acme worst support ever", "store opens at 9"])
    ]
    lines = [
        json.dumps(good[0]),
        "{not json",
        json.dumps(good[1]),
        json.dumps({"id": "x", "brand": "acme", "text": "no time"}),
        "",
        json.dumps(good[2] | {"lang": "pt"}),
    ]
    src.write_text("\n".join(lines) + "\n")
    r = RUNNER.invoke(
        cli_mod.cli, ["score", str(src), str(dst), "--model", "linear-v1", "--batch-size", "2"]
    )
    assert r.exit_code == 0, r.output
    out = [json.loads(x) for x in dst.read_text().splitlines()]
    v = validator("scored_mention.v1")
    for m in out:
        v.validate(m)
    assert [m["id"] for m in out] == ["0", "1", "2"]
    assert [m["extra"] for m in out] == [0, 1, 2]  # unknown fields carried through
    assert [m["sentiment_label"] for m in out] == ["positive", "negative", "unscored"]
    rejects = [json.loads(x) for x in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    assert [x["line"] for x in rejects] == [2, 4]
    assert "not JSON" in rejects[0]["reason"] and "created_at" in rejects[1]["reason"]
    assert "2 scored" in r.output and "1 skipped" in r.output and "2 rejected" in r.output


def test_score_missing_input_is_one_clean_line(tmp_path: Path) -> None:
    r = RUNNER.invoke(
        cli_mod.cli, ["score", str(tmp_path / "nope.jsonl"), str(tmp_path / "o.jsonl")]
    )
    assert r.exit_code == 4 and "cannot read" in r.output and "Traceback" not in r.output


def test_evaluate_user_files(tmp_path: Path) -> None:
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text('tweet,y\n"love it, thanks!",1\n"worst ever",-1\n"flight at 5",0\n')
    jl = tmp_path / "mine.jsonl"
    jl.write_text(
        "\n".join(
            json.dumps({"body": t, "s": s}) for t, s in [("great job", "pos"), ("awful", "neg")]
        )
    )
    r = RUNNER.invoke(
        cli_mod.cli,
        [
            "evaluate-sentiment",
            str(csv_path),
            "--text-column",
            "tweet",
            "--label-column",
            "y",
            "--label-values",
            "-1=negative,0=neutral,1=positive",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.output[r.output.index("[") :])
    assert res[0]["n"] == 3 and {"crisiswatch-linear-v1", "vader-3.3.2"} <= set(res[0])
    r = RUNNER.invoke(
        cli_mod.cli,
        [
            "evaluate-sentiment",
            str(jl),
            "--text-column",
            "body",
            "--label-column",
            "s",
            "--label-values",
            "pos=positive,neg=negative",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "macro_f1" in r.output and "confusion" in r.output
    r = RUNNER.invoke(cli_mod.cli, ["evaluate-sentiment", str(csv_path)])
    assert r.exit_code == 4 and "no column" in r.output


def test_evaluate_default_sets(tmp_path: Path) -> None:
    gt = tmp_path / "gt.tsv"
    gt.write_text("1\t2.5\tI love it\n2\t-3.1\tawful\n3\t0.1\tit is a chair\n")
    r = RUNNER.invoke(cli_mod.cli, ["evaluate-sentiment", "--vader-groundtruth", str(gt), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output[r.output.index("[") :])
    assert [x["n"] for x in res][-1] == 3 and len(res) == 3
    assert "held-out" in res[0]["data"]


def test_write_section_replaces_only_its_own(tmp_path: Path) -> None:
    p = tmp_path / "b.md"
    p.write_text("# Benchmarks\n\n<!-- BEGIN detectors -->\nD\n<!-- END detectors -->\n")
    write_section(p, "one")
    write_section(p, "two")
    text = p.read_text()
    assert "D\n<!-- END detectors -->" in text
    assert text.count(BEGIN) == 1 and f"{BEGIN}\ntwo\n{END}" in text and "one" not in text
