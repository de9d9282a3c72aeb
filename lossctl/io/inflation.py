"""How far a compressed zip member (an ``.npz`` array, a ``.pt`` storage) may expand:
checked on its declared sizes, before a byte is inflated.

Two bounds. What the machine can hold: a member larger than half of the physical
memory (``os.sysconf``) cannot become an array here, whatever its ratio. And the ratio
alone: beyond :data:`MAX_RATIO` (numbers compress 2-10x; a 229:1 member is zeros or a
bomb) a member larger than :data:`RATIO_FLOOR` is refused, however much memory there is.
``zipfile`` stops reading at the declared size, so a member cannot expand beyond it.
"""

from __future__ import annotations

import functools
import os
import zipfile

from lossctl.errors import ReadError

__all__ = ["MAX_RATIO", "RATIO_FLOOR", "check_inflation", "memory_bound"]

MAX_RATIO = 64
RATIO_FLOOR = 64 << 20
_FALLBACK_MEMORY = 4 << 30  # when the system does not say


@functools.cache
def memory_bound() -> int:
    """Half of this machine's physical memory, in bytes."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return _FALLBACK_MEMORY // 2
    return pages * size // 2 if pages > 0 and size > 0 else _FALLBACK_MEMORY // 2


def check_inflation(
    info: zipfile.ZipInfo, source: str, where: str, memory: int | None = None
) -> None:
    """Refuse ``info`` (named ``where`` in the message) when it would expand beyond the
    machine's memory (``memory``: :func:`memory_bound`) or by more than the ratio allows."""
    if info.compress_type == zipfile.ZIP_STORED:
        return
    size, compressed = info.file_size, max(info.compress_size, 1)
    limit = memory_bound() if memory is None else memory
    expands = f"{where}would expand from {info.compress_size} to {size} bytes"
    # the ratio first: its message is the same on every machine
    if size > RATIO_FLOOR and size > MAX_RATIO * compressed:
        raise ReadError(
            source,
            f"{expands} ({size // compressed}x): beyond {RATIO_FLOOR >> 20} MiB, more than "
            f"{MAX_RATIO}x is refused (possible zip bomb); save it uncompressed (np.savez)",
        )
    if size > limit:
        raise ReadError(
            source,
            f"{expands}, more than half of this machine's memory ({limit} bytes); refusing",
        )
