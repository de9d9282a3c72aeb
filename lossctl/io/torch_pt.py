"""Read tensors from PyTorch ``torch.save`` files without importing PyTorch.

A ``.pt`` file is a zip archive: ``<archive>/data.pkl`` (a protocol-2 pickle describing the
object), ``<archive>/data/<key>`` (raw little-endian storages) and a few records
(``byteorder``, ``version``). The pickle is read by a restricted unpickler, modelled on
torch's ``weights_only=True``: ``find_class`` answers only a short allow-list and returns
lossctl's OWN stand-ins (nothing named in the pickle is ever imported or called),
``persistent_load`` accepts only storage references, and ``BUILD`` is refused on everything
but the ``OrderedDict`` of a state dict (whose ``_metadata`` is dropped). Tensors are then
rebuilt with numpy after checking that every element they reach lies inside their storage;
uncompressed storages are memory-mapped (through the open file, never reopened by name).
"""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from math import prod
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from lossctl.errors import ReadError
from lossctl.io.inflation import check_inflation
from lossctl.io.members import listing
from lossctl.io.widen import widen_bfloat16

__all__ = ["is_torch_zip", "looks_like_legacy_torch", "read_pt", "read_pt_bytes", "read_pt_file"]

MAX_PICKLE_BYTES = 64 * 1024 * 1024  # data.pkl of real checkpoints is KBs; opcodes amplify ~8x
MAX_DEPTH = 64  # nesting of containers walked when looking for tensors
MAX_DIMS = 64
_ONLY = "lossctl reads only tensors and dicts/lists of tensors, and runs nothing from the file"
_RESAVE = "re-save it with torch.save(tensor_or_dict_of_tensors, path)"
_LEGACY_HEAD = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_LEGACY_HINT = (
    "legacy (pre-1.6) torch.save format is not supported: re-save with torch.save(obj, path) "
    "in torch >= 1.6 (or _use_new_zipfile_serialization=True)"
)
_KEY_RE = re.compile(r"[0-9A-Za-z_]{1,64}")
_STORAGES: dict[str, str] = {  # torch storage class -> numpy type code ("bf16" is special)
    "FloatStorage": "f4",
    "DoubleStorage": "f8",
    "HalfStorage": "f2",
    "BFloat16Storage": "bf16",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "b1",
}
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError)
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... name length, extra length (30 bytes)

Array = npt.NDArray[Any]


class _Refused(Exception):
    """Raised inside the unpickler; becomes a one-line ReadError."""


class _NoBuild:
    """Base of every stand-in: the pickle may not BUILD (set state on) it."""

    __slots__ = ()

    def __setstate__(self, state: object) -> None:
        raise _Refused(f"refused: the pickle sets state (BUILD) on a torch object; {_ONLY}")


class _StorageType(_NoBuild):
    __slots__ = ("code", "name")

    def __init__(self, name: str, code: str) -> None:
        self.name = name
        self.code = code


class _Storage(_NoBuild):
    __slots__ = ("key", "kind", "numel")

    def __init__(self, kind: _StorageType, key: str, numel: int) -> None:
        self.kind = kind
        self.key = key
        self.numel = numel


class _Tensor(_NoBuild):
    """A validated tensor description; the array is built only when selected."""

    __slots__ = ("offset", "size", "storage", "stride")

    def __init__(
        self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
    ):
        self.storage = storage
        self.offset = offset
        self.size = size
        self.stride = stride


class _Stub(_NoBuild):
    """lossctl's stand-in for an allowed torch function."""

    __slots__ = ("fn", "name")

    def __init__(self, name: str, fn: Callable[..., _Tensor]) -> None:
        self.name = name
        self.fn = fn

    def __call__(self, *args: object) -> _Tensor:
        return self.fn(*args)


class _StateDict(OrderedDict[Any, Any]):
    """Stand-in for ``collections.OrderedDict``; BUILD of a dict state is dropped."""

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict):
            raise _Refused(f"refused: the pickle sets non-dict state on an OrderedDict; {_ONLY}")


def _int(value: object, what: str) -> int:
    if type(value) is not int or value < 0:
        raise _Refused(f"{what} must be a non-negative integer; the file is damaged; {_RESAVE}")
    return value


def _ints(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) > MAX_DIMS:
        raise _Refused(f"tensor {what} must be a tuple of at most {MAX_DIMS} integers; {_RESAVE}")
    return tuple(_int(v, f"tensor {what}") for v in value)


def _rebuild(storage: object, offset: object, size: object, stride: object) -> _Tensor:
    """Validate the view (offset, size, stride) against the storage; allocate nothing."""
    if not isinstance(storage, _Storage):
        raise _Refused(
            f"refused: a tensor is rebuilt from something that is not a storage; {_ONLY}"
        )
    off = _int(offset, "storage offset")
    shape, steps = _ints(size, "size"), _ints(stride, "stride")
    if len(shape) != len(steps):
        raise _Refused(f"tensor size {shape} and stride {steps} differ in length; {_RESAVE}")
    count = prod(shape)
    if count > storage.numel:
        raise _Refused(
            f"a tensor of shape {shape} declares {count} elements but its storage holds "
            f"{storage.numel} (expanded views are not read: save t.contiguous())"
        )
    if count > 0:
        last = off + sum((n - 1) * s for n, s in zip(shape, steps, strict=True))
        if last >= storage.numel:
            raise _Refused(
                f"a tensor (offset {off}, shape {shape}, stride {steps}) reaches element {last} "
                f"outside its storage of {storage.numel}; the file is damaged; {_RESAVE}"
            )
    elif off > storage.numel:
        raise _Refused(f"storage offset {off} lies outside its storage of {storage.numel}")
    return _Tensor(storage, off, shape, steps)


def _rebuild_v2(
    storage: object, offset: object, size: object, stride: object, *_rest: object
) -> _Tensor:  # (requires_grad, backward_hooks[, metadata]) are ignored
    return _rebuild(storage, offset, size, stride)


def _parameter(data: object, *_rest: object) -> _Tensor:  # (requires_grad, hooks[, state])
    if not isinstance(data, _Tensor):
        raise _Refused(f"refused: a Parameter wraps something that is not a tensor; {_ONLY}")
    return data


_ALLOWED: dict[str, object] = {
    "collections.OrderedDict": _StateDict,
    "torch._utils._rebuild_tensor": _Stub("_rebuild_tensor", _rebuild),
    "torch._utils._rebuild_tensor_v2": _Stub("_rebuild_tensor_v2", _rebuild_v2),
    "torch._utils._rebuild_parameter": _Stub("_rebuild_parameter", _parameter),
    "torch._utils._rebuild_parameter_with_state": _Stub("_rebuild_parameter", _parameter),
    **{f"torch.{name}": _StorageType(name, code) for name, code in _STORAGES.items()},
}


class _Unpickler(pickle.Unpickler):
    """Answers find_class from the allow-list only; persistent ids must be storages."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get(f"{module}.{name}")
        if found is None:
            raise _Refused(f"refused: the pickle asks for {_show(module)}.{_show(name)}; {_ONLY}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise _Refused(f"refused: unknown persistent id in the pickle; {_ONLY}")
        _, kind, key, location, numel = pid
        if not isinstance(kind, _StorageType):
            raise _Refused(f"refused: a storage of unknown dtype; {_ONLY}")
        if not (isinstance(key, str) and _KEY_RE.fullmatch(key) and isinstance(location, str)):
            raise _Refused(f"refused: a malformed storage reference; {_RESAVE}")
        return _Storage(kind, key, _int(numel, "storage size"))


def _show(text: object, limit: int = 60) -> str:
    shown = " ".join(str(text).split())
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def is_torch_zip(names: list[str]) -> bool:
    """Whether zip member names look like a torch.save archive (some ``X/data.pkl``)."""
    return any(_prefix(n) is not None for n in names)


def _prefix(name: str) -> str | None:
    head, sep, tail = name.partition("/")
    return head if sep and head and tail == "data.pkl" else None


def looks_like_legacy_torch(head: bytes) -> bool:
    """Whether bytes start like the pre-1.6 (non-zip) torch.save format."""
    return head.startswith(_LEGACY_HEAD)


def read_pt(path: str, source: str, key: str | None) -> Array:
    """Read one tensor (selected by dotted ``key``) from a torch.save file at ``path``."""
    try:
        with open(path, "rb") as handle:
            return read_pt_file(handle, source, key)
    except OSError as exc:
        raise ReadError(source, f"cannot read: {exc.strerror or exc}") from None


def read_pt_file(handle: IO[bytes], source: str, key: str | None) -> Array:
    """Like :func:`read_pt` for a regular file already open (storages mapped through it)."""
    try:
        size = os.fstat(handle.fileno()).st_size
        _check_head(os.pread(handle.fileno(), 16, 0), source)
        return _read_zip(handle, size, handle, source, key)
    except OSError as exc:
        raise ReadError(source, f"cannot read: {exc.strerror or exc}") from None


def read_pt_bytes(data: bytes, source: str, key: str | None) -> Array:
    """Like :func:`read_pt` for bytes already in memory (standard input)."""
    _check_head(data[:16], source)
    return _read_zip(io.BytesIO(data), len(data), data, source, key)


def _check_head(head: bytes, source: str) -> None:
    if head.startswith(b"PK\x03\x04"):
        return
    if looks_like_legacy_torch(head):
        raise ReadError(source, _LEGACY_HINT)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise ReadError(
            source,
            f"a plain pickle, not a torch.save archive: lossctl never unpickles those; {_RESAVE}",
        )
    what = "empty" if not head else "not a zip archive"
    raise ReadError(source, f"not a PyTorch .pt file ({what}); {_RESAVE}")


def _read_zip(
    handle: IO[bytes], total: int, backing: IO[bytes] | bytes, source: str, key: str | None
) -> Array:
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ReadError(source, f"not a readable zip archive ({_show(exc)}); {_RESAVE}") from None
    with archive:
        prefixes = sorted({p for n in archive.namelist() if (p := _prefix(n)) is not None})
        if len(prefixes) != 1:
            what = "no" if not prefixes else "more than one"
            raise ReadError(
                source,
                f"a zip with {what} <archive>/data.pkl: not written by torch.save; {_RESAVE}",
            )
        root = prefixes[0]
        obj = _unpickle(_member(archive, f"{root}/data.pkl", source, MAX_PICKLE_BYTES), source)
        tensor = _select(obj, key, source)
        order = _byteorder(archive, root, source)
        return _materialize(archive, root, tensor, order, total, backing, source)


def _member(archive: zipfile.ZipFile, name: str, source: str, limit: int) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ReadError(source, f"{name} is missing from the archive; {_RESAVE}") from None
    if info.file_size > limit:
        raise ReadError(
            source, f"refused: {name} declares {info.file_size} bytes (limit {limit}); {_ONLY}"
        )
    try:
        return archive.read(info)
    except _ZIP_ERRORS as exc:
        raise ReadError(
            source, f"cannot read {name} ({_show(exc)}): the file is damaged; {_RESAVE}"
        ) from None


def _unpickle(data: bytes, source: str) -> object:
    try:
        return _Unpickler(io.BytesIO(data)).load()
    except _Refused as exc:
        raise ReadError(source, str(exc)) from None
    except RecursionError:
        raise ReadError(source, f"refused: data.pkl nests too deeply; {_ONLY}") from None
    except MemoryError:
        raise ReadError(source, f"refused: data.pkl needs too much memory; {_ONLY}") from None
    except Exception as exc:  # any malformed pickle; nothing from it ever ran
        detail = f"{type(exc).__name__}: {_show(exc)}"
        raise ReadError(
            source, f"data.pkl is not a valid torch pickle ({detail}); {_RESAVE}"
        ) from None


def _tensors(node: object, base: str = "") -> list[tuple[str, _Tensor]]:
    """(dotted path, tensor) of every tensor in nested dicts/lists/tuples, in order."""
    found: list[tuple[str, _Tensor]] = []
    stack: list[tuple[str, object, int]] = [(base, node, 0)]
    seen: set[int] = set()
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, _Tensor):
            found.append((path, item))
            continue
        if isinstance(item, dict):
            pairs = [(str(k), v) for k, v in item.items() if isinstance(k, (str, int))]
        elif isinstance(item, (list, tuple)):
            pairs = [(str(i), v) for i, v in enumerate(item)]
        else:
            continue
        if id(item) in seen or depth >= MAX_DEPTH:
            continue  # a cycle, or nested too deeply to be a checkpoint
        seen.add(id(item))
        stack.extend((f"{path}.{k}" if path else k, v, depth + 1) for k, v in reversed(pairs))
    return found


def _lookup(node: object, parts: list[str], failed: set[tuple[int, int]]) -> tuple[bool, object]:
    """Follow dotted parts; a dict key may itself contain dots ("fc.weight")."""
    if not parts:
        return True, node
    if (id(node), len(parts)) in failed:  # shared sub-dicts: try each (node, rest) once
        return False, None
    if isinstance(node, dict):
        for cut in range(len(parts), 0, -1):
            seg = ".".join(parts[:cut])
            for k in (seg, int(seg)) if re.fullmatch(r"-?[0-9]{1,18}", seg) else (seg,):
                if k in node:
                    ok, found = _lookup(node[k], parts[cut:], failed)
                    if ok:
                        return True, found
    elif isinstance(node, (list, tuple)) and re.fullmatch(r"[0-9]{1,18}", parts[0]):
        index = int(parts[0])
        if index < len(node):
            return _lookup(node[index], parts[1:], failed)
    failed.add((id(node), len(parts)))
    return False, None


def _listing(found: list[tuple[str, _Tensor]]) -> str:
    """The keys of the tensors found (``<top>``: the object itself), as the other formats list
    their members."""
    return listing([path or "<top>" for path, _ in found], 12)


def _select(obj: object, key: str | None, source: str) -> _Tensor:
    node = obj
    if key is not None:
        parts = key.split(".")
        ok, node = _lookup(obj, parts, set()) if key and len(parts) <= MAX_DEPTH else (False, None)
        if not ok:
            found = _tensors(obj)
            where = f"tensors: {_listing(found)}" if found else "no tensors"
            raise ReadError(source, f"no key {_show(key)!r} in the .pt file (it holds {where})")
    found = _tensors(node, key or "")
    if len(found) == 1:
        return found[0][1]
    at = f" under {_show(key)!r}" if key else ""
    if not found:
        raise ReadError(source, f"the .pt file holds no tensor{at}; {_RESAVE}")
    raise ReadError(
        source, f"the .pt file holds several tensors{at}: pick one with a key ({_listing(found)})"
    )


def _byteorder(archive: zipfile.ZipFile, root: str, source: str) -> str:
    if f"{root}/byteorder" not in archive.namelist():
        return "<"
    record = _member(archive, f"{root}/byteorder", source, 16).strip()
    if record not in (b"little", b"big"):
        raise ReadError(source, f"unknown byteorder record {_show(record)}; {_RESAVE}")
    return "<" if record == b"little" else ">"


def _materialize(
    archive: zipfile.ZipFile,
    root: str,
    t: _Tensor,
    order: str,
    total: int,
    backing: IO[bytes] | bytes,
    source: str,
) -> Array:
    code = t.storage.kind.code
    dtype = np.dtype(order + ("u2" if code == "bf16" else "u1" if code == "b1" else code))
    name = f"{root}/data/{t.storage.key}"
    need = t.storage.numel * dtype.itemsize
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ReadError(
            source,
            f"storage {name} is missing: the file is truncated or damaged; {_RESAVE}",
        ) from None
    if info.file_size < need:
        raise ReadError(
            source,
            f"storage {name} is truncated: {info.file_size} bytes of {need}; {_RESAVE}",
        )
    raw = _storage_bytes(archive, info, need, total, backing, source)
    flat = raw.view(dtype)
    if prod(t.size) == 0:
        out: Array = np.empty(t.size, dtype=dtype)
    else:
        out = np.lib.stride_tricks.as_strided(
            flat[t.offset :],
            shape=t.size,
            strides=tuple(s * dtype.itemsize for s in t.stride),
            writeable=False,
        )
    if code == "bf16":
        return widen_bfloat16(out)
    if code == "b1":
        flags: Array = np.ascontiguousarray(out) != 0
        return flags
    if not dtype.isnative:
        return np.ascontiguousarray(out).astype(dtype.newbyteorder("="))
    return out if out.flags.c_contiguous else np.ascontiguousarray(out)


def _storage_bytes(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    need: int,
    total: int,
    backing: IO[bytes] | bytes,
    source: str,
) -> npt.NDArray[np.uint8]:
    """The storage's first ``need`` bytes: mapped/zero-copy if stored, else decompressed."""
    if need == 0:
        return np.empty(0, dtype=np.uint8)
    if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
        header = _read_at(backing, info.header_offset, _LOCAL_HEADER.size)
        if len(header) < _LOCAL_HEADER.size:
            raise ReadError(
                source,
                f"storage {info.filename} lies beyond the end of the file: truncated; {_RESAVE}",
            )
        signature, name_len, extra_len = _LOCAL_HEADER.unpack(header)
        start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        if signature != b"PK\x03\x04" or start + need > total or info.compress_size < need:
            raise ReadError(
                source,
                f"storage {info.filename} is truncated or its zip header is damaged; {_RESAVE}",
            )
        if isinstance(backing, bytes):
            return np.frombuffer(backing, dtype=np.uint8, count=need, offset=start)
        return np.memmap(backing, dtype=np.uint8, mode="r", offset=start, shape=(need,))
    check_inflation(info, source, f"storage {info.filename}: ")
    try:
        with archive.open(info) as member:
            data = member.read(need)
    except _ZIP_ERRORS as exc:
        raise ReadError(
            source, f"cannot read storage {info.filename} ({_show(exc)}); {_RESAVE}"
        ) from None
    if len(data) < need:
        raise ReadError(
            source, f"storage {info.filename} is truncated: {len(data)} of {need} bytes; {_RESAVE}"
        )
    return np.frombuffer(data, dtype=np.uint8)


def _read_at(backing: IO[bytes] | bytes, offset: int, count: int) -> bytes:
    if isinstance(backing, bytes):
        return backing[offset : offset + count]
    return os.pread(backing.fileno(), count, offset)
