"""Private ports stay below the kernel's ephemeral range (no TCP self-connect theft)."""

from __future__ import annotations

import socket

import pytest

from streams.ports import ephemeral_low, free_port, free_port_block, port_free


def test_free_port_is_below_the_ephemeral_range_and_bindable() -> None:
    port = free_port()
    assert 20_000 <= port < ephemeral_low()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_a_block_keeps_every_offset_below_the_range_and_free() -> None:
    offsets = (0, 1, 2, 1000, 1001, 1002)
    base = free_port_block(offsets)
    assert base + max(offsets) < ephemeral_low()
    assert all(port_free(base + o) for o in offsets)


def test_a_listening_port_is_not_free() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))
        s.listen()
        assert not port_free(s.getsockname()[1])


def test_no_room_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="no room"):
        free_port_block((0, 5000), start=30_000, stop=32_000)


def test_ports_handed_out_are_not_handed_out_again_before_they_bind() -> None:
    """Two workers started back to back must not get the same (still unbound) port."""
    ports = [free_port() for _ in range(5)]
    assert len(set(ports)) == 5
    a = free_port_block((0, 1000))
    b = free_port_block((0, 1000))
    assert not {a, a + 1000} & {b, b + 1000}
