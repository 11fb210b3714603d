"""Errors a user can cause print one clear line and exit non-zero."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_support import one_line_error, run


def test_help_lists_the_commands() -> None:
    p = run("--help")
    assert p.returncode == 0
    for cmd in ("worker", "replay", "tail", "broker", "demo", "topics"):
        assert cmd in p.stdout


def test_unreachable_broker(tmp_path: Path) -> None:
    f = tmp_path / "m.jsonl"
    f.write_text('{"id": "1"}\n')
    p = run("replay", str(f), CRISISWATCH_KAFKA_BOOTSTRAP="127.0.0.1:1")
    assert p.returncode == 3
    assert "not reachable" in one_line_error(p)


def test_missing_file() -> None:
    p = run("replay", "/no/such/file.jsonl", CRISISWATCH_KAFKA_BOOTSTRAP="127.0.0.1:1")
    assert p.returncode == 4
    assert "no such file" in one_line_error(p)


@pytest.mark.parametrize("cmd", [["worker"], ["tail"], ["topics"]])
def test_bad_settings(cmd: list[str]) -> None:
    p = run(*cmd, CRISISWATCH_PARTITIONS="many")
    assert p.returncode == 2
    assert "CRISISWATCH_PARTITIONS" in one_line_error(p)


def test_no_kafka_configured() -> None:
    p = run("tail")
    assert p.returncode == 2
    assert "CRISISWATCH_KAFKA_BOOTSTRAP" in one_line_error(p)


def test_bench_pipeline_names_a_broker_it_cannot_reach() -> None:
    # Without the probe every phase would run to its deadline (a wrong address,
    # TLS or SASL setting); the secured broker itself is in
    # tests/integration/test_secured_broker.py.
    p = run(
        "bench-pipeline",
        "--quick",
        "--no-write",
        CRISISWATCH_KAFKA_BOOTSTRAP="127.0.0.1:1",
        CRISISWATCH_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
    )
    assert p.returncode == 2
    err = one_line_error(p)
    assert "cannot reach the broker at 127.0.0.1:1 over SASL_SSL" in err


@pytest.mark.parametrize("option", ["--sasl-ssl-port", "--ssl-port"])
def test_broker_start_keeps_the_secured_listeners_to_the_single_node(option: str) -> None:
    p = run("broker", "start", "--cluster", option, "29999")
    assert p.returncode == 2
    assert f"{option} is for the single-node broker" in one_line_error(p)
