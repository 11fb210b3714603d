"""`crisiswatch respond`: wiring and one-line errors (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_support import one_line_error, run


def test_help() -> None:
    p = run("respond", "--help")
    assert p.returncode == 0, p.stderr
    for opt in ("--sink", "--playbooks", "--from-beginning", "--max-events", "--timeout"):
        assert opt in p.stdout
    assert "respond" in run("--help").stdout


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        ((), {}, "at least one --sink"),
        (("--sink", "teams:https://x/TOKEN"), {}, "unknown sink"),
        (("--sink", "webhook:https://ops.example.com/x"), {}, "CRISISWATCH_WEBHOOK_SECRET"),
        (("--sink", "pagerduty"), {}, "CRISISWATCH_PAGERDUTY_ROUTING_KEY"),
        (("--sink", "stdout", "--playbooks", "/no/such/playbooks.yaml"), {}, "does not exist"),
        (
            ("--sink", "stdout"),
            {"CRISISWATCH_RESPONDER_MAX_ATTEMPTS": "many"},
            "CRISISWATCH_RESPONDER_MAX_ATTEMPTS",
        ),
    ],
)
def test_errors_are_one_line(args: tuple[str, ...], env: dict[str, str], words: str) -> None:
    p = run("respond", *args, CRISISWATCH_KAFKA_BOOTSTRAP="127.0.0.1:1", **env)
    assert p.returncode == 2, p.stderr
    line = one_line_error(p)
    assert words in line
    assert "TOKEN" not in line


def test_bad_playbook_names_the_key(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yaml"
    pb.write_text("default:\n  owners: [Comms]\n  first_respons: hi\n")
    p = run(
        "respond",
        "--sink",
        "stdout",
        "--playbooks",
        str(pb),
        CRISISWATCH_KAFKA_BOOTSTRAP="127.0.0.1:1",
    )
    assert p.returncode == 2
    assert "default.first_respons: unknown key; did you mean 'first_response'?" in one_line_error(p)


def test_unreachable_broker() -> None:
    p = run("respond", "--sink", "stdout", CRISISWATCH_KAFKA_BOOTSTRAP="127.0.0.1:1")
    assert p.returncode == 3
    assert "not reachable" in one_line_error(p)
