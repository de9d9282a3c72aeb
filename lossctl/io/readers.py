"""Turn files and standard input into validated NumPy arrays: the public entry points.

Formats: JSON, CSV/TSV (and whitespace-separated text), NumPy ``.npy`` and ``.npz``,
PyTorch ``torch.save`` files (``.pt``, read without PyTorch, never unpickled freely) and
``.safetensors``; other formats (Parquet, Arrow, HDF5, pickle, GGUF…) are named and
refused with a one-line way to convert them.
Every failure is a :class:`~lossctl.errors.ReadError` with a one-line message that
names the source and, where it applies, the position (JSON index path such as
``[3][1]``; CSV line and column).  Nothing here prints.

One module per concern: :mod:`~lossctl.io.sources` (paths, keys, standard input),
:mod:`~lossctl.io.sniff` (format detection), :mod:`~lossctl.io.numbers` (number
cells), :mod:`~lossctl.io.json_format`, :mod:`~lossctl.io.csv_format`,
:mod:`~lossctl.io.npy`, :mod:`~lossctl.io.npz`, :mod:`~lossctl.io.torch_pt`,
:mod:`~lossctl.io.safetensors` and :mod:`~lossctl.io.foreign`, with text read block by
block (:mod:`~lossctl.io.blocks`; large JSON lists by :mod:`~lossctl.io.json_stream`);
this module dispatches:
NPY magic; a zip archive (``torch.save``'s layout, else NPZ); a safetensors header
(or the ``.safetensors`` extension); PyTorch's legacy pickle; a foreign format; text.

Extension and content disagree
    Content wins where it is unambiguous: NPY or ZIP magic bytes are read as NPY/NPZ
    whatever the extension, and a ``.csv``/``.tsv``/``.txt`` whose first non-blank
    character is ``[`` or ``{`` is read as JSON (a JSON syntax error then says so).
    A ``.npy``/``.npz`` file without its magic bytes is refused ("not a .npy file",
    with a rename hint when it looks like text).  A ``.json`` file is always parsed as
    JSON; binary garbage under a text extension is refused as "binary data" or "not
    valid UTF-8".  :attr:`Loaded.format` reports the format actually used (``.tsv``
    reports ``"csv"``).

Numbers
    JSON and CSV give float64.  NPY/NPZ keep integer and float dtypes up to 64 bits
    (big-endian data is converted to native order).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NamedTuple

import numpy as np
import numpy.typing as npt

from lossctl.errors import ReadError
from lossctl.io.blocks import TextBlocks
from lossctl.io.numbers import parse_number_list
from lossctl.io.sniff import EXTENSIONS, missing_magic, sniff_magic
from lossctl.io.sources import STDIN_NAME, open_input, read_stdin, resolve_spec
from lossctl.io.text import EMPTY, decode_text, oneline

if TYPE_CHECKING:
    from lossctl.io.csv_format import Header
    from lossctl.io.safetensors import Bfloat16Array

# The format modules (and csv, zipfile, pickle, mmap under them) are imported when a
# source turns out to need them: start-up pays only for the formats it reads.

__all__ = [
    "INLINE_NAME",
    "STDIN_NAME",
    "Loaded",
    "parse_number_list",
    "read_array",
    "read_document",
]

Array = npt.NDArray[Any]

INLINE_NAME = "<inline>"


class Loaded(NamedTuple):
    """An array read from a file or standard input, with where it came from."""

    array: Array
    source: str
    format: str
    meta: Mapping[str, object] = MappingProxyType({})  # the default: shared, read-only
    notes: tuple[str, ...] = ()  # one-line notes for stderr, e.g. which CSV header rule fired


# ---------------------------------------------------------------- public API


def read_array(
    spec: str,
    *,
    key: str | None = None,
    stdin: BinaryIO | None = None,
    header: Header = "auto",
) -> Loaded:
    """Read ``spec`` (a path, ``-`` for standard input, ``PATH:KEY``, or inline JSON) into an array.

    A ``spec`` that is not an existing path and starts with ``[`` is JSON text itself
    (``'[[1,2,3]]'``), shown as ``<inline>``.

    ``key`` selects an NPZ member or a top-level JSON key; giving a different key in
    ``PATH:KEY`` as well is an error.  ``header`` applies to CSV (see
    :mod:`lossctl.io.csv_format`); :attr:`Loaded.notes` says which rule fired.
    Raises :class:`ReadError` for every problem.
    """
    source = STDIN_NAME if spec == "-" else spec
    try:
        if _is_inline(spec):
            source = INLINE_NAME
            note = " (not an existing file, so read as inline JSON)"
            from lossctl.io.json_format import read_json

            array, meta = read_json(spec.encode("utf-8"), source, key, note, True)
            return Loaded(array, source, "json", meta)
        path, source, key = resolve_spec(spec, key)
        return _read(path, source, key, stdin, header)
    except ReadError:
        raise
    except RecursionError:
        raise ReadError(source, "input nested too deeply to read") from None
    except MemoryError:
        raise ReadError(source, "not enough memory to read this input") from None
    except Exception as exc:  # last-resort guard: never a traceback
        raise ReadError(
            source, f"could not read the input ({type(exc).__name__}: {oneline(exc)})"
        ) from exc


def read_document(spec: str, *, stdin: BinaryIO | None = None) -> tuple[dict[str, Any], str]:
    """A JSON object from a file or ``-`` (such as the ``--json`` output of ``lossctl ce``).

    Returns the object and the source's display name.
    """
    path, source, _ = resolve_spec(spec, None)
    data = _all_bytes(path, source, stdin)
    text = decode_text(data, source, "JSON")
    if not text.strip():
        raise ReadError(source, EMPTY)
    from lossctl.io.json_format import parse_json

    document = parse_json(text, source, "", is_json_ext=True)
    if not isinstance(document, dict):
        raise ReadError(source, "expected a JSON object, such as the --json output of lossctl ce")
    return document, source


def _is_inline(spec: str) -> bool:
    """JSON text given as the argument: starts with ``[`` and is not an existing path."""
    return spec.lstrip().startswith("[") and not os.path.exists(spec)


def _all_bytes(path: str, source: str, stdin: BinaryIO | None) -> bytes:
    """Every byte of a file, a FIFO or standard input (``-``)."""
    if path == "-":
        return read_stdin(stdin)
    opened = open_input(path, source)
    if isinstance(opened, bytes):
        return opened
    with opened as handle:
        return handle.read()


def _read(
    path: str, source: str, key: str | None, stdin: BinaryIO | None, header: Header
) -> Loaded:
    if path == "-":
        return _from_bytes(read_stdin(stdin), source, key, "", header)
    if not path:
        raise ReadError("''", "empty file name; give a path, or `-` for standard input")
    ext = os.path.splitext(path)[1].lower()
    opened = open_input(path, source)
    if isinstance(opened, bytes):  # a FIFO or pipe, read like standard input
        return _from_bytes(opened, source, key, ext, header)
    with opened as handle:
        head = handle.read(HEAD_BYTES)
        size = os.fstat(handle.fileno()).st_size
        content = _content(head, size, ext, source, lambda: handle.read(4096))
        if content == "npy":
            handle.seek(0)
            from lossctl.io.npy import read_npy

            return Loaded(read_npy(handle, size, source, key), source, "npy", {})
        if content == "npz":
            if _is_torch_archive(handle):
                from lossctl.io import torch_pt

                return Loaded(torch_pt.read_pt_file(handle, source, key), source, "pt")
            handle.seek(0)
            from lossctl.io.npz import read_npz

            array = read_npz(handle, source, key)
            return Loaded(array, source, "npz", {})
        if content == "safetensors":
            from lossctl.io import safetensors

            tensor = safetensors.read_safetensors_file(handle, source, key)
            return Loaded(_as_array(tensor, source), source, "safetensors")
        _refuse_foreign(head, ext, source)
        return _from_text(TextBlocks(handle, head, source), source, key, ext, header)


def _content(head: bytes, size: int, ext: str, source: str, more: Callable[[], bytes]) -> str:
    """``npy``, ``npz`` (a zip), ``safetensors``, or ``""`` (text or a foreign format) from
    the first bytes and the extension; a ``.npy``/``.npz`` without its magic is refused."""
    content = sniff_magic(head)
    if content is None and EXTENSIONS.get(ext) in ("npy", "npz"):
        raise ReadError(source, missing_magic(ext, head + more()))
    if content is not None:
        return content
    if ext == ".safetensors" or _looks_like_safetensors(head, size):
        return "safetensors"
    return ""


HEAD_BYTES = 16  # enough for every magic number and a safetensors header length


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    """:func:`lossctl.io.safetensors.looks_like_safetensors`, imported only for bytes that
    could be one (after the 8-byte length, a header starts with ``{``)."""
    if head[8:9] != b"{":
        return False
    from lossctl.io import safetensors

    return safetensors.looks_like_safetensors(head, size)


def _is_torch_archive(handle: IO[bytes]) -> bool:
    """Whether a zip archive has ``torch.save``'s layout (``ARCHIVE/data.pkl``)."""
    import zipfile

    from lossctl.io import torch_pt

    try:
        handle.seek(0)
        with zipfile.ZipFile(handle) as archive:
            return torch_pt.is_torch_zip(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False  # read_npz says what is wrong with it


def _refuse_foreign(head: bytes, ext: str, source: str) -> None:
    """PyTorch's legacy format and the formats lossctl names but does not read."""
    from lossctl.io.foreign import foreign_format

    if head[:1] == b"\x80":  # a pickle's first byte: could be torch.save's legacy format
        from lossctl.io import torch_pt

        if torch_pt.looks_like_legacy_torch(head):
            torch_pt.read_pt_bytes(head, source, None)  # raises with the re-save hint
    problem = foreign_format(head, ext)
    if problem is not None:
        raise ReadError(source, problem)


def _as_array(tensor: Array | Bfloat16Array, source: str) -> Array:
    """bfloat16 tensors become float32 exactly (the top half of a float32), a large one
    through a temporary file (:mod:`lossctl.io.widen`: bounded memory)."""
    if isinstance(tensor, np.ndarray):
        return tensor
    from lossctl.io.widen import widen_bfloat16

    return widen_bfloat16(tensor.bits, source)


def _from_bytes(data: bytes, source: str, key: str | None, ext: str, header: Header) -> Loaded:
    """Standard input or a FIFO, held in memory: sniffed as a file is."""
    head = data[:HEAD_BYTES]
    content = _content(head, len(data), ext, source, lambda: data[HEAD_BYTES : HEAD_BYTES + 4096])
    if content == "npy":
        from lossctl.io.npy import read_npy

        array = read_npy(io.BytesIO(data), len(data), source, key, data=data)
        return Loaded(array, source, "npy")
    if content == "npz":
        if _is_torch_archive(io.BytesIO(data)):
            from lossctl.io import torch_pt

            return Loaded(torch_pt.read_pt_bytes(data, source, key), source, "pt")
        from lossctl.io.npz import read_npz

        return Loaded(read_npz(io.BytesIO(data), source, key), source, "npz")
    if content == "safetensors":
        from lossctl.io import safetensors

        tensor = safetensors.read_safetensors_bytes(data, source, key)
        return Loaded(_as_array(tensor, source), source, "safetensors")
    _refuse_foreign(head, ext, source)
    return _from_text(TextBlocks(io.BytesIO(data), b"", source), source, key, ext, header)


def _from_text(text: TextBlocks, source: str, key: str | None, ext: str, header: Header) -> Loaded:
    """JSON or CSV text, refused from its first block if binary, then read block by block."""
    ext_format = EXTENSIONS.get(ext)
    first_char = text.first_char()
    looks_json = first_char in (b"[", b"{")
    if ext_format == "json" or looks_json:
        text.check_first("JSON")
        note = ""
        if ext_format in ("csv", "tsv") or ext == ".txt":
            note = f" (read as JSON because it starts with {first_char.decode()!r})"
        return _json(text, source, key, note, ext_format == "json")
    text.check_first("CSV")
    if key is not None:
        raise ReadError(
            source, f"a key ({key!r}) was given, but CSV text holds a single table; drop the key"
        )
    delimiter = "\t" if ext_format == "tsv" else None
    from lossctl.io.csv_format import read_csv

    array, notes, candidate = read_csv(text.blocks("CSV"), source, delimiter, header)
    found: dict[str, object] = {} if candidate is None else {"header_candidate": candidate}
    return Loaded(array, source, "csv", found, notes)


def _json(text: TextBlocks, source: str, key: str | None, note: str, is_json_ext: bool) -> Loaded:
    """A nested list bigger than a block is streamed (:mod:`lossctl.io.json_stream`);
    anything else, or anything the stream does not take, is parsed whole."""
    if key is None and not text.single and text.first_char() == b"[":
        from lossctl.io.json_stream import Fallback, stream_json_array

        try:
            array = stream_json_array(text.blocks("JSON"), source, text.block_bytes)
        except Fallback:
            pass
        else:
            return Loaded(array, source, "json", {})
    from lossctl.io.json_format import read_json

    array, meta = read_json(text.whole(), source, key, note, is_json_ext)
    return Loaded(array, source, "json", meta)
