"""Exceptions that carry a user-facing, one-line message, and the exit statuses.

The CLI turns every :class:`LossctlError` into one line on stderr and its
``exit_code``; nothing else should escape as a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum


class ExitStatus(IntEnum):
    """Every way ``lossctl`` ends (docs/errors.md)."""

    SUCCESS = 0
    INPUT = 1  # invalid input data: unreadable file, bad values, shapes that do not fit
    USAGE = 2  # command-line usage (typer/click's own code)
    INTERNAL = 3  # a bug in lossctl: one line on stderr, the traceback with LOSSCTL_DEBUG=1
    INTERRUPTED = 130  # Ctrl-C
    BROKEN_PIPE = 141  # stdout closed by the reader (128 + SIGPIPE); nothing on stderr
    TERMINATED = 143  # SIGTERM


class LossctlError(Exception):
    """A problem with the user's input; ``str(err)`` is the one-line message."""

    exit_code: ExitStatus = ExitStatus.INPUT


class InputError(LossctlError):
    """Values, shapes or options that PyTorch (or lossctl) refuses.

    ``subject`` says which argument is at fault (``"input"``, ``"target"`` or
    ``"weight"``) so the CLI can name the file; ``None`` when it is an option or
    the combination of several.
    """

    def __init__(self, message: str, subject: str | None = None) -> None:
        super().__init__(message)
        self.subject = subject

    def located(self, sources: Mapping[str, str | None]) -> InputError:
        """This error prefixed with the file (or option) it is about, as ``sources`` names
        them (``{"input": "x.npy", "target": "y.npy", "weight": "w.json"}``)."""
        where = sources.get(self.subject or "")
        if self.subject == "weight":
            where = f"--weight {where}" if where else "--weight"
        return InputError(f"{where}: {self}" if where else str(self))


class ReadError(LossctlError):
    """A file or stream that cannot be read or parsed into an array.

    ``source`` names the file (``"<stdin>"`` for ``-``); the message already
    includes it.
    """

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.detail = message
