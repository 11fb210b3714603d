"""Free loopback ports for private brokers, workers and test servers.

Ports are taken *below* the kernel's ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``, usually 32768-60999). A port
inside that range can be stolen between "checked free" and "bound": a client
that keeps reconnecting to a port nobody listens on yet (a broker dialling a
controller that is still starting, a health check polling a worker) may be
given that very port as its own source port, and Linux then completes a TCP
self-connect, so the server's bind fails with "Address already in use". CI
lost a run to exactly that on a three-node cluster's controller port.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path

LOW = 20_000
#: Ports handed out by this process: a caller may start several servers before
#: any of them binds (two workers back to back), and a port that is merely
#: free must not be handed out twice.
_given: set[int] = set()
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_low() -> int:
    """The first port the kernel hands out as a client source port."""
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on ``host:port`` and it can be bound now."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) != 0


def free_port_block(
    offsets: Sequence[int] = (0,), start: int = LOW, stop: int | None = None
) -> int:
    """A base port P, below the ephemeral range, with every ``P + offset`` free.

    The search starts at a point spread by process id so that concurrent runs
    rarely try the same ports, then wraps around the whole window once.
    """
    top = (stop if stop is not None else ephemeral_low()) - max(offsets) - 1
    if top <= start:
        raise RuntimeError(f"no room for ports {list(offsets)} between {start} and {top}")
    span = top - start
    spread = (os.getpid() * 37) % span
    for i in range(0, span, 7):
        base = start + (spread + i) % span
        if any(base + o in _given for o in offsets):
            continue
        if all(port_free(base + o) for o in offsets):
            _given.update(base + o for o in offsets)
            return base
    raise RuntimeError(f"no free port block {list(offsets)} in {start}-{top} on 127.0.0.1")


def free_port() -> int:
    """One free port below the ephemeral range."""
    return free_port_block((0,))
