"""The standard streams, injectable: where lossctl reads input and writes results and lines.

As httpie's ``Environment``: the CLI never touches ``sys.stdin``/``sys.stdout``/
``sys.stderr`` directly but asks :func:`current` for the :class:`Environment` of this
run. :func:`lossctl.cli.process.run_cli` installs one (tests pass their own, with
``io.BytesIO``/``io.StringIO`` streams); without one, the process's streams are used
as they are at the moment of each call (so ``typer.testing.CliRunner`` works too).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any, BinaryIO, NamedTuple

from lossctl.errors import ExitStatus, LossctlError


class StdoutClosed(Exception):
    """Standard output's reader went away (``| head``); not an OSError, so typer lets it by."""


class Environment(NamedTuple):
    """The streams of one run: binary ``stdin``, text ``stdout`` and ``stderr``."""

    stdin: BinaryIO | None
    stdout: IO[str] | None
    stderr: IO[str] | None

    @staticmethod
    def from_process() -> Environment:
        """The process's streams, as they are now."""
        return Environment(
            stdin=getattr(sys.stdin, "buffer", None), stdout=sys.stdout, stderr=sys.stderr
        )

    def stdin_is_terminal(self) -> bool:
        """Whether ``-`` would wait for typing (a terminal on standard input)."""
        try:
            return bool(self.stdin is not None and self.stdin.isatty())
        except (ValueError, OSError):
            return False

    def stderr_is_terminal(self) -> bool:
        try:
            return bool(self.stderr is not None and self.stderr.isatty())
        except (ValueError, OSError):
            return False


_ENVIRONMENT: contextvars.ContextVar[Environment | None] = contextvars.ContextVar(
    "lossctl_environment", default=None
)


def current() -> Environment:
    """This run's environment (the process's streams when none was installed)."""
    return _ENVIRONMENT.get() or Environment.from_process()


@contextlib.contextmanager
def installed(environment: Environment) -> Iterator[Environment]:
    """Run the block with ``environment`` as :func:`current`."""
    token = _ENVIRONMENT.set(environment)
    try:
        yield environment
    finally:
        _ENVIRONMENT.reset(token)


_NOTES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "lossctl_notes", default=None
)


def note(text: str) -> None:
    """Keep a note for the end of the command: ``lossctl: note:`` lines after a success, or
    folded into the one error line of a failure (so bad input still gets one line)."""
    notes = _NOTES.get()
    if notes is None:
        notes = []
        _NOTES.set(notes)
    notes.append(one_line(text))


def take_notes() -> list[str]:
    """The notes kept so far, forgotten."""
    notes = _NOTES.get() or []
    _NOTES.set(None)
    return notes


def reason(error: OSError) -> str:
    """The operating system's words for ``error``."""
    return error.strerror or str(error)


def one_line(text: str) -> str:
    """``text`` with every run of white space (newlines included) as one space."""
    return " ".join(text.split())


def stderr_line(line: str) -> None:
    """One line on stderr; a closed or broken stderr is ignored (never costs the result)."""
    stream = current().stderr
    if stream is not None:
        safely(lambda: (stream.write(line + "\n"), stream.flush()))


_deferred: list[list[str]] = []


@contextlib.contextmanager
def warnings_after_result() -> Iterator[None]:
    """Hold the ``lossctl: warning:`` lines of the block back until it ends (or an error
    line is written): the result goes to stdout and ``--output`` first, so a dead or full
    stderr can never cost it."""
    _deferred.append([])
    try:
        yield
    finally:
        flush_warnings()
        _deferred.pop()


def flush_warnings() -> None:
    """Write the held-back warnings now (failures to write them are ignored)."""
    if _deferred:
        held, _deferred[-1] = _deferred[-1], []
        for line in held:
            stderr_line(line)


def warn(message: str) -> None:
    """``lossctl: warning: …`` on stderr (held back inside :func:`warnings_after_result`)."""
    line = f"lossctl: warning: {one_line(message)}"
    if _deferred:
        _deferred[-1].append(line)
    else:
        stderr_line(line)


def error_line(message: str) -> None:
    """``lossctl: error: …`` on stderr, after any held-back warnings."""
    flush_warnings()
    stderr_line(f"lossctl: error: {one_line(message)}")


def safely(action: Callable[[], object]) -> None:
    """Run ``action``, ignoring a closed or broken stream."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        action()


def write_stdout(text: str) -> None:
    """Write ``text`` to stdout, all of it or an exception, and flush.

    A buffered writer can report a short count, without an error, when the pipe's
    reader goes away part-way (a blocking write cut short); the text layer ignores
    counts, so that would lose the rest silently. The bytes are therefore written
    to the binary buffer in a loop until all are taken, so that a closed pipe
    always raises :class:`StdoutClosed` (a quiet exit 141).
    """
    stream = current().stdout
    if stream is None:
        raise LossctlError("standard output is closed; redirect it to a file or use --output FILE")
    buffer: Any = getattr(stream, "buffer", None)
    encoding = getattr(stream, "encoding", None)
    if buffer is None or not encoding:  # a plain text stream (tests, embedding)
        stream.write(text)
        stream.flush()
        return
    data = memoryview(text.encode(encoding, getattr(stream, "errors", None) or "strict"))
    try:
        _until_ready(stream.flush, stream)
        fd = _fileno(buffer)
        if fd is not None:  # straight to the descriptor: EAGAIN waits, nothing is lost
            while data:
                data = data[_write_fd(fd, data[: 1 << 16]) :]
            return
        while data:
            written = buffer.write(data[: 1 << 16])
            if not written:  # a non-blocking stream that takes nothing: do not spin
                raise OSError(errno.EAGAIN, "standard output takes no more data")
            data = data[written:]
        buffer.flush()
    except BrokenPipeError:
        raise StdoutClosed() from None  # not an OSError: typer/click must not catch it
    except OSError as error:  # a full disk, an I/O error: not a bug, one error line
        raise LossctlError(f"cannot write to standard output: {reason(error)}") from None


WAIT_SECONDS = 3600.0  # a reader that takes nothing for an hour is gone


def _fileno(stream: Any) -> int | None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fd if isinstance(fd, int) else None


def _wait_writable(fd: int) -> None:
    """Block until ``fd`` (non-blocking, full) can take more (``select``), or give up."""
    import select

    _, ready, _ = select.select([], [fd], [], WAIT_SECONDS)
    if not ready:
        raise OSError(errno.EAGAIN, "standard output took nothing for an hour")


def _write_fd(fd: int, chunk: memoryview) -> int:
    """``os.write`` that waits when a non-blocking descriptor is full; at least 1 byte."""
    while True:
        try:
            written = os.write(fd, chunk)
        except BlockingIOError:
            _wait_writable(fd)
            continue
        if written:
            return written
        _wait_writable(fd)


def _until_ready(flush: Callable[[], object], stream: Any) -> None:
    """``flush()``, waiting while a non-blocking descriptor is full."""
    for _ in range(1 << 20):
        try:
            flush()
            return
        except BlockingIOError:
            fd = _fileno(stream)
            if fd is None:
                raise
            _wait_writable(fd)


def stdout_encoding() -> str | None:
    """The encoding standard output takes (``None``: a plain text stream)."""
    return getattr(current().stdout, "encoding", None)


_interrupt_reported: list[bool] = []


def report_interrupt(*, once: bool = False) -> int:
    """The line for Ctrl-C, and exit status 130; ``once``: unless a command already said it."""
    if not (once and _interrupt_reported):
        stderr_line("lossctl: interrupted")
    _interrupt_reported.append(True)
    return ExitStatus.INTERRUPTED


def forget_interrupt() -> None:
    """A new run: no interrupt reported yet."""
    _interrupt_reported.clear()
