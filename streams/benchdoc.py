"""Sections of ``docs/benchmarks.md``: each benchmark command owns the text between its markers.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "b.md"
>>> write_section(p, "demo", "## Demo\\n\\nfirst")
>>> write_section(p, "demo", "## Demo\\n\\nsecond", keep_history=True)
>>> print(p.read_text())
# Benchmarks
<BLANKLINE>
<!-- BEGIN demo -->
## Demo
<BLANKLINE>
second
<BLANKLINE>
### Earlier run
<BLANKLINE>
first
<!-- END demo -->
<BLANKLINE>
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
from pathlib import Path

__all__ = ["machine", "write_section"]


def machine() -> str:
    """One line naming the machine, for the figures of a benchmark."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def write_section(path: Path, name: str, body: str, *, keep_history: bool = False) -> None:
    """Replace the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` (append the
    section if absent). With ``keep_history`` the previous run stays below the new one under
    "Earlier run" (only the latest earlier run is kept), without its picture lines
    (``![...](...)``): the new run has overwritten the file they show."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        old, _, tail = rest.partition(end)
        history = ""
        if keep_history:
            title = body.splitlines()[0] if body else ""
            previous = old.strip().split("\n### Earlier run\n", 1)[0]
            previous = previous.removeprefix(title).strip()
            previous = re.sub(r"\n*^!\[.*$", "", previous, flags=re.M).strip()
            if previous:
                history = "\n\n### Earlier run\n\n" + previous
        text = f"{head}{begin}\n{body}{history}\n{end}{tail}"
    else:
        text = text.rstrip("\n") + f"\n\n{begin}\n{body}\n{end}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
