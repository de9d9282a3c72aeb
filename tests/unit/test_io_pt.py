"""lossctl.io.torch_pt: torch.save files read without torch, and hostile files refused.

The fixtures in tests/data/pt were written by torch (tools/make_pt_fixtures.py) with the
values torch itself reads from them; the hostile archives are built here, by hand.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lossctl.errors import ExitStatus, ReadError
from lossctl.io import inflation, torch_pt
from lossctl.io.torch_pt import is_torch_zip, looks_like_legacy_torch, read_pt, read_pt_bytes

DATA = Path(__file__).resolve().parent.parent / "data" / "pt"
MANIFEST: list[dict[str, Any]] = json.loads((DATA / "manifest.json").read_text())


def test_manifest_covers_the_fixtures() -> None:
    files = {c["file"] for c in MANIFEST}
    assert len(MANIFEST) >= 30
    assert files == {p.name for p in DATA.glob("*.pt")} - {"legacy.pt"}
    dtypes = {c["dtype"] for c in MANIFEST}
    assert {
        "float32",
        "float64",
        "float16",
        "int64",
        "int32",
        "int16",
        "int8",
        "uint8",
        "bool",
    } <= dtypes


@pytest.mark.parametrize("case", MANIFEST, ids=lambda c: f"{c['file']}:{c['key']}")
@pytest.mark.parametrize("via", ["path", "bytes"])
def test_fixture_matches_torch(case: dict[str, Any], via: str) -> None:
    path = DATA / case["file"]
    if via == "path":
        got = read_pt(str(path), case["file"], case["key"])
    else:
        got = read_pt_bytes(path.read_bytes(), "<stdin>", case["key"])
    want = np.load(DATA / case["expected"], allow_pickle=False)
    assert got.dtype == want.dtype == np.dtype(case["dtype"])
    assert got.shape == want.shape
    assert got.flags.c_contiguous
    assert np.array_equal(got, want, equal_nan=True)


def test_fixtures_exercise_views_and_offsets() -> None:
    def layout(name: str) -> tuple[int, tuple[int, ...], int]:
        with zipfile.ZipFile(DATA / name) as z:
            t = torch_pt._unpickle(z.read(f"{name[:-3]}/data.pkl"), name)  # torch names it so
        assert isinstance(t, torch_pt._Tensor)
        return t.offset, t.stride, t.storage.numel

    assert layout("transposed.pt") == (0, (1, 6), 30)
    assert layout("slice.pt") == (8, (6, 1), 30)
    assert layout("column.pt") == (3, (6,), 30)


def test_bfloat16_widens_exactly() -> None:
    got = read_pt(str(DATA / "bf16.pt"), "bf16.pt", None)
    assert got.dtype == np.float32
    assert np.all(got.view(np.uint32) & 0xFFFF == 0)  # exactly representable: low half zero
    assert np.isneginf(got[0, 0])


def test_stored_storage_is_memory_mapped_and_read_only() -> None:
    got = read_pt(str(DATA / "logits.pt"), "logits.pt", None)
    bases = []
    node: Any = got
    while node is not None:
        bases.append(node)
        node = getattr(node, "base", None)
    assert any(isinstance(b, np.memmap) for b in bases)
    assert not got.flags.writeable


def test_compressed_and_big_endian_archives(tmp_path: Path) -> None:
    src = zipfile.ZipFile(DATA / "logits.pt")
    want = np.load(DATA / "logits.npy")
    deflated, big = tmp_path / "deflated.pt", tmp_path / "big.pt"
    with zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info))
    with zipfile.ZipFile(big, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "logits/byteorder":  # torch names the root after the file
                data = b"big"
            elif info.filename == "logits/data/0":
                data = np.frombuffer(data, "<f4").astype(">f4").tobytes()
            out.writestr(info.filename, data)
    assert zipfile.ZipFile(big).read("logits/byteorder") == b"big"
    assert zipfile.ZipFile(deflated).getinfo("logits/data/0").compress_type == zipfile.ZIP_DEFLATED
    for path in (deflated, big):
        got = read_pt(str(path), path.name, None)
        assert got.dtype == np.float32 and got.dtype.isnative
        assert np.array_equal(got, want, equal_nan=True)


def test_a_compressed_storage_bomb_is_refused_before_inflating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The .pt rule is the .npz rule: 1 MiB of zeros deflated ~1000x, beyond a 64 KiB floor."""
    numel = 1 << 18
    pkl = b"\x80\x02" + tensor_ops(numel, 0, (numel,), (1,)) + b"."
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", b"little")
        z.writestr("archive/data/0", bytes(4 * numel))
    assert read_pt_bytes(buf.getvalue(), "zeros.pt", None).shape == (numel,)  # small: read
    monkeypatch.setattr(inflation, "RATIO_FLOOR", 1 << 16)
    refused(buf.getvalue(), "storage archive/data/0", "possible zip bomb")


def test_is_torch_zip_and_legacy_sniffing() -> None:
    assert is_torch_zip(["archive/data.pkl", "archive/data/0"])
    assert is_torch_zip(["model/version", "model/data.pkl"])
    assert not is_torch_zip(["data.pkl", "a/b/data.pkl", "archive/data.pkl.bak", "/data.pkl"])
    head = (DATA / "legacy.pt").read_bytes()[:16]
    assert looks_like_legacy_torch(head)
    assert not looks_like_legacy_torch(pickle.dumps({"a": 1}, protocol=2))
    assert not looks_like_legacy_torch((DATA / "logits.pt").read_bytes()[:16])


# --- errors -------------------------------------------------------------------------------


def refused(data: bytes, *needles: str, key: str | None = None) -> str:
    with pytest.raises(ReadError) as info:
        read_pt_bytes(data, "evil.pt", key)
    message = str(info.value)
    assert info.value.exit_code == ExitStatus.INPUT
    assert "\n" not in message and message.startswith("evil.pt: ")
    for needle in needles:
        assert needle in message
    return message


def archive(
    pkl: bytes, storages: dict[str, bytes] | None = None, order: bytes = b"little"
) -> bytes:
    buf = io.BytesIO()
    root = "archive"
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{root}/data.pkl", pkl)
        z.writestr(f"{root}/byteorder", order)
        for key, raw in (storages or {}).items():
            z.writestr(f"{root}/data/{key}", raw)
        z.writestr(f"{root}/version", b"3\n")
    return buf.getvalue()


def op(value: object) -> bytes:
    """The protocol-2 opcodes that push ``value`` (ints, strings, tuples of them)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def glob(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def tensor_ops(
    numel: int,
    offset: object,
    size: object,
    stride: object,
    kind: str = "FloatStorage",
    key: str = "0",
) -> bytes:
    pid = b"(" + op("storage") + glob("torch", kind) + op(key) + op("cpu") + op(numel) + b"tQ"
    hooks = glob("collections", "OrderedDict") + b")R"
    rebuild = glob("torch._utils", "_rebuild_tensor_v2")
    return rebuild + b"(" + pid + op(offset) + op(size) + op(stride) + b"\x89" + hooks + b"tR"


F32x6 = np.arange(6, dtype="<f4").tobytes()


def tensor_file(numel: int, offset: object, size: object, stride: object, **kw: Any) -> bytes:
    return archive(b"\x80\x02" + tensor_ops(numel, offset, size, stride, **kw) + b".", {"0": F32x6})


def test_hand_built_tensor_reads() -> None:  # the builder is right, so its variants test the guards
    got = read_pt_bytes(tensor_file(6, 1, (2, 2), (1, 3)), "ok.pt", None)
    assert np.array_equal(got, np.array([[1, 4], [2, 5]], dtype=np.float32))


def evil_calls(marker: Path) -> dict[str, bytes]:
    cmd = f"touch {marker}"
    return {
        "posix.system": glob("posix", "system") + op(cmd) + b"\x85R",
        "os.system": glob("os", "system") + op(cmd) + b"\x85R",
        "builtins.eval": glob("builtins", "eval")
        + op(f"__import__('os').system({cmd!r})")
        + b"\x85R",
        "subprocess.Popen": glob("subprocess", "Popen") + op(("touch", str(marker))) + b"\x85R",
        "os.system ": b"\x8c\x02os\x8c\x06system\x93" + op(cmd) + b"\x85R",  # STACK_GLOBAL
        "posix.system  ": b"(" + op(cmd) + b"iposix\nsystem\n",  # INST
    }


def test_the_exploits_are_real(tmp_path: Path) -> None:  # plain pickle would run them
    marker = tmp_path / "ran"
    pickle.loads(b"\x80\x04" + evil_calls(marker)["os.system"] + b".")
    assert marker.exists()


@pytest.mark.parametrize("name", list(evil_calls(Path("m"))))
def test_code_in_the_pickle_never_runs(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "ran"
    call = evil_calls(marker)[name]
    good = tensor_ops(6, 0, (6,), (1,))
    for body in (call, b"}(" + op("logits") + good + op("x") + call + b"u"):
        message = refused(archive(b"\x80\x04" + body + b".", {"0": F32x6}), "refused")
        assert f"asks for {name.strip()}" in message
        assert "reads only tensors" in message
    assert not marker.exists()
    refused(b"\x80\x02" + call + b".", "plain pickle")  # not in a zip: never unpickled
    assert not marker.exists()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            glob("torch.nn.modules.linear", "Linear") + b")\x81",
            "asks for torch.nn.modules.linear.Linear",
        ),
        (glob("torch", "ComplexFloatStorage"), "asks for torch.ComplexFloatStorage"),
        (glob("copyreg", "_reconstructor"), "asks for copyreg._reconstructor"),
        (glob("torch._utils", "_rebuild_tensor_v2") + b"}b", "BUILD"),
        (glob("collections", "OrderedDict") + b")R" + op((1, 2)) + b"b", "non-dict state"),
        (glob("torch", "FloatStorage") + b")R", "not a valid torch pickle"),
        (
            b"(" + op("storage") + op("FloatStorage") + op("0") + op("cpu") + op(6) + b"tQ",
            "unknown dtype",
        ),
        (
            b"("
            + op("storage")
            + glob("torch", "FloatStorage")
            + op("../x")
            + op("cpu")
            + op(6)
            + b"tQ",
            "malformed",
        ),
        (op("module") + b"Q", "unknown persistent id"),
        (b"]", "holds no tensor"),
        (b"]" * 5000 + b"a" * 4999, "holds no tensor"),  # deep nesting
        (b"]q\x00h\x00a", "holds no tensor"),  # a list that contains itself
        (b"X\xff\xff\xff\x7fabc", "not a valid torch pickle"),  # a string longer than the file
        (b"\x8a\x08" + b"\x00" * 3, "not a valid torch pickle"),
    ],
)
def test_refused_pickles(body: bytes, needle: str) -> None:
    refused(archive(b"\x80\x02" + body + b".", {"0": F32x6}), needle)


@pytest.mark.parametrize(
    ("numel", "offset", "size", "stride", "needle"),
    [
        (6, 0, (2, 3), (3, 2), "reaches element 7 outside its storage of 6"),
        (6, 3, (2, 2), (2, 1), "outside its storage"),
        (6, 0, (3,), (-1,), "non-negative"),
        (6, -1, (2,), (1,), "non-negative"),
        (6, 0, (10**12,), (0,), "declares 1000000000000 elements"),
        (6, 0, (10**6, 10**6), (1, 1), "declares"),
        (6, 0, (2, 3), (1,), "differ in length"),
        (6, 0, (2.0, 3), (3, 1), "non-negative integer"),
        (6, 0, [2, 3], (3, 1), "tuple"),
        (6, 0, (1,) * 65, (1,) * 65, "at most 64"),
        (6, 9, (0, 3), (3, 1), "offset 9 lies outside"),
        (10**12, 0, (10**12,), (1,), "truncated"),  # never allocates 4 TB
        (7, 0, (7,), (1,), "truncated: 24 bytes of 28"),
    ],
)
def test_tensor_guards(
    numel: int, offset: object, size: object, stride: object, needle: str
) -> None:
    refused(tensor_file(numel, offset, size, stride), needle)


def test_missing_storage_and_records() -> None:
    pkl = b"\x80\x02" + tensor_ops(6, 0, (6,), (1,), key="3") + b"."
    refused(archive(pkl, {"0": F32x6}), "storage archive/data/3 is missing")
    refused(archive(b"\x80\x02]."), "holds no tensor")
    refused(archive(pkl, {"3": F32x6}, b"middle"), "unknown byteorder")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("weights.bin", b"0")
    refused(buf.getvalue(), "no <archive>/data.pkl")
    two = io.BytesIO()
    with zipfile.ZipFile(two, "w") as z:
        z.writestr("a/data.pkl", pkl)
        z.writestr("b/data.pkl", pkl)
    refused(two.getvalue(), "more than one")


def test_declared_sizes_beyond_the_file() -> None:
    data = bytearray(tensor_file(1000, 0, (1000,), (1,)))
    entry = data.index(b"PK\x01\x02")
    while not data[entry + 46 :].startswith(b"archive/data/0"):
        entry = data.index(b"PK\x01\x02", entry + 4)
    struct.pack_into("<II", data, entry + 20, 4000, 4000)  # central directory lies: 4000 bytes
    refused(bytes(data), "truncated or its zip header is damaged")


def test_huge_data_pkl_is_refused_before_reading() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02" + b"N" * torch_pt.MAX_PICKLE_BYTES + b".")
    refused(buf.getvalue(), "refused: archive/data.pkl declares", "limit 67108864")


def test_not_torch_files(tmp_path: Path) -> None:
    legacy = refused(
        (DATA / "legacy.pt").read_bytes(), "legacy", "_use_new_zipfile_serialization=True"
    )
    assert "torch >= 1.6" in legacy
    refused(pickle.dumps({"logits": [1.0]}, protocol=4), "plain pickle", "never unpickles")
    refused(b"", "empty")
    refused(b"logits,labels\n", "not a zip archive")
    refused((DATA / "logits.pt").read_bytes()[:-30], "not a readable zip archive")
    with pytest.raises(ReadError, match=r"^gone\.pt: cannot read"):
        read_pt(str(tmp_path / "gone.pt"), "gone.pt", None)


def test_keys_select_and_explain() -> None:
    nested = (DATA / "nested.pt").read_bytes()
    refused(nested, "several tensors", "'out.logits', 'out.aux.0', 'out.aux.1'")
    refused(nested, "no key 'out.nope'", "out.logits", key="out.nope")
    refused(nested, "no key 'out.aux.2'", key="out.aux.2")
    refused(nested, "no key 'step.0'", key="step.0")
    refused(nested, "no key ''", key="")
    refused(nested, "several tensors under 'out.aux'", "'out.aux.0', 'out.aux.1'", key="out.aux")
    refused(nested, "no tensor under 'name'", key="name")
    got = read_pt_bytes((DATA / "one_tensor.pt").read_bytes(), "x", "logits")
    assert np.array_equal(got, np.load(DATA / "logits.npy"), equal_nan=True)


def test_key_listing_is_capped() -> None:
    items = b"".join(op(f"t{i}") + tensor_ops(6, 0, (6,), (1,)) for i in range(20))
    message = refused(archive(b"\x80\x02}(" + items + b"u.", {"0": F32x6}), "(20 in all)", "t11")
    assert "t12" not in message


def test_shared_sublists_are_walked_once() -> None:  # 2**50 paths, 51 distinct lists
    body = b"]q\x00" + b"".join(bytes([93, 40, 104, i, 104, i, 101, 113, i + 1]) for i in range(50))
    refused(archive(b"\x80\x02" + body + b"."), "holds no tensor")


def test_key_lookup_tries_each_shared_dict_once() -> None:  # "a" and "a.a" at every level
    level = b"}(" + op("a") + b"h%c" + op("a.a") + b"h%cuq%c"
    body = b"}q\x00" + b"".join(level % (i, i, i + 1) for i in range(40))
    refused(archive(b"\x80\x02" + body + b"."), "no key", key="a." * 60 + "zz")
