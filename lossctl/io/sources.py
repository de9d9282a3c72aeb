"""Where the bytes come from: ``PATH:KEY`` resolution, regular files, standard input.

Sources
    A path; ``-`` for standard input (read fully into memory); ``PATH:KEY`` when
    ``PATH:KEY`` itself is not an existing file but ``PATH`` is (the longest such
    ``PATH``: ``ck.json:a:b`` is the key ``a:b``); ``-:KEY`` works for standard input
    (on the command line after ``--``, where it cannot look like an option).  A key
    given both ways must agree.  Only regular files are opened: directories, FIFOs,
    sockets and devices are refused after ``os.stat`` (and again after opening,
    non-blocking, in case the file was swapped).
"""

from __future__ import annotations

import os
import stat
import sys
from typing import IO, Any, BinaryIO

from lossctl.errors import ReadError
from lossctl.io.text import oneline

__all__ = ["STDIN_NAME", "open_regular", "read_stdin", "resolve_spec"]

STDIN_NAME = "<stdin>"


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


def read_stdin(stdin: BinaryIO | None) -> bytes:
    stream: Any = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise ReadError(STDIN_NAME, "standard input is not available")
    try:
        data = stream.read()
    except OSError as exc:
        raise ReadError(STDIN_NAME, f"cannot read standard input: {oneline(exc)}") from None
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ReadError(STDIN_NAME, "standard input did not return bytes")
    data = bytes(data)
    if not data:
        raise ReadError(
            STDIN_NAME,
            "standard input is empty; pipe a file in, e.g. "
            "`cat logits.json | lossctl ce - labels.json`",
        )
    return data


_STREAM_HINT = "not a regular file; to read a stream use `-` with a redirect"


def open_regular(path: str, source: str) -> IO[bytes]:
    """Open a regular file for reading, refusing FIFOs, devices and directories first."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ReadError(
            source, "no such file; check the path (use `-` to read standard input)"
        ) from None
    except NotADirectoryError:
        raise ReadError(
            source, "no such file (a part of the path is not a directory); check the path"
        ) from None
    except PermissionError:
        raise ReadError(
            source, "permission denied while looking up the file; check its directories"
        ) from None
    except (OSError, ValueError) as exc:
        raise ReadError(source, f"cannot access the file: {_os_reason(exc)}") from None
    problem = _not_regular(info.st_mode)
    if problem:
        raise ReadError(source, problem)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:
        raise ReadError(
            source, "permission denied; make the file readable, e.g. `chmod +r FILE`"
        ) from None
    except (OSError, ValueError) as exc:
        raise ReadError(source, f"cannot open the file: {_os_reason(exc)}") from None
    try:
        problem = _not_regular(os.fstat(fd).st_mode)  # it may have changed since stat()
        if problem:
            raise ReadError(source, problem)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file; give the path of a .json, .csv, .npy or .npz file"
    if stat.S_ISFIFO(mode):
        return f"is a FIFO, {_STREAM_HINT}"
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
