"""lossctl.io.safetensors: fixtures written by safetensors/torch, lazy bfloat16, hostile headers.

The fixtures come from tools/make_safetensors_fixtures.py; these tests need neither torch
nor the safetensors package.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lossctl.errors import ReadError
from lossctl.io.safetensors import (
    Bfloat16Array,
    bfloat16_to_float32,
    looks_like_safetensors,
    read_safetensors,
    read_safetensors_bytes,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "safetensors"
EXPECTED = sorted(DATA.glob("*.npy"))


def build(header: Any, data: bytes = b"", length: int | None = None) -> bytes:
    """A safetensors blob: the header (a dict, or raw bytes) after its u64 length."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def entry(dtype: str, shape: list[Any], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def read(blob: bytes, how: str, tmp_path: Path, key: str | None = None) -> Any:
    if how == "bytes":
        return read_safetensors_bytes(blob, "<stdin>", key)
    path = tmp_path / "x.safetensors"
    path.write_bytes(blob)
    return read_safetensors(str(path), "x.safetensors", key)


def root(array: np.ndarray) -> object:
    base: object = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


HOW = pytest.mark.parametrize("how", ["file", "bytes"])
F32 = np.arange(4, dtype="<f4").tobytes()


# ---------------------------------------------------------------- real files


def test_fixtures_exist() -> None:
    assert len(EXPECTED) >= 12
    assert len(list(DATA.glob("*.safetensors"))) == 6


@pytest.mark.parametrize("npy", EXPECTED, ids=lambda p: p.name)
def test_fixture_values_exact(npy: Path) -> None:
    stem, name = npy.name[: -len(".npy")].split(".", 1)
    want = np.load(npy)
    path = DATA / f"{stem}.safetensors"
    for got in (
        read_safetensors(str(path), path.name, name),
        read_safetensors_bytes(path.read_bytes(), "<stdin>", name),
    ):
        array = np.asarray(got)
        assert array.dtype == want.dtype and array.shape == want.shape
        assert array.tobytes() == want.tobytes()  # bitwise: NaN payloads, -0.0, -inf


def test_bf16_fixture_is_lazy_and_exact() -> None:
    got = read_safetensors(str(DATA / "logits_bf16.safetensors"), "f", "logits")
    want = np.load(DATA / "logits_bf16.logits.npy")
    assert isinstance(got, Bfloat16Array)
    assert (got.shape, got.dtype, got.ndim, got.size, len(got)) == ((6, 6), np.float32, 2, 36, 6)
    assert got.to_float32().tobytes() == want.tobytes()
    assert got[2:4].tobytes() == want[2:4].tobytes()
    assert got[:, 1].tobytes() == want[:, 1].tobytes()
    assert got[-1].tobytes() == want[-1].tobytes()
    assert isinstance(got[0, 3], np.float32) and got[0, 3] == want[0, 3]
    assert np.isnan(got[5, 0]) and got[5, 1] == np.inf
    assert [row.tobytes() for row in got] == [row.tobytes() for row in want]
    assert np.asarray(got, dtype=np.float64).tobytes() == want.astype(np.float64).tobytes()
    bits = got.bits
    assert bits.dtype == np.dtype("<u2") and not bits.flags.writeable
    assert isinstance(root(bits), mmap.mmap)
    with pytest.raises(ValueError, match="without a copy"):
        np.asarray(got, copy=False)
    with pytest.raises(TypeError):
        got[0] = 1.0  # type: ignore[index]


def test_single_tensor_needs_no_key() -> None:
    got = read_safetensors(str(DATA / "single.safetensors"), "f", None)
    assert np.asarray(got).tobytes() == np.load(DATA / "single.logits.npy").tobytes()


def test_int64_labels_and_float_arrays_are_mapped_read_only_views() -> None:
    path = DATA / "logits_f32.safetensors"
    for name, dtype in (("logits", np.float32), ("labels", np.int64)):
        got = read_safetensors(str(path), "f", name)
        assert isinstance(got, np.ndarray) and got.dtype == dtype and got.dtype.isnative
        assert not got.flags.writeable
        assert isinstance(root(got), mmap.mmap)  # no copy: straight on the mapping
        with pytest.raises(ValueError):
            got[0] = 0


def test_bytes_variant_views_the_given_bytes() -> None:
    blob = (DATA / "logits_f16.safetensors").read_bytes()
    got = read_safetensors_bytes(blob, "<stdin>", "logits")
    assert isinstance(got, np.ndarray) and got.dtype == np.float16
    assert root(got) is blob and not got.flags.writeable


# ---------------------------------------------------------------- bfloat16


def test_bf16_conversion_against_struct() -> None:
    bits = np.array([0x0000, 0x8000, 0x3F80, 0xBFC0, 0x7F80, 0xFF80, 0x7FC1, 0x0001, 0x7F7F])
    got = bfloat16_to_float32(bits.astype(np.uint16))
    for b, value in zip(bits.tolist(), got.tolist(), strict=True):
        (want,) = struct.unpack("<f", struct.pack("<I", b << 16))
        assert struct.pack("<f", value) == struct.pack("<f", want)


def test_bf16_row_blocks_equal_full_conversion() -> None:
    rows, cols = 3000, 64
    bits = np.random.default_rng(1).integers(0, 2**16, size=(rows, cols), dtype=np.uint16)
    blob = build(
        {"logits": entry("BF16", [rows, cols], 0, bits.nbytes)}, bits.astype("<u2").tobytes()
    )
    lazy = read_safetensors_bytes(blob, "<stdin>", None)
    assert isinstance(lazy, Bfloat16Array)
    full = np.asarray(lazy)
    assert full.dtype == np.float32 and full.shape == (rows, cols)
    blocks = [lazy[r : r + 256] for r in range(0, rows, 256)]
    assert all(b.dtype == np.float32 for b in blocks)
    assert np.concatenate(blocks).tobytes() == full.tobytes()
    assert np.shares_memory(lazy.bits, np.frombuffer(blob, dtype=np.uint8))
    assert lazy[5:7].nbytes == 2 * cols * 4  # only the slice is widened


def test_bf16_scalar_and_errors() -> None:
    blob = build({"s": entry("BF16", [], 0, 2)}, struct.pack("<H", 0x4049))
    got = read_safetensors_bytes(blob, "<stdin>", None)
    assert isinstance(got, Bfloat16Array) and got.shape == () and got.ndim == 0
    assert float(np.asarray(got)) == 3.140625
    with pytest.raises(TypeError, match="unsized"):
        len(got)
    with pytest.raises(TypeError, match="uint16"):
        bfloat16_to_float32(np.zeros(2, dtype=np.float32))
    with pytest.raises(TypeError, match="uint16"):
        Bfloat16Array(np.zeros(2, dtype=np.int16))


# ---------------------------------------------------------------- selecting


@HOW
def test_several_tensors_without_key_lists_them(how: str, tmp_path: Path) -> None:
    blob = build({"b": entry("F32", [2], 0, 8), "a": entry("F32", [2], 8, 16)}, F32)
    with pytest.raises(ReadError, match=r"holds 2 tensors \('b', 'a'\); choose one with --key"):
        read(blob, how, tmp_path)
    with pytest.raises(ReadError, match=r"no tensor named 'c'.*it holds: 'b', 'a'"):
        read(blob, how, tmp_path, key="c")
    with pytest.raises(ReadError, match="no tensor named '__metadata__'"):
        read(blob, how, tmp_path, key="__metadata__")
    assert np.asarray(read(blob, how, tmp_path, key="a")).tolist() == [2.0, 3.0]


def test_listing_is_capped_at_twelve() -> None:
    header = {f"t{i}": entry("U8", [1], i, i + 1) for i in range(20)}
    with pytest.raises(ReadError) as info:
        read_safetensors_bytes(build(header, bytes(20)), "<stdin>", "nope")
    assert "'t11', ... (20 in all)" in str(info.value) and "'t12'" not in str(info.value)


@HOW
def test_header_order_need_not_follow_offsets(how: str, tmp_path: Path) -> None:
    header = {"__metadata__": {"format": "pt"}, "late": entry("F32", [1], 12, 16)}
    header["early"] = entry("F32", [3], 0, 12)
    assert np.asarray(read(build(header, F32), how, tmp_path, key="late")).tolist() == [3.0]


def test_refused_dtype_only_matters_when_chosen() -> None:
    header = {"w": entry("F8_E4M3", [4], 0, 4), "logits": entry("F32", [1], 4, 8)}
    blob = build(header, bytes(4) + F32[:4])
    assert np.asarray(read_safetensors_bytes(blob, "<stdin>", "logits")).tolist() == [0.0]
    with pytest.raises(ReadError, match=r"dtype F8_E4M3 \(an 8-bit float\).*accepted: F64"):
        read_safetensors_bytes(blob, "<stdin>", "w")


@pytest.mark.parametrize(
    ("dtype", "numpy_dtype"), [("U16", np.uint16), ("U32", np.uint32), ("U64", np.uint64)]
)
def test_unsigned_dtypes_are_kept(dtype: str, numpy_dtype: type) -> None:
    got = read_safetensors_bytes(
        build({"t": entry(dtype, [16 // np.dtype(numpy_dtype).itemsize], 0, 16)}, F32), "s", None
    )
    assert isinstance(got, np.ndarray) and got.dtype == numpy_dtype


def test_empty_tensor_and_sniff() -> None:
    blob = build({"e": entry("F32", [0, 5], 0, 0)})
    got = read_safetensors_bytes(blob, "<stdin>", None)
    assert isinstance(got, np.ndarray) and got.shape == (0, 5) and not got.flags.writeable
    for path in DATA.glob("*.safetensors"):
        data = path.read_bytes()
        assert looks_like_safetensors(data[:16], len(data)), path.name
    assert looks_like_safetensors(build({}), 10)


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\x00" * 7,
        b"\x93NUMPY\x01\x00v\x00{'descr'",
        b'{"logits": [[1, 2]]}',
        b"PK\x03\x04" * 4,
        struct.pack("<Q", 500) + b'{"a":',
        struct.pack("<Q", 20) + b"[1, 2]",
        struct.pack("<Q", 20) + b"{x",
    ],
)
def test_sniff_rejects(head: bytes) -> None:
    assert not looks_like_safetensors(head[:16], 100)


# ---------------------------------------------------------------- hostile files

HOSTILE: list[tuple[str, bytes, str]] = [
    ("empty", b"", "empty file (0 bytes)"),
    (
        "seven bytes",
        b"\x08\x00\x00\x00\x00\x00\x00",
        "only 7 bytes; a safetensors file starts with an 8-byte",
    ),
    (
        "length beyond file",
        build(b"{}", length=1000),
        "header length says 1000 bytes, but only 2 bytes",
    ),
    ("length huge", build(b"{}", length=2**64 - 1), "exceeds the limit of 100000000 bytes"),
    ("not json", build(b"{not json}"), "not valid JSON"),
    ("zero length", build(b""), "not valid JSON"),
    ("json array", build(b"[1, 2]  "), "header is a JSON array, not an object"),
    ("json string", build(b'"hi"'), "header is a JSON string, not an object"),
    (
        "nan",
        build(b'{"a": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 0]}}'),
        "non-standard JSON token NaN",
    ),
    ("infinity", build(b'{"a": -Infinity}'), "token -Infinity"),
    ("duplicate", build(b'{"a": {}, "a": {}}'), "the key 'a' twice"),
    ("not utf-8", build(b'{"\xff": 1}'), "not valid UTF-8"),
    ("deep nesting", build(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "JSON"),
    ("metadata not object", build({"__metadata__": [1]}), "__metadata__ is a JSON array"),
    ("no tensors", build({"__metadata__": {"format": "pt"}}), "holds no tensors"),
    ("entry not object", build({"a": 3}), "tensor 'a': its header entry is a JSON number"),
    ("no dtype", build({"a": {"shape": [], "data_offsets": [0, 0]}}), "has no 'dtype'"),
    ("no offsets", build({"a": {"dtype": "F32", "shape": []}}), "has no 'data_offsets'"),
    ("unknown dtype", build({"a": entry("FOO", [4], 0, 16)}, F32), "unknown dtype 'FOO'"),
    ("dtype not string", build({"a": entry(7, [4], 0, 16)}, F32), "dtype 7 is not a string"),  # type: ignore[arg-type]
    (
        "negative shape",
        build({"a": entry("F32", [-4], 0, 16)}, F32),
        "shape [-4] is not a list of at most 64 non-negative",
    ),
    ("float shape", build({"a": entry("F32", [4.0], 0, 16)}, F32), "non-negative integers"),
    ("bool shape", build({"a": entry("F32", [True], 0, 4)}, F32[:4]), "non-negative integers"),
    ("shape not list", build({"a": entry("F32", 4, 0, 16)}, F32), "non-negative integers"),  # type: ignore[arg-type]
    ("dim beyond int64", build({"a": entry("U8", [2**63], 0, 16)}, F32), "non-negative integers"),
    ("too many dims", build({"a": entry("U8", [1] * 65, 0, 1)}, b"x"), "at most 64"),
    (
        "offsets arity",
        build({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8, 16]}}, F32),
        "is not [BEGIN, END]",
    ),
    ("negative offset", build({"a": entry("F32", [4], -16, 0)}, F32), "is not [BEGIN, END]"),
    (
        "offsets reversed",
        build({"a": entry("F32", [0], 16, 0)}, F32),
        "[16, 0] end before they begin",
    ),
    (
        "size mismatch",
        build({"a": entry("F32", [3], 0, 16)}, F32),
        "shape [3] of F32 needs 12 bytes, but its data_offsets [0, 16] span 16",
    ),
    ("sub-byte mismatch", build({"a": entry("F4", [3], 0, 2)}, b"xy"), "needs 12 bits"),
    (
        "out of range",
        build({"a": entry("F32", [8], 0, 32)}, F32),
        "data_offsets [0, 32], but only 16 bytes of data",
    ),
    ("truncated data", build({"a": entry("F32", [4], 0, 16)}, F32[:8]), "truncated or corrupt"),
    (
        "overlap",
        build({"a": entry("F32", [4], 0, 16), "b": entry("F32", [2], 8, 16)}, F32),
        "tensor 'b' (data_offsets [8, 16]) overlaps tensor 'a', which ends at 16",
    ),
    (
        "duplicate range",
        build({"a": entry("F32", [4], 0, 16), "b": entry("F32", [4], 0, 16)}, F32),
        "overlaps",
    ),
    ("gap", build({"a": entry("F32", [2], 8, 16)}, F32), "a gap of 8 bytes before tensor 'a'"),
    (
        "trailing",
        build({"a": entry("F32", [2], 0, 8)}, F32),
        "8 bytes after the last tensor's data",
    ),
    (
        "bool bytes",
        build({"m": entry("BOOL", [2], 0, 2)}, b"\x01\x02"),
        "tensor 'm': a BOOL tensor with bytes other than 0 and 1",
    ),
    (
        "F8 chosen",
        build({"a": entry("F8_E5M2", [4], 0, 4)}, b"abcd"),
        "F8_E5M2 (an 8-bit float), which lossctl does not read",
    ),
    ("C64 chosen", build({"a": entry("C64", [2], 0, 16)}, F32), "C64 (complex)"),
]


@HOW
@pytest.mark.parametrize(
    ("blob", "words"), [case[1:] for case in HOSTILE], ids=[c[0] for c in HOSTILE]
)
def test_hostile(blob: bytes, words: str, how: str, tmp_path: Path) -> None:
    with pytest.raises(ReadError) as info:
        read(blob, how, tmp_path)
    message = str(info.value)
    assert words in message
    assert "\n" not in message and len(message) < 400
    assert message.startswith(("<stdin>: ", "x.safetensors: "))


@HOW
def test_huge_shape_is_refused_fast_without_allocating(how: str, tmp_path: Path) -> None:
    cases = [
        {"a": entry("F32", [10**12], 0, 16)},  # size does not match the shape
        {"a": entry("F32", [10**6, 10**6], 0, 4 * 10**12)},  # matches, beyond the file
        {"a": entry("F64", [2**62, 2**62, 2**62], 0, 16)},  # overflows any int64 product
    ]
    for header in cases:
        blob = build(header, F32)
        assert len(blob) < 160
        tracemalloc.start()
        start = time.perf_counter()
        with pytest.raises(ReadError, match=r"needs|only 16 bytes of data"):
            read(blob, how, tmp_path)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert elapsed < 1.0 and peak < 1 << 20


def test_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="x: cannot read the file"):
        read_safetensors(str(tmp_path / "missing"), "x", None)
    with pytest.raises(ReadError, match="x: not a regular file"):
        read_safetensors(str(tmp_path), "x", None)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ReadError, match="x: not a regular file"):
        read_safetensors(str(fifo), "x", None)  # returns at once: opened non-blocking
