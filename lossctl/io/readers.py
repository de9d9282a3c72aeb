"""Turn files and standard input into validated NumPy arrays.

Formats: JSON, CSV/TSV (and whitespace-separated text), NumPy ``.npy`` and ``.npz``.
Every failure is a :class:`~lossctl.errors.ReadError` with a one-line message that
names the source and, where it applies, the position (JSON index path such as
``[3][1]``; CSV line and column).  Nothing here prints.

Sources
    A path; ``-`` for standard input (read fully into memory); ``PATH:KEY`` when
    ``PATH:KEY`` itself is not an existing file but ``PATH`` is (``-:KEY`` works for
    standard input).  A key given both ways must agree.  Only regular files are
    opened: directories, FIFOs, sockets and devices are refused after ``os.stat``
    (and again after opening, non-blocking, in case the file was swapped).

Choosing the format
    The extension decides (``.json``, ``.csv``, ``.tsv``, ``.npy``, ``.npz``); ``.txt``,
    an unknown or missing extension, and ``-`` are sniffed from the content:
    ``\x93NUMPY`` is NPY, ``PK\x03\x04``/``PK\x05\x06`` is NPZ, a first non-blank
    character ``[`` or ``{`` is JSON, anything else is CSV.

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
    JSON and CSV give float64.  Besides numbers, the strings ``nan``, ``inf`` and
    ``infinity``, each with an optional ``+``/``-`` sign and in any case, are accepted
    (lossctl's own JSON output writes non-finite values as ``"nan"``, ``"inf"``,
    ``"-inf"``).  Bare ``NaN``/``Infinity`` JSON tokens, numbers beyond float64
    (``1e999``, integers with hundreds of digits), booleans, null, other strings,
    objects inside arrays, ragged or mixed-depth nesting, duplicate object keys and
    nesting deeper than 64 levels are refused.  NPY/NPZ keep integer and float dtypes
    up to 64 bits (big-endian data is converted to native order); bool, complex,
    strings, dates, void/structured, object and long double are refused.

JSON objects
    With a key: that member.  A lossctl document (``"op"`` plus ``"result"`` or
    ``"loss"``): its ``"result"`` (reshaped by ``"shape"``, so empty results keep
    their shape) or its ``"loss"`` (``"shape"`` is then the input's and is ignored);
    ``"op"``, ``"dim"`` and ``"class_dim"`` go to :attr:`Loaded.meta` as present.
    Otherwise the only member holding a list or number, else an error listing keys.

CSV details
    Delimiter: tab, semicolon or comma, sniffed from the first non-blank, non-comment
    line in that order of preference (``.tsv`` is always tab); a line with none of
    them is split on runs of whitespace (``np.savetxt``'s default).  Blank lines and
    ``#`` comment lines are skipped; CRLF/CR line ends and a UTF-8 BOM are accepted;
    quoted fields (``"1.5"``) are accepted but may not span lines.  An empty last
    cell (a trailing delimiter) is dropped on any row; any other empty cell is an
    error.  The first row is a header (skipped) when any of its non-empty cells is
    not a number; a non-numeric row anywhere else is an error.  Numbers use Python's
    ``float`` syntax, ASCII only, without ``_`` separators.  One column gives a 1-D
    array, more give 2-D.

Binary formats
    ``.npy`` headers are read and checked (dtype; declared size against the bytes
    present) before any data is touched; files are then opened with
    ``np.load(path, mmap_mode="r", allow_pickle=False)``, so native-endian arrays come
    back as read-only memory maps (no copy; Fortran order is kept) and big-endian ones
    as converted copies.  ``.npz`` members are read with :mod:`zipfile` and
    :func:`numpy.lib.format.read_array` after checking the member's NPY header and its
    declared zip sizes (refused when larger than the data could be, or when it would
    expand more than 64x *and* beyond 1 GiB).  Nothing is ever unpickled.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import stat
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

import numpy as np
import numpy.typing as npt

from lossctl.errors import ReadError

__all__ = ["STDIN_NAME", "Loaded", "parse_number_list", "read_array", "read_document"]

STDIN_NAME = "<stdin>"

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_BOM = b"\xef\xbb\xbf"
_MAX_NDIM = 64
_NPY_MAX_HEADER = 10_000
_NPZ_MAX_RATIO = 64
_NPZ_MAX_BYTES = 1 << 30
_ACCEPTED_DTYPES = "accepted: int8..int64, uint8..uint64, float16, float32, float64"
_EXTENSIONS = {".json": "json", ".csv": "csv", ".tsv": "tsv", ".npy": "npy", ".npz": "npz"}
_EMPTY = "no numbers found (empty file)"
_SPECIAL: dict[str, float] = {
    "nan": math.nan,
    "+nan": math.nan,
    "-nan": math.nan,
    "inf": math.inf,
    "+inf": math.inf,
    "-inf": -math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-infinity": -math.inf,
}
_NUMERIC_TYPES = frozenset({int, float})
_LIST_TYPE = frozenset({list})
_INF = math.inf
_NINF = -math.inf
_FLOAT64_MAX = float(np.finfo(np.float64).max)

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Loaded:
    """An array read from a file or standard input, with where it came from."""

    array: Array
    source: str
    format: str
    meta: dict[str, object] = field(default_factory=dict)


# ---------------------------------------------------------------- public API


def read_array(spec: str, *, key: str | None = None, stdin: BinaryIO | None = None) -> Loaded:
    """Read ``spec`` (a path, ``-`` for standard input, or ``PATH:KEY``) into an array.

    ``key`` selects an NPZ member or a top-level JSON key; giving a different key in
    ``PATH:KEY`` as well is an error.  Raises :class:`ReadError` for every problem.
    """
    source = STDIN_NAME if spec == "-" else spec
    try:
        path, source, key = _resolve_spec(spec, key)
        return _read(path, source, key, stdin)
    except ReadError:
        raise
    except RecursionError:
        raise ReadError(source, "input nested too deeply to read") from None
    except MemoryError:
        raise ReadError(source, "not enough memory to read this input") from None
    except Exception as exc:  # last-resort guard: never a traceback
        raise ReadError(
            source, f"could not read the input ({type(exc).__name__}: {_oneline(exc)})"
        ) from exc


def read_document(spec: str, *, stdin: BinaryIO | None = None) -> tuple[dict[str, Any], str]:
    """A JSON object from a file or ``-`` (such as the ``--json`` output of ``lossctl ce``).

    Returns the object and the source's display name.
    """
    path, source, _ = _resolve_spec(spec, None)
    if path == "-":
        data = _read_stdin(stdin)
    else:
        with _open_regular(path, source) as handle:
            data = handle.read()
    text = _decode_text(data, source, "JSON")
    if not text.strip():
        raise ReadError(source, _EMPTY)
    document = _parse_json(text, source, "", is_json_ext=True)
    if not isinstance(document, dict):
        raise ReadError(source, "expected a JSON object, such as the --json output of lossctl ce")
    return document, source


def parse_number_list(text: str, *, what: str) -> npt.NDArray[np.float64]:
    """Parse an inline list such as ``1,2,0.5`` or ``[1, 2, 0.5]`` into a 1-D float64 array.

    Items are separated by commas (or by whitespace when there is no comma); every
    item must be a finite number.  Raises ``ReadError(what, message)``.
    """
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1].strip()
    elif body.startswith("[") or body.endswith("]"):
        raise ReadError(what, f"unbalanced brackets in {_show(text)}; write e.g. 1,2,0.5")
    if not body:
        raise ReadError(what, "empty list; give numbers separated by commas, e.g. 1,2,0.5")
    items = body.split(",") if "," in body else body.split()
    values: list[float] = []
    for index, raw in enumerate(items, 1):
        item = raw.strip()
        if not item:
            raise ReadError(what, f"item {index} is empty in {_show(text)}; remove the extra comma")
        try:
            value = _cell_value(item)
        except _OutOfRange:
            raise ReadError(what, f"item {index} ({_show(item)}) is out of float64 range") from None
        if value is None:
            raise ReadError(what, f"item {index} ({_show(item)}) is not a number")
        if not math.isfinite(value):
            raise ReadError(what, f"item {index} is {item}; every value must be a finite number")
        values.append(value)
    return np.array(values, dtype=np.float64)


# ---------------------------------------------------------------- sources


def _resolve_spec(spec: str, key: str | None) -> tuple[str, str, str | None]:
    """Split ``PATH:KEY``; return (path or "-", display name, key)."""
    path = spec
    spec_key: str | None = None
    if spec != "-" and ":" in spec and not os.path.exists(spec):
        head, _, tail = spec.rpartition(":")
        if head == "-" or (head and os.path.exists(head)):
            path, spec_key = head, tail
    source = STDIN_NAME if path == "-" else path
    if spec_key is not None:
        if not spec_key:
            raise ReadError(source, "empty key after ':'; write FILE:KEY, e.g. data.npz:logits")
        if key is not None and key != spec_key:
            raise ReadError(
                source,
                f"two different keys given: {spec_key!r} in {spec!r} and {key!r} via --key; "
                "give only one",
            )
        key = spec_key
    return path, source, key


def _read(path: str, source: str, key: str | None, stdin: BinaryIO | None) -> Loaded:
    if path == "-":
        data = _read_stdin(stdin)
        return _from_bytes(data, source, key, ext="")
    if not path:
        raise ReadError("''", "empty file name; give a path, or `-` for standard input")
    ext = os.path.splitext(path)[1].lower()
    with _open_regular(path, source) as handle:
        head = handle.read(8)
        content = _sniff_magic(head)
        ext_format = _EXTENSIONS.get(ext)
        if content is None and ext_format in ("npy", "npz"):
            rest = handle.read(4096)
            raise ReadError(source, _missing_magic(ext, head + rest))
        if content == "npy":
            size = os.fstat(handle.fileno()).st_size
            handle.seek(0)
            array = _read_npy(handle, size, source, key, path=path)
            return Loaded(array, source, "npy", {})
        if content == "npz":
            handle.seek(0)
            array = _read_npz(handle, source, key)
            return Loaded(array, source, "npz", {})
        data = head + handle.read()
    return _from_text_bytes(data, source, key, ext)


def _read_stdin(stdin: BinaryIO | None) -> bytes:
    stream: Any = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise ReadError(STDIN_NAME, "standard input is not available")
    try:
        data = stream.read()
    except OSError as exc:
        raise ReadError(STDIN_NAME, f"cannot read standard input: {_oneline(exc)}") from None
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ReadError(STDIN_NAME, "standard input did not return bytes")
    data = bytes(data)
    if not data:
        raise ReadError(
            STDIN_NAME,
            "standard input is empty; pipe a file in, e.g. "
            "`cat logits.json | lossctl ce - labels.json`",
        )
    return data


_STREAM_HINT = "not a regular file; to read a stream use `-` with a redirect"


def _open_regular(path: str, source: str) -> IO[bytes]:
    """Open a regular file for reading, refusing FIFOs, devices and directories first."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ReadError(
            source, "no such file; check the path (use `-` to read standard input)"
        ) from None
    except NotADirectoryError:
        raise ReadError(
            source, "no such file (a part of the path is not a directory); check the path"
        ) from None
    except PermissionError:
        raise ReadError(
            source, "permission denied while looking up the file; check its directories"
        ) from None
    except (OSError, ValueError) as exc:
        raise ReadError(source, f"cannot access the file: {_os_reason(exc)}") from None
    problem = _not_regular(info.st_mode)
    if problem:
        raise ReadError(source, problem)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:
        raise ReadError(
            source, "permission denied; make the file readable, e.g. `chmod +r FILE`"
        ) from None
    except (OSError, ValueError) as exc:
        raise ReadError(source, f"cannot open the file: {_os_reason(exc)}") from None
    try:
        problem = _not_regular(os.fstat(fd).st_mode)  # it may have changed since stat()
        if problem:
            raise ReadError(source, problem)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file; give the path of a .json, .csv, .npy or .npz file"
    if stat.S_ISFIFO(mode):
        return f"is a FIFO, {_STREAM_HINT}"
    if stat.S_ISSOCK(mode):
        return f"is a socket, {_STREAM_HINT}"
    if stat.S_ISCHR(mode):
        return f"is a character device, {_STREAM_HINT}"
    if stat.S_ISBLK(mode):
        return f"is a block device, {_STREAM_HINT}"
    return f"is {_STREAM_HINT}"


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _oneline(exc)


# ---------------------------------------------------------------- dispatch


def _sniff_magic(head: bytes) -> str | None:
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head[:4] in _ZIP_MAGICS:
        return "npz"
    return None


def _missing_magic(ext: str, head: bytes) -> str:
    if not head:
        return f"empty file (0 bytes); not a valid {ext} file"
    expected = "\\x93NUMPY" if ext == ".npy" else "PK\\x03\\x04 (a zip archive)"
    text = head.lstrip(_BOM).lstrip()
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


def _from_bytes(data: bytes, source: str, key: str | None, ext: str) -> Loaded:
    """Standard input: sniff everything."""
    content = _sniff_magic(data[:8])
    if content == "npy":
        return Loaded(_read_npy(_io_bytes(data), len(data), source, key, path=None), source, "npy")
    if content == "npz":
        return Loaded(_read_npz(_io_bytes(data), source, key), source, "npz")
    return _from_text_bytes(data, source, key, ext)


def _io_bytes(data: bytes) -> IO[bytes]:
    """A seekable in-memory file over ``data`` (``np.load`` needs seeking)."""
    return io.BytesIO(data)


def _from_text_bytes(data: bytes, source: str, key: str | None, ext: str) -> Loaded:
    ext_format = _EXTENSIONS.get(ext)
    first = data[3:] if data.startswith(_BOM) else data
    first_char = first.lstrip()[:1]
    looks_json = first_char in (b"[", b"{")
    if ext_format == "json" or looks_json:
        note = ""
        if ext_format in ("csv", "tsv") or ext == ".txt":
            note = f" (read as JSON because it starts with {first_char.decode()!r})"
        array, meta = _read_json(data, source, key, note, ext_format == "json")
        return Loaded(array, source, "json", meta)
    if key is not None:
        raise ReadError(
            source, f"a key ({key!r}) was given, but CSV text holds a single table; drop the key"
        )
    delimiter = "\t" if ext_format == "tsv" else None
    return Loaded(_read_csv(data, source, delimiter), source, "csv", {})


# ---------------------------------------------------------------- text helpers


def _decode_text(data: bytes, source: str, what: str) -> str:
    offset = 0
    if data.startswith(_BOM):
        data = data[3:]
        offset = 3
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ReadError(source, f"looks like UTF-16 text; save it as UTF-8 {what}")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ReadError(source, f"binary data (NUL byte at offset {nul + offset}), not {what} text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        raise ReadError(
            source,
            f"not valid UTF-8 text (byte 0x{bad:02x} at offset {exc.start + offset}); "
            f"is this a binary file? expected {what} text",
        ) from None


class _OutOfRange(Exception):
    """A numeric literal that overflows float64."""


def _cell_value(cell: str) -> float | None:
    """A number or a nan/inf name; None when not a number; raises _OutOfRange."""
    if not cell or not cell.isascii() or "_" in cell:
        return None
    special = _SPECIAL.get(cell.lower())
    if special is not None:
        return special
    try:
        value = float(cell)
    except ValueError:
        return None
    if math.isfinite(value):
        return value
    if math.isinf(value):
        raise _OutOfRange(cell)
    return None


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _show(text: str, limit: int = 40) -> str:
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def _oneline(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:200] + "..."


# ---------------------------------------------------------------- JSON


class _BareConstant:
    """Stands in for a bare NaN/Infinity/-Infinity token until validation reports it."""

    def __init__(self, token: str) -> None:
        self.token = token


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _DuplicateKey(name)
        result[name] = value
    return result


def _big_int(text: str) -> float:
    return float(text)  # inf for huge integers; validation reports it


def _parse_json(text: str, source: str, note: str, is_json_ext: bool) -> Any:
    try:
        try:
            return json.loads(text, parse_constant=_BareConstant, object_pairs_hook=_pairs_hook)
        except ValueError as exc:
            if isinstance(exc, json.JSONDecodeError) or "digits" not in str(exc):
                raise
            # an integer with more digits than Python converts; parse ints as floats
            return json.loads(
                text,
                parse_constant=_BareConstant,
                object_pairs_hook=_pairs_hook,
                parse_int=_big_int,
            )
    except json.JSONDecodeError as exc:
        hint = ""
        if is_json_ext and exc.msg == "Extra data" and text.lstrip()[:1] not in ("[", "{"):
            hint = "; it looks like CSV: rename it to .csv"
        raise ReadError(
            source, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}{note}"
        ) from None
    except _DuplicateKey as exc:
        raise ReadError(
            source, f"duplicate key {exc.key!r} in a JSON object; every key must appear once"
        ) from None
    except RecursionError:
        raise ReadError(
            source,
            f"JSON nested too deeply; arrays have at most {_MAX_NDIM} dimensions",
        ) from None


def _read_json(
    data: bytes, source: str, key: str | None, note: str, is_json_ext: bool
) -> tuple[Array, dict[str, object]]:
    text = _decode_text(data, source, "JSON")
    if not text.strip():
        raise ReadError(source, _EMPTY)
    document = _parse_json(text, source, note, is_json_ext)
    node, path, meta, shape_field = _select_json(document, source, key)
    array = _json_to_array(node, source, path)
    if shape_field is not None:
        array = _apply_shape(array, shape_field, source)
    return array, meta


def _is_lossctl_document(document: dict[str, Any]) -> bool:
    return "op" in document and ("result" in document or "loss" in document)


def _select_json(
    document: Any, source: str, key: str | None
) -> tuple[Any, tuple[int | str, ...], dict[str, object], Any]:
    """Pick the array inside the document: (node, index path, meta, "shape" field or None)."""
    if type(document) is not dict:
        if key is not None:
            kind = "a list" if type(document) is list else _describe(document)
            raise ReadError(
                source,
                f"a key ({key!r}) was given, but the JSON document is {kind}, not an object",
            )
        return document, (), {}, None
    meta: dict[str, object] = {}
    is_doc = _is_lossctl_document(document)
    if is_doc:
        for name in ("op", "dim", "class_dim"):
            if name in document:
                meta[name] = document[name]
    if key is not None:
        if key not in document:
            raise ReadError(
                source, f"no key {key!r} in the JSON object; available keys: {_keys(document)}"
            )
        shape = document.get("shape") if is_doc and key == "result" else None
        return document[key], (key,), meta, shape
    if is_doc:
        member = "result" if "result" in document else "loss"
        # a loss document's "shape" is the input's shape, not the loss's
        shape = document.get("shape") if member == "result" else None
        return document[member], (member,), meta, shape
    if not document:
        raise ReadError(source, "the JSON object is empty; no numbers found")
    candidates = [name for name, value in document.items() if type(value) in (list, int, float)]
    if len(candidates) == 1:
        return document[candidates[0]], (candidates[0],), meta, None
    raise ReadError(
        source,
        f"the JSON object has keys {_keys(document)}; choose the array with "
        "--key NAME or FILE:NAME",
    )


def _keys(document: dict[str, Any], limit: int = 12) -> str:
    names = [repr(name) for name in list(document)[: limit + 1]]
    if len(names) > limit:
        names[limit:] = [f"... ({len(document)} in all)"]
    return ", ".join(names)


def _where(path: tuple[int | str, ...]) -> str:
    if not path:
        return "top level"
    return "".join(f"[{json.dumps(p)}]" if isinstance(p, str) else f"[{p}]" for p in path)


def _describe(value: Any) -> str:
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is str:
        return f"the string {json.dumps(value if len(value) <= 40 else value[:40] + '...')}"
    if kind is dict:
        return "an object"
    if kind is list:
        return f"a list of {_items(len(value))}"
    if kind is int:
        return "an integer"
    if kind is float:
        return repr(value)
    if isinstance(value, _BareConstant):
        return value.token
    return kind.__name__


def _json_scalar(value: Any, path: tuple[int | str, ...], source: str) -> float:
    kind = type(value)
    if kind is float:
        if math.isinf(value):
            raise ReadError(source, f"number out of float64 range at {_where(path)}")
        return float(value)
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            raise ReadError(source, f"number out of float64 range at {_where(path)}") from None
    where = _where(path)
    if kind is str:
        special = _SPECIAL.get(value.lower()) if len(value) <= 9 else None
        if special is not None:
            return special
        raise ReadError(
            source,
            f"{where}: expected a number, found {_describe(value)} "
            '(only numbers and the strings "nan", "inf", "-inf" are allowed)',
        )
    if isinstance(value, _BareConstant):
        name = '"nan"' if value.token == "NaN" else ('"-inf"' if value.token[0] == "-" else '"inf"')
        raise ReadError(
            source,
            f"{where}: bare {value.token} is not valid JSON (RFC 8259); "
            f"write it as the string {name}",
        )
    if kind is list:
        raise ReadError(
            source, f"{where}: expected a number, found {_describe(value)} (mixed nesting depth)"
        )
    raise ReadError(source, f"{where}: expected a number, found {_describe(value)}")


def _row_ok(row: list[Any]) -> bool:
    return set(map(type, row)) <= _NUMERIC_TYPES and _INF not in row and _NINF not in row


def _json_to_array(node: Any, source: str, path: tuple[int | str, ...]) -> Array:
    shape: list[int] = []
    current = node
    while type(current) is list:
        shape.append(len(current))
        if len(shape) > _MAX_NDIM:
            raise ReadError(
                source,
                f"{_where(path)}: nested more than {_MAX_NDIM} levels deep; "
                f"arrays have at most {_MAX_NDIM} dimensions",
            )
        if not current:
            break
        current = current[0]
    checked = _json_check(node, shape, 0, path, source)
    try:
        array = np.array(checked, dtype=np.float64)
    except OverflowError:
        _find_overflow(checked, path, source)
        raise
    if array.shape != tuple(shape):  # cannot happen after the checks; be safe
        raise ReadError(source, f"{_where(path)}: inconsistent nesting")
    return array


def _find_overflow(node: Any, path: tuple[int | str, ...], source: str) -> None:
    if type(node) is list:
        for index, child in enumerate(node):
            _find_overflow(child, (*path, index), source)
    else:
        _json_scalar(node, path, source)


def _json_check(
    node: Any, shape: list[int], depth: int, path: tuple[int | str, ...], source: str
) -> Any:
    """Validate ``node`` against ``shape``; return it, or a converted copy when needed."""
    ndim = len(shape)
    if depth == ndim:
        return _json_scalar(node, path, source)
    expected = shape[depth]
    if type(node) is not list:
        raise ReadError(
            source,
            f"{_where(path)}: expected a list of {expected} items, found {_describe(node)} "
            "(mixed nesting depth)",
        )
    if len(node) != expected:
        first = _where((*path[: len(path) - depth], *([0] * depth))) if depth else ""
        like = f" like {first}" if first else ""
        raise ReadError(
            source,
            f"{_where(path)} has {_items(len(node))}, expected {expected}{like} "
            "(ragged rows: lists at the same depth must have the same length)",
        )
    if depth == ndim - 1:
        if _row_ok(node):
            return node
        return [_json_scalar(value, (*path, i), source) for i, value in enumerate(node)]
    replaced: list[Any] | None = None
    if depth == ndim - 2:
        width = shape[depth + 1]
        if (
            set(map(type, node)) <= _LIST_TYPE
            and set(map(len, node)) <= {width}
            and _row_ok(list(itertools.chain.from_iterable(node)))
        ):
            return node
        for index, row in enumerate(node):
            if type(row) is list and len(row) == width and _row_ok(row):
                continue
            fixed = _json_check(row, shape, depth + 1, (*path, index), source)
            if replaced is None:
                replaced = list(node)
            replaced[index] = fixed
        return node if replaced is None else replaced
    for index, child in enumerate(node):
        fixed = _json_check(child, shape, depth + 1, (*path, index), source)
        if fixed is not child:
            if replaced is None:
                replaced = list(node)
            replaced[index] = fixed
    return node if replaced is None else replaced


def _apply_shape(array: Array, shape: Any, source: str) -> Array:
    if type(shape) is not list or not all(type(n) is int and n >= 0 for n in shape):
        raise ReadError(
            source,
            f"field 'shape' must be a list of non-negative integers, not {_show(str(shape))}",
        )
    if len(shape) > _MAX_NDIM:
        raise ReadError(source, f"field 'shape' has more than {_MAX_NDIM} dimensions")
    if math.prod(shape) != array.size:
        raise ReadError(
            source, f"field 'shape' {shape} does not match the {array.size} values of the result"
        )
    return array.reshape(shape)


# ---------------------------------------------------------------- CSV


def _sniff_delimiter(line: str) -> str | None:
    for delimiter in ("\t", ";", ","):
        if delimiter in line:
            return delimiter
    return None


def _split_cells(line: str, delimiter: str | None, source: str, lineno: int) -> list[str]:
    if delimiter is None:
        cells = line.split()
        return [c[1:-1].strip() if len(c) >= 2 and c[0] == c[-1] == '"' else c for c in cells]
    if '"' not in line:
        return [cell.strip() for cell in line.split(delimiter)]
    try:
        reader = csv.reader([line], delimiter=delimiter, skipinitialspace=True, strict=True)
        cells = next(reader)
    except (csv.Error, StopIteration) as exc:
        raise ReadError(
            source,
            f"line {lineno}: malformed quoting ({_oneline(exc)}); quoted fields may not span lines",
        ) from None
    return [cell.strip() for cell in cells]


def _fast_row(line: str, delimiter: str | None) -> list[float] | None:
    """Plain finite numbers only (the common case), else None to take the careful path."""
    if '"' in line or "_" in line or not line.isascii():
        return None
    if delimiter is not None and line.endswith(delimiter):
        line = line[: -len(delimiter)]  # trailing delimiter
    try:
        values = list(map(float, line.split(delimiter)))
    except ValueError:
        return None
    return values if all(map(math.isfinite, values)) else None


def _careful_row(cells: list[str]) -> list[float] | None:
    """Per-cell parsing (nan/inf names); None if any cell is not a number."""
    values: list[float] = []
    for cell in cells:
        value = _cell_value(cell)
        if value is None:
            return None
        values.append(value)
    return values


def _read_csv(data: bytes, source: str, delimiter: str | None) -> Array:
    text = _decode_text(data, source, "CSV")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    rows: list[list[float]] = []
    sniffed = delimiter is not None
    seen_content = False
    header_line = 0
    width = 0
    width_line = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not sniffed:
            delimiter = _sniff_delimiter(line)
            sniffed = True
        if delimiter == "\t":
            line = raw.strip(" \f\v")  # keep leading/trailing tabs: they delimit empty cells
        values = _fast_row(line, delimiter)
        if values is None:
            cells = _split_cells(line, delimiter, source, lineno)
            if len(cells) > 1 and not cells[-1]:
                cells.pop()  # trailing delimiter
            try:
                values = _careful_row(cells)
            except _OutOfRange as exc:
                column = cells.index(str(exc)) + 1
                raise ReadError(
                    source,
                    f"number out of float64 range at line {lineno}, column {column}: "
                    f"{_show(str(exc))}",
                ) from None
            if values is None:
                if not seen_content and any(c and _safe_value(c) is None for c in cells):
                    seen_content = True
                    header_line = lineno
                    continue
                raise ReadError(source, _bad_cell_message(cells, lineno))
        seen_content = True
        if not rows:
            width, width_line = len(values), lineno
        elif len(values) != width:
            raise ReadError(
                source,
                f"line {lineno} has {len(values)} values, expected {width} as on line "
                f"{width_line} (ragged rows)",
            )
        rows.append(values)
    if not rows:
        if header_line:
            raise ReadError(source, f"{_EMPTY}: only a header row (line {header_line})")
        raise ReadError(source, _EMPTY)
    array = np.array(rows, dtype=np.float64)
    return array.reshape(-1) if width == 1 else array


def _safe_value(cell: str) -> float | None:
    try:
        return _cell_value(cell)
    except _OutOfRange:
        return math.inf


def _bad_cell_message(cells: list[str], lineno: int) -> str:
    bad = [i for i, cell in enumerate(cells) if _safe_value(cell) is None]
    column = bad[0] + 1
    cell = cells[bad[0]]
    if not cell:
        return f"line {lineno}, column {column}: empty cell; every cell must hold a number"
    hint = ""
    if len(bad) == len(cells):
        hint = " (this looks like a header row; a header is only allowed on the first line)"
    return f"line {lineno}, column {column}: {_show(cell)} is not a number{hint}"


# ---------------------------------------------------------------- NPY / NPZ


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


def _npy_header(
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
                    reader, max_header_size=_NPY_MAX_HEADER
                )
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                    reader, max_header_size=_NPY_MAX_HEADER
                )
            else:
                raise ReadError(
                    source, f"{where}unsupported .npy format version {version[0]}.{version[1]}"
                )
    except ReadError:
        raise
    except Exception as exc:
        raise ReadError(source, f"{where}invalid .npy header: {_oneline(exc)}") from None
    if not all(type(n) is int and n >= 0 for n in shape) or len(shape) > _MAX_NDIM:
        raise ReadError(source, f"{where}invalid .npy header: bad shape {shape}")
    problem = _dtype_problem(dtype)
    if problem:
        raise ReadError(source, f"{where}{problem}")
    return shape, fortran, dtype, reader.count


def _declared_bytes(shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    return math.prod(shape) * dtype.itemsize


def _native(array: Array) -> Array:
    """Native byte order; memory maps of native data are returned as they are."""
    if array.dtype.isnative:
        return array
    return np.array(array, dtype=array.dtype.newbyteorder("="), order="K")


def _read_npy(
    handle: IO[bytes], size: int, source: str, key: str | None, *, path: str | None
) -> Array:
    if key is not None:
        raise ReadError(
            source, f"a key ({key!r}) was given, but a .npy file holds a single array; drop the key"
        )
    shape, _fortran, dtype, header_length = _npy_header(handle, source, "")
    declared = _declared_bytes(shape, dtype)
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
            if path is not None:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            else:
                handle.seek(0)
                array = np.load(handle, allow_pickle=False)
    except Exception as exc:
        raise ReadError(source, f"cannot read .npy data: {_oneline(exc)}") from None
    if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != dtype:
        raise ReadError(source, "the file changed while it was being read; try again")
    return _native(array)


def _read_npz(handle: IO[bytes], source: str, key: str | None) -> Array:
    try:
        archive_size = handle.seek(0, io.SEEK_END)
        handle.seek(0)
        with zipfile.ZipFile(handle) as archive:
            return _read_npz_member(archive, archive_size, source, key)
    except ReadError:
        raise
    except MemoryError:
        raise
    except Exception as exc:
        raise ReadError(
            source, f"not a readable .npz archive ({type(exc).__name__}: {_oneline(exc)})"
        ) from None


def _read_npz_member(
    archive: zipfile.ZipFile, archive_size: int, source: str, key: str | None
) -> Array:
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        if info.is_dir():
            continue
        name = info.filename
        members[name[:-4] if name.endswith(".npy") else name] = info
    if not members:
        raise ReadError(source, "the .npz archive holds no arrays")
    if not any(info.filename.endswith(".npy") for info in members.values()):
        raise ReadError(
            source, "a zip archive without .npy members; is this really a NumPy .npz file?"
        )
    listing = ", ".join(repr(name) for name in list(members)[:20])
    if len(members) > 20:
        listing += f", ... ({len(members)} in all)"
    if key is None:
        if len(members) > 1:
            raise ReadError(
                source,
                f"the .npz archive holds {len(members)} arrays ({listing}); "
                "choose one with --key NAME or FILE:NAME",
            )
        key = next(iter(members))
    info_or_none = members.get(key)
    if info_or_none is None and key in archive.namelist():
        info_or_none = archive.getinfo(key)
    if info_or_none is None:
        raise ReadError(source, f"no array named {key!r} in the .npz archive; it holds: {listing}")
    info = info_or_none
    where = f"member {key!r}: "
    if info.flag_bits & 0x1:
        raise ReadError(source, f"{where}is encrypted; lossctl cannot read encrypted archives")
    if info.compress_size > archive_size:
        raise ReadError(
            source,
            f"{where}claims {info.compress_size} compressed bytes, but the whole archive has "
            f"only {archive_size} bytes (corrupt or crafted archive)",
        )
    compressed = max(info.compress_size, 1)
    if info.file_size > _NPZ_MAX_RATIO * compressed and info.file_size > _NPZ_MAX_BYTES:
        raise ReadError(
            source,
            f"{where}would expand from {info.compress_size} to {info.file_size} bytes "
            f"({info.file_size // compressed}x), beyond the safety limit of {_NPZ_MAX_RATIO}x "
            f"and {_NPZ_MAX_BYTES} bytes (possible zip bomb); refusing",
        )
    with archive.open(info) as member:
        magic = member.read(len(_NPY_MAGIC))
        if magic != _NPY_MAGIC:
            raise ReadError(source, f"{where}is not a .npy array (no \\x93NUMPY magic bytes)")
    with archive.open(info) as member:
        shape, _fortran, dtype, header_length = _npy_header(member, source, where)
    declared = _declared_bytes(shape, dtype)
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
                member, allow_pickle=False, max_header_size=_NPY_MAX_HEADER
            )
    except Exception as exc:
        raise ReadError(source, f"{where}cannot read the array: {_oneline(exc)}") from None
    if array.shape != shape or array.dtype != dtype:
        raise ReadError(source, f"{where}the array does not match its header")
    return _native(array)
