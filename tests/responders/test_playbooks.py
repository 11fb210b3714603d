"""Playbook loading, validation errors that name the bad key, and matching."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from streams.errors import ConfigError
from streams.responders.playbooks import KINDS, SEVERITIES, load_playbooks, parse_playbooks
from tests.kafka_support import PROJECT

DEFAULT = {"owners": ["On-call comms"], "first_response": "Look now."}


def doc(*rules: Any, **top: Any) -> dict[str, Any]:
    return {"version": 1, "default": DEFAULT, "playbooks": list(rules), **top}


def rule(kind: str, severity: Any = None, owner: str = "Owner", **kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"kind": kind, "owners": [owner], "first_response": f"do {owner}", **kw}
    if severity is not None:
        r["severity"] = severity
    return r


def test_most_specific_match_wins() -> None:
    pb = parse_playbooks(
        doc(
            rule("volume_spike", owner="kind"),
            rule("volume_spike", ["high", "critical"], owner="hc"),
            rule("volume_spike", "low", owner="low"),
        )
    )
    assert pb.match("volume_spike", "critical").owners == ("hc",)
    assert pb.match("volume_spike", "critical").match == "volume_spike/critical"
    assert pb.match("volume_spike", "high").owners == ("hc",)
    assert pb.match("volume_spike", "low").owners == ("low",)
    assert pb.match("volume_spike", "medium").owners == ("kind",)
    assert pb.match("volume_spike", "medium").match == "volume_spike"
    assert pb.match("sentiment_shift", "critical").match == "default"
    assert pb.match("sentiment_shift", "critical").owners == ("On-call comms",)


def test_kind_severity_without_kind_entry_falls_back_to_default() -> None:
    pb = parse_playbooks(doc(rule("volume_spike", "critical")))
    assert pb.match("volume_spike", "low").match == "default"


def test_entry_json_is_what_notifications_carry() -> None:
    pb = parse_playbooks(
        doc(rule("volume_spike", steps=["a", "b"], title="T", holding_statement="We hear you."))
    )
    assert pb.match("volume_spike", "low").to_json() == {
        "match": "volume_spike",
        "title": "T",
        "owners": ["Owner"],
        "first_response": "do Owner",
        "steps": ["a", "b"],
        "holding_statement": "We hear you.",
    }


def test_owner_may_be_a_single_string() -> None:
    pb = parse_playbooks(doc(rule("volume_spike") | {"owners": "Comms lead"}))
    assert pb.match("volume_spike", "low").owners == ("Comms lead",)


@pytest.mark.parametrize(
    ("document", "where", "words"),
    [
        ([1, 2], "", "expected a mapping"),
        (doc(extra=1), "extra", "unknown key"),
        ({"playbooks": []}, "default", "missing"),
        (doc(version=2), "version", "unsupported version"),
        (doc() | {"playbooks": {"a": 1}}, "playbooks", "expected a list"),
        (doc("text"), "playbooks[0]", "expected a mapping"),
        (
            doc(rule("volume_spike"), {"owners": ["x"], "first_response": "y"}),
            "playbooks[1].kind",
            "missing",
        ),
        (doc(rule("volume_spkie")), "playbooks[0].kind", "did you mean 'volume_spike'"),
        (
            doc(rule("volume_spike", "urgent")),
            "playbooks[0].severity",
            "'urgent' is not a severity",
        ),
        (doc(rule("volume_spike", [])), "playbooks[0].severity", "empty list"),
        (
            doc(rule("volume_spike", owner="x") | {"owner": "y"}),
            "playbooks[0].owner",
            "did you mean 'owners'",
        ),
        (doc(rule("volume_spike") | {"owners": []}), "playbooks[0].owners", "at least one owner"),
        (doc(rule("volume_spike") | {"owners": ["ok", ""]}), "playbooks[0].owners[1]", "non-empty"),
        (
            doc(rule("volume_spike") | {"first_response": " "}),
            "playbooks[0].first_response",
            "missing",
        ),
        (doc(rule("volume_spike") | {"steps": "one"}), "playbooks[0].steps", "list of strings"),
        (doc(rule("volume_spike") | {"title": 3}), "playbooks[0].title", "expected a string"),
        ({"default": {"owners": ["x"]}}, "default.first_response", "missing"),
        ({"default": {"kind": "volume_spike", **DEFAULT}}, "default.kind", "unknown key"),
    ],
)
def test_errors_name_the_bad_key(document: Any, where: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_playbooks(document, source="pb.yaml")
    msg = str(info.value)
    assert msg.startswith(f"pb.yaml: {where}: " if where else "pb.yaml: "), msg
    assert words in msg
    assert "\n" not in msg


def test_duplicates_are_rejected_with_both_places() -> None:
    with pytest.raises(
        ConfigError,
        match=r"playbooks\[1\]: duplicate entry for volume_spike/high; first defined at playbooks\[0\]",
    ):
        parse_playbooks(
            doc(rule("volume_spike", ["high", "critical"]), rule("volume_spike", "high")),
            source="pb.yaml",
        )
    with pytest.raises(
        ConfigError, match="duplicate entry for volume_spike \\(without severity\\)"
    ):
        parse_playbooks(doc(rule("volume_spike"), rule("volume_spike")))


def test_yaml_syntax_error_says_where(tmp_path: Path) -> None:
    p = tmp_path / "pb.yaml"
    p.write_text("default:\n  owners: [a\n  first_response: x\n")
    with pytest.raises(ConfigError, match=r"pb.yaml: not valid YAML at line \d+, column \d+"):
        load_playbooks(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_playbooks(tmp_path / "nope.yaml")


def test_shipped_playbooks_are_valid_and_cover_every_case() -> None:
    pb = load_playbooks(PROJECT / "deploy" / "playbooks.yaml")
    for kind, sev in itertools.product(KINDS, SEVERITIES):
        entry = pb.match(kind, sev)
        # Every kind has its own guidance; nothing falls through to the default.
        assert entry.match.startswith(kind), (kind, sev)
        assert entry.owners and entry.first_response
    critical = pb.match("negativity_surge", "critical")
    assert "Legal counsel" in critical.owners
