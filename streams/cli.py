"""The ``crisiswatch`` command line.

Subcommands live in their own modules and are attached here; each reads the
settings once (``load_settings``) and passes them down. Errors a user can
cause are :class:`~streams.errors.CrisiswatchError`: printed on one line,
non-zero exit, no traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from . import __version__
from .errors import CrisiswatchError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CrisiswatchError as exc:
            click.secho(f"crisiswatch: error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("crisiswatch: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="crisiswatch")
def cli() -> None:
    """crisiswatch: real-time brand crisis detection on Kafka."""


def _attach() -> None:
    # Imported here so `crisiswatch --help` stays fast and a broken optional
    # module cannot take the whole CLI down.
    from . import cli_commands

    for cmd in cli_commands.commands():
        cli.add_command(cmd)


def main(argv: list[str] | None = None) -> None:
    _attach()
    cli.main(args=argv, prog_name="crisiswatch")
