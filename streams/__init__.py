"""crisiswatch stream processors: the Faust app, agents, sentiment, CLI."""

from __future__ import annotations

__version__ = "0.1.0"
