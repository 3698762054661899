"""How the ``trimkit`` command fails: one line on stderr, and an exit status that says what kind of failure.

Every subcommand lets its expected errors (a :class:`~trimkit.errors.TrimkitError`)
reach :func:`trimkit.cli.main.main`, which prints ``trimkit <command>: <message>``
and returns the status below; a traceback means a bug. A script tells the kinds
apart by the status alone, never by reading the message.
"""

from __future__ import annotations

import enum

from ..errors import (
    ConfigError,
    ModelError,
    PromptTooLong,
    RequestDecodeError,
    TrimkitError,
)


class Exit(enum.IntEnum):
    OK = 0
    FAILED = 1  # the command ran and failed, or found problems (doctor)
    USAGE = 2  # the command line or the configuration is wrong (argparse uses 2 too)
    INPUT = 3  # the input cannot be read or is not a Messages request
    TOO_LONG = 4  # the request does not fit the context window even trimmed
    MODEL = 5  # the model is not on this machine, or its files cannot be read
    NOT_INSTALLED = 127  # something it needs is not installed (Claude Code, the server's packages), as a shell says
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT
    BROKEN_PIPE = 141  # the reader of its output went away (``| head``): 128 + SIGPIPE, as other tools exit


class CommandError(TrimkitError):
    """A command cannot go on; ``status`` is the exit status it ends with."""

    def __init__(self, message: str, status: int = Exit.FAILED):
        super().__init__(message)
        self.status = status


STATUS_OF = (
    (ConfigError, Exit.USAGE),
    (RequestDecodeError, Exit.INPUT),
    (PromptTooLong, Exit.TOO_LONG),
    (ModelError, Exit.MODEL),
)


def exit_status(exc: TrimkitError) -> int:
    """The exit status for an error that ends a command."""
    if isinstance(exc, CommandError):
        return exc.status
    return next((status for kind, status in STATUS_OF if isinstance(exc, kind)), Exit.FAILED)
