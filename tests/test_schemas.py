from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas import SchemaError, validator

EXAMPLES = Path(schemas.__file__).parent / "examples"


def test_all_schemas_are_listed_and_compile() -> None:
    assert schemas.names() == ["crisis_event.v1", "mention.v1", "scored_mention.v1"]
    for name in schemas.names():
        assert validator(name) is validator(name)  # compiled once


@pytest.mark.parametrize("name", ["mention.v1", "scored_mention.v1", "crisis_event.v1"])
def test_valid_examples_pass(name: str) -> None:
    docs = json.loads((EXAMPLES / f"{name}.valid.json").read_text())
    assert docs
    for doc in docs:
        validator(name).validate(doc)


@pytest.mark.parametrize("name", ["mention.v1", "scored_mention.v1", "crisis_event.v1"])
def test_invalid_examples_fail_with_a_readable_reason(name: str) -> None:
    cases = json.loads((EXAMPLES / f"{name}.invalid.json").read_text())
    assert cases
    for case in cases:
        with pytest.raises(SchemaError) as info:
            validator(name).validate(case["document"])
        msg = str(info.value)
        assert msg.startswith(f"{name}: ")
        assert case["error"] in msg, (case, msg)


def test_unknown_schema_is_a_clear_error() -> None:
    with pytest.raises(SchemaError, match=r"unknown schema 'mention\.v9'"):
        validator("mention.v9")


def test_rfc3339_parser_requires_an_offset() -> None:
    assert schemas.parse_rfc3339("2026-01-01T00:00:00Z").timestamp() == 1767225600.0
    with pytest.raises(ValueError):
        schemas.parse_rfc3339("2026-01-01T00:00:00")


# The fast (Rust) and the reference validator must agree on every document.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        ["2026-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01t10:00:00.5+01:00", "x"]
    ),
)
_mentions = st.fixed_dictionaries(
    {},
    optional={
        k: _scalars
        for k in (
            "id",
            "brand",
            "text",
            "created_at",
            "author",
            "author_followers",
            "lang",
            "sentiment",
            "extra",
        )
    },
)


@settings(max_examples=400, deadline=None)
@given(_mentions)
def test_fast_and_reference_validators_agree(doc: dict) -> None:
    v = validator("mention.v1")
    assert v._fast is not None
    assert bool(v._fast.is_valid(doc)) == bool(v._v.is_valid(doc))
