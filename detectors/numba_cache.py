"""Drop a package's numba cache when any of its sources changed.

numba keys a cached kernel on the decorated function's own file (its
modification time and size). A kernel that calls or inlines a jitted
function from another file keeps the old machine code after only that
other file changed: ``combined.crisis_update`` inlines
``negative_share.negshare_z_step``, so an edit of the latter left the
crisis detector computing the previous negative-share arithmetic in a
source checkout (a fresh install or image has no cache, so it is safe).
numba documents this limitation; the remedy here is a digest of the
package's ``*.py`` beside its cache files, checked once at import: when
it differs, the package's ``*.nbi`` / ``*.nbc`` files are removed and the
kernels compile afresh.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

STAMP = "crisiswatch-sources.sha1"


def _cache_dirs(package_dir: Path) -> list[Path]:
    dirs = [package_dir / "__pycache__"]
    user = os.environ.get("NUMBA_CACHE_DIR")
    if user:
        try:  # numba's own rule for where a source directory's cache lives
            from numba.core.caching import _CacheLocator

            sub = _CacheLocator.get_suitable_cache_subpath(str(package_dir / "x.py"))
            dirs.append(Path(user) / sub)
        except (ImportError, AttributeError):  # pragma: no cover - numba internals moved
            pass
    return dirs


def sources_digest(package_dir: Path) -> str:
    h = hashlib.sha1()
    for f in sorted(package_dir.glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def drop_if_sources_changed(package_dir: Path) -> list[Path]:
    """Remove ``package_dir``'s numba cache files if its sources changed; returns them."""
    digest = sources_digest(package_dir)
    removed: list[Path] = []
    for d in _cache_dirs(package_dir):
        stamp = d / STAMP
        try:
            if stamp.read_text() == digest:
                continue
        except OSError:
            pass
        for f in [*d.glob("*.nbi"), *d.glob("*.nbc")]:
            try:
                f.unlink()
                removed.append(f)
            except OSError:
                pass
        try:
            d.mkdir(parents=True, exist_ok=True)
            stamp.write_text(digest)
        except OSError:  # a read-only install: numba then caches elsewhere or not at all
            pass
    return removed
