"""The process around the CLI: entry point, standard streams, signals and exit codes.

0 success; 1 invalid input; 2 usage; 3 internal error; 130 interrupted; 141 standard
output closed by its reader; 143 terminated (see docs/errors.md). The commands
themselves live in :mod:`lossctl.cli.app`, imported when the app runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import warnings
from collections.abc import Callable
from typing import NoReturn

import typer

from lossctl.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    LossctlError,
)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the ``lossctl`` script and ``python -m lossctl``; never returns."""
    with contextlib.suppress(ValueError):  # ValueError: not in the main thread
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _terminated)
    try:
        code = run_cli(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:  # a second Ctrl-C while finishing up
        code = EXIT_INTERRUPTED
    sys.exit(code)


def run_cli(args: list[str]) -> int:
    """Run the app outside click's standalone mode; map every way out to a documented code.

    0 success; 1 invalid input (one ``lossctl: error:`` line); 2 command-line usage
    (click's message); 3 internal error (one line; ``LOSSCTL_DEBUG=1`` adds the
    traceback); 130 interrupted (``lossctl: interrupted``); 141 standard output
    closed by its reader (nothing on stderr). See docs/errors.md.
    """
    _interrupt_reported.clear()
    prepare_streams()
    stdout_before = _stdout_identity()
    if not _debugging():
        # A stray Python warning (NumPy's "overflow encountered in multiply") would print
        # two lines of source on stderr; lossctl reports what matters as its own
        # "lossctl: warning:" lines (collect_warnings records warnings despite this).
        warnings.simplefilter("ignore")
    try:
        from lossctl.cli.app import app

        result = app(args, standalone_mode=False)
        if sys.stdout is not None:  # what was printed outside write_stdout (--version)
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                raise
            except OSError as error:
                raise LossctlError(f"cannot write to standard output: {reason(error)}") from None
    except (StdoutClosed, BrokenPipeError):
        return stdout_closed()
    except LossctlError as error:  # raised outside a command (--version, the final flush)
        _stderr_line(f"lossctl: error: {' '.join(str(error).split())}")
        return error.exit_code
    except _CLICK_EXCEPTION as error:
        if error.format_message().strip():  # type: ignore[attr-defined]
            _safely(error.show)  # type: ignore[attr-defined]
        return int(error.exit_code)  # type: ignore[attr-defined]
    except (typer.Abort, KeyboardInterrupt):
        return report_interrupt(once=True)
    except typer.Exit as error:
        return int(error.exit_code)
    except SystemExit:
        # rich (printing --help) and click end a closed pipe with exit(1): rich after
        # pointing fd 1 at /dev/null, click after wrapping stdout in PacifyFlushWrapper
        if type(sys.stdout).__name__ == "PacifyFlushWrapper" or (
            stdout_before != _stdout_identity() == _devnull_identity()
        ):
            return stdout_closed()
        raise
    except OSError as error:
        if error.errno in _WRITE_ERRNOS:  # click printing --help into a full disk
            _stderr_line(f"lossctl: error: cannot write to standard output: {reason(error)}")
            return EXIT_INPUT
        return internal_error(error)
    except MemoryError:
        _stderr_line("lossctl: error: not enough memory for this input (MemoryError)")
        return EXIT_INPUT
    except Exception as error:
        return internal_error(error)
    code = result if isinstance(result, int) else 0
    if code == EXIT_INTERRUPTED:  # typer turned a KeyboardInterrupt into Exit(130)
        report_interrupt(once=True)
    return code


def _click_exception() -> type[Exception]:
    """click's ``ClickException``: vendored by recent typer (``typer._click``), a separate
    package before; found through the public ``typer.BadParameter`` for both."""
    for base in typer.BadParameter.__mro__:
        if base.__name__ == "ClickException":
            return base
    return typer.BadParameter  # pragma: no cover


_CLICK_EXCEPTION = _click_exception()
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT})
_interrupt_reported: list[bool] = []


class StdoutClosed(Exception):
    """Standard output's reader went away (``| head``); not an OSError, so typer lets it by."""


def prepare_streams() -> None:
    """Make stdout and stderr unable to fail on encoding (``LANG=C``, odd file names)."""
    import io

    from lossctl.io.atomic import UNENCODABLE

    if sys.stderr is None:  # started with stderr closed (2>&-)
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors=UNENCODABLE)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, ``timeout``): unwind like Ctrl-C, so ``--output`` cleans up; 143."""
    _stderr_line("lossctl: terminated")
    raise SystemExit(128 + signum)


def report_interrupt(*, once: bool = False) -> int:
    """The line for Ctrl-C, and exit code 130; ``once``: unless a command already said it."""
    if not (once and _interrupt_reported):
        _stderr_line("lossctl: interrupted")
    _interrupt_reported.append(True)
    return EXIT_INTERRUPTED


def stdout_closed() -> int:
    """Exit quietly when stdout's reader is gone: point fd 1 at /dev/null so the final
    flush at interpreter exit cannot print "Exception ignored ... BrokenPipeError"."""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def internal_error(error: BaseException) -> int:
    """A bug in lossctl: one line (the traceback too with LOSSCTL_DEBUG=1), exit code 3."""
    if _debugging():
        import traceback

        _safely(traceback.print_exc)
    text = " ".join(str(error).split())
    if len(text) > 300:
        text = text[:300] + "..."
    _stderr_line(
        f"lossctl: internal error: {type(error).__name__}: {text} "
        "(please report this; set LOSSCTL_DEBUG=1 for the traceback)"
    )
    return EXIT_INTERNAL


def _stdout_identity() -> tuple[int, int] | None:
    """What file descriptor 1 is (device, inode), or None."""
    try:
        info = os.fstat(1)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _devnull_identity() -> tuple[int, int] | None:
    try:
        info = os.stat(os.devnull)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def reason(error: OSError) -> str:
    return error.strerror or str(error)


def _debugging() -> bool:
    return os.environ.get("LOSSCTL_DEBUG", "") not in ("", "0")


def _stderr_line(line: str) -> None:
    _safely(lambda: (sys.stderr.write(line + "\n"), sys.stderr.flush()))


def _safely(action: Callable[[], object]) -> None:
    """Run ``action``, ignoring a closed or broken stderr."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        action()
