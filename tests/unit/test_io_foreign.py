"""lossctl.io.foreign: formats lossctl does not read are named, with a way to convert.

The fixtures in tests/data/foreign come from tools/make_safetensors_fixtures.py (pandas,
pyarrow, torch); these tests need none of them.
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest

from lossctl.io.foreign import READABLE, foreign_format

DATA = Path(__file__).resolve().parent.parent / "data" / "foreign"


def head(name: str) -> bytes:
    return (DATA / name).read_bytes()[:16]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("table.parquet", ["a Parquet file", READABLE, "pd.read_parquet('FILE').to_numpy()"]),
        ("table.feather", ["Arrow IPC file (Feather v2)", "pd.read_feather"]),
        ("table_v1.feather", ["a Feather v1 file", "pd.read_feather"]),
        ("table.h5", ["an HDF5 file", "h5py.File('FILE')"]),
        ("array.pkl", ["a Python pickle", "never unpickles", "np.save('x.npy', array)"]),
        ("model.gguf", ["a GGUF model file", "not logits", "np.save('logits.npy'"]),
        ("legacy.ckpt", ["a PyTorch file in the legacy torch.save format", "weights_only=True"]),
    ],
)
def test_fixtures_are_named(name: str, words: list[str]) -> None:
    ext = Path(name).suffix
    for extension in (ext, ext.upper(), ext.lstrip("."), ".txt", ".csv", ""):
        message = foreign_format(head(name), extension)
        assert message is not None, extension
        assert all(word in message for word in words), message
        assert "\n" not in message and len(message) < 300


@pytest.mark.parametrize("ext", [".pt", ".pth", ".bin", ".PT"])
def test_torch_extensions_are_left_to_the_torch_reader(ext: str) -> None:
    assert foreign_format(head("legacy.pt"), ext) is None
    assert foreign_format(head("array.pkl"), ext) is None
    assert foreign_format(head("table.parquet"), ext) is None


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_protocols(protocol: int) -> None:
    blob = pickle.dumps({"logits": [1.0, 2.0]}, protocol=protocol)
    assert "pickle" in (foreign_format(blob[:16], ".dat") or "")


@pytest.mark.parametrize("blob", [b"\x80\x01abc", b"\x80\x06abc", b"\x80"])
def test_not_a_pickle_marker(blob: bytes) -> None:
    assert foreign_format(blob, "") is None


@pytest.mark.parametrize("magic", [b"lmgg", b"fmgg", b"tjgg"])
def test_old_ggml_magics(magic: bytes) -> None:
    assert "GGML/GGJT model file" in (foreign_format(magic + bytes(12), "") or "")


@pytest.mark.parametrize(
    ("ext", "words"),
    [
        (".onnx", "an ONNX model"),
        (".parquet", "a Parquet file"),
        (".arrows", "an Arrow IPC stream"),
        (".arrow", "an Arrow IPC file"),
        (".hdf5", "an HDF5 file"),
        (".gguf", "a GGUF model file"),
        (".pickle", "a Python pickle"),
    ],
)
def test_by_extension_when_the_content_is_binary(ext: str, words: str) -> None:
    protobuf = b"\x08\x07\x12\x07pytorch\x1a\x032.1"
    assert words in (foreign_format(protobuf, ext) or "")


@pytest.mark.parametrize("ext", [".onnx", ".parquet", ".h5", ".pkl"])
def test_readable_content_wins_over_the_extension(ext: str) -> None:
    for content in (
        b"\x93NUMPY\x01\x00v\x00{'descr'",
        b"PK\x03\x04\x14\x00\x00\x00",
        b'{"logits": [[1.5, 2]]}',
        b"\xef\xbb\xbf  [1, 2, 3]",
        b"0.5,1.5\n2.5,3.5\n",
        "1,2 # é".encode(),
    ):
        assert foreign_format(content[:16], ext) is None, content


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x93NUMPY\x01\x00v\x00",
        b"PK\x03\x04",
        b"[1, 2]",
        b"\x00\x01\x02\x03 random binary",
        struct.pack("<Q", 60) + b'{"logits":{"dt',  # safetensors
        json.dumps({"a": 1}).encode(),
    ],
)
def test_unrecognised_gives_none(content: bytes) -> None:
    for ext in ("", ".dat", ".npy", ".json", ".safetensors"):
        assert foreign_format(content[:16], ext) is None


def test_empty_file_is_left_to_the_readers() -> None:
    assert foreign_format(b"", ".parquet") is None
