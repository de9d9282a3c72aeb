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
from collections.abc import Sequence
from typing import NoReturn

import typer

from lossctl.cli.sigbus import install_sigbus_handler
from lossctl.cli.streams import (
    Environment,
    StdoutClosed,
    current,
    forget_interrupt,
    installed,
    reason,
    report_interrupt,
    safely,
    stderr_line,
    warnings_after_result,
)
from lossctl.errors import ExitStatus, LossctlError


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the ``lossctl`` script and ``python -m lossctl``; never returns."""
    single_threaded_blas()
    install_signal_handlers()
    install_sigbus_handler()
    try:
        code = run_cli(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:  # a second Ctrl-C while finishing up
        code = ExitStatus.INTERRUPTED
    sys.exit(int(code))


BLAS_THREADS_ENV = "OPENBLAS_NUM_THREADS"


def single_threaded_blas() -> None:
    """One OpenBLAS thread unless ``$OPENBLAS_NUM_THREADS`` says otherwise, set before NumPy
    loads: lossctl calls no BLAS routine, and NumPy's import would otherwise start a
    thread per core that spins on a small input (a third of the CPU time of ``ce`` on the
    seed example); the kernel's own threads are ``$LOSSCTL_THREADS``."""
    os.environ.setdefault(BLAS_THREADS_ENV, "1")


def run_cli(args: list[str], environment: Environment | None = None) -> int:
    """Run the app outside click's standalone mode; map every way out to a documented code.

    0 success; 1 invalid input (one ``lossctl: error:`` line); 2 command-line usage
    (click's message); 3 internal error (one line; ``LOSSCTL_DEBUG=1`` adds the
    traceback); 130 interrupted (``lossctl: interrupted``); 141 standard output
    closed by its reader (nothing on stderr). See docs/errors.md. ``environment``: the
    streams to use (tests inject their own); the process's by default.
    """
    if environment is None:
        prepare_streams()
        environment = Environment.from_process()
    with installed(environment):
        return _run(args)


THREADS_ENV = "LOSSCTL_THREADS"  # kernel threads (a whole number >= 1); default min(2, cores)


def _configure_threads() -> None:
    """``$LOSSCTL_THREADS`` for the numeric kernel, read here so the core reads no environment."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if text.isdigit():
        from lossctl.core.threads import set_workers

        set_workers(int(text))


def _run(args: list[str]) -> int:
    forget_interrupt()
    _configure_threads()
    stdout_before = _stdout_identity()
    if not _debugging():
        # A stray Python warning (NumPy's "overflow encountered in multiply") would print
        # two lines of source on stderr; lossctl reports what matters as its own
        # "lossctl: warning:" lines (collect_warnings records warnings despite this).
        warnings.simplefilter("ignore")
    try:
        from lossctl.cli.app import app_for

        with warnings_after_result():  # the result first; a dead stderr never costs it
            result = app_for(args)(args, standalone_mode=False)
            stdout = current().stdout
            if stdout is not None:  # what was printed outside write_stdout (click's --help)
                try:
                    stdout.flush()
                except BrokenPipeError:
                    raise
                except OSError as error:
                    raise LossctlError(
                        f"cannot write to standard output: {reason(error)}"
                    ) from None
    except (StdoutClosed, BrokenPipeError):
        return stdout_closed()
    except LossctlError as error:  # raised outside a command (--version, the final flush)
        stderr_line(f"lossctl: error: {' '.join(str(error).split())}")
        return error.exit_code
    except _CLICK_EXCEPTION as error:
        usage_error_line(error, args)
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
            stderr_line(f"lossctl: error: cannot write to standard output: {reason(error)}")
            return ExitStatus.INPUT
        return internal_error(error)
    except MemoryError:
        stderr_line("lossctl: error: not enough memory for this input (MemoryError)")
        return ExitStatus.INPUT
    except Exception as error:
        return internal_error(error)
    code = result if isinstance(result, int) else 0
    if code == ExitStatus.INTERRUPTED:  # typer turned a KeyboardInterrupt into Exit(130)
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


def prepare_streams() -> None:
    """Make stdout and stderr unable to fail on encoding (``LANG=C``, odd file names)."""
    import io

    from lossctl.io.encoding import UNENCODABLE

    if sys.stderr is None:  # started with stderr closed (2>&-)
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors=UNENCODABLE)


def usage_error_line(error: Exception, args: Sequence[str] = ()) -> None:
    """click's usage error as one line, like every other error:
    ``lossctl: error: <message> (see lossctl CMD --help)``; ``args``: the command line."""
    message = " ".join(str(error.format_message()).split())  # type: ignore[attr-defined]
    if not message:
        return
    stdin_key = next((arg for arg in args if arg.startswith("-:")), None)
    if getattr(error, "option_name", None) == "-:" and stdin_key:  # click's NoSuchOption
        message = (
            f"{stdin_key} (the key {stdin_key[2:]!r} of standard input) is read as an option "
            f"here: write it after `--` (e.g. `lossctl softmax --json -- {stdin_key}`)"
        )
    names = []
    context = getattr(error, "ctx", None)
    while context is not None and getattr(context, "parent", None) is not None:
        names.append(str(context.info_name))  # not the root's: "python -m lossctl" is lossctl
        context = context.parent
    command = " ".join(["lossctl", *reversed(names)])
    hint = f" (see {command} --help)" if int(getattr(error, "exit_code", 1)) == 2 else ""
    stderr_line(f"lossctl: error: {message}{hint}")


# Every catchable signal whose default action ends the process: unwind (so --output
# removes its temporary file) and exit 128 + signum. SIGINT is KeyboardInterrupt; SIGPIPE
# is ignored by Python (a closed stdout is BrokenPipeError, exit 141).
TERMINATING_SIGNALS = tuple(
    getattr(signal, name)
    for name in (
        "SIGTERM",
        "SIGHUP",
        "SIGQUIT",
        "SIGUSR1",
        "SIGUSR2",
        "SIGALRM",
        "SIGVTALRM",
        "SIGPROF",
        "SIGXCPU",
        "SIGXFSZ",
    )
    if hasattr(signal, name)
)


def install_signal_handlers() -> None:
    """Handle :data:`TERMINATING_SIGNALS` that still have their default action."""
    for signum in TERMINATING_SIGNALS:
        with contextlib.suppress(ValueError, OSError):  # ValueError: not the main thread
            if signal.getsignal(signum) == signal.SIG_DFL:
                signal.signal(signum, _terminated)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, ``timeout``), SIGHUP, SIGQUIT, …: unwind like Ctrl-C, so that
    ``--output`` cleans up; exit 128 + signum (143 for SIGTERM)."""
    if signum == signal.SIGTERM:
        stderr_line("lossctl: terminated")
    else:
        stderr_line(f"lossctl: terminated by {signal.Signals(signum).name}")
    raise SystemExit(128 + signum)


def stdout_closed() -> int:
    """Exit quietly when stdout's reader is gone: point fd 1 at /dev/null so the final
    flush at interpreter exit cannot print "Exception ignored ... BrokenPipeError"."""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return ExitStatus.BROKEN_PIPE


def internal_error(error: BaseException) -> int:
    """A bug in lossctl: one line (the traceback too with LOSSCTL_DEBUG=1), exit code 3."""
    if _debugging():
        import traceback

        safely(traceback.print_exc)
    text = " ".join(str(error).split())
    if len(text) > 300:
        text = text[:300] + "..."
    stderr_line(
        f"lossctl: internal error: {type(error).__name__}: {text} "
        "(please report this; set LOSSCTL_DEBUG=1 for the traceback)"
    )
    return ExitStatus.INTERNAL


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


def _debugging() -> bool:
    return os.environ.get("LOSSCTL_DEBUG", "") not in ("", "0")
