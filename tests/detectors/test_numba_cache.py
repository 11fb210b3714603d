"""The numba cache of a package is dropped when any of its sources changes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from detectors.numba_cache import drop_if_sources_changed

ROOT = Path(__file__).resolve().parents[2]


def test_cache_files_go_when_a_source_changes(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("X = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    (cache / "a.f-1.py311.nbi").write_bytes(b"index")
    (cache / "a.f-1.py311.1.nbc").write_bytes(b"code")
    (cache / "a.cpython-311.pyc").write_bytes(b"bytecode")
    # No stamp yet: the files may be from any version of the sources.
    assert len(drop_if_sources_changed(tmp_path)) == 2
    assert [p.name for p in cache.iterdir() if p.suffix in (".nbi", ".nbc")] == []
    (cache / "a.f-1.py311.nbi").write_bytes(b"index")
    assert drop_if_sources_changed(tmp_path) == []  # same sources: kept
    (tmp_path / "a.py").write_text("X = 2\n")
    assert [p.name for p in drop_if_sources_changed(tmp_path)] == ["a.f-1.py311.nbi"]
    assert (cache / "a.cpython-311.pyc").exists()  # only numba's files


PKG_INIT = """
from pathlib import Path
from detectors.numba_cache import drop_if_sources_changed
drop_if_sources_changed(Path(__file__).parent)
"""

INNER = """
import numba
@numba.njit(cache=True, inline="always")
def inner(x):
    return x + {add}
"""

OUTER = """
import numba
from .inner import inner
@numba.njit(cache=True)
def outer(x):
    return inner(x) * 10
"""


def _outer_of_1(pkg_parent: Path, env: dict[str, str]) -> int:
    out = subprocess.run(
        [sys.executable, "-c", "from pkgx.outer import outer; print(outer(1))"],
        cwd=pkg_parent,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def test_a_kernel_inlining_another_files_kernel_sees_its_change(tmp_path: Path) -> None:
    """The failure it prevents: outer.py unchanged, inner.py edited, stale outer kept."""
    pkg = tmp_path / "pkgx"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(PKG_INIT))
    (pkg / "inner.py").write_text(textwrap.dedent(INNER.format(add=1)))
    (pkg / "outer.py").write_text(textwrap.dedent(OUTER))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("NUMBA_DISABLE_JIT", None)
    assert _outer_of_1(tmp_path, env) == 20
    assert any(pkg.joinpath("__pycache__").glob("outer.*.nbi"))  # cached
    (pkg / "inner.py").write_text(textwrap.dedent(INNER.format(add=2)))
    assert _outer_of_1(tmp_path, env) == 30
