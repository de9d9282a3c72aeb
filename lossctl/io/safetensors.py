"""Read ``.safetensors`` files ourselves: checked header, memory-mapped data, lazy bfloat16.

Format (huggingface/safetensors README, checked against the reference reader 0.8)
    8 bytes: ``N``, a little-endian u64, the length of the header; then ``N`` bytes of
    UTF-8 JSON, an object ``{NAME: {"dtype": "F32", "shape": [4, 5],
    "data_offsets": [BEGIN, END]}, ..., "__metadata__": {...}}``; then the byte buffer.
    Offsets are relative to the start of the buffer (byte ``8 + N`` of the file); data
    is little-endian, C order, packed.  ``shape`` ``[]`` is a scalar, a 0 in the shape
    an empty tensor.

Why not the ``safetensors`` package
    It would be a new runtime dependency for a 300-line job, and ``safetensors.numpy``
    cannot load BF16 at all: NumPy has no bfloat16, and with safetensors 0.8.0 both
    ``safetensors.numpy.load_file`` and ``safe_open(..., framework="np").get_tensor``
    raise ``TypeError: data type 'bfloat16' not understood`` on a file written by
    ``safetensors.torch.save_file`` -- the most common way logits are dumped.

Checks, all before the data is mapped (each failure is a one-line ReadError)
    ``N`` at most 100,000,000 (the reference limit) and at most the bytes after it; the
    header valid UTF-8 and strict JSON (no ``NaN``/``Infinity`` tokens, no duplicate keys,
    as the README requires) holding an object; ``__metadata__``, when present, an
    object.  Every entry: a known dtype, a shape of at most 64 non-negative integers,
    ``0 <= BEGIN <= END <= buffer size`` and ``END - BEGIN == prod(shape) * itemsize``
    (computed with Python integers: a shape of 10**12 elements is refused from the
    header alone, nothing is allocated).  Sorted by offset, the entries must tile the
    buffer exactly from 0 to its end -- no overlap, no gap, no trailing bytes -- which
    is what the reference reader enforces ("invalid offset", "file not fully covered").
    Extra keys inside an entry are ignored, as the reference reader does.  A header may
    start with blanks (valid JSON, accepted by the reference reader), but
    :func:`looks_like_safetensors` only sniffs headers starting with ``{``, as every
    writer makes them.

Dtypes
    F64, F32, F16, I64, I32, I16, I8, U64, U32, U16, U8 come back as read-only NumPy
    views on the mapped file (no copy; the unsigned ones are kept, like ``.npy``).
    BOOL comes back as a read-only ``bool`` view after checking every byte is 0 or 1.
    BF16 comes back as a :class:`Bfloat16Array` (below).  The other safetensors dtypes
    (F8_*, F6_*, F4, C64) are refused, naming the dtype, but only when the chosen tensor
    has one: a file may hold FP8 weights beside float32 logits.

BF16
    :class:`Bfloat16Array` wraps the read-only ``uint16`` view of the bits and converts
    on access: ``arr[r0:r1]`` widens only those rows (bits shifted into the top half of
    a ``uint32``, viewed as ``float32``: exact, NaN payloads kept), so a blocked consumer
    streams a large BF16 dump with bounded memory; ``np.asarray(arr)`` or
    :meth:`Bfloat16Array.to_float32` converts everything.  :func:`bfloat16_to_float32`
    is the plain function for any ``uint16`` array of bfloat16 bits.

Selecting
    ``key`` names the tensor.  A file with one tensor needs none; with several, or with a
    name it does not hold, the error lists the names (at most 12).
"""

from __future__ import annotations

import json
import math
import mmap
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

import numpy as np
import numpy.typing as npt

from lossctl.errors import ReadError
from lossctl.io.members import select_member
from lossctl.io.sources import open_descriptor
from lossctl.io.widen import bfloat16_to_float32

__all__ = [
    "MAX_HEADER_BYTES",
    "Bfloat16Array",
    "bfloat16_to_float32",
    "looks_like_safetensors",
    "read_safetensors",
    "read_safetensors_bytes",
]

MAX_HEADER_BYTES = 100_000_000  # the reference implementation's MAX_HEADER_SIZE
_MAX_NDIM = 64
_MAX_DIM = 2**63 - 1  # NumPy shapes are int64
_MAX_LISTED = 12
_BOOL_CHUNK = 1 << 24

# Width in bits of every dtype the reference reader (0.8) knows.
_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}  # fmt: skip
# What we read, as little-endian NumPy dtypes (BF16 is its bits, BOOL its bytes).
_NUMPY: dict[str, str] = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
    "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
    "BOOL": "u1",
}  # fmt: skip
_ACCEPTED = "accepted: F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL"
_REFUSED_KIND = {"F8": "an 8-bit float", "F6": "a 6-bit float", "F4": "a 4-bit float",
                 "C6": "complex"}  # fmt: skip

# ---------------------------------------------------------------- bfloat16


class Bfloat16Array:
    """A read-only, lazily converted float32 view of bfloat16 data.

    Indexing converts only what it selects; ``np.asarray`` converts everything (a copy:
    ``copy=False`` is refused).  There is no ``__setitem__``.
    """

    __slots__ = ("_bits",)

    def __init__(self, bits: npt.NDArray[Any]) -> None:
        if bits.dtype.kind != "u" or bits.dtype.itemsize != 2:
            raise TypeError(f"bfloat16 bits must be a uint16 array, not {bits.dtype}")
        if bits.flags.writeable:
            bits = bits.view()
            bits.flags.writeable = False
        self._bits = bits

    @property
    def bits(self) -> npt.NDArray[Any]:
        """The raw bfloat16 bits: a read-only ``uint16`` array (a view on the file)."""
        return self._bits

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._bits.shape)

    @property
    def dtype(self) -> np.dtype[np.float32]:
        """float32: the dtype every access returns."""
        return np.dtype(np.float32)

    @property
    def ndim(self) -> int:
        return int(self._bits.ndim)

    @property
    def size(self) -> int:
        return int(self._bits.size)

    def __len__(self) -> int:
        if self._bits.ndim == 0:
            raise TypeError("len() of unsized object")
        return int(self._bits.shape[0])

    def __getitem__(self, index: Any) -> npt.NDArray[np.float32] | np.float32:
        part = self._bits[index]
        if isinstance(part, np.ndarray):
            return bfloat16_to_float32(part)
        return cast(np.float32, bfloat16_to_float32(np.asarray(part))[()])

    def __iter__(self) -> Iterator[npt.NDArray[np.float32] | np.float32]:
        for i in range(len(self)):
            yield self[i]

    def __array__(
        self, dtype: npt.DTypeLike | None = None, copy: bool | None = None
    ) -> npt.NDArray[Any]:
        if copy is False:
            raise ValueError("a bfloat16 array cannot be viewed as float32 without a copy")
        full = bfloat16_to_float32(self._bits)
        return full if dtype is None else full.astype(dtype, copy=False)

    def to_float32(self) -> npt.NDArray[np.float32]:
        """The whole tensor as a new float32 array."""
        return bfloat16_to_float32(self._bits)

    def __repr__(self) -> str:
        return f"Bfloat16Array(shape={self.shape}, dtype=float32 from bfloat16)"


# ---------------------------------------------------------------- public API


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """Cheap sniff of the first bytes: a plausible header length, then ``{``."""
    if len(head) < 9 or size < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8) or head[8:9] != b"{":
        return False
    rest = head[9:].lstrip(b" \t\r\n")
    return not rest or rest[:1] in (b'"', b"}")


def read_safetensors(path: str, source: str, key: str | None) -> npt.NDArray[Any] | Bfloat16Array:
    """One tensor of the file at ``path``, memory-mapped read-only (see the module doc)."""
    try:  # non-blocking: a FIFO must not hang the open; regular files ignore the flag
        fd = open_descriptor(path)
    except OSError as exc:
        raise ReadError(source, f"cannot read the file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ReadError(source, "not a regular file; a safetensors file must be mapped")
    with os.fdopen(fd, "rb") as handle:
        return read_safetensors_file(handle, source, key)


def read_safetensors_file(
    handle: IO[bytes], source: str, key: str | None
) -> npt.NDArray[Any] | Bfloat16Array:
    """Like :func:`read_safetensors` for a file already open: mapped through ``handle``."""
    try:
        size = os.fstat(fd := handle.fileno()).st_size  # a regular file (opened by the caller)
        length = _header_length(os.pread(fd, 8, 0), size, source)
        raw = os.pread(fd, length, 8)
        if len(raw) != length:
            raise ReadError(source, "the file changed while it was being read; try again")
        name, entry = _select(_parse_header(raw, size - 8 - length, source), key, source)
        _check_dtype(name, entry, source)
        if entry.nbytes == 0:
            return _finish(np.empty(0, dtype=_NUMPY[entry.dtype]), entry, source)
        try:
            mapped = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise ReadError(source, f"cannot memory-map the file: {exc}") from None
    except OSError as exc:
        raise ReadError(source, f"cannot read the file: {exc.strerror or exc}") from None
    return _view(mapped, 8 + length, entry, source)


def read_safetensors_bytes(
    data: bytes, source: str, key: str | None
) -> npt.NDArray[Any] | Bfloat16Array:
    """One tensor of a safetensors file held in ``data`` (standard input); no copy."""
    size = len(data)
    length = _header_length(data[:8], size, source)
    entries = _parse_header(data[8 : 8 + length], size - 8 - length, source)
    name, entry = _select(entries, key, source)
    _check_dtype(name, entry, source)
    return _view(data, 8 + length, entry, source)


# ---------------------------------------------------------------- header


@dataclass(frozen=True)
class _Entry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


class _JsonRefusal(Exception):
    pass


def _no_constant(token: str) -> Any:
    raise _JsonRefusal(f"the non-standard JSON token {token}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _JsonRefusal(f"the key {_show(name)} twice (duplicate keys are not allowed)")
        result[name] = value
    return result


def _header_length(first: bytes, size: int, source: str) -> int:
    if size == 0:
        raise ReadError(source, "empty file (0 bytes); not a safetensors file")
    if size < 8 or len(first) < 8:
        raise ReadError(
            source,
            f"only {size} bytes; a safetensors file starts with an 8-byte header length",
        )
    (length,) = struct.unpack("<Q", first[:8])
    if length > MAX_HEADER_BYTES:
        raise ReadError(
            source,
            f"not a valid safetensors file: header length {length} exceeds the limit of "
            f"{MAX_HEADER_BYTES} bytes",
        )
    if length > size - 8:
        raise ReadError(
            source,
            f"truncated or not a safetensors file: the header length says {length} bytes, "
            f"but only {size - 8} bytes follow it",
        )
    return int(length)


def _parse_header(raw: bytes, buffer_size: int, source: str) -> dict[str, _Entry]:
    """Decode and check the whole header against a data buffer of ``buffer_size`` bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReadError(
            source, f"the safetensors header is not valid UTF-8 (byte {8 + exc.start})"
        ) from None
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _JsonRefusal as exc:
        raise ReadError(source, f"the safetensors header contains {exc}") from None
    except json.JSONDecodeError as exc:
        raise ReadError(source, f"the safetensors header is not valid JSON: {exc.msg} "
                        f"(header line {exc.lineno}, column {exc.colno})") from None  # fmt: skip
    except (ValueError, RecursionError) as exc:
        raise ReadError(source, f"the safetensors header is not usable JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ReadError(
            source, f"the safetensors header is a JSON {_json_type(header)}, not an object"
        )
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not isinstance(metadata, dict):
        raise ReadError(
            source,
            f"the safetensors __metadata__ is a JSON {_json_type(metadata)}, not an object",
        )
    entries = {name: _entry(name, value, source) for name, value in header.items()}
    _check_layout(entries, buffer_size, source)
    return entries


def _entry(name: str, value: Any, source: str) -> _Entry:
    where = f"tensor {_show(name)}"
    if not isinstance(value, dict):
        raise ReadError(
            source,
            f"{where}: its header entry is a JSON {_json_type(value)}, "
            "not an object with dtype, shape and data_offsets",
        )
    for field in ("dtype", "shape", "data_offsets"):
        if field not in value:
            raise ReadError(source, f"{where}: its header entry has no {field!r}")
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if not isinstance(dtype, str):
        raise ReadError(source, f"{where}: dtype {_show(dtype)} is not a string")
    if dtype not in _BITS:
        raise ReadError(source, f"{where}: unknown dtype {_show(dtype)} (not a safetensors dtype)")
    if not (
        isinstance(shape, list)
        and all(type(n) is int and 0 <= n <= _MAX_DIM for n in shape)
        and len(shape) <= _MAX_NDIM
    ):
        raise ReadError(
            source,
            f"{where}: shape {_show(shape)} is not a list of at most {_MAX_NDIM} "
            "non-negative integers below 2**63",
        )
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(type(n) is int and n >= 0 for n in offsets)
    ):
        raise ReadError(
            source, f"{where}: data_offsets {_show(offsets)} is not [BEGIN, END] of integers >= 0"
        )
    begin, end = offsets
    if end < begin:
        raise ReadError(source, f"{where}: data_offsets [{begin}, {end}] end before they begin")
    bits = math.prod(shape) * _BITS[dtype]
    if bits != 8 * (end - begin):
        need = f"{bits // 8} bytes" if bits % 8 == 0 else f"{bits} bits"
        if bits > 8 * (1 << 64):
            need = "more than 2**64 bytes"
        raise ReadError(
            source,
            f"{where}: shape {_show(shape)} of {dtype} needs {need}, but its "
            f"data_offsets [{begin}, {end}] span {end - begin} bytes",
        )
    return _Entry(name, dtype, tuple(shape), begin, end)


def _check_layout(entries: dict[str, _Entry], buffer_size: int, source: str) -> None:
    """The entries, sorted by offset, must tile the buffer exactly (the reference's rule)."""
    position, previous = 0, ""
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        where = f"tensor {_show(name)}"
        if entry.end > buffer_size:
            raise ReadError(
                source,
                f"truncated or corrupt: {where} has data_offsets [{entry.begin}, {entry.end}], "
                f"but only {buffer_size} bytes of data follow the header",
            )
        if entry.begin < position:
            raise ReadError(
                source,
                f"corrupt or crafted: {where} (data_offsets [{entry.begin}, {entry.end}]) "
                f"overlaps tensor {_show(previous)}, which ends at {position}",
            )
        if entry.begin > position:
            raise ReadError(
                source,
                f"corrupt or crafted: a gap of {entry.begin - position} bytes before {where} "
                "in the data buffer (the format requires the tensors to cover it exactly)",
            )
        position, previous = entry.end, name
    if position != buffer_size:
        raise ReadError(
            source,
            f"corrupt or crafted: {buffer_size - position} bytes after the last tensor's data "
            "(the format requires the tensors to cover the data buffer exactly)",
        )


def _select(entries: dict[str, _Entry], key: str | None, source: str) -> tuple[str, _Entry]:
    return select_member(
        entries,
        key,
        source,
        container="the safetensors file",
        noun=("tensor", "tensors"),
        limit=_MAX_LISTED,
    )


def _check_dtype(name: str, entry: _Entry, source: str) -> None:
    if entry.dtype not in _NUMPY:
        kind = _REFUSED_KIND.get(entry.dtype[:2], "an unsupported type")
        raise ReadError(
            source,
            f"tensor {_show(name)} has dtype {entry.dtype} ({kind}), which lossctl does not "
            f"read; {_ACCEPTED}",
        )


# ---------------------------------------------------------------- data


def _view(buffer: Any, start: int, entry: _Entry, source: str) -> npt.NDArray[Any] | Bfloat16Array:
    dtype = np.dtype(_NUMPY[entry.dtype])
    count = math.prod(entry.shape)
    if count == 0:
        flat: npt.NDArray[Any] = np.empty(0, dtype=dtype)
    else:
        flat = np.frombuffer(buffer, dtype=dtype, count=count, offset=start + entry.begin)
    return _finish(flat, entry, source)


def _finish(flat: npt.NDArray[Any], entry: _Entry, source: str) -> npt.NDArray[Any] | Bfloat16Array:
    array = flat.reshape(entry.shape)
    if array.flags.writeable:  # only the freshly made empty arrays
        array.flags.writeable = False
    if entry.dtype == "BF16":
        return Bfloat16Array(array)
    if entry.dtype == "BOOL":
        for i in range(0, flat.size, _BOOL_CHUNK):
            if int(flat[i : i + _BOOL_CHUNK].max()) > 1:
                raise ReadError(
                    source,
                    f"tensor {_show(entry.name)}: a BOOL tensor with bytes other than 0 and 1",
                )
        return array.view(np.bool_)
    if not array.dtype.isnative:  # big-endian machines only
        array = array.astype(array.dtype.newbyteorder("="))
        array.flags.writeable = False
    return array


# ---------------------------------------------------------------- messages


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
