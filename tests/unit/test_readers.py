"""lossctl.io.readers: every format, hostile inputs, "ReadError or a valid array, nothing else"."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lossctl.errors import LossctlError, ReadError
from lossctl.io import inflation, npz
from lossctl.io.readers import Loaded, parse_number_list, read_array

INPUTS = Path(__file__).resolve().parents[1] / "inputs"
NAN = float("nan")
INF = float("inf")


@pytest.fixture(autouse=True)
def _run_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths in the tests resolve inside tmp_path."""
    monkeypatch.chdir(tmp_path)


def shipped(name: str) -> str:
    path = INPUTS / name
    assert path.is_file(), f"missing test input {path}"
    return str(path)


def write(path: Path, data: bytes | str) -> str:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return str(path)


def npy_bytes(array: np.ndarray[Any, Any], allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def npz_bytes(compressed: bool = True, **arrays: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    if compressed:
        np.savez_compressed(buffer, allow_pickle=False, **arrays)
    else:
        np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def read_error(spec: str, *parts: str, **kwargs: Any) -> ReadError:
    """Read ``spec`` expecting a ReadError whose message contains every part."""
    with pytest.raises(ReadError) as info:
        read_array(spec, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return info.value


def same(actual: np.ndarray[Any, Any], expected: Any) -> None:
    expected_array = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected_array.shape, (actual.shape, expected_array.shape)
    np.testing.assert_array_equal(np.asarray(actual, dtype=np.float64), expected_array)


# ---------------------------------------------------------------- shipped inputs: success

GOOD: list[tuple[str, str, Any]] = [
    ("bom_crlf.csv", "csv", [[1, 2, 3], [4, 5.5, 6]]),
    ("trailing_delimiter.csv", "csv", [[1, 2, 3], [4, 5, 6]]),
    ("comments_blank.csv", "csv", [1.5, -2, 300]),
    ("semicolon.csv", "csv", [[1, 2], [3, 4]]),
    ("tabs.tsv", "csv", [[0.5, 1], [2, -3]]),
    ("whitespace.txt", "csv", [[1, 2, 3], [4, 5, 6]]),
    ("nonfinite.csv", "csv", [[NAN, INF], [-INF, NAN]]),
    ("json_inside.csv", "json", [[1, 2], [3, 4]]),
    ("nan_strings.json", "json", [[NAN, -INF], [INF, INF]]),
    ("scalar.json", "json", 2.5),
    ("bom.json", "json", [[1, 2], [3, 4]]),
    ("empty_list.json", "json", np.zeros((0,))),
    ("empty_rows.json", "json", np.zeros((2, 0))),
    ("one_array_member.json", "json", [0.5, 1.5]),
    ("lossctl_result.json", "json", np.zeros((0, 3))),
    ("lossctl_result_nan.json", "json", [[-INF, 0], [NAN, -0.5]]),
    ("lossctl_loss.json", "json", 0.75),
    ("big_endian.npy", "npy", np.arange(6).reshape(2, 3) / 4),
    ("big_endian_int.npy", "npy", [[1, -2], [300, 40000]]),
    ("fortran.npy", "npy", [[0, 1, 2], [3, 4, 5]]),
    ("empty_2x0.npy", "npy", np.zeros((2, 0))),
    ("npy_inside.csv", "npy", [7, 8, 9]),
    ("one_member.npz", "npz", [0.25, 0.5]),
]


@pytest.mark.parametrize(("name", "fmt", "expected"), GOOD, ids=[g[0] for g in GOOD])
def test_shipped_inputs_read(name: str, fmt: str, expected: Any) -> None:
    loaded = read_array(shipped(name))
    assert isinstance(loaded, Loaded)
    assert loaded.format == fmt
    assert loaded.source == shipped(name)
    same(loaded.array, expected)
    if fmt == "csv":
        assert loaded.array.dtype == np.float64
    if fmt == "json":  # exact: int64 when every number is a JSON integer
        values = np.ravel(expected)
        whole = values.size > 0 and all(isinstance(v, int | np.integer) for v in values.tolist())
        assert loaded.array.dtype == (np.int64 if whole else np.float64)


def test_npy_dtypes_are_kept_and_native() -> None:
    big_int = read_array(shipped("big_endian_int.npy")).array
    assert big_int.dtype == np.int32 and big_int.dtype.isnative
    big_float = read_array(shipped("big_endian.npy")).array
    assert big_float.dtype == np.float64 and big_float.dtype.isnative
    assert read_array(shipped("fortran.npy")).array.dtype == np.float32
    assert read_array(shipped("empty_2x0.npy")).array.dtype == np.int16
    assert read_array(shipped("npy_inside.csv")).array.dtype == np.uint8


def test_lossctl_documents_fill_meta() -> None:
    assert read_array(shipped("lossctl_result.json")).meta == {"op": "softmax", "dim": 1}
    assert read_array(shipped("lossctl_result_nan.json")).meta == {"op": "log-softmax", "dim": -1}
    # a loss document's "shape" is the input's, so it must not reshape the loss
    loss = read_array(shipped("lossctl_loss.json"))
    assert loss.meta == {"op": "ce", "class_dim": 1}
    assert loss.array.shape == ()
    assert read_array(shipped("two_keys.json"), key="labels").meta == {}


# ---------------------------------------------------------------- shipped inputs: refusals

BAD: list[tuple[str, tuple[str, ...]]] = [
    ("header_middle.csv", ("line 3, column 1", "'x' is not a number", "header")),
    ("ragged.csv", ("line 2 has 2 values, expected 3 as on line 1",)),
    ("bad_cell.csv", ("line 2, column 2", "'abc'")),
    ("empty_cell.csv", ("line 1, column 2", "empty cell")),
    ("only_header.csv", ("no numbers found (empty file)", "header")),
    ("whitespace_only.csv", ("no numbers found (empty file)",)),
    ("overflow.csv", ("number out of float64 range at line 2, column 2", "1e999")),
    ("latin1.csv", ("not valid UTF-8", "0xe9", "offset 3")),
    ("utf16.csv", ("UTF-16", "UTF-8")),
    ("nan_token.json", ("[1]", "bare NaN", "RFC 8259", '"nan"')),
    ("infinity_token.json", ("[1][0]", "bare -Infinity", '"-inf"')),
    ("huge_int.json", ("number out of float64 range at [1]",)),
    ("long_int.json", ("integer '9999", "at [1][1] is beyond the 64-bit integer range")),
    ("overflow.json", ("number out of float64 range at [1][0]",)),
    ("duplicate_keys.json", ("duplicate key 'logits'",)),
    ("mixed_types.json", ("[1][1]", "found true")),
    ("string_item.json", ("[1]", 'the string "two"')),
    ("null_item.json", ("[0][1]", "found null")),
    ("object_item.json", ("[1][1]", "found an object")),
    ("ragged.json", ("[1] has 2 items, expected 3 like [0]", "ragged")),
    ("mixed_depth.json", ("[1]: expected a list of 2 items, found an integer", "mixed")),
    ("mixed_depth_inner.json", ("[1]: expected a number, found a list", "mixed")),
    ("syntax_error.json", ("invalid JSON at line 2, column 5", "delimiter")),
    ("two_keys.json", ("'logits', 'labels'", "--key NAME or FILE:NAME")),
    ("garbage.json", ("binary data", "JSON")),
    ("garbage.csv", ("binary data", "CSV")),
    ("garbage.tsv", ("binary data",)),
    ("garbage.txt", ("binary data",)),
    ("garbage_noext", ("binary data",)),
    ("garbage.npy", ("not a .npy file", "magic")),
    ("garbage.npz", ("not a .npz file", "magic")),
    ("not_really.npy", ("not a .npy file", "looks like JSON")),
    ("truncated.npy", ("truncated", "(2, 3)", "48 bytes", "only 43 bytes")),
    ("giant_shape.npy", ("(1000000000000,)", "8000000000000 bytes", "only 16 bytes")),
    ("complex.npy", ("complex128", "accepted: int8..int64")),
    ("str.npy", ("<U2", "text strings", "accepted")),
    ("datetime.npy", ("datetime64[D]", "accepted")),
    ("bool.npy", ("dtype bool", "accepted")),
    ("structured.npy", ("structured", "fields a, b", "accepted")),
    ("two_members.npz", ("2 arrays", "'logits', 'labels'", "--key NAME or FILE:NAME")),
    ("bomb_header.npz", ("member 'huge'", "(1000000000000,)", "inconsistent sizes")),
    ("bomb_sizes.npz", ("member 'zeros'", "4026531840 bytes", "zip bomb")),
    ("plain.zip.npz", ("without .npy members",)),
]


@pytest.mark.parametrize(("name", "parts"), BAD, ids=[b[0] for b in BAD])
def test_shipped_inputs_refused(name: str, parts: tuple[str, ...]) -> None:
    error = read_error(shipped(name), *parts)
    assert error.source == shipped(name)
    assert str(error).startswith(shipped(name) + ": ")


@pytest.mark.skipif(
    np.dtype(np.longdouble).itemsize != 16,
    reason="the shipped file holds a 16-byte long double, which this platform cannot describe",
)
def test_long_double_refused() -> None:
    read_error(shipped("float128.npy"), "float128", "not supported", "accepted: int8..int64")


# ---------------------------------------------------------------- JSON in detail


def test_json_deep_nesting_is_a_clean_error(tmp_path: Path) -> None:
    depth = 100_000
    spec = write(tmp_path / "deep.json", "[" * depth + "1" + "]" * depth)
    read_error(spec, "nested too deeply")


def test_json_nesting_beyond_numpy_dimensions(tmp_path: Path) -> None:
    spec = write(tmp_path / "d70.json", "[" * 70 + "1" + "]" * 70)
    read_error(spec, "more than 64 levels")
    ok = write(tmp_path / "d10.json", "[" * 10 + "1" + "]" * 10)
    assert read_array(ok).array.shape == (1,) * 10


def test_json_deep_object_nesting(tmp_path: Path) -> None:
    depth = 50_000
    spec = write(tmp_path / "deep_obj.json", '{"a":' * depth + "1" + "}" * depth)
    read_error(spec, "nested too deeply")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '["NaN", "INF", "-Infinity", "+Inf", "infinity", "-inf"]',
            [NAN, INF, -INF, INF, INF, -INF],
        ),
        ("[1, 2.5, -0, 1e-320]", [1, 2.5, 0, 1e-320]),
        ("[[1], [2]]", [[1], [2]]),
        ("[[[]]]", np.zeros((1, 1, 0))),
        ('"nan"', NAN),
        ("-3", -3.0),
        (" \n [1,2] \n", [1, 2]),
        ("[2, 1.5]", [2.0, 1.5]),
        ("[9007199254740992, 0.5]", [2.0**53, 0.5]),
    ],
)
def test_json_values(tmp_path: Path, text: str, expected: Any) -> None:
    """Integers stay exact: int64 when every number is an integer, else float64."""
    loaded = read_array(write(tmp_path / "v.json", text))
    same(loaded.array, expected)
    whole = "." not in text and "e" not in text.lower() and '"' not in text
    assert loaded.array.dtype == (np.int64 if whole and loaded.array.size else np.float64)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (str(2**64), "integer '18446744073709551616' at top level is beyond the 64-bit"),
        ("[" + "9" * 300 + "]", "at [0] is beyond the 64-bit integer range"),
        ("[9007199254740993, 0.5]", "integer 9007199254740993 at [0] cannot be represented"),
    ],
)
def test_json_integers_that_would_round_are_refused(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ReadError, match=re.escape(words)):
        read_array(write(tmp_path / "v.json", text))


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("[1, Infinity]", ("[1]", "bare Infinity", '"inf"')),
        ("NaN", ("top level", "bare NaN")),
        ('["nan ", 1]', ("[0]", 'the string "nan "')),
        ('["-nan(ind)"]', ("[0]", "the string")),
        ("[1, [2, 3]]", ("[1]", "mixed nesting depth")),
        ("[[1, 2], []]", ("[1] has 0 items, expected 2",)),
        ("[[[1, 2], [3, 4]], [[5, 6], [7]]]", ("[1][1] has 1 item, expected 2 like [0][0]",)),
        ("true", ("expected a number, found true",)),
        ("null", ("found null",)),
        ('"hello"', ('the string "hello"',)),
        ("[1e400]", ("number out of float64 range at [0]",)),
        ("[-1e400]", ("number out of float64 range at [0]",)),
        ("[1, 2", ("invalid JSON at line 1, column 6",)),
        ("{}", ("empty",)),
        ('{"a": "x", "b": true}', ("'a', 'b'", "--key NAME")),
        ('{"a": [1], "b": [2]}', ("'a', 'b'",)),
        ('[{"a": 1, "a": 2}]', ("duplicate key 'a'",)),
        ('{"op": "softmax", "shape": [2, 2], "result": [1, 2, 3]}', ("'shape' [2, 2]", "3 values")),
        ('{"op": "softmax", "shape": "2x2", "result": [1, 2]}', ("'shape' must be a list",)),
        ('{"op": "softmax", "shape": [-1], "result": [1, 2]}', ("'shape' must be a list",)),
        ('{"op": "softmax", "result": [1, true]}', ('["result"][1]', "found true")),
        ("1,2,3\n", ("Extra data", "looks like CSV")),
    ],
)
def test_json_refusals(tmp_path: Path, text: str, parts: tuple[str, ...]) -> None:
    spec = write(tmp_path / "bad.json", text)
    read_error(spec, spec, *parts)


def test_json_invalid_utf8_and_nul(tmp_path: Path) -> None:
    read_error(write(tmp_path / "u.json", b"[1, \xc3\x28]"), "not valid UTF-8", "offset 4")
    read_error(write(tmp_path / "n.json", b"[1,\x00 2]"), "NUL byte at offset 3")
    read_error(write(tmp_path / "bom.json", b"\xef\xbb\xbf[1, \xff]"), "offset 7")


def test_json_key_selection(tmp_path: Path) -> None:
    spec = shipped("two_keys.json")
    same(read_array(spec, key="labels").array, [0, 1])
    same(read_array(spec + ":logits").array, [[1, 2], [3, 4]])
    same(read_array(spec + ":logits", key="logits").array, [[1, 2], [3, 4]])
    assert read_array(spec + ":logits").source == spec
    read_error(spec, "no key 'nope'", "'logits', 'labels'", key="nope")
    read_error(spec + ":nope", "no key 'nope'")
    read_error(spec + ":logits", "two different keys", key="labels")
    read_error(spec + ":", "empty key")
    array_doc = write(tmp_path / "list.json", "[1, 2]")
    read_error(array_doc, "a key ('k') was given", "a list", key="k")
    doc = write(
        tmp_path / "doc.json", '{"op": "softmax", "dim": 0, "shape": [1, 2], "result": [1, 2]}'
    )
    selected = read_array(doc, key="result")
    assert selected.array.shape == (1, 2)
    assert selected.meta == {"op": "softmax", "dim": 0}


def test_json_key_error_lists_many_keys_briefly(tmp_path: Path) -> None:
    doc = {f"k{i}": [i] for i in range(40)}
    spec = write(tmp_path / "many.json", json.dumps(doc))
    error = read_error(spec, "'k0'", "(40 in all)")
    assert "'k39'" not in str(error)


def test_file_with_colon_in_its_name_is_read_whole(tmp_path: Path) -> None:
    spec = write(tmp_path / "run:1.json", "[5, 6]")
    same(read_array(spec).array, [5, 6])


def test_json_1000x1000_round_trips(tmp_path: Path) -> None:
    # Large inputs take the row-wise fast path; no wall-clock assertion (machines are noisy).
    rng = np.random.default_rng(0)
    values = rng.standard_normal((1000, 1000))
    spec = write(tmp_path / "big.json", json.dumps(values.tolist()))
    np.testing.assert_array_equal(read_array(spec).array, values)


def test_json_fast_path_still_catches_a_late_bad_value(tmp_path: Path) -> None:
    rows = [[float(i + j) for j in range(50)] for i in range(200)]
    rows[150][49] = "x"  # type: ignore[call-overload]
    spec = write(tmp_path / "late.json", json.dumps(rows))
    read_error(spec, "[150][49]", 'the string "x"')
    rows[150][49] = True
    write(tmp_path / "late.json", json.dumps(rows))
    read_error(spec, "[150][49]", "found true")
    rows[150] = rows[150][:-1]
    write(tmp_path / "late.json", json.dumps(rows))
    read_error(spec, "[150] has 49 items, expected 50")


# ---------------------------------------------------------------- CSV in detail


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.csv", "1,2\n3,4\n", [[1, 2], [3, 4]]),
        ("b.csv", "1\n2\n3", [1, 2, 3]),
        ("c.csv", "1;2;\n3;4;\n", [[1, 2], [3, 4]]),
        ("d.csv", "x\n1\n2\n", [1, 2]),
        ("e.csv", '"a","b"\n"1.5","2"\n', [[1.5, 2]]),
        ("f.csv", "1, 2 , 3\n", [[1, 2, 3]]),
        ("g.csv", "1\r2\r", [1, 2]),
        ("h.csv", "# only\n# comments\n1,2\n", [[1, 2]]),
        ("i.tsv", "a\tb\n1\t2\n", [[1, 2]]),
        ("j.csv", "nan,-inf,+inf,Infinity\n", [[NAN, -INF, INF, INF]]),
        ("k.csv", "1e-3,2E+2,-.5,7.\n", [[1e-3, 200, -0.5, 7]]),
        ("l.txt", "1 2\n3 4\n", [[1, 2], [3, 4]]),
        ("m.txt", '"1" "2"\n', [[1, 2]]),
        ("n", "0.25,0.75\n", [[0.25, 0.75]]),
        ("o.csv", "1,\n2,\n", [1, 2]),
        ("p.csv", "a,b,\n1,2,\n", [[1, 2]]),
        ("q.tsv", "1\t2\t\n3\t4\t\n", [[1, 2], [3, 4]]),
    ],
)
def test_csv_values(tmp_path: Path, name: str, text: str, expected: Any) -> None:
    loaded = read_array(write(tmp_path / name, text))
    assert loaded.format == "csv"
    assert loaded.array.dtype == np.float64
    same(loaded.array, expected)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("1,2\n3,4,5\n", ("line 2 has 3 values, expected 2 as on line 1",)),
        ("\n\n# c\n1,2\n\n3\n", ("line 6 has 1 values, expected 2 as on line 4",)),
        ("1,2\n3,four\n", ("line 2, column 2", "'four' is not a number")),
        ("1,2\n3,1_000\n", ("line 2, column 2", "'1_000'")),
        ("1,2\n3,\u0663\n", ("line 2, column 2",)),
        ("1,2\n3,0x10\n", ("'0x10'",)),
        ("h1,h2\nh3,h4\n", ("line 2, column 1", "header")),
        ("1,2\n,4\n", ("line 2, column 1", "empty cell")),
        ('1,2\n"3,4\n', ("line 2", "quoting")),
        ("1\n-1e999\n", ("number out of float64 range at line 2, column 1",)),
        ("", ("no numbers found (empty file)",)),
        ("# just a comment\n", ("no numbers found (empty file)",)),
        ("a;b;c\n\n", ("no numbers found (empty file)", "line 1")),
    ],
)
def test_csv_refusals(tmp_path: Path, text: str, parts: tuple[str, ...]) -> None:
    spec = write(tmp_path / "bad.csv", text)
    read_error(spec, spec, *parts)


def test_tsv_leading_tab_is_an_empty_cell(tmp_path: Path) -> None:
    spec = write(tmp_path / "lead.tsv", "1\t2\n\t4\n")
    read_error(spec, "line 2, column 1", "empty cell")


def test_csv_key_is_refused() -> None:
    read_error(shipped("semicolon.csv"), "a key ('x') was given", key="x")


def test_csv_1000x1000_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    values = rng.standard_normal((1000, 1000))
    path = tmp_path / "big.csv"
    np.savetxt(path, values, delimiter=",", fmt="%.17g")
    np.testing.assert_array_equal(read_array(str(path)).array, values)


# ---------------------------------------------------------------- content vs extension


def test_content_wins_for_magic_bytes(tmp_path: Path) -> None:
    npz_as_npy = write(tmp_path / "archive.npy", npz_bytes(a=np.array([1.0, 2.0])))
    loaded = read_array(npz_as_npy)
    assert loaded.format == "npz"
    same(loaded.array, [1, 2])
    npy_as_json = write(tmp_path / "array.json", npy_bytes(np.array([3, 4], dtype=np.int8)))
    assert read_array(npy_as_json).format == "npy"
    npy_as_npz = write(tmp_path / "array.npz", npy_bytes(np.array([5.0])))
    assert read_array(npy_as_npz).format == "npy"


def test_json_read_from_csv_extension_says_so(tmp_path: Path) -> None:
    spec = write(tmp_path / "x.csv", "[1, 2,]")
    read_error(spec, "invalid JSON", "read as JSON because it starts with '['")


def test_json_extension_with_csv_content_is_parsed_as_json(tmp_path: Path) -> None:
    spec = write(tmp_path / "one.json", "7\n")
    assert read_array(spec).array.shape == ()


def test_empty_binary_files(tmp_path: Path) -> None:
    read_error(write(tmp_path / "e.npy", b""), "empty file (0 bytes)")
    read_error(write(tmp_path / "e.npz", b""), "empty file (0 bytes)")
    read_error(write(tmp_path / "e.json", b""), "no numbers found (empty file)")
    read_error(write(tmp_path / "e.csv", b"\xef\xbb\xbf \r\n"), "no numbers found (empty file)")


# ---------------------------------------------------------------- NPY in detail


def test_native_npy_is_a_memory_map_not_a_copy(tmp_path: Path) -> None:
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    spec = write(tmp_path / "v.npy", npy_bytes(values))
    loaded = read_array(spec)
    assert isinstance(loaded.array, np.memmap)
    assert loaded.array.dtype == np.float32
    np.testing.assert_array_equal(loaded.array, values)


def test_big_endian_and_fortran_values(tmp_path: Path) -> None:
    values = np.linspace(-3, 3, 24).reshape(2, 3, 4)
    for dtype in (">f8", ">f4", ">i8", ">u2", ">f2"):
        expected = values.astype(dtype)
        spec = write(tmp_path / "be.npy", npy_bytes(expected))
        array = read_array(spec).array
        assert array.dtype.isnative and array.dtype == expected.dtype.newbyteorder("=")
        np.testing.assert_array_equal(array, expected)
    fortran = np.asfortranarray(values.astype(">f8"))
    spec = write(tmp_path / "bef.npy", npy_bytes(fortran))
    array = read_array(spec).array
    np.testing.assert_array_equal(array, values)
    assert array[1, 2, 3] == values[1, 2, 3]


def test_object_npy_is_refused_without_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write(tmp_path / "obj.npy", npy_bytes(np.array([1, "x", None]), allow_pickle=True))

    def no_pickle(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr("pickle.load", no_pickle)
    monkeypatch.setattr("pickle.loads", no_pickle)
    read_error(spec, "dtype object", "unpickling", "accepted")


@pytest.mark.parametrize(
    "array",
    [
        np.array([1 + 1j], dtype=np.complex64),
        np.array([b"ab"]),
        np.array([1], dtype="timedelta64[s]"),
        np.zeros(2, dtype="V3"),
        np.zeros(2, dtype=[("a", "<f8", (3,))]),
    ],
    ids=["complex64", "bytes", "timedelta", "void", "nested-record"],
)
def test_other_dtypes_refused(tmp_path: Path, array: np.ndarray[Any, Any]) -> None:
    spec = write(tmp_path / "x.npy", npy_bytes(array))
    read_error(spec, "dtype", "accepted: int8..int64")


@pytest.mark.parametrize("dtype", ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4"])
def test_numeric_dtypes_kept(tmp_path: Path, dtype: str) -> None:
    values = np.array([[0, 1], [2, 3]], dtype=dtype)
    loaded = read_array(write(tmp_path / "x.npy", npy_bytes(values)))
    assert loaded.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(loaded.array, values)


def test_zero_dim_npy(tmp_path: Path) -> None:
    spec = write(tmp_path / "s.npy", npy_bytes(np.array(2.5)))
    loaded = read_array(spec)
    assert loaded.array.shape == () and float(loaded.array) == 2.5


def test_npy_headers_that_lie(tmp_path: Path) -> None:
    def header(fields: str, version: tuple[int, int] = (1, 0)) -> bytes:
        body = fields.encode("latin1") + b"\n"
        prefix = b"\x93NUMPY" + bytes(version)
        return prefix + struct.pack("<H", len(body)) + body

    cases = {
        "neg.npy": (
            header("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}"),
            "bad shape",
        ),
        "keys.npy": (header("{'descr': '<f8', 'shape': (1,)}"), "invalid .npy header"),
        "notdict.npy": (header("[1, 2]"), "invalid .npy header"),
        "syntax.npy": (header("{'descr': '<f8', "), "invalid .npy header"),
        "descr.npy": (
            header("{'descr': 'zz', 'fortran_order': False, 'shape': (1,)}"),
            "invalid .npy header",
        ),
        "subarray.npy": (
            header("{'descr': ('<f8', (3,)), 'fortran_order': False, 'shape': (2,)}"),
            "sub-array dtype",
        ),
        "version.npy": (
            header("{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}", (9, 9)),
            "unsupported .npy format version 9.9",
        ),
        "short.npy": (b"\x93NUMPY\x01", "invalid .npy header"),
        "hlen.npy": (b"\x93NUMPY\x01\x00\xff\xff{", "invalid .npy header"),
        "dims.npy": (
            header("{'descr': '<f8', 'fortran_order': False, 'shape': (" + "1," * 70 + ")}"),
            "bad shape",
        ),
    }
    for name, (data, part) in cases.items():
        read_error(write(tmp_path / name, data), name, part)


def test_npy_with_a_key_is_refused() -> None:
    read_error(shipped("fortran.npy"), "holds a single array", key="x")


# ---------------------------------------------------------------- NPZ in detail


def test_npz_members_and_keys(tmp_path: Path) -> None:
    spec = shipped("two_members.npz")
    same(read_array(spec, key="logits").array, [[1, 2], [3, 0]])
    same(read_array(spec + ":labels").array, [1, 0])
    assert read_array(spec + ":labels").array.dtype == np.int64
    read_error(spec, "no array named 'nope'", "'logits', 'labels'", key="nope")
    read_error(spec + ":nope", "no array named 'nope'")
    read_error(spec + ":labels", "two different keys", key="logits")
    same(read_array(spec, key="labels.npy").array, [1, 0])


def test_npz_uncompressed_and_dtypes(tmp_path: Path) -> None:
    spec = write(
        tmp_path / "u.npz",
        npz_bytes(False, a=np.arange(4, dtype=">i2"), b=np.array([1 + 2j])),
    )
    array = read_array(spec, key="a").array
    assert array.dtype == np.int16 and array.dtype.isnative
    same(array, [0, 1, 2, 3])
    read_error(spec, "member 'b'", "complex128", key="b")


def test_npz_object_member_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, o=np.array([{}, 1], dtype=object))
    spec = write(tmp_path / "o.npz", buffer.getvalue())
    read_error(spec, "member 'o'", "dtype object")


def test_npz_truncated_member_data(tmp_path: Path) -> None:
    member = npy_bytes(np.arange(10.0))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cut.npy", member[:-8])
    read_error(write(tmp_path / "cut.npz", buffer.getvalue()), "member 'cut'", "inconsistent")


def test_npz_non_npy_member(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.npy", npy_bytes(np.arange(2)))
        archive.writestr("notes.txt", "hello")
    spec = write(tmp_path / "mixed.npz", buffer.getvalue())
    same(read_array(spec, key="a").array, [0, 1])
    read_error(spec, "member 'notes.txt'", "not a .npy array", key="notes.txt")


def test_npz_zip_bomb_by_ratio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 4 MiB of zeros compresses to a few KiB: a ratio far above 64x, but small
    spec = write(tmp_path / "zeros.npz", npz_bytes(z=np.zeros(1 << 19)))
    assert os.path.getsize(spec) < 100_000
    assert read_array(spec).array.shape == (1 << 19,)  # under the ratio rule's 64 MiB floor
    monkeypatch.setattr(inflation, "RATIO_FLOOR", 1 << 20)
    read_error(spec, "member 'z'", str(8 * (1 << 19) + 128), "possible zip bomb")


def test_npz_member_beyond_the_machines_memory(tmp_path: Path) -> None:
    """Any ratio: a member larger than half the physical memory is refused before inflating."""
    data = npz_bytes(z=np.arange(1 << 16, dtype=np.float64))  # compresses about 4x
    size = zipfile.ZipFile(io.BytesIO(data)).getinfo("z.npy").file_size
    assert npz.read_npz(io.BytesIO(data), "a.npz", None, max_bytes=size).shape == (1 << 16,)
    with pytest.raises(ReadError, match="more than half of this machine's memory"):
        npz.read_npz(io.BytesIO(data), "a.npz", None, max_bytes=size - 1)
    assert 0 < inflation.memory_bound() <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_npz_compressed_size_beyond_archive(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("s.npy", npy_bytes(np.arange(4.0)))
    data = bytearray(buffer.getvalue())
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<II", data, central + 20, 0x7FFFFFFF, 0x7FFFFFFF)
    read_error(write(tmp_path / "s.npz", bytes(data)), "member 's'", "compressed bytes")


def test_npz_corrupt_archives(tmp_path: Path) -> None:
    good = npz_bytes(a=np.arange(100.0))
    read_error(write(tmp_path / "cut.npz", good[: len(good) // 2]), "cut.npz")
    flipped = bytearray(good)
    flipped[60] ^= 0xFF
    try:
        result: Loaded | None = read_array(write(tmp_path / "flip.npz", bytes(flipped)))
    except ReadError:
        result = None
    assert result is None or result.array.shape == (100,)
    read_error(write(tmp_path / "empty.npz", b"PK\x05\x06" + b"\x00" * 18), "no arrays")


# ---------------------------------------------------------------- standard input


def stdin_bytes(data: bytes) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(data))


@pytest.mark.parametrize(
    ("data", "fmt", "expected"),
    [
        (b"[[1, 2], [3, 4]]", "json", [[1, 2], [3, 4]]),
        (b'{"x": [1]}', "json", [1]),
        (b"\xef\xbb\xbf1,2\r\n3,4\r\n", "csv", [[1, 2], [3, 4]]),
        (b"1\n2\n", "csv", [1, 2]),
        (npy_bytes(np.array([1.5, 2.5], dtype=">f4")), "npy", [1.5, 2.5]),
        (npz_bytes(only=np.array([9, 8])), "npz", [9, 8]),
    ],
)
def test_stdin_formats(data: bytes, fmt: str, expected: Any) -> None:
    loaded = read_array("-", stdin=stdin_bytes(data))
    assert loaded.source == "<stdin>"
    assert loaded.format == fmt
    assert loaded.array.dtype.isnative
    same(loaded.array, expected)


def test_stdin_keys() -> None:
    data = Path(shipped("two_members.npz")).read_bytes()
    same(read_array("-", key="labels", stdin=io.BytesIO(data)).array, [1, 0])
    same(read_array("-:logits", stdin=io.BytesIO(data)).array, [[1, 2], [3, 0]])
    error = read_error("-", "<stdin>", "2 arrays", stdin=io.BytesIO(data))
    assert error.source == "<stdin>"


def test_stdin_empty() -> None:
    error = read_error(
        "-", "standard input is empty", "cat logits.json | lossctl ce -", stdin=io.BytesIO()
    )
    assert str(error).startswith("<stdin>: ")


def test_stdin_defaults_to_sys_stdin_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BytesIO(b"4,5\n"))
    monkeypatch.setattr(sys, "stdin", fake)
    same(read_array("-").array, [[4, 5]])


def test_stdin_errors_are_read_errors() -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            raise OSError(5, "Input/output error")

    read_error("-", "<stdin>", "Input/output error", stdin=Broken())
    read_error("-", "<stdin>", "NUL byte", stdin=io.BytesIO(b"\x00\x01"))
    read_error(
        "-", "<stdin>", "truncated", stdin=io.BytesIO(Path(shipped("truncated.npy")).read_bytes())
    )


# ---------------------------------------------------------------- files that are not files


def test_socket_and_device_refused(tmp_path: Path, alarm: None) -> None:
    read_error("/dev/null", "is a character device", "use `-`")
    import socket

    path = tempfile.mktemp(suffix=".sock", dir="/tmp")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(path)
        read_error(path, "is a socket")
    finally:
        server.close()
        os.unlink(path)


def test_directory_missing_and_odd_paths(tmp_path: Path) -> None:
    read_error(str(tmp_path), "is a directory")
    read_error(str(tmp_path / "nope.json"), "nope.json: no such file", "check the path")
    read_error(str(tmp_path / "nope.npz:key"), "no such file")
    file_path = write(tmp_path / "f.json", "[1]")
    read_error(file_path + "/inner.json", "not a directory")
    read_error("", "empty file name")
    read_error("bad\x00name.json", "cannot access")
    read_error("x" * 5000 + ".json", "cannot access")


def test_unreadable_file_via_chmod(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: permission bits are not enforced (see the mocked test)")
    spec = write(tmp_path / "secret.json", "[1]")
    os.chmod(spec, 0)
    try:
        read_error(spec, "permission denied", "chmod +r")
    finally:
        os.chmod(spec, 0o600)


def test_unreadable_file_via_mock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write(tmp_path / "secret.json", "[1]")

    def denied(path: Any, flags: int, *args: Any) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", denied)
    read_error(spec, "secret.json: permission denied", "chmod +r")


def test_unexpected_exceptions_become_read_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("surprise")

    monkeypatch.setattr("lossctl.io.csv_format.read_csv", boom)  # imported when CSV is read
    error = read_error(shipped("semicolon.csv"), "RuntimeError: surprise")
    assert isinstance(error, LossctlError)


def test_keyboard_interrupt_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("lossctl.io.csv_format.read_csv", interrupt)
    with pytest.raises(KeyboardInterrupt):
        read_array(shipped("semicolon.csv"))


def test_relative_paths(tmp_path: Path) -> None:
    write(tmp_path / "rel.json", '{"v": [1, 2]}')
    loaded = read_array("rel.json:v")
    assert loaded.source == "rel.json"
    same(loaded.array, [1, 2])


def test_loaded_is_frozen() -> None:
    loaded = read_array(shipped("semicolon.csv"))
    with pytest.raises(AttributeError):
        loaded.source = "other"  # type: ignore[misc]


# ---------------------------------------------------------------- parse_number_list


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,2,0.5", [1, 2, 0.5]),
        ("[1, 2, 0.5]", [1, 2, 0.5]),
        (" 1 , 2 ", [1, 2]),
        ("3", [3]),
        ("1 2 3", [1, 2, 3]),
        ("[ 1e-3 ]", [1e-3]),
        ("-0,+4", [0, 4]),
    ],
)
def test_parse_number_list(text: str, expected: list[float]) -> None:
    values = parse_number_list(text, what="--weight")
    assert values.dtype == np.float64 and values.ndim == 1
    np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("", "empty list"),
        ("[]", "empty list"),
        ("1,,2", "item 2 is empty"),
        ("1,2,", "item 3 is empty"),
        ("1,abc", "item 2 ('abc') is not a number"),
        ("1,nan", "item 2 is nan"),
        ("inf", "item 1 is inf"),
        ("1,-Infinity", "finite"),
        ("1e999", "out of float64 range"),
        ("[1,2", "unbalanced"),
        ("1,2]", "unbalanced"),
        ("[[1,2]]", "not a number"),
        ("1_000", "not a number"),
    ],
)
def test_parse_number_list_refusals(text: str, part: str) -> None:
    with pytest.raises(ReadError) as info:
        parse_number_list(text, what="--weight")
    assert str(info.value).startswith("--weight: ")
    assert part in str(info.value)
    assert info.value.source == "--weight"


# ---------------------------------------------------------------- properties

EXTENSIONS = [".json", ".csv", ".tsv", ".txt", ".npy", ".npz", ""]

hostile_bytes = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda b: b"\x93NUMPY" + b),
    st.binary(max_size=300).map(lambda b: b"\x93NUMPY\x01\x00" + b),
    st.binary(max_size=300).map(lambda b: b"PK\x03\x04" + b),
    st.text(alphabet='[]{},:;"\t\n\r 0123456789.eE+-naifNItrue#\ufeff', max_size=120).map(
        lambda s: s.encode("utf-8")
    ),
)


def check_loaded(loaded: Loaded) -> None:
    assert isinstance(loaded, Loaded)
    assert loaded.format in ("json", "csv", "npy", "npz")
    assert isinstance(loaded.array, np.ndarray)
    assert loaded.array.dtype.kind in "iuf" and loaded.array.dtype.isnative
    if loaded.format == "csv":
        assert loaded.array.dtype == np.float64
    if loaded.format == "json":  # int64 only for integers, which stay exact
        assert loaded.array.dtype in (np.float64, np.int64)


@pytest.fixture(scope="module")
def fuzz_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@pytest.mark.parametrize("ext", EXTENSIONS, ids=[e or "noext" for e in EXTENSIONS])
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=hostile_bytes)
def test_random_bytes_give_loaded_or_read_error(fuzz_dir: Path, ext: str, data: bytes) -> None:
    path = fuzz_dir / f"fuzz{ext}"
    path.write_bytes(data)
    for spec, stdin in ((str(path), None), ("-", io.BytesIO(data))):
        try:
            loaded = read_array(spec, stdin=stdin)
        except ReadError as error:
            assert str(error) and "\n" not in str(error)
            continue
        check_loaded(loaded)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.sampled_from(["nan", "-inf", "x"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["op", "result", "loss", "shape", "dim", "k"]), children)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_random_json_documents(value: Any) -> None:
    text = json.dumps(value)
    try:
        loaded = read_array("-", stdin=io.BytesIO(text.encode()))
    except ReadError:
        return
    check_loaded(loaded)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=150, deadline=None)
@given(
    array=hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=1, max_dims=2, min_side=1), elements=finite
    )
)
def test_round_trip_json_csv_npy(array: np.ndarray[Any, Any]) -> None:
    as_json = json.dumps(array.tolist()).encode()
    np.testing.assert_array_equal(read_array("-", stdin=io.BytesIO(as_json)).array, array)
    rows = np.atleast_2d(array)
    text = "\n".join(",".join(repr(float(v)) for v in row) for row in rows)
    csv_loaded = read_array("-", stdin=io.BytesIO(text.encode())).array
    expected = rows.reshape(-1) if rows.shape[1] == 1 else rows
    assert csv_loaded.shape == expected.shape
    np.testing.assert_array_equal(csv_loaded, expected)
    npy_loaded = read_array("-", stdin=io.BytesIO(npy_bytes(array))).array
    np.testing.assert_array_equal(npy_loaded, array)


@settings(max_examples=100, deadline=None)
@given(
    array=hnp.arrays(
        hnp.scalar_dtypes().filter(lambda d: d.kind in "iuf" and d.itemsize <= 8),
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
    ),
    fortran=st.booleans(),
    swap=st.booleans(),
)
def test_npy_and_npz_round_trip_any_numeric_dtype(
    array: np.ndarray[Any, Any], fortran: bool, swap: bool
) -> None:
    if swap:
        array = array.astype(array.dtype.newbyteorder("S"))
    if fortran:
        array = np.asfortranarray(array)
    for data in (npy_bytes(array), npz_bytes(x=array)):
        loaded = read_array("-", stdin=io.BytesIO(data))
        assert loaded.array.dtype == array.dtype.newbyteorder("=")
        assert loaded.array.shape == array.shape
        np.testing.assert_array_equal(loaded.array, array)
