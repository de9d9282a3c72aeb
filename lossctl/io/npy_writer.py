"""A ``.npy`` file written block by block, atomically (:func:`lossctl.io.atomic.write_atomic`).

:func:`write_npy_blocks` writes the NPY header for the final shape and dtype (C order),
reserves the file's full size, then writes each ``(index, block)`` where it belongs:
a block that is one contiguous run of the C-ordered array with ``os.pwrite``, any
other through a shared memory map of the file, whose pages are released as it goes
(:class:`lossctl.core.blocked.PageBudget`). Parts no block covers read as zeros
(the file is extended with ``posix_fallocate`` / ``ftruncate``). The temporary file
is renamed over the target only when every block was written; on any error or
Ctrl-C it is removed, as for every ``--output`` file.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from collections.abc import Iterable
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from lossctl.core.blocked import Index, PageBudget
from lossctl.io.atomic import OutputError, write_atomic

__all__ = ["contiguous_span", "npy_header", "write_npy_blocks"]


def npy_header(shape: tuple[int, ...], dtype: np.dtype[Any]) -> bytes:
    """The NPY header (magic, version, dict, padding) of a C-ordered array."""
    import io

    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": tuple(int(n) for n in shape),
    }
    buffer = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buffer, header)
    except ValueError:  # a header past 64 KiB (absurd shapes): version 2.0
        buffer = io.BytesIO()
        np.lib.format.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


def contiguous_span(shape: tuple[int, ...], index: Index) -> tuple[int, int] | None:
    """``(first element, count)`` when block ``index`` of a C-ordered ``shape`` is one run."""
    starts, lengths = [], []
    for n, item in zip(shape, index, strict=True):
        if isinstance(item, int):
            starts.append(item)
            lengths.append(1)
        else:
            start, stop, step = item.indices(n)
            if step != 1:
                return None
            starts.append(start)
            lengths.append(max(0, stop - start))
    count = math.prod(lengths)
    if count == 0:
        return 0, 0
    # after the first axis longer than 1, every axis must be whole
    partial = [i for i, length in enumerate(lengths) if length > 1]
    if partial and any(lengths[i] != shape[i] for i in range(partial[0] + 1, len(shape))):
        return None
    first = int(np.ravel_multi_index(starts, shape)) if shape else 0
    return first, count


def write_npy_blocks(
    path: str,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    blocks: Iterable[tuple[Index, npt.NDArray[Any]]],
) -> None:
    """Write the array made of ``blocks`` to ``path`` as ``.npy``, atomically."""
    dtype = np.dtype(dtype)

    def write(handle: IO[bytes]) -> None:
        header = npy_header(shape, dtype)
        handle.write(header)
        handle.flush()
        _write_blocks(handle, len(header), shape, dtype, blocks)

    write_atomic(path, write)


def _write_blocks(
    handle: IO[bytes],
    offset: int,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    blocks: Iterable[tuple[Index, npt.NDArray[Any]]],
) -> None:
    fd = handle.fileno()
    total = offset + math.prod(shape) * dtype.itemsize
    seekable = stat.S_ISREG(os.fstat(fd).st_mode)  # devices and pipes: in order only
    if seekable:
        _reserve(fd, total)
    mapped: np.memmap[Any, Any] | None = None
    pages: PageBudget | None = None
    written = offset  # for devices and pipes: blocks must come in order
    try:
        for index, block in blocks:
            values = np.ascontiguousarray(block, dtype=dtype)
            span = contiguous_span(shape, index)
            if span is not None and (seekable or offset + span[0] * dtype.itemsize == written):
                position = offset + span[0] * dtype.itemsize
                data = values.reshape(-1).view(np.uint8).data
                if seekable:
                    _pwrite_all(fd, data, position)
                else:
                    handle.write(data)
                written = position + len(data)
                continue
            if not seekable:
                raise OutputError(
                    "cannot stream this result into a pipe or device (the blocks are not in "
                    "file order); write it to a regular .npy file"
                )
            if mapped is None:
                mapped = np.memmap(handle, dtype=dtype, mode="r+", offset=offset, shape=shape)
                pages = PageBudget(mapped)
            mapped[index] = values
            assert pages is not None
            pages.touched(values)
        if mapped is not None:
            mapped.flush()
    finally:
        if mapped is not None:
            mm = getattr(mapped, "_mmap", None)
            del mapped
            if mm is not None:
                mm.close()


def _reserve(fd: int, total: int) -> None:
    """Give the file its final size (zeros), failing now rather than on a full disk later."""
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is not None:
        try:
            allocate(fd, 0, total)
            return
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
    os.ftruncate(fd, total)


def _pwrite_all(fd: int, data: memoryview, position: int) -> None:
    while data:
        done = os.pwrite(fd, data, position)
        data = data[done:]
        position += done
