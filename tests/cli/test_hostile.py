"""Issue #5, hostile input: every input class through the CLI.

Every case ends in either exit code 0 with the right numbers, or one line on stderr
with a documented exit code, an empty stdout and no traceback. Each case runs through
the app with typer's CliRunner (milliseconds); the cases only a real process can show
(a terminal as stdin, file permissions, click's usage errors printed by ``main()``)
and every sixth case also run as ``python -m lossctl`` processes, which must print
exactly what the app printed. The table of docs/errors.md is generated from
:data:`CASES` and checked against the real messages (``python -m tests.cli.test_hostile``
rewrites it).

The cases run with the working directory set to a scratch directory holding
``inputs/`` (tests/inputs), ``hostile/`` (tests/hostile), ``seed/`` (examples/seed) and
the files that cannot live in git (a FIFO, an unreadable file, a zip bomb, ...),
so that every message is the same on every machine.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer.main
import typer.testing
from typer.testing import CliRunner

from lossctl.cli.app import app
from tests.helpers import ROOT, Run, clean_env, lossctl_command, peak_rss_mib, run_lossctl

DOCS = ROOT / "docs" / "errors.md"
EXIT_CODES = {0, 1, 2}  # what input can cause; 3 (internal error) is always a failure

# ---- reference numbers for the cases that must succeed --------------------------------------

SEED_X = np.array([[1.1741, -0.4859], [-3.718, 1.5257], [0.0222, 0.5898]])  # classes on axis 0
SEED_Y = np.array([1, 2])


def softmax_ref(x: Any, axis: int = -1) -> np.ndarray[Any, Any]:
    values = np.asarray(x, dtype=np.float64)
    shifted = np.exp(values - values.max(axis=axis, keepdims=True))
    result: np.ndarray[Any, Any] = shifted / shifted.sum(axis=axis, keepdims=True)
    return result


def ce_ref(x: Any, y: Any, weight: Any = None) -> float:
    """Weighted-mean cross-entropy, classes on axis 0 (the seed's layout)."""
    logits = np.asarray(x, dtype=np.float64)
    labels = np.asarray(y, dtype=np.int64)
    w = np.ones(logits.shape[0]) if weight is None else np.asarray(weight, dtype=np.float64)
    logp = logits - np.log(np.exp(logits).sum(axis=0))
    picked = logp[labels, np.arange(labels.size)]
    return float(-(w[labels] * picked).sum() / w[labels].sum())


def softmax_of(expected_input: Any, axis: int = -1) -> Callable[[dict[str, Any]], None]:
    def check(document: dict[str, Any]) -> None:
        np.testing.assert_allclose(
            np.array(document["result"], dtype=float), softmax_ref(expected_input, axis), rtol=1e-13
        )

    return check


def loss_is(expected: float) -> Callable[[dict[str, Any]], None]:
    def check(document: dict[str, Any]) -> None:
        if np.isnan(expected):
            assert document["loss"] == "nan"
        else:
            assert document["loss"] == pytest.approx(expected, rel=1e-13)

    return check


# ---- the cases -------------------------------------------------------------------------------

SEED = ("seed/logits.json", "seed/labels.json")


@dataclass(frozen=True)
class Case:
    """One input class: how to run it, and what must come out."""

    id: str
    group: str
    what: str  # the input class, for the docs table
    args: tuple[str, ...]
    code: int
    expect: str = ""  # a part of the stderr line (code != 0)
    check: Callable[[dict[str, Any]], None] | None = None  # the numbers (code == 0)
    result: str = ""  # what the docs table says for code == 0
    stdin: bytes | str | None = None
    env: tuple[tuple[str, str], ...] = ()  # environment variables set for the run

    def __post_init__(self) -> None:
        assert (self.code == 0) == (self.check is not None) == bool(self.result), self.id
        assert (self.code == 0) != bool(self.expect), self.id


def ok(id: str, group: str, what: str, args: tuple[str, ...], check: Any, result: str) -> Case:
    return Case(id, group, what, (*args, "--json"), 0, check=check, result=result)


def bad(
    id: str, group: str, what: str, args: tuple[str, ...], expect: str, code: int = 1, **kw: Any
) -> Case:
    return Case(id, group, what, args, code, expect=expect, **kw)


CASES: list[Case] = [
    # -- any format
    bad(
        "empty-json",
        "Any format",
        "empty file (0 bytes), `.json`",
        ("softmax", "hostile/empty.json"),
        "no numbers found (empty file)",
    ),
    bad(
        "empty-csv",
        "Any format",
        "empty file (0 bytes), `.csv`",
        ("softmax", "hostile/empty.csv"),
        "no numbers found (empty file)",
    ),
    bad(
        "empty-npy",
        "Any format",
        "empty file (0 bytes), `.npy`",
        ("softmax", "hostile/empty.npy"),
        "empty file (0 bytes); not a valid .npy file",
    ),
    bad(
        "whitespace-json",
        "Any format",
        "whitespace only, `.json`",
        ("softmax", "hostile/whitespace.json"),
        "no numbers found (empty file)",
    ),
    bad(
        "whitespace-csv",
        "Any format",
        "whitespace only, `.csv`",
        ("softmax", "inputs/whitespace_only.csv"),
        "no numbers found (empty file)",
    ),
    ok(
        "bom-crlf-json",
        "Any format",
        "UTF-8 BOM and CRLF line ends, JSON",
        ("softmax", "hostile/bom_crlf.json"),
        softmax_of([[1.5, 2], [3, -4]]),
        "read normally",
    ),
    ok(
        "bom-crlf-csv",
        "Any format",
        "UTF-8 BOM, CRLF, a header, a comment, a blank line, a quoted field, CSV",
        ("softmax", "inputs/bom_crlf.csv"),
        softmax_of([[1, 2, 3], [4, 5.5, 6]]),
        "read normally: the header, comment and blank line are skipped",
    ),
    ok(
        "pandas-index-csv",
        "Any format",
        "pandas `to_csv()` (index column, header `,0,1,...`) for logits and labels",
        ("ce", "data/csv/logits_index.csv", "data/csv/labels_index.csv"),
        loss_is(ce_ref(np.load(ROOT / "tests/data/csv/logits.npy").T, [2, 0, 4, 1])),
        "read as the `.npy` would be: header skipped, pandas' index column dropped, with a note",
    ),
    ok(
        "pandas-noindex-csv",
        "Any format",
        "pandas `to_csv(index=False)`: header `0,1,...,C-1` over float data",
        ("softmax", "data/csv/logits_noindex.csv"),
        softmax_of(np.load(ROOT / "tests/data/csv/logits.npy")),
        "read as the `.npy` would be: the header is skipped, with a note",
    ),
    ok(
        "inline-json",
        "Any format",
        "inline JSON arrays as arguments (`'[[1,2,3]]' '[2]'`)",
        ("ce", "[[1,2,3]]", "[2]"),
        loss_is(ce_ref([[1], [2], [3]], [2])),
        "read as JSON text, shown as `<inline>`",
    ),
    ok(
        "trailing-comma-csv",
        "Any format",
        "trailing commas (CSV)",
        ("softmax", "inputs/trailing_delimiter.csv"),
        softmax_of([[1, 2, 3], [4, 5, 6]]),
        "read normally: an empty last cell is dropped",
    ),
    bad(
        "trailing-comma-json",
        "Any format",
        "trailing comma (JSON)",
        ("softmax", "hostile/trailing_comma.json"),
        "invalid JSON at line 2, column 9: Expecting value",
    ),
    ok(
        "comments-csv",
        "Any format",
        "`#` comment lines and blank lines (CSV)",
        ("softmax", "inputs/comments_blank.csv"),
        softmax_of([1.5, -2, 300]),
        "read normally: comments and blank lines are skipped",
    ),
    bad(
        "comments-json",
        "Any format",
        "`//` comments (JSON)",
        ("softmax", "hostile/comments.json"),
        "invalid JSON at line 1, column 1: Expecting value",
    ),
    # -- JSON
    bad(
        "json-syntax",
        "JSON",
        "invalid syntax",
        ("softmax", "inputs/syntax_error.json"),
        "invalid JSON at line 2, column 5: Expecting ',' delimiter",
    ),
    bad(
        "json-nan-token",
        "JSON",
        "a bare `NaN` token",
        ("softmax", "inputs/nan_token.json"),
        'bare NaN is not valid JSON (RFC 8259); write it as the string "nan"',
    ),
    bad(
        "json-infinity-token",
        "JSON",
        "a bare `-Infinity` token",
        ("softmax", "inputs/infinity_token.json"),
        "bare -Infinity is not valid JSON",
    ),
    ok(
        "json-nan-strings",
        "JSON",
        'the strings `"nan"`, `"-inf"`, `"Infinity"` (lossctl\'s own way of writing them)',
        ("log", "inputs/nan_strings.json"),
        lambda d: d["result"] == [["nan", "nan"], ["inf", "inf"]],
        'accepted as NaN, -inf, inf, inf; the log is written `[["nan", "nan"], ["inf", "inf"]]`',
    ),
    bad(
        "json-thousand-digits",
        "JSON",
        "an integer with 5000 digits",
        ("softmax", "hostile/thousand_digits.json"),
        "number out of float64 range at [1]",
    ),
    bad(
        "json-1e999",
        "JSON",
        "`1e999`",
        ("softmax", "inputs/overflow.json"),
        "number out of float64 range at [1][0]",
    ),
    bad(
        "json-deep",
        "JSON",
        "nested 100,000 levels deep",
        ("softmax", "deep.json"),
        "JSON nested too deeply; arrays have at most 64 dimensions",
    ),
    bad(
        "json-duplicate-keys",
        "JSON",
        "duplicate keys",
        ("softmax", "inputs/duplicate_keys.json"),
        "duplicate key 'logits' in a JSON object",
    ),
    bad(
        "json-scalar",
        "JSON",
        "a top-level scalar (`2.5`)",
        ("softmax", "inputs/scalar.json"),
        "the input is a single number",
    ),
    bad(
        "json-scalar-ce",
        "JSON",
        "a top-level scalar as logits of `ce`",
        ("ce", "inputs/scalar.json", "seed/labels.json"),
        "input is a scalar; it needs at least one axis of classes",
    ),
    bad(
        "json-mixed-types",
        "JSON",
        "mixed types (`true` among numbers)",
        ("softmax", "inputs/mixed_types.json"),
        "[1][1]: expected a number, found true",
    ),
    bad(
        "json-string",
        "JSON",
        "a string among numbers",
        ("softmax", "inputs/string_item.json"),
        '[1]: expected a number, found the string "two"',
    ),
    bad(
        "json-null",
        "JSON",
        "`null` among numbers",
        ("softmax", "inputs/null_item.json"),
        "[0][1]: expected a number, found null",
    ),
    bad(
        "json-ragged",
        "JSON",
        "ragged rows",
        ("softmax", "inputs/ragged.json"),
        "[1] has 2 items, expected 3 like [0] (ragged rows",
    ),
    bad(
        "json-mixed-depth",
        "JSON",
        "mixed nesting depth",
        ("softmax", "inputs/mixed_depth.json"),
        "[1]: expected a list of 2 items, found an integer (mixed nesting depth)",
    ),
    ok(
        "json-zero-size",
        "JSON",
        "0-sized dimension (`[[], []]`), softmax",
        ("softmax", "inputs/empty_rows.json"),
        lambda d: d["shape"] == [2, 0] and d["result"] == [[], []],
        "accepted: an empty (2, 0) result, as PyTorch",
    ),
    bad(
        "json-zero-classes",
        "JSON",
        "0-sized class axis, `ce`",
        ("ce", "inputs/empty_rows.json", "seed/labels.json"),
        "the input has 0 classes along its class axis",
    ),
    ok(
        "json-zero-classes-soft",
        "JSON",
        "0-sized class axis with probability targets of the same shape, `ce`",
        ("ce", "inputs/empty_rows.json", "inputs/empty_rows.json"),
        lambda d: d["loss"] == "nan" and "input has 0 classes" in d["warnings"][-1],
        "exit 0, loss `nan` as PyTorch (numel/classes = 0/0) and the warning `the loss is nan "
        "because the input has 0 classes: ...`",
    ),
    bad(
        "json-key-with-colon",
        "JSON",
        "`FILE:KEY` whose key holds a colon (`keys.json:a:b`) and is missing",
        ("softmax", "keys.json:a:b"),
        "keys.json: no key 'a:b' in the JSON object; available keys: 'a', 'b'",
    ),
    bad(
        "json-two-keys",
        "JSON",
        "an object with several arrays and no `--key`",
        ("softmax", "inputs/two_keys.json"),
        "choose the array with --key NAME or FILE:NAME",
    ),
    # -- CSV
    bad(
        "csv-ragged",
        "CSV",
        "ragged rows",
        ("softmax", "inputs/ragged.csv"),
        "line 2 has 2 values, expected 3 as on line 1 (ragged rows)",
    ),
    ok(
        "csv-quoted",
        "CSV",
        "quoted fields (a quoted header cell holding a comma)",
        ("softmax", "hostile/quoted.csv"),
        softmax_of([[1.5, 2], [3, -4]]),
        "read normally",
    ),
    bad(
        "csv-header-middle",
        "CSV",
        "a header in the middle",
        ("softmax", "inputs/header_middle.csv"),
        "line 3, column 1: 'x' is not a number (this looks like a header row; "
        "a header is only allowed on the first line)",
    ),
    bad(
        "csv-bad-cell",
        "CSV",
        "a non-numeric cell",
        ("softmax", "inputs/bad_cell.csv"),
        "line 2, column 2: 'abc' is not a number",
    ),
    bad(
        "csv-bool-cell",
        "CSV",
        "`true` in a cell",
        ("softmax", "hostile/mixed_types.csv"),
        "line 2, column 1: 'true' is not a number",
    ),
    bad(
        "csv-empty-cell",
        "CSV",
        "an empty cell",
        ("softmax", "inputs/empty_cell.csv"),
        "line 1, column 2: empty cell",
    ),
    bad(
        "csv-only-header",
        "CSV",
        "only a header row",
        ("softmax", "inputs/only_header.csv"),
        "no numbers found (empty file): only a header row (line 1)",
    ),
    bad(
        "csv-1e999",
        "CSV",
        "`1e999`",
        ("softmax", "inputs/overflow.csv"),
        "number out of float64 range at line 2, column 2: '1e999'",
    ),
    ok(
        "csv-really-json",
        "CSV",
        "a `.csv` file that is really JSON",
        ("softmax", "inputs/json_inside.csv"),
        softmax_of([[1, 2], [3, 4]]),
        "read as JSON (the content wins; error messages say so)",
    ),
    ok(
        "csv-really-npy",
        "CSV",
        "a `.csv` file that is really NPY",
        ("softmax", "inputs/npy_inside.csv"),
        softmax_of([1, 2, 3]),
        "read as NPY (magic bytes win)",
    ),
    bad(
        "csv-binary",
        "CSV",
        "a `.csv` file that is binary",
        ("softmax", "inputs/garbage.csv"),
        "binary data (NUL byte at offset 1), not CSV text",
    ),
    bad(
        "csv-latin1",
        "CSV",
        "Latin-1 text",
        ("softmax", "inputs/latin1.csv"),
        "not valid UTF-8 text (byte 0xe9 at offset 3)",
    ),
    bad(
        "csv-utf16",
        "CSV",
        "UTF-16 text",
        ("softmax", "inputs/utf16.csv"),
        "looks like UTF-16 text; save it as UTF-8 CSV",
    ),
    # -- NPY / NPZ
    bad(
        "npy-truncated",
        "NPY/NPZ",
        "truncated file",
        ("softmax", "inputs/truncated.npy"),
        "truncated or corrupt .npy: the header declares shape (2, 3) of float64 = 48 bytes, "
        "but only 43 bytes of data follow",
    ),
    bad(
        "npy-giant-shape",
        "NPY/NPZ",
        "header declares a shape far larger than the file",
        ("softmax", "inputs/giant_shape.npy"),
        "the header declares shape (1000000000000,) of float64 = 8000000000000 bytes, "
        "but only 16 bytes of data follow",
    ),
    bad(
        "npy-object",
        "NPY/NPZ",
        "object array (a pickle inside)",
        ("softmax", "object.npy"),
        "dtype object (Python objects) is refused: reading it would need unpickling, "
        "which lossctl never does",
    ),
    bad(
        "npy-pickle",
        "NPY/NPZ",
        "a bare pickle named `.npy`",
        ("softmax", "pickle.npy"),
        "not a .npy file: it does not start with the magic bytes \\x93NUMPY",
    ),
    bad(
        "npy-complex",
        "NPY/NPZ",
        "complex dtype",
        ("softmax", "inputs/complex.npy"),
        "dtype complex128 (complex) is not supported",
    ),
    bad(
        "npy-string",
        "NPY/NPZ",
        "string dtype",
        ("softmax", "inputs/str.npy"),
        "dtype <U2 (text strings) is not supported",
    ),
    bad(
        "npy-datetime",
        "NPY/NPZ",
        "datetime dtype",
        ("softmax", "inputs/datetime.npy"),
        "dtype datetime64[D] (dates) is not supported",
    ),
    bad(
        "npy-structured",
        "NPY/NPZ",
        "structured dtype",
        ("softmax", "inputs/structured.npy"),
        "structured (record) dtype with fields a, b is not supported",
    ),
    bad(
        "npy-float128",
        "NPY/NPZ",
        "float128",
        ("softmax", "inputs/float128.npy"),
        "dtype float128 is not supported",
    ),
    bad(
        "npy-bool-logits",
        "NPY/NPZ",
        "booleans as logits",
        ("softmax", "inputs/bool.npy"),
        "dtype bool (boolean) is not supported",
    ),
    ok(
        "npy-big-endian",
        "NPY/NPZ",
        "big-endian float64",
        ("softmax", "inputs/big_endian.npy"),
        softmax_of([[0.0, 0.25, 0.5], [0.75, 1.0, 1.25]]),
        "accepted, converted to native order",
    ),
    ok(
        "npy-big-endian-int",
        "NPY/NPZ",
        "big-endian int32",
        ("softmax", "inputs/big_endian_int.npy"),
        softmax_of([[1, -2], [300, 40000]]),
        "accepted, converted to native order",
    ),
    ok(
        "npy-fortran",
        "NPY/NPZ",
        "Fortran-ordered array",
        ("softmax", "inputs/fortran.npy"),
        softmax_of([[0, 1, 2], [3, 4, 5]]),
        "accepted, same numbers as C order",
    ),
    bad(
        "npz-bomb",
        "NPY/NPZ",
        "zip bomb: an honest member just under 1 GiB compressed 229:1",
        ("softmax", "bomb.npz"),
        "more than 64x is refused (possible zip bomb)",
    ),
    bad(
        "npz-bomb-sizes",
        "NPY/NPZ",
        "zip bomb: a member whose sizes claim 4 GB",
        ("softmax", "inputs/bomb_sizes.npz"),
        "would expand from 129 to 4026531840 bytes",
    ),
    bad(
        "npz-bomb-header",
        "NPY/NPZ",
        "NPY header inside an NPZ declaring 8 TB",
        ("softmax", "inputs/bomb_header.npz"),
        "inconsistent sizes: its header declares shape (1000000000000,) of float64",
    ),
    bad(
        "npz-no-member",
        "NPY/NPZ",
        "a member name that does not exist",
        ("softmax", "inputs/two_members.npz:nope"),
        "no array named 'nope' in the .npz archive; it holds: 'logits', 'labels'",
    ),
    bad(
        "npz-which-member",
        "NPY/NPZ",
        "several members and no `--key`",
        ("softmax", "inputs/two_members.npz"),
        "the .npz archive holds 2 arrays ('logits', 'labels'); "
        "choose one with --key NAME or FILE:NAME",
    ),
    bad(
        "npz-npy-and-raw",
        "NPY/NPZ",
        "members `x.npy` and `x` (both `x` to NumPy) and no `--key`",
        ("softmax", "same_name.npz"),
        "the .npz archive holds 2 arrays ('x.npy', 'x'); choose one with --key NAME",
    ),
    bad(
        "npz-plain-zip",
        "NPY/NPZ",
        "a plain zip archive named `.npz`",
        ("softmax", "inputs/plain.zip.npz"),
        "a zip archive without .npy members",
    ),
    # -- binary garbage under every extension
    *(
        bad(
            f"garbage-{ext or 'noext'}",
            "Binary garbage",
            f"random bytes named `{name}`",
            ("softmax", f"inputs/{name}"),
            message,
        )
        for ext, name, message in [
            ("json", "garbage.json", "binary data (NUL byte at offset 1), not JSON text"),
            ("csv", "garbage.csv", "binary data (NUL byte at offset 1), not CSV text"),
            ("tsv", "garbage.tsv", "binary data (NUL byte at offset 1), not CSV text"),
            ("txt", "garbage.txt", "binary data (NUL byte at offset 1), not CSV text"),
            ("npy", "garbage.npy", "not a .npy file: it does not start with the magic bytes"),
            ("npz", "garbage.npz", "not a .npz file: it does not start with the magic bytes"),
            ("", "garbage_noext", "binary data (NUL byte at offset 1), not CSV text"),
        ]
    ),
    # -- paths and streams
    bad(
        "path-directory",
        "Paths and streams",
        "a directory",
        ("softmax", "a_directory.json"),
        "is a directory, not a file",
    ),
    bad(
        "path-missing",
        "Paths and streams",
        "a missing file",
        ("softmax", "missing.json"),
        "no such file; check the path (use `-` to read standard input)",
    ),
    bad(
        "path-unreadable",
        "Paths and streams",
        "a file without read permission",
        ("softmax", "unreadable.json"),
        "permission denied; make the file readable, e.g. `chmod +r FILE`",
    ),
    bad(
        "path-fifo",
        "Paths and streams",
        "a FIFO (named pipe) that no process writes to",
        ("softmax", "fifo.json"),
        "fifo.json: no process is writing to this FIFO (waited 0.1 s); start the writer first",
        env=(("LOSSCTL_FIFO_WAIT", "0.1"),),
    ),
    bad(
        "path-fifo-twice",
        "Paths and streams",
        "one FIFO for two arguments",
        ("ce", "fifo.json", "fifo.json"),
        "fifo.json: this FIFO is named twice, but its data can be read only once",
    ),
    bad(
        "path-device",
        "Paths and streams",
        "a character device (`/dev/urandom`)",
        ("softmax", "/dev/urandom"),
        "/dev/urandom: is a character device, not a regular file or a FIFO",
    ),
    bad(
        "manifest-device",
        "Paths and streams",
        "`--manifest` listing a device",
        ("ce", "--manifest", "manifest_device.txt"),
        "manifest_device.txt: line 2: /dev/urandom is a character device",
    ),
    bad(
        "manifest-directory",
        "Paths and streams",
        "`--manifest` listing a directory",
        ("ce", "--manifest", "manifest_directory.txt"),
        "manifest_directory.txt: line 1: a_directory.json is a directory, not a file",
    ),
    bad(
        "manifest-fifo",
        "Paths and streams",
        "`--manifest` listing a FIFO that no process writes to",
        ("ce", "--manifest", "manifest_fifo.txt"),
        "fifo.json: no process is writing to this FIFO (waited 0.1 s)",
        env=(("LOSSCTL_FIFO_WAIT", "0.1"),),
    ),
    bad(
        "stdin-over-limit",
        "Paths and streams",
        "more on standard input than the stream limit",
        ("softmax", "-"),
        "<stdin>: more than 8 bytes on standard input, the limit for a stream",
        stdin=b"[1, 2, 3, 4]",
        env=(("LOSSCTL_STREAM_LIMIT", "8"),),
    ),
    bad(
        "stream-limit-bad",
        "Paths and streams",
        "a stream limit that is not a size",
        ("softmax", "-"),
        "LOSSCTL_STREAM_LIMIT: 'lots' is not a size",
        stdin=b"[1, 2, 3, 4]",
        env=(("LOSSCTL_STREAM_LIMIT", "lots"),),
    ),
    bad(
        "stdin-tty",
        "Paths and streams",
        "`-` while standard input is a terminal",
        ("softmax", "-"),
        "'-' reads standard input, but it is a terminal: pipe or redirect a file",
        stdin="tty",
    ),
    bad(
        "stdin-tty-weight",
        "Paths and streams",
        "`--weight -` while standard input is a terminal",
        ("ce", *SEED, "--weight", "-"),
        "'-' reads standard input, but it is a terminal",
        stdin="tty",
    ),
    bad(
        "stdin-empty",
        "Paths and streams",
        "`-` with empty standard input",
        ("softmax", "-"),
        "standard input is empty; pipe a file in",
        stdin=b"",
    ),
    bad(
        "stdin-weight-twice",
        "Paths and streams",
        "`--weight -` with labels `-`",
        ("ce", "seed/logits.json", "-", "--weight", "-"),
        "--weight - and an argument '-' would both read standard input, which can be read "
        "only once",
        stdin=b"[1, 2]",
    ),
    bad(
        "stdin-key-option",
        "Paths and streams",
        "`-:KEY` (a key of standard input) among the options",
        ("softmax", "-:logits"),
        "-:logits (the key 'logits' of standard input) is read as an option here: "
        "write it after `--`",
        code=2,
        stdin=b'{"logits": [1, 2]}',
    ),
    Case(
        "stdin-key",
        "Paths and streams",
        "`-:KEY` after `--`",
        ("softmax", "--json", "--", "-:logits"),
        0,
        check=softmax_of([1, 2]),
        result="read: the array `logits` of the JSON object on standard input",
        stdin=b'{"logits": [1, 2]}',
    ),
    bad(
        "stdin-twice",
        "Paths and streams",
        "`-` for two arguments",
        ("ce", "-", "-"),
        "only one argument can be '-' (standard input)",
        stdin=b"[1]",
    ),
    # -- labels (the seed logits have 3 classes on axis 0)
    bad(
        "labels-fraction",
        "Labels",
        "a float that is not integral (`1.5`)",
        ("ce", "seed/logits.json", "hostile/labels_fraction.json"),
        "target 1.5 at position (0,) is not a whole class index",
    ),
    bad(
        "labels-negative",
        "Labels",
        "a negative value other than ignore_index (`-1`)",
        ("ce", "seed/logits.json", "hostile/labels_negative.json"),
        "target -1 at position (0,) is out of range: there are 3 classes, "
        "so targets must be in [0, 3) or equal ignore_index (-100)",
    ),
    bad(
        "labels-too-big",
        "Labels",
        "a value ≥ C (`3` with 3 classes)",
        ("ce", "seed/logits.json", "hostile/labels_too_big.json"),
        "target 3 at position (0,) is out of range",
    ),
    bad(
        "labels-nan",
        "Labels",
        'NaN (`"nan"`)',
        ("ce", "seed/logits.json", "hostile/labels_nan.json"),
        "target nan at position (0,) is not a whole class index",
    ),
    bad(
        "labels-beyond-int64",
        "Labels",
        "beyond int64 (`99999999999999999999`)",
        ("ce", "seed/logits.json", "hostile/labels_beyond_int64.json"),
        "integer '99999999999999999999' at [0] is beyond the 64-bit integer range",
    ),
    bad(
        "labels-uint64-max",
        "Labels",
        "uint64 2**64-1 in a `.npy`",
        ("ce", "seed/logits.json", "labels_uint64.npy"),
        "target 1.8446744073709552e+19 at position (0,) is out of range",
    ),
    bad(
        "labels-bool",
        "Labels",
        "booleans in a `.npy`",
        ("ce", "seed/logits.json", "inputs/bool.npy"),
        "dtype bool (boolean) is not supported",
    ),
    ok(
        "labels-ignored",
        "Labels",
        "`-100` (the default ignore_index) among the labels",
        ("ce", "seed/logits.json", "labels_ignored.json"),
        loss_is(ce_ref(SEED_X[:, [1]], [2])),
        "accepted: that position is skipped, as PyTorch",
    ),
    # -- options
    bad(
        "smoothing-above-1",
        "Options",
        "`--label-smoothing 1.5`",
        ("ce", *SEED, "--label-smoothing", "1.5"),
        "label_smoothing must be between 0.0 and 1.0; got 1.5",
    ),
    bad(
        "smoothing-negative",
        "Options",
        "`--label-smoothing -0.1`",
        ("ce", *SEED, "--label-smoothing", "-0.1"),
        "label_smoothing must be between 0.0 and 1.0; got -0.1",
    ),
    bad(
        "smoothing-nan",
        "Options",
        "`--label-smoothing nan`",
        ("ce", *SEED, "--label-smoothing", "nan"),
        "label_smoothing must be between 0.0 and 1.0; got nan",
    ),
    bad(
        "smoothing-word",
        "Options",
        "`--label-smoothing abc`",
        ("ce", *SEED, "--label-smoothing", "abc"),
        "Invalid value for '--label-smoothing'",
        code=2,
    ),
    ok(
        "weight-negative",
        "Options",
        "`--weight -1,1,1` (a negative weight)",
        ("ce", *SEED, "--weight", "-1,1,1"),
        loss_is(ce_ref(SEED_X, SEED_Y, [-1, 1, 1])),
        "accepted and computed as PyTorch does",
    ),
    bad(
        "weight-nan",
        "Options",
        "`--weight nan,1,1`",
        ("ce", *SEED, "--weight", "nan,1,1"),
        "--weight: item 1 is nan; every value must be a finite number",
    ),
    bad(
        "weight-inf-file",
        "Options",
        'a weight file holding `"inf"`',
        ("ce", *SEED, "--weight", "hostile/weight_inf.json"),
        "hostile/weight_inf.json: weight values must be finite numbers",
    ),
    bad(
        "weight-length",
        "Options",
        "`--weight 1,2` (wrong length)",
        ("ce", *SEED, "--weight", "1,2"),
        "weight must have one value per class (3), got shape (2,)",
    ),
    bad(
        "weight-word",
        "Options",
        "`--weight 1,x,2`",
        ("ce", *SEED, "--weight", "1,x,2"),
        "--weight: item 2 ('x') is not a number",
    ),
    ok(
        "weight-zero",
        "Options",
        "`--weight 0,0,0` (all zero)",
        ("ce", *SEED, "--weight", "0,0,0"),
        loss_is(float("nan")),
        "exit 0, loss `nan` (0/0, as PyTorch) and the warning `the loss is nan because the "
        "class weights of the counted targets sum to 0`",
    ),
    bad(
        "class-dim-range",
        "Options",
        "`--class-dim 5`",
        ("ce", *SEED, "--class-dim", "5"),
        "class axis 5 is out of range for an input with 2 axes",
    ),
    bad(
        "dim-range",
        "Options",
        "`softmax --dim 5`",
        ("softmax", "seed/logits.json", "--dim", "5"),
        "--dim 5 is out of range for an input with 2 axes (valid: -2 to 1)",
    ),
    bad(
        "reduction-word",
        "Options",
        "`--reduction avg`",
        ("ce", *SEED, "--reduction", "avg"),
        "Invalid value for '--reduction'",
        code=2,
    ),
    bad(
        "output-no-dir",
        "Options",
        "`--output` into a missing directory",
        ("ce", *SEED, "--output", "nodir/loss.json"),
        "Invalid value for '--output' / '-o': directory 'nodir' does not exist",
        code=2,
    ),
    bad(
        "output-npz",
        "Options",
        "`--output loss.npz`",
        ("ce", *SEED, "--output", "loss.npz"),
        "cannot write .npz files: use .npy for the array or .json for the JSON document",
        code=2,
    ),
    # -- merge documents
    bad(
        "merge-negative-count",
        "Merge documents",
        "a `--json` result with `count: -3`",
        ("merge", "hostile/merge_negative_count.json"),
        "must be whole numbers ≥ 0",
    ),
    bad(
        "merge-huge-exponent",
        "Merge documents",
        'exact sum `"1*2**4000000000"` (refused before any arithmetic)',
        ("merge", "hostile/merge_huge_exponent.json"),
        "outside float64's range",
    ),
    bad(
        "merge-contradiction",
        "Merge documents",
        "`sum` that contradicts `exact.sum`",
        ("merge", "hostile/merge_contradiction.json"),
        "contradicts exact.sum",
    ),
    bad(
        "merge-same-file-twice",
        "Merge documents",
        "the same result named twice",
        ("merge", "hostile/merge_contradiction.json", "hostile/merge_contradiction.json"),
        "is named twice",
    ),
]


# ---- running them ----------------------------------------------------------------------------


def _zip_bomb(path: Path) -> None:
    """An NPZ whose one member honestly holds just under 1 GiB of zeros (4.6 MB compressed,
    229:1): below the old "more than 1 GiB" rule, refused by the ratio alone."""
    count = ((1 << 30) - (1 << 24)) // 8
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (count,)}
    )
    chunk = bytes(1 << 24)
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("zeros.npy", "w", force_zip64=True) as member,
    ):
        member.write(header.getvalue())
        for _ in range(count * 8 // len(chunk)):
            member.write(chunk)


def make_scratch(directory: Path) -> None:
    """Links to the shipped inputs, and the files that cannot be shipped."""
    (directory / "inputs").symlink_to(ROOT / "tests" / "inputs")
    (directory / "hostile").symlink_to(ROOT / "tests" / "hostile")
    (directory / "seed").symlink_to(ROOT / "examples" / "seed")
    (directory / "data").symlink_to(ROOT / "tests" / "data")
    (directory / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    np.save(directory / "object.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    (directory / "pickle.npy").write_bytes(
        b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01K\x02e."  # pickle of [1, 2]
    )
    np.save(directory / "labels_uint64.npy", np.array([2**64 - 1, 0], dtype=np.uint64))
    (directory / "labels_ignored.json").write_text("[-100, 2]")
    (directory / "keys.json").write_text('{"a": [1, 2], "b": [3]}')
    member = io.BytesIO()
    np.save(member, np.array([1.0, 2.0]))
    with zipfile.ZipFile(directory / "same_name.npz", "w") as archive:
        archive.writestr("x.npy", member.getvalue())
        archive.writestr("x", member.getvalue())
    (directory / "a_directory.json").mkdir()
    unreadable = directory / "unreadable.json"
    unreadable.write_text("[1, 2]")
    unreadable.chmod(0)
    os.mkfifo(directory / "fifo.json")
    (directory / "manifest_device.txt").write_text(
        "seed/logits.json seed/labels.json\n/dev/urandom seed/labels.json\n"
    )
    (directory / "manifest_directory.txt").write_text("a_directory.json seed/labels.json\n")
    (directory / "manifest_fifo.txt").write_text(
        "seed/logits.json seed/labels.json\nfifo.json labels_ignored.json\n"
    )
    _zip_bomb(directory / "bomb.npz")


@pytest.fixture(scope="session")
def scratch() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="lossctl-hostile-"))
    try:
        make_scratch(directory)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def needs_a_process(case: Case) -> bool:
    """Cases only a real process shows: a terminal as stdin, permissions (the launcher
    drops root's override), and click's usage errors (printed by main())."""
    return case.stdin == "tty" or case.code == 2 or case.id == "path-unreadable"


# the cases that also run as real processes, to check that both ways print the same
SAMPLED = {case.id for index, case in enumerate(CASES) if index % 6 == 0}


def run_in_process(case: Case, command: Any) -> Run:
    """The case through typer's CliRunner: the same app, in this process (milliseconds)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", lambda typer_app: command)
        stdin = case.stdin if isinstance(case.stdin, bytes) else None
        result = CliRunner().invoke(app, list(case.args), input=stdin, env=dict(case.env))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{case.id}: exception escaped") from result.exception
    return Run(case.args, result.exit_code, result.stdout_bytes, result.stderr_bytes)


def run_all(directory: Path) -> tuple[dict[str, Run], dict[str, Run]]:
    """Every case (in-process, or as a process where it must); and the sampled ones as
    processes too."""
    command = typer.main.get_command(app)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            case.id: pool.submit(
                run_lossctl,
                *case.args,
                cwd=directory,
                stdin=case.stdin,
                env=clean_env(**dict(case.env)),  # here: the in-process runs change os.environ
            )
            for case in CASES
            if needs_a_process(case) or case.id in SAMPLED
        }
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(directory)
            in_process = {
                case.id: run_in_process(case, command)
                for case in CASES
                if not needs_a_process(case)
            }
        processes = {name: future.result() for name, future in futures.items()}
    return {case.id: in_process.get(case.id) or processes[case.id] for case in CASES}, processes


@pytest.fixture(scope="session")
def all_runs(scratch: Path) -> tuple[dict[str, Run], dict[str, Run]]:
    return run_all(scratch)


@pytest.fixture(scope="session")
def outcomes(all_runs: tuple[dict[str, Run], dict[str, Run]]) -> dict[str, Run]:
    return all_runs[0]


def test_processes_print_what_the_app_prints(
    all_runs: tuple[dict[str, Run], dict[str, Run]],
) -> None:
    """The sampled cases give the same exit code, stderr and stdout as real processes."""
    outcomes, processes = all_runs
    assert len(processes) >= 20
    for name, process in processes.items():
        run = outcomes[name]
        assert (process.code, process.stderr) == (run.code, run.stderr), name
        if process.code == 0:
            assert json.loads(process.stdout) == json.loads(run.stdout), name


def test_case_ids_are_unique() -> None:
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_hostile_input(case: Case, outcomes: dict[str, Run]) -> None:
    run = outcomes[case.id]
    assert run.code in EXIT_CODES, (run.code, run.err)
    if case.code == 0:
        document = run.document()
        assert case.check is not None
        result = case.check(document)
        assert result is None or result is True, document
    else:
        assert run.code == case.code, (run.code, run.err)
        line = run.error_line()
        assert case.expect in line, f"{case.expect!r} not in {line!r}"
        if case.code == 1:
            assert line.startswith("lossctl: error: "), line


def test_every_documented_message_is_the_real_one(outcomes: dict[str, Run]) -> None:
    """docs/errors.md holds, for every case, exactly the message the CLI prints today."""
    expected = render_table(outcomes)
    actual = DOCS.read_text(encoding="utf-8")
    begin, end = "<!-- begin generated table -->\n", "<!-- end generated table -->\n"
    assert begin in actual and end in actual, "docs/errors.md lost its table markers"
    table = actual.split(begin, 1)[1].split(end, 1)[0]
    assert table == expected, (
        "docs/errors.md is out of date: regenerate the table with "
        "`python -m tests.cli.test_hostile`"
    )


def test_zip_bomb_is_refused_in_bounded_memory(scratch: Path) -> None:
    """The bomb (just under 1 GiB, 229:1) is refused before inflating: the process stays
    small."""
    peak, run = peak_rss_mib(lossctl_command("softmax", "bomb.npz"), scratch)
    assert run.code == 1, run.err
    assert peak < 300, f"max RSS {peak:.0f} MiB"


def test_unreadable_file_really_is_unreadable_to_lossctl(scratch: Path) -> None:
    """The permission case means something: a readable copy of the same file is accepted."""
    shutil.copy(ROOT / "tests" / "hostile" / "labels_negative.json", scratch / "readable.json")
    assert run_lossctl("softmax", "readable.json", "--json", cwd=scratch).code == 0


# ---- docs/errors.md ---------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    """A Markdown code span, with double backticks when the text holds one."""
    return f"`` {_cell(text)} ``" if "`" in text else f"`{_cell(text)}`"


def _message(case: Case, run: Run) -> str:
    if case.code == 0:
        return case.result
    lines = run.err.splitlines()
    return lines[-1] if lines else ""


def render_table(outcomes: dict[str, Run]) -> str:
    """The generated part of docs/errors.md."""
    rows: list[str] = []
    group = ""
    for case in CASES:
        if case.group != group:
            group = case.group
            if rows:
                rows.append("")
            rows += [
                f"### {group}",
                "",
                "| Input | Command | Exit | What lossctl says |",
                "|---|---|---|---|",
            ]
        run = outcomes[case.id]
        command = " ".join(
            (*(f"{name}={value}" for name, value in case.env), "lossctl", *case.args)
        )
        if isinstance(case.stdin, str):
            command += " (stdin: a terminal)"
        elif case.stdin is not None:
            command = f"printf {case.stdin.decode()!r} | {command}" if case.stdin else command
            command += " < /dev/null" if not case.stdin else ""
        message = _message(case, run)
        shown = _code(message) if case.code else _cell(message)
        rows.append(f"| {_cell(case.what)} | {_code(command)} | {run.code} | {shown} |")
    return "\n".join(rows) + "\n"


def _regenerate() -> None:
    directory = Path(tempfile.mkdtemp(prefix="lossctl-hostile-"))
    try:
        make_scratch(directory)
        outcomes, _ = run_all(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    text = DOCS.read_text(encoding="utf-8")
    begin, end = "<!-- begin generated table -->\n", "<!-- end generated table -->\n"
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    DOCS.write_text(head + begin + render_table(outcomes) + end + tail, encoding="utf-8")
    print(f"rewrote the table in {DOCS}")


if __name__ == "__main__":
    _regenerate()
