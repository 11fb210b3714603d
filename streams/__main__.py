"""``python -m streams`` is ``crisiswatch``."""

from __future__ import annotations

from .cli import main

main()
