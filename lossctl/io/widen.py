"""bfloat16 to float32, exactly and in bounded memory.

A bfloat16 is the top half of a float32, so widening is exact: ``float32_bits = bits << 16``.
A small tensor is widened in memory. A large one (a bfloat16 logit dump of gigabytes) is
widened block by block into a temporary file (deleted as soon as it is created, so nothing
is left behind whatever happens) that is then memory-mapped read-only: the kernel streams
it like a float32 ``.npy``, and the process never holds the whole float32 copy. Disk: twice
the tensor's size in the temporary folder (``$TMPDIR``) while it is read.

>>> import numpy as np
>>> widen_bfloat16(np.array([0x3F80, 0xC040], dtype=np.uint16))
array([ 1., -3.], dtype=float32)
"""

from __future__ import annotations

import contextlib
import mmap
import tempfile
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.errors import ReadError

__all__ = ["SPILL_BYTES", "bfloat16_to_float32", "widen_bfloat16"]

SPILL_BYTES = 64 << 20  # float32 results larger than this go through a temporary file
_BLOCK_BYTES = 16 << 20  # float32 bytes widened at a time


def bfloat16_to_float32(bits: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Widen bfloat16 bits (any ``uint16`` array) to a new float32 array in memory, exactly."""
    if bits.dtype.kind != "u" or bits.dtype.itemsize != 2:
        raise TypeError(f"bfloat16 bits must be a uint16 array, not {bits.dtype}")
    wide = bits.astype(np.uint32)  # native byte order, C order
    wide <<= 16
    return wide.view(np.float32)


def widen_bfloat16(bits: npt.NDArray[Any], source: str = "") -> npt.NDArray[np.float32]:
    """The float32 values of bfloat16 ``bits`` (a ``uint16`` array of any layout and byte
    order), in C order; past :data:`SPILL_BYTES` a read-only map of a temporary file."""
    if bits.size * 4 <= SPILL_BYTES or bits.ndim == 0:
        return bfloat16_to_float32(bits)
    try:
        return _spilled(bits)
    except OSError as error:
        raise ReadError(
            source or "bfloat16 tensor",
            f"cannot widen bfloat16 to float32 in the temporary folder ({error.strerror or error});"
            " set TMPDIR to a folder with room for twice the tensor's size",
        ) from None


def _spilled(bits: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Widen block by block along the first axis into an unlinked temporary file; map it."""
    rows = bits.shape[0]
    row_bytes = max(1, bits[0].size * 4) if rows else 1
    step = max(1, _BLOCK_BYTES // row_bytes)
    source_map = _mapping_of(bits)
    with tempfile.TemporaryFile() as handle:
        for start in range(0, rows, step):
            handle.write(bfloat16_to_float32(bits[start : start + step]).tobytes())
            if source_map is not None:  # the bfloat16 pages read so far are not needed again
                with contextlib.suppress(OSError, ValueError):
                    source_map.madvise(mmap.MADV_DONTNEED)
        handle.flush()
        # the map keeps its own descriptor: the file lives until the array is gone
        return np.memmap(handle, np.float32, "r", 0, bits.shape)


def _mapping_of(array: npt.NDArray[Any]) -> mmap.mmap | None:
    """The ``mmap`` an array's memory comes from (a memory-mapped file), if any."""
    base: Any = array
    for _ in range(16):
        if isinstance(base, mmap.mmap):
            return base
        for attribute in ("_mmap", "base", "obj"):  # np.memmap, ndarray, memoryview
            parent = getattr(base, attribute, None)
            if parent is not None:
                break
        if parent is None:
            return None
        base = parent
    return None
