"""Running the `crisiswatch` command line in tests, and reading its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.kafka_support import PROJECT


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m streams ARGS` with no CRISISWATCH_* setting but ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CRISISWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT,
    )


def one_line_error(p: subprocess.CompletedProcess[str]) -> str:
    """The error line of a run that failed the way a user's mistake must: one line, no traceback."""
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert lines[0].startswith("crisiswatch: error: ")
    return lines[0]
