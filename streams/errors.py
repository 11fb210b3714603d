"""The project's own error types.

Every error a user can cause (bad settings, unreachable broker, bad input
file) is a :class:`CrisiswatchError`; the CLI prints its message on one line
and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class CrisiswatchError(Exception):
    """Base class: the message says what was wrong and what to do."""

    exit_code = 1


class ConfigError(CrisiswatchError):
    """A setting is missing or invalid."""

    exit_code = 2


class BrokerUnavailable(CrisiswatchError):
    """Kafka could not be reached."""

    exit_code = 3


class NotAuthorized(CrisiswatchError):
    """The broker refused an operation to this client's identity (its ACLs)."""

    exit_code = 5


class InputFileError(CrisiswatchError):
    """A file given on the command line cannot be read or parsed."""

    exit_code = 4
