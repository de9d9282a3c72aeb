"""SIGBUS: a memory-mapped input truncated by another process while lossctl reads it.

A page of the mapping past the file's new end faults with SIGBUS inside NumPy's C loops.
What was measured (a 128 MB ``.npy`` truncated mid-run):

- no handler: the process dies with SIGBUS (exit 135), no message;
- ``signal.signal(SIGBUS, ...)``: Python's C-level handler only sets a flag and
  returns, the faulting load runs again and faults again: the process spins forever;
- ``faulthandler``: a traceback, then exit 135.

So the handler is native (``ctypes``, installed with libc's ``signal``): it writes the
documented line naming the mapped files, removes an ``--output`` file in progress and
ends the process with ``os._exit(1)``, never returning into the fault. It runs Python
code (``ctypes`` takes the GIL: the faulting thread holds it, or NumPy released it for
the loop), which is not async-signal-safe in general; the fault is a load from a mapped
page in a numeric loop, never inside the allocator, and the handler never returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from typing import Any

from lossctl.errors import ExitStatus

__all__ = ["install_sigbus_handler"]

_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_int)
_installed: list[Any] = []  # the callback must outlive the process's use of it
_first = threading.Lock()  # two kernel threads may fault at once: one line, one exit


def _on_sigbus(signum: int) -> None:
    if not _first.acquire(blocking=False):
        while True:  # the first faulting thread is writing the line and ending the process
            time.sleep(1)
    from lossctl.io.atomic import remove_temporaries
    from lossctl.io.npy import mapped_sources

    names = ", ".join(mapped_sources())
    if names:
        line = (
            f"lossctl: error: {names}: the file changed while being read (truncated by "
            "another process?); no result was written\n"
        )
    else:  # no input shrank: a mapped --output .npy on a full disk, or another mapping
        line = (
            "lossctl: error: a memory-mapped file could not be accessed (SIGBUS: truncated "
            "by another process, or a full disk under an --output .npy); no result was written\n"
        )
    with contextlib.suppress(BaseException):
        remove_temporaries()
    with contextlib.suppress(BaseException):
        os.write(2, line.encode("utf-8", "replace"))
    os._exit(ExitStatus.INPUT)


def install_sigbus_handler() -> None:
    """Install :func:`_on_sigbus` for SIGBUS (once; Linux and other POSIX systems)."""
    signum = getattr(signal, "SIGBUS", None)
    if signum is None or _installed:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.signal.restype = ctypes.c_void_p
        libc.signal.argtypes = [ctypes.c_int, _HANDLER_TYPE]
        handler = _HANDLER_TYPE(_on_sigbus)
        libc.signal(signum, handler)
    except (OSError, AttributeError):  # no libc to call: SIGBUS keeps its default
        return
    _installed.append(handler)
