"""Safe output: atomic result files (``--output``).

``--output FILE`` writes the result to ``FILE``: the array as NumPy ``.npy`` when the
name ends in ``.npy``, otherwise the JSON document that ``--json`` prints. The file
is written atomically: the bytes go to a hidden temporary file in the same
directory (``.NAME.<random>.tmp``), which is flushed, ``fsync``-ed and then renamed
over ``FILE`` with :func:`os.replace`. A crash or Ctrl-C therefore never leaves a
truncated ``FILE``: an existing file is replaced only by a complete new one, and on
any exception (``KeyboardInterrupt`` and the ``SystemExit`` that the CLI raises on
every catchable terminating signal included) the temporary file is removed. Only
a hard kill (``SIGKILL``, power loss) can leave the hidden temporary file behind;
``FILE`` itself is still either the old or the new version.

A symbolic link is followed (the file it points to is replaced, the link stays);
character devices and FIFOs (``/dev/null``, ``/dev/stdout``, a named pipe) are
written directly, as atomic replacement makes no sense for them. A replaced file
keeps its permission bits; a new one gets the usual ``0666 & ~umask``.

Nothing here prints; failures raise :class:`OutputError` (exit code 1) with a
one-line message.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
from collections.abc import Callable, Mapping
from typing import IO, Any

from lossctl.errors import LossctlError
from lossctl.io.encoding import json_for_encoding

__all__ = [
    "OutputError",
    "check_output_path",
    "is_npy_path",
    "write_atomic",
    "write_result",
]

_REFUSED_EXTENSIONS = {
    ".npz": "use .npy for the array or .json for the JSON document",
    ".csv": "lossctl writes .npy (the array) or JSON; use .npy or .json",
    ".tsv": "lossctl writes .npy (the array) or JSON; use .npy or .json",
}


class OutputError(LossctlError):
    """The result could not be written; ``str(err)`` names the file and the reason."""


def is_npy_path(path: str) -> bool:
    """Whether ``--output PATH`` means the ``.npy`` array (by extension, any case)."""
    return path.lower().endswith(".npy")


def check_output_path(path: str) -> str | None:
    """A reason ``path`` cannot be an ``--output`` file, or ``None`` if it looks writable.

    A cheap check made before any computation, so that a long run does not end in
    "no such directory". Writing can still fail later (full disk, a race).
    """
    if not path:
        return "empty file name"
    extension = os.path.splitext(path)[1].lower()
    if extension in _REFUSED_EXTENSIONS:
        return f"cannot write {extension} files: {_REFUSED_EXTENSIONS[extension]}"
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        return f"{path!r} names a directory; give a file name"
    try:
        info: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        info = None
    except OSError as error:
        return f"cannot access {path!r}: {_reason(error)}"
    if info is not None and not stat.S_ISREG(info.st_mode):
        problem = _special_problem(info.st_mode)
        if problem:
            return f"{path!r} {problem}"
        if not os.access(path, os.W_OK):
            return f"{path!r} is not writable"
        return None
    directory = os.path.dirname(os.path.realpath(path))
    shown = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        return f"directory {shown!r} does not exist"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"directory {shown!r} is not writable"
    return None


def write_result(path: str, document: Mapping[str, Any], array: Any) -> None:
    """Write ``array`` as ``.npy`` when ``path`` ends in ``.npy``, else ``document`` as JSON.

    ``array`` is anything :func:`numpy.asarray` takes (a float gives a 0-d array).
    Raises :class:`OutputError`; see the module docstring for the guarantees.
    """
    if is_npy_path(path):
        import numpy as np

        values = None if array is None else np.asarray(array)
        if values is None or values.dtype.kind not in "iuf":  # never objects or pickles
            raise OutputError(
                f"cannot write {path}: this command's result is not an array of numbers; "
                "give a file name that does not end in .npy to get the JSON document"
            )

        def save(handle: IO[bytes]) -> None:
            np.save(handle, values, allow_pickle=False)

        write_atomic(path, save)
        return
    from lossctl.io.documents import dumps

    data = json_for_encoding(dumps(dict(document)), "utf-8").encode("utf-8")
    write_atomic(path, lambda handle: _write_chunked(handle, data))


def _write_chunked(handle: IO[bytes], data: bytes, chunk: int = 1 << 20) -> None:
    view = memoryview(data)
    for start in range(0, len(view), chunk):
        handle.write(view[start : start + chunk])


def write_atomic(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Create or replace ``path`` with what ``write`` writes, all or nothing.

    ``write`` gets a binary file opened on a temporary file beside the target.
    Raises :class:`OutputError` for operating-system errors; any other exception
    from ``write`` (and ``KeyboardInterrupt``) propagates after the temporary file
    has been removed.
    """
    try:
        info: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        info = None
    except OSError as error:
        raise OutputError(f"cannot write {path}: {_reason(error)}") from None
    if info is not None and not stat.S_ISREG(info.st_mode):
        problem = _special_problem(info.st_mode)
        if problem:
            raise OutputError(f"cannot write {path}: it {problem}")
        _write_special(path, write)
        return
    target = os.path.realpath(path)  # replace what a symlink points to, keep the link
    directory, name = os.path.split(target)
    held = _hold_signals()  # a signal between creating the file and the try would leak it
    try:
        temporary, fd = _create_temporary(path, directory, name)
        _IN_PROGRESS.add(temporary)
    except BaseException:
        _release_signals(held)
        raise
    try:
        _release_signals(held)  # a signal that came meanwhile is handled here, inside the try
        with os.fdopen(fd, "wb") as handle:
            if info is not None:
                with contextlib.suppress(OSError):  # keeping the mode is a courtesy
                    os.fchmod(handle.fileno(), stat.S_IMODE(info.st_mode))
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException as error:
        _remove(temporary)
        if isinstance(error, OSError):
            raise OutputError(f"cannot write {path}: {_reason(error)}") from None
        raise
    finally:
        _IN_PROGRESS.discard(temporary)
    _sync_directory(directory)


# Signals that arrive from outside (kill, Ctrl-C, a hang-up); not the faults of this thread.
_SYNCHRONOUS = {
    getattr(signal, n) for n in ("SIGBUS", "SIGSEGV", "SIGFPE", "SIGILL") if hasattr(signal, n)
}


def _hold_signals() -> set[int | signal.Signals] | None:
    """Block asynchronous signals (to be delivered on :func:`_release_signals`); the old mask."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals() - _SYNCHRONOUS)


def _release_signals(previous: set[int | signal.Signals] | None) -> None:
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


_IN_PROGRESS: set[str] = set()  # temporary files being written (for a fatal signal)


def remove_temporaries() -> None:
    """Remove every temporary file still being written: the process is about to end
    without unwinding (SIGBUS, see :mod:`lossctl.cli.sigbus`)."""
    for temporary in list(_IN_PROGRESS):
        _remove(temporary)


def _create_temporary(path: str, directory: str, name: str) -> tuple[str, int]:
    # read-write: a streamed .npy (io.npy_writer) maps the file to write strided blocks
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temporary = os.path.join(directory or ".", f".{name[:64]}.{os.urandom(6).hex()}.tmp")
        try:
            return temporary, os.open(temporary, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as error:
            raise OutputError(f"cannot write {path}: {_reason(error)}") from None
    raise OutputError(f"cannot write {path}: could not create a temporary file beside it")


def _special_problem(mode: int) -> str | None:
    """Why ``--output`` refuses an existing non-regular file; ``None`` for devices and FIFOs."""
    if stat.S_ISDIR(mode):
        return "is a directory; give a file name"
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return None
    return "is not a regular file, a character device or a FIFO"


def _write_special(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """A character device or FIFO: write straight into it (no temporary file, no rename)."""
    try:
        with open(path, "wb") as handle:
            write(handle)
    except BrokenPipeError:
        raise  # -o /dev/stdout into a closed pipe: the quiet exit 141, not an error line
    except OSError as error:
        raise OutputError(f"cannot write {path}: {_reason(error)}") from None


def _remove(temporary: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(temporary)


def _sync_directory(directory: str) -> None:
    """Make the rename durable; best effort (not every platform can fsync a directory)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(error: OSError) -> str:
    return error.strerror or str(error)
