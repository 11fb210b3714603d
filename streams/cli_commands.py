"""Which modules contribute subcommands to ``crisiswatch``.

Each module listed here exposes ``COMMANDS: list[click.Command]``.
"""

from __future__ import annotations

import importlib

import click

MODULES = (
    "streams.cli_core",  # worker, replay, tail, broker, demo, topics
    "streams.cli_offline",  # backtest, generate
    "streams.cli_detectors",  # detect-series, evaluate, tune-series, bench-detectors
    "streams.cli_sentiment",  # train-sentiment, score, evaluate-sentiment, bench-sentiment
    "streams.cli_respond",  # respond
    "streams.cli_bench",  # bench-pipeline
)


def commands() -> list[click.Command]:
    out: list[click.Command] = []
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # module not written yet
                continue
            raise
        out.extend(mod.COMMANDS)
    return out
