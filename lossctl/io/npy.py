"""NumPy ``.npy`` arrays, checked before any data is touched.

Headers are read and checked (dtype; declared size against the bytes present) first;
regular files are then memory-mapped read-only through the descriptor already open (no
second open by name; no copy; Fortran order is kept) and streams held in memory are
viewed in place; big-endian arrays come back as converted copies.  Integer and float
dtypes up to 64 bits are kept; bool, complex, strings, dates, void/structured, object
and long double are refused.  Nothing is ever unpickled.
"""

from __future__ import annotations

import collections
import math
import mmap
import warnings
import weakref
from typing import IO, Any, Literal

import numpy as np
import numpy.typing as npt

from lossctl.errors import ReadError
from lossctl.io.text import MAX_NDIM, oneline

__all__ = ["NPY_MAX_HEADER", "declared_bytes", "native", "npy_header", "read_npy"]

Array = npt.NDArray[Any]

NPY_MAX_HEADER = 10_000
_ACCEPTED_DTYPES = "accepted: int8..int64, uint8..uint64, float16, float32, float64"


class _CountingReader:
    """Wraps a binary file and counts the bytes read (the NPY header length)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        return data


def _dtype_problem(dtype: np.dtype[Any]) -> str | None:
    if dtype.fields is not None:
        names = ", ".join(dtype.names or ())
        return f"structured (record) dtype with fields {names} is not supported; {_ACCEPTED_DTYPES}"
    if dtype.subdtype is not None:
        return f"sub-array dtype {dtype} is not supported; {_ACCEPTED_DTYPES}"
    kind = dtype.kind
    if kind in "iu" and dtype.itemsize <= 8:
        return None
    if kind == "f" and dtype.itemsize in (2, 4, 8):
        return None
    descriptions = {
        "b": f"dtype {dtype.name} (boolean) is not supported",
        "c": f"dtype {dtype.name} (complex) is not supported",
        "U": f"dtype {dtype.str} (text strings) is not supported",
        "S": f"dtype {dtype.str} (byte strings) is not supported",
        "M": f"dtype {dtype.name} (dates) is not supported",
        "m": f"dtype {dtype.name} (time spans) is not supported",
        "V": f"dtype {dtype.str} (raw void bytes) is not supported",
        "O": "dtype object (Python objects) is refused: reading it would need unpickling, "
        "which lossctl never does",
    }
    message = descriptions.get(kind, f"dtype {dtype.name} is not supported")
    return f"{message}; {_ACCEPTED_DTYPES}"


def npy_header(
    handle: IO[bytes], source: str, where: str
) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """Read and check the NPY header: (shape, fortran_order, dtype, header length)."""
    reader = _CountingReader(handle)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            version = np.lib.format.read_magic(reader)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                    reader, max_header_size=NPY_MAX_HEADER
                )
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                    reader, max_header_size=NPY_MAX_HEADER
                )
            else:
                raise ReadError(
                    source, f"{where}unsupported .npy format version {version[0]}.{version[1]}"
                )
    except ReadError:
        raise
    except Exception as exc:
        raise ReadError(source, f"{where}invalid .npy header: {oneline(exc)}") from None
    if not all(type(n) is int and n >= 0 for n in shape) or len(shape) > MAX_NDIM:
        raise ReadError(source, f"{where}invalid .npy header: bad shape {shape}")
    problem = _dtype_problem(dtype)
    if problem:
        raise ReadError(source, f"{where}{problem}")
    return shape, fortran, dtype, reader.count


def declared_bytes(shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    return math.prod(shape) * dtype.itemsize


def native(array: Array) -> Array:
    """Native byte order; memory maps of native data are returned as they are."""
    if array.dtype.isnative:
        return array
    return np.array(array, dtype=array.dtype.newbyteorder("="), order="K")


# (source, mapping, size) of the mapped .npy files; a weak reference: a mapping that is gone
# cannot fault. The latest first out (a Dask worker maps many).
_MAPPED: collections.deque[tuple[str, weakref.ref[mmap.mmap], int]] = collections.deque(maxlen=256)


def mapped_sources() -> list[str]:
    """The memory-mapped ``.npy`` files (as the user named them) that are now shorter than
    when they were mapped (for a SIGBUS message); each mapping ``fstat``-s its own
    descriptor, so a file read through a descriptor without a name is found too."""
    shrunk = []
    for source, mapping, size in _MAPPED:
        live = mapping()
        try:
            shrunk += [source] if live is not None and live.size() < size else []
        except (OSError, ValueError):  # closed, or no longer reachable
            shrunk.append(source)
    return list(dict.fromkeys(shrunk))


def read_npy(
    handle: IO[bytes], size: int, source: str, key: str | None, *, data: bytes | None = None
) -> Array:
    """The array of a ``.npy`` file open as ``handle`` (memory-mapped through it), or held
    in ``data`` (a stream read into memory: a read-only view of those bytes, no copy)."""
    if key is not None:
        raise ReadError(
            source, f"a key ({key!r}) was given, but a .npy file holds a single array; drop the key"
        )
    shape, fortran, dtype, header_length = npy_header(handle, source, "")
    declared = declared_bytes(shape, dtype)
    available = size - header_length
    if declared > available:
        raise ReadError(
            source,
            f"truncated or corrupt .npy: the header declares shape {shape} of {dtype.name} "
            f"= {declared} bytes, but only {available} bytes of data follow",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            order: Literal["C", "F"] = "F" if fortran else "C"
            if data is not None:
                flat = np.frombuffer(data, dtype, math.prod(shape), header_length)
                array = flat.reshape(shape, order=order)
            else:
                mapped: Any = handle  # numpy maps any object with fileno()
                array = np.memmap(mapped, dtype, "r", header_length, shape, order)
                mapping = getattr(array, "_mmap", None)  # NumPy's own mmap of the file
                if isinstance(mapping, mmap.mmap):
                    _MAPPED.append((source, weakref.ref(mapping), size))
    except Exception as exc:
        raise ReadError(source, f"cannot read .npy data: {oneline(exc)}") from None
    if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != dtype:
        raise ReadError(source, "the file changed while it was being read; try again")
    return native(array)
