"""Text read block by block gives what the whole text gives: the same array, notes or message.

Every JSON, CSV, TSV and text file shipped for the tests (hostile ones included) is read
with blocks of a few bytes -- so that every boundary falls inside numbers, CRLFs, UTF-8
characters, strings and brackets, and a JSON list is streamed however small -- and must
give exactly what it gives with one block. Real files, read through ``read_array``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from lossctl.errors import ReadError
from lossctl.io import blocks
from lossctl.io.blocks import TextBlocks
from lossctl.io.json_stream import Fallback, stream_json_array
from lossctl.io.readers import read_array
from tests.helpers import ROOT

TEXT = {".json", ".csv", ".tsv", ".txt", ""}
SHIPPED = sorted(
    path
    for folder in ("tests/hostile", "tests/inputs", "tests/data/csv", "examples/seed")
    for path in (ROOT / folder).iterdir()
    if path.is_file() and path.suffix in TEXT and path.name != "README.md"
)


def outcome(path: Path | str) -> tuple[object, ...]:
    try:
        loaded = read_array(str(path))
    except ReadError as error:
        return ("error", str(error))
    array = loaded.array
    return (loaded.format, array.dtype.str, array.shape, array.tobytes(), loaded.notes, loaded.meta)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
@pytest.mark.parametrize("size", [1, 3, 17])
def test_shipped_files_read_the_same_in_tiny_blocks(
    path: Path, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = outcome(path)
    monkeypatch.setattr(blocks, "BLOCK_BYTES", size)
    assert outcome(path) == whole


def _cases() -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((40, 6)).round(3).tolist()
    bad = [list(r) for r in rows]
    bad[30][2] = "oops"
    texts = {
        "rows.json": json.dumps(rows),
        "pretty.json": json.dumps(rows, indent=1).replace("\n", "\r\n"),
        "single.json": json.dumps([[[1, 2.5], [3, 4]]]),
        "deep.json": "[[[" + json.dumps(rows) + "]]]",
        "two_then_one.json": json.dumps([[rows[:2]], [rows[2:4]], [rows[4:6]]]),
        "labels.json": json.dumps(rng.integers(0, 9, 300).tolist()),
        "ints_then_floats.json": json.dumps([1, 2, 3] * 30 + [0.5]),
        "big_ints_then_float.json": json.dumps([2**60 + 1] * 3 + [0.5]),
        "big_int_in_a_row_of_floats.json": json.dumps([[0.5, 1.5]] * 20 + [[0.5, 2**60 + 1]]),
        "exact_big_ints.json": json.dumps([2**60] * 3 + [0.5]),
        "beyond_int64.json": json.dumps([1] * 50 + [2**70]),
        "strings.json": json.dumps([["nan", 1.0], ["-inf", "inf"]] * 20),
        "brackets_in_strings.json": json.dumps([["[", 1.0], ["],", 2.0]] * 5),
        "escapes.json": json.dumps([[1.0, 2.0]] * 20 + [["a\\b", 1.0]]),
        "bad_cell.json": json.dumps(bad),
        "ragged.json": json.dumps([*rows[:20], rows[20][:5], *rows[21:]]),
        "sibling_later.json": json.dumps([rows[:20]])[:-1] + ", [[1.0]]]",
        "trailing_comma.json": json.dumps(rows)[:-1] + ",]",
        "extra.json": json.dumps(rows) + " ]",
        "extra_word.json": json.dumps(rows) + "\n x",
        "unterminated.json": json.dumps(rows)[:-1],
        "bare_nan.json": json.dumps(rows[:10])[:-1] + ", [NaN, 1, 2, 3, 4, 5]]",
        "object.json": json.dumps({"logits": rows}),
        "utf8.json": "\ufeff" + json.dumps([["é" if i == 3 else 1.0 for i in range(4)]]),
        "empty_inner.json": json.dumps([[], []]),
        "nested_object.json": json.dumps([[1.0], [{"a": 1}]]),
        "crlf.csv": "\r\n".join(",".join(map(str, r)) for r in rows) + "\r\n",
        "crlf_bad_line.csv": "\r\n".join(",".join(map(str, r)) for r in rows) + "\r\n1,x\r\n",
        "cr.csv": "\r".join(",".join(map(str, r)) for r in rows),
        "bom_header.csv": "\ufeffa,b,é\n" + "\n".join("1,2,3" for _ in range(30)),
        "late_nul.csv": "\n".join("1,2" for _ in range(30)) + "\n1,\x00\n",
    }
    made = {name: text.encode("utf-8") for name, text in texts.items()}
    made["late_bad_utf8.csv"] = b"1,2\n" * 30 + b"1,\xe9\n"
    made["cut_utf8_at_end.csv"] = b"1,2\n" * 30 + b"\xc3"
    return made


@pytest.mark.parametrize("name", sorted(_cases()))
@pytest.mark.parametrize("size", [1, 2, 5, 64])
def test_made_files_read_the_same_in_tiny_blocks(
    name: str, size: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / name
    path.write_bytes(_cases()[name])
    whole = outcome(path)
    monkeypatch.setattr(blocks, "BLOCK_BYTES", size)
    assert outcome(path) == whole


def test_the_stream_takes_the_common_shapes_and_gives_up_on_the_rest() -> None:
    """What is streamed and what falls back (to the ordinary reader) is as documented."""

    def streamed(text: str) -> np.ndarray:
        handle = io.BytesIO(text.encode())
        return stream_json_array(TextBlocks(handle, b"", "x", 4).blocks("JSON"), "x", 4)

    assert streamed("[[1, 2], [3, 4]]").dtype == np.int64
    assert streamed("[[1, 2], [3, 4.5]]").shape == (2, 2)
    assert streamed("[[[1.5, 2], [3, 4]]]").shape == (1, 2, 2)
    for text in ('{"a": [1]}', "[[1], [2, 3]]", "[1, 2,]", "[1, 2] x", "[]", '["\\u0031"]'):
        with pytest.raises(Fallback):
            streamed(text)


def test_a_nul_byte_past_the_first_block_names_its_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "late.json"
    text = json.dumps([[1.5, 2.5]] * 50)
    path.write_bytes(text[:-20].encode() + b"\x00" + text[-20:].encode())
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 32)
    with pytest.raises(ReadError) as caught:
        read_array(str(path))
    assert str(caught.value) == (
        f"{path}: binary data (NUL byte at offset {len(text) - 20}), not JSON text"
    )


def test_the_first_block_is_checked_before_the_rest_is_read(tmp_path: Path) -> None:
    """A NUL in the first block: refused after reading one block, not the file."""

    class Counting(io.BytesIO):
        read_bytes = 0

        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            Counting.read_bytes += len(data)
            return data

    handle = Counting(b"\x00" * (8 << 20))
    text = TextBlocks(handle, b"", "zeros", 1 << 20)
    assert text.first_char() == b"\x00"
    with pytest.raises(ReadError, match="NUL byte at offset 0"):
        text.check_first("CSV")
    assert Counting.read_bytes == 1 << 20


@pytest.mark.parametrize("name", ["rows.json", "deep.json", "ragged.json", "crlf_bad_line.csv"])
def test_standard_input_reads_the_same_in_tiny_blocks(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-``: the bytes of standard input go through the same blocks as a file."""
    path = tmp_path / name
    path.write_bytes(_cases()[name])

    def from_stdin() -> tuple[object, ...]:
        try:
            loaded = read_array("-", stdin=io.BytesIO(path.read_bytes()))
        except ReadError as error:
            return ("error", str(error).replace("<stdin>", str(path)))
        return (loaded.format, loaded.array.dtype.str, loaded.array.shape, loaded.array.tobytes())

    whole = outcome(path)[:4]
    assert from_stdin() == whole
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 3)
    assert from_stdin() == whole
