"""A real HTTP server on 127.0.0.1 (free port) that records what it receives.

>>> with RecordingServer() as srv:
...     srv.respond("/fail", 500)
...     url = srv.url("/hook")
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class RecordingServer:
    """Records every POST. Per path: a fixed status, or a list of statuses used in turn
    (the last one repeats). ``delay`` slows every response (to catch a process mid-run)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.received: list[Received] = []
        self._statuses: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                path = self.path
                with server._lock:
                    server.received.append(Received(path, dict(self.headers.items()), body))
                    statuses = server._statuses.get(path, [200])
                    status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
                if server.delay:
                    time.sleep(server.delay)
                reply = b"ok" if status < 300 else b"server says no"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def respond(self, path: str, *statuses: int) -> None:
        with self._lock:
            self._statuses[path] = list(statuses)

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, n: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.at(path)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        return self.at(path)

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __iter__(self) -> Iterator[Received]:
        return iter(list(self.received))
