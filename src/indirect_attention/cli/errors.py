"""The error contract of ``ia`` (DESIGN rule 10).

A user's mistake (a bad value, a missing or unreadable file, the wrong kind of checkpoint, an
incompatible resume) ends with exactly one line on stderr that names the argument or file, what
was received and what was expected, and exit status 2. A bug still shows its traceback.

The library raises ``ValueError`` (and ``FileNotFoundError`` and its ``OSError`` relatives for
files) at its public entry points, with the received and expected values in the message; the CLI
raises :class:`UserError`. :func:`report` turns any of them into the one line.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

__all__ = ["USER_ERRORS", "OneLineParser", "UserError", "one_line", "report"]


class UserError(ValueError):
    """A mistake in what the user gave: one line on stderr and exit status 2, no traceback."""


#: Exceptions that mean a user's mistake when they reach the command line.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # UserError, json.JSONDecodeError, UnicodeDecodeError, library checks
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (an ``OSError`` as ``file: reason``)."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def report(prog: str, error: BaseException) -> int:
    """Print ``prog: error: <message>`` as one line on stderr and return exit status 2."""
    print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
    return 2


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (``ia detr train: error: ...``)
    instead of the usage block and the line; ``--help`` still prints the full usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} -h)\n")
