"""The backtest's JSONL reader: the lines a plain split gives, blank ones skipped,
whatever falls on a block boundary."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import backtest
from streams.backtest import read_chunks

PIECES = [b"a", b"", b" ", b"\t\r", b"xy", b"\r", b" b ", b"\x0b", b"\x01", b'{"id":"m1"}', b"\r\r"]


def expected(data: bytes) -> list[bytes]:
    lines = [line.rstrip(b"\r") for line in data.split(b"\n")]
    return [line for line in lines if line and not line.isspace()]


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.sampled_from(PIECES), max_size=25),
    end=st.sampled_from([b"", b"\n", b"\r\n", b"\r"]),
    block=st.integers(1, 9),
    size=st.integers(1, 4),
)
def test_read_chunks_is_a_split_without_blank_lines(
    tmp_path_factory: pytest.TempPathFactory, parts: list[bytes], end: bytes, block: int, size: int
) -> None:
    data = b"\n".join(parts) + end
    path = tmp_path_factory.mktemp("r") / "m.jsonl"
    path.write_bytes(data)
    old = backtest.READ_BLOCK
    backtest.READ_BLOCK = block  # tiny blocks: every line crosses a boundary somewhere
    try:
        chunks = list(read_chunks(path, size))
    finally:
        backtest.READ_BLOCK = old
    assert [line for c in chunks for line in c] == expected(data)
    assert all(len(c) == size for c in chunks[:-1]) and all(chunks)


def test_read_chunks_of_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(backtest.InputFileError, match="no such file"):
        list(read_chunks(tmp_path / "none.jsonl"))
