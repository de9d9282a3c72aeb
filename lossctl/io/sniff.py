"""Format detection from the extension and the first bytes.

The extension decides (``.json``, ``.csv``, ``.tsv``, ``.npy``, ``.npz``); ``.txt``, an
unknown or missing extension, and ``-`` are sniffed from the content: ``\x93NUMPY`` is
NPY, ``PK\x03\x04``/``PK\x05\x06`` is NPZ, a first non-blank character ``[`` or ``{`` is
JSON, anything else is CSV.  How content and extension are weighed when they disagree
is described in :mod:`lossctl.io.readers`.
"""

from __future__ import annotations

from lossctl.io.text import BOM

__all__ = ["EXTENSIONS", "NPY_MAGIC", "ZIP_MAGICS", "missing_magic", "sniff_magic"]

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
EXTENSIONS = {".json": "json", ".csv": "csv", ".tsv": "tsv", ".npy": "npy", ".npz": "npz"}


def sniff_magic(head: bytes) -> str | None:
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head[:4] in ZIP_MAGICS:
        return "npz"
    return None


def missing_magic(ext: str, head: bytes) -> str:
    if not head:
        return f"empty file (0 bytes); not a valid {ext} file"
    expected = "\\x93NUMPY" if ext == ".npy" else "PK\\x03\\x04 (a zip archive)"
    text = head.lstrip(BOM).lstrip()
    looks = ""
    if text[:1] in (b"[", b"{"):
        looks = "; it looks like JSON: rename it to .json"
    elif text and b"\x00" not in text[:256]:
        try:
            text[:256].decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            looks = "; it looks like text: rename it to .csv or .json"
    return f"not a {ext} file: it does not start with the magic bytes {expected}{looks}"
