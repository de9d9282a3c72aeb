"""A cheap fingerprint of a result's inputs, so that ``lossctl merge`` can refuse duplicates.

Each input file contributes its path, its size and ``blake2b`` (16 bytes) of its size,
its first 64 KiB and its last 64 KiB; standard input (no file) contributes the same of the
array's bytes. The ``digest`` hashes the sizes and content hashes (not the paths), so the
same data under two names is recognised too. Cheap, not a proof: two files that differ
only in their middle have the same fingerprint.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from typing import Any

import numpy as np

from lossctl.io.sources import open_descriptor

try:  # hashlib's blake2b is _blake2's; importing hashlib also loads OpenSSL (5 ms of start-up)
    from _blake2 import blake2b
except ImportError:  # a Python without the _blake2 module
    from hashlib import blake2b

EDGE = 64 * 1024


def _hash(size: int, head: bytes, tail: bytes) -> str:
    h = blake2b(digest_size=16)
    h.update(str(size).encode() + b"\0" + head + b"\0" + tail)
    return h.hexdigest()


def _file_entry(path: str) -> dict[str, Any] | None:
    try:  # opened non-blocking: a FIFO (already read to its end) must not hang here
        with os.fdopen(open_descriptor(path), "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                return None
            head = handle.read(EDGE)
            handle.seek(max(info.st_size - EDGE, 0))
            tail = handle.read(EDGE)
    except OSError:
        return None
    return {
        "path": os.path.abspath(path),
        "size": info.st_size,
        "blake2b": _hash(info.st_size, head, tail),
    }


def _array_entry(array: Any) -> dict[str, Any]:
    values = np.ascontiguousarray(np.asarray(array))
    data = values.reshape(-1).view(np.uint8) if values.size else np.zeros(0, np.uint8)
    shape = f"{values.dtype.str}{values.shape}".encode()
    return {
        "path": None,
        "size": int(data.size),
        "blake2b": _hash(int(data.size), shape + data[:EDGE].tobytes(), data[-EDGE:].tobytes()),
    }


def input_entry(role: str, spec: str, array: Any) -> dict[str, Any]:
    """The fingerprint entry of one input given as ``spec`` (a path, ``PATH:KEY`` or ``-``)."""
    entry = _file_entry(spec) if spec != "-" else None
    key = None
    if entry is None and ":" in spec:
        path, _, key = spec.rpartition(":")
        entry = _file_entry(path)
    if entry is None:
        entry, key = _array_entry(array), None
    return {"role": role, **entry, **({"key": key} if key else {})}


def fingerprint(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``{"digest", "files"}``: the digest of the entries' roles, keys, sizes and hashes."""
    content = [[e["role"], e.get("key"), e["size"], e["blake2b"]] for e in entries]
    digest = blake2b(json.dumps(content).encode(), digest_size=16).hexdigest()
    return {"digest": digest, "files": list(entries)}


def result_fingerprint(inputs: Sequence[tuple[str, str | None, Any]]) -> dict[str, Any]:
    """The fingerprint of a result computed from ``(role, spec, array)`` inputs (``spec``
    ``None``: not given, skipped)."""
    return fingerprint([input_entry(role, spec, array) for role, spec, array in inputs if spec])


def combined(digests: Sequence[str]) -> dict[str, Any]:
    """The fingerprint of a merged result: its parts' digests, and one digest of them."""
    digest = blake2b(json.dumps(list(digests)).encode(), digest_size=16).hexdigest()
    return {"digest": digest, "parts": list(digests)}


def same_files(specs: Sequence[str]) -> list[str]:
    """The specs in ``specs`` that name a file already named before (``-`` excepted)."""
    seen: set[tuple[int, int] | str] = set()
    repeated = []
    for spec in specs:
        if spec == "-":
            continue
        try:
            info = os.stat(spec)
            identity: tuple[int, int] | str = (info.st_dev, info.st_ino)
        except OSError:
            identity = os.path.abspath(spec)
        if identity in seen:
            repeated.append(spec)
        seen.add(identity)
    return repeated
