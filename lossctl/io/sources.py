"""Where the bytes come from: ``PATH:KEY`` resolution, files, FIFOs and standard input.

Sources
    A path; ``-`` for standard input; ``PATH:KEY`` when ``PATH:KEY`` itself is not an
    existing file but ``PATH`` is (the longest such ``PATH``: ``ck.json:a:b`` is the
    key ``a:b``); ``-:KEY`` works for standard input (on the command line after ``--``,
    where it cannot look like an option).  A key given both ways must agree.

Opening
    A path is opened once (non-blocking, so that opening a FIFO never waits for a
    writer; never as a controlling terminal), and what was opened is ``fstat``-ed and
    read from that same descriptor: nothing is checked by name and then opened again.
    Regular files are handed on open (the readers memory-map them through the
    descriptor); FIFOs and pipes (``<(python dump.py)``, ``mkfifo``, ``/dev/stdin``)
    are read like standard input; directories, sockets and devices are refused.

Streams
    Standard input and FIFOs are buffered into memory, because ``np.load`` and the zip
    readers need a seekable file, up to :func:`stream_limit` bytes each (a quarter of
    physical memory, at most 2 GiB; ``LOSSCTL_STREAM_LIMIT`` changes it): past it the
    read stops with one line that says to save the data to a file, which is
    memory-mapped instead.  A FIFO that no process has opened for writing is waited
    for :func:`fifo_wait` seconds (``LOSSCTL_FIFO_WAIT``, default 10), then refused;
    once a writer is there, lossctl reads until it closes the FIFO.
"""

from __future__ import annotations

import io
import math
import os
import re
import select
import stat
import sys
from typing import IO, Any, BinaryIO

from lossctl.errors import ReadError
from lossctl.io.text import oneline

__all__ = [
    "FIFO_WAIT_ENV",
    "STDIN_NAME",
    "STREAM_LIMIT_ENV",
    "fifo_identity",
    "fifo_wait",
    "not_regular",
    "open_descriptor",
    "open_input",
    "read_stdin",
    "read_stream",
    "resolve_spec",
    "stream_limit",
]

STDIN_NAME = "<stdin>"
STREAM_LIMIT_ENV = "LOSSCTL_STREAM_LIMIT"
FIFO_WAIT_ENV = "LOSSCTL_FIFO_WAIT"
MAX_DEFAULT_LIMIT = 2 << 30  # 2 GiB
DEFAULT_FIFO_WAIT = 10.0
_CHUNK = 1 << 20
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)


def resolve_spec(spec: str, key: str | None) -> tuple[str, str, str | None]:
    """Split ``PATH:KEY``; return (path or "-", display name, key)."""
    path = spec
    spec_key: str | None = None
    if spec != "-" and ":" in spec and not os.path.exists(spec):
        # the longest existing PATH: ck.json:a:b is the key "a:b" of ck.json
        colons = [i for i, char in enumerate(spec) if char == ":"]
        for i in reversed(colons):
            head, tail = spec[:i], spec[i + 1 :]
            if head == "-" or (head and os.path.exists(head)):
                path, spec_key = head, tail
                break
    source = STDIN_NAME if path == "-" else path
    if spec_key is not None:
        if not spec_key:
            raise ReadError(source, "empty key after ':'; write FILE:KEY, e.g. data.npz:logits")
        if key is not None and key != spec_key:
            raise ReadError(
                source,
                f"two different keys given: {spec_key!r} in {spec!r} and {key!r} via --key; "
                "give only one",
            )
        key = spec_key
    return path, source, key


# ---------------------------------------------------------------- limits


def stream_limit() -> int:
    """The most bytes one stream (standard input, a FIFO) may hold."""
    text = os.environ.get(STREAM_LIMIT_ENV, "").strip()
    if not text:
        return _default_limit()
    match = _SIZE.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise ReadError(
            STREAM_LIMIT_ENV,
            f"{text!r} is not a size: give bytes, or a number with K, M, G or T "
            f"(binary units), e.g. {STREAM_LIMIT_ENV}=8G",
        )
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def _default_limit() -> int:
    """A quarter of physical memory, at most 2 GiB (2 GiB when it cannot be found)."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return MAX_DEFAULT_LIMIT
    return MAX_DEFAULT_LIMIT if physical <= 0 else min(MAX_DEFAULT_LIMIT, physical // 4)


def fifo_wait() -> float:
    """Seconds to wait for a process to open a FIFO for writing (``inf``: no limit)."""
    text = os.environ.get(FIFO_WAIT_ENV, "").strip()
    if not text:
        return DEFAULT_FIFO_WAIT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not seconds >= 0:
        raise ReadError(
            FIFO_WAIT_ENV,
            f"{text!r} is not a number of seconds, e.g. {FIFO_WAIT_ENV}=60 "
            "(inf: wait as long as it takes)",
        )
    return seconds


def _size(count: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if count >= _UNITS[unit] and count % _UNITS[unit] == 0:
            return f"{count // _UNITS[unit]} {unit}iB"
    return f"{count} bytes"


# ---------------------------------------------------------------- streams


def read_stdin(stdin: BinaryIO | None) -> bytes:
    """All of standard input, within :func:`stream_limit`."""
    stream: Any = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise ReadError(STDIN_NAME, "standard input is not available")
    data = read_stream(stream, STDIN_NAME, "standard input")
    if not data:
        raise ReadError(
            STDIN_NAME,
            "standard input is empty; pipe a file in, e.g. "
            "`cat logits.json | lossctl ce - labels.json`",
        )
    return data


def read_stream(stream: Any, source: str, what: str) -> bytes:
    """Everything ``stream`` gives until its end, in chunks: refused past the limit."""
    limit = stream_limit()
    buffer = io.BytesIO()
    total = 0
    while True:
        chunk = _chunk(stream, min(_CHUNK, limit + 1 - total), source, what)
        if not chunk:
            return buffer.getvalue()
        buffer.write(chunk)
        total += len(chunk)
        if total > limit:
            raise ReadError(
                source,
                f"more than {_size(limit)} on {what}, the limit for a stream (it is held in "
                f"memory); save the data to a file and give its path (files are memory-mapped), "
                f"or raise the limit with {STREAM_LIMIT_ENV}, e.g. {STREAM_LIMIT_ENV}=8G",
            )


def _chunk(stream: Any, size: int, source: str, what: str) -> bytes:
    """One read; waits when the stream is non-blocking and has nothing yet."""
    while True:
        try:
            data = stream.read(size)
        except BlockingIOError:
            data = None
        except OSError as exc:
            raise ReadError(source, f"cannot read {what}: {_os_reason(exc)}") from None
        if data is None:
            select.select([stream], [], [])  # the writer is the user's: no time limit
            continue
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ReadError(source, f"{what} did not return bytes")
        return bytes(data)


# ---------------------------------------------------------------- paths


def open_descriptor(path: str) -> int:
    """``os.open`` for reading that never blocks on a FIFO and never takes a terminal."""
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def is_stdin_spec(spec: str) -> bool:
    """``-`` or ``-:KEY`` (unless a file of that name exists)."""
    return spec == "-" or (spec.startswith("-:") and not os.path.exists(spec))


def fifo_identity(spec: str) -> tuple[int, int] | None:
    """(device, inode) when ``spec`` (a path or ``PATH:KEY``) names a FIFO or pipe, which
    can be read only once; ``None`` otherwise (the read says what is wrong, if anything)."""
    try:
        info = os.stat(resolve_spec(spec, None)[0])
    except (ReadError, OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISFIFO(info.st_mode) else None


def open_input(path: str, source: str) -> IO[bytes] | bytes:
    """A regular file, open; or the bytes of a FIFO, read to its end (within the limit)."""
    try:
        fd = open_descriptor(path)
    except FileNotFoundError:
        raise ReadError(
            source, "no such file; check the path (use `-` to read standard input)"
        ) from None
    except NotADirectoryError:
        raise ReadError(
            source, "no such file (a part of the path is not a directory); check the path"
        ) from None
    except IsADirectoryError:
        raise ReadError(source, _DIRECTORY) from None
    except (OSError, ValueError) as exc:
        raise ReadError(source, _open_problem(path, exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISFIFO(mode):
            problem = not_regular(mode)
            if problem:
                raise ReadError(source, problem)
            return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    try:
        return _read_fifo(fd, source)
    finally:
        os.close(fd)


def _open_problem(path: str, exc: BaseException) -> str:
    """Why ``path`` could not be opened: what it is (a socket gives ENXIO), else the error."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        mode = stat.S_IFREG
    if not stat.S_ISFIFO(mode) and not_regular(mode):
        return str(not_regular(mode))
    if isinstance(exc, PermissionError):
        return "permission denied; make the file readable, e.g. `chmod +r FILE`"
    return f"cannot access the file: {_os_reason(exc)}"


def _read_fifo(fd: int, source: str) -> bytes:
    """Wait (bounded) for a writer, then read like standard input."""
    seconds = fifo_wait()
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    timeout = None if seconds > 1e6 else math.ceil(seconds * 1000)  # > 11 days: no limit
    if not poller.poll(timeout):  # a FIFO without a writer reports nothing, not POLLHUP
        raise ReadError(
            source,
            f"no process is writing to this FIFO (waited {seconds:g} s); start the writer "
            f"first, e.g. `python dump.py > {source} &`, or wait longer with "
            f"{FIFO_WAIT_ENV}=60",
        )
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb", buffering=0, closefd=False) as raw:
        data = read_stream(raw, source, "this FIFO")
    if not data:
        raise ReadError(source, "the FIFO is empty: its writer closed it without writing")
    return data


_STREAM_HINT = "not a regular file or a FIFO; to read a stream use `-` with a redirect"
_DIRECTORY = "is a directory, not a file; give the path of a .json, .csv, .npy or .npz file"


def not_regular(mode: int) -> str | None:
    """Why a file of this mode cannot be read as an input (``None``: a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return _DIRECTORY
    if stat.S_ISSOCK(mode):
        return f"is a socket, {_STREAM_HINT}"
    if stat.S_ISCHR(mode):
        return f"is a character device, {_STREAM_HINT}"
    if stat.S_ISBLK(mode):
        return f"is a block device, {_STREAM_HINT}"
    return f"is {_STREAM_HINT}"


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return oneline(exc)
