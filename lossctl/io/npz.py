"""NumPy ``.npz`` archives: one member, checked before it is expanded.

Members are read with :mod:`zipfile` and :func:`numpy.lib.format.read_array` after
checking the member's NPY header and its declared zip sizes (refused when larger than
the data could be, or when it would expand beyond what the machine can hold or by a
zip bomb's ratio: :mod:`lossctl.io.inflation`).  Nothing is ever unpickled.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from lossctl.errors import ReadError
from lossctl.io.inflation import check_inflation
from lossctl.io.members import select_member
from lossctl.io.npy import NPY_MAX_HEADER, declared_bytes, native, npy_header
from lossctl.io.sniff import NPY_MAGIC
from lossctl.io.text import oneline

__all__ = ["read_npz"]

Array = npt.NDArray[Any]


def read_npz(
    handle: IO[bytes], source: str, key: str | None, max_bytes: int | None = None
) -> Array:
    """The one array (or ``key``) of an ``.npz``; ``max_bytes``: what a member may expand to
    (default: half of the machine's memory, :func:`lossctl.io.inflation.check_inflation`)."""
    try:
        archive_size = handle.seek(0, io.SEEK_END)
        handle.seek(0)
        with zipfile.ZipFile(handle) as archive:
            return _read_npz_member(archive, archive_size, source, key, max_bytes)
    except ReadError:
        raise
    except MemoryError:
        raise
    except Exception as exc:
        raise ReadError(
            source, f"not a readable .npz archive ({type(exc).__name__}: {oneline(exc)})"
        ) from None


def _members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The members by the names NumPy gives them: ``x.npy`` is ``x``, unless a member is
    named ``x`` itself (then ``x.npy`` keeps its full name, and ``x`` is that member)."""
    infos = [info for info in archive.infolist() if not info.is_dir()]
    filenames = {info.filename for info in infos}
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        short = name[:-4] if name.endswith(".npy") else name
        members[short if short == name or short not in filenames else name] = info
    return members


def _read_npz_member(
    archive: zipfile.ZipFile,
    archive_size: int,
    source: str,
    key: str | None,
    max_bytes: int | None,
) -> Array:
    members = _members(archive)
    if members and not any(info.filename.endswith(".npy") for info in members.values()):
        raise ReadError(
            source, "a zip archive without .npy members; is this really a NumPy .npz file?"
        )
    if key is not None and key not in members and key[:-4] in members:
        key = key[:-4] if members[key[:-4]].filename == key else key  # logits.npy: logits
    key, info = select_member(
        members, key, source, container="the .npz archive", noun=("array", "arrays"), limit=20
    )
    where = f"member {key!r}: "
    if info.flag_bits & 0x1:
        raise ReadError(source, f"{where}is encrypted; lossctl cannot read encrypted archives")
    if info.compress_size > archive_size:
        raise ReadError(
            source,
            f"{where}claims {info.compress_size} compressed bytes, but the whole archive has "
            f"only {archive_size} bytes (corrupt or crafted archive)",
        )
    check_inflation(info, source, where, max_bytes)
    with archive.open(info) as member:
        magic = member.read(len(NPY_MAGIC))
        if magic != NPY_MAGIC:
            raise ReadError(source, f"{where}is not a .npy array (no \\x93NUMPY magic bytes)")
    with archive.open(info) as member:
        shape, _fortran, dtype, header_length = npy_header(member, source, where)
    declared = declared_bytes(shape, dtype)
    if header_length + declared > info.file_size:
        raise ReadError(
            source,
            f"{where}inconsistent sizes: its header declares shape {shape} of {dtype.name} = "
            f"{declared} bytes, but the zip entry holds only {info.file_size} bytes "
            "(truncated or crafted archive)",
        )
    try:
        with warnings.catch_warnings(), archive.open(info) as member:
            warnings.simplefilter("ignore")
            array = np.lib.format.read_array(
                member, allow_pickle=False, max_header_size=NPY_MAX_HEADER
            )
    except Exception as exc:
        raise ReadError(source, f"{where}cannot read the array: {oneline(exc)}") from None
    if array.shape != shape or array.dtype != dtype:
        raise ReadError(source, f"{where}the array does not match its header")
    return native(array)
