"""How many threads the numeric kernel uses: ``min(2, cores)`` unless told otherwise.

No NumPy here, so the CLI can set it before any numeric module loads; the core itself
reads no environment (the CLI reads ``$LOSSCTL_THREADS`` and calls :func:`set_workers`).
"""

from __future__ import annotations

import os

_configured: list[int] = []


def set_workers(workers: int | None) -> None:
    """The number of kernel threads from now on (``None``: the default again)."""
    _configured[:] = [] if workers is None else [max(1, int(workers))]


def default_workers() -> int:
    """What :func:`set_workers` chose, else ``min(2, os.cpu_count())``."""
    if _configured:
        return _configured[0]
    return max(1, min(2, os.cpu_count() or 1))
