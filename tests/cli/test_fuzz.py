"""Issue #5, proof: random and near-valid inputs through every command of the CLI.

Random bytes, and valid JSON / CSV / NPY / NPZ with mutations (characters replaced,
inserted or deleted; NaN tokens, huge numbers, deep nesting, strings, booleans and
nulls injected; header and body bytes flipped; truncation); and the real ``.pt``,
safetensors and merge-document fixtures with their bytes or fields mutated (a
pickle's bytes inside a valid zip, a safetensors header's dtype, shape or offsets, a
``--json`` result's fields replaced or deleted), fed to ``ce``, ``nll``,
``softmax``, ``log-softmax`` and ``log`` as the logits, the labels, ``--weight`` or
standard input. Every run must end with:

* an exit code in {0, 1, 2} (3, a lossctl bug, fails the test; so does any exception
  escaping the command, which CliRunner reports in ``result.exception``),
* no ``Traceback`` on stderr,
* stdout empty, or exactly one valid, strict JSON document (``--json``),
* for a nonzero code: nothing on stdout and exactly one line on stderr,
* for an accepted NPY or JSON file given to ``softmax``/``log-softmax``/``log``: the
  numbers an independent reader (``np.load``, ``json.loads``) implies.

The bulk runs in-process with typer's CliRunner (the same app and command code); a
smaller batch runs real subprocesses (``python -m lossctl``: ``main()`` and the real
exit-code plumbing). Examples are derandomized, so CI runs the same examples every
time. ``LOSSCTL_FUZZ_SCALE`` multiplies the number of examples (e.g. 10 for a long
local run).
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer.main
import typer.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from typer.testing import CliRunner

from lossctl.cli.app import app
from tests.conftest import SEED
from tests.helpers import run_lossctl

SCALE = float(os.environ.get("LOSSCTL_FUZZ_SCALE", "1"))
runner = CliRunner()
STATS: Counter[str] = Counter()

LOGITS = str(SEED / "logits.json")  # (3, 2): 3 classes on axis 0
LABELS = str(SEED / "labels.json")  # (2,)
CE_DOCUMENT = json.dumps(
    {
        "op": "cross_entropy", "loss": 3.2654828147938195, "reduction": "mean", "count": 2,
        "ignored": 0, "sum": 6.530965629587639, "denominator": 2.0,
        "exact": {"sum": "14706427187890205*2**-51", "denominator": "1*2**1"}, "class_dim": 0,
        "classes": 3, "shape": [3, 2], "target_kind": "indices", "ignore_index": -100,
        "label_smoothing": 0.0, "weight": None, "warnings": [],
    }
)  # fmt: skip
COMMANDS = ("ce", "nll", "softmax", "log-softmax", "log", "doctor", "merge")
EXTENSIONS = (".json", ".csv", ".tsv", ".txt", ".npy", ".npz", "")


def examples(count: int) -> settings:
    return settings(
        max_examples=max(1, int(count * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---- strategies --------------------------------------------------------------------------------

SHAPES = st.sampled_from([(3, 2), (2, 3), (2,), (3,), (2, 2), (0, 2), (2, 0), (), (1, 3, 2)])
FLOATS = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def base_arrays(draw: st.DrawFn) -> np.ndarray[Any, Any]:
    """Small arrays that are, or are close to, a valid logits or labels array."""
    kind = draw(st.sampled_from(["floats", "labels", "ints", "extreme"]))
    if kind == "labels":  # valid for the seed logits, or nearly
        return np.array(
            draw(st.lists(st.sampled_from([0, 1, 2, 3, -1, -100]), min_size=2, max_size=2))
        )
    shape = draw(SHAPES)
    if kind == "ints":
        return draw(hnp.arrays(np.int64, shape, elements=st.integers(-5, 5)))
    if kind == "extreme":
        elements = st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, 1e-300, 88.7, -745.2, 710.0])
        return draw(hnp.arrays(np.float64, shape, elements=elements))
    return draw(hnp.arrays(np.float64, shape, elements=FLOATS))


INJECTIONS = [
    "[", "]", ",", '"', "-", "e", ".", ":", "{", "}", "\n", "\r\n", "\t", " ", ";", "#",
    "0", "NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 400, "9" * 5000, "true",
    "false", "null", '"nan"', '"inf"', '"x"', "\ufeff", "\x00", "\xe9", "[" * 3000,
    '{"a": 1, "a": 2}', "1.5", "-100", "2e-320",
]  # fmt: skip


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> bytes:
    """``text`` with up to four edits: a character replaced, inserted, deleted, or cut."""
    chars = list(text)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "inject"]))
        at = draw(st.integers(0, len(chars)))
        if op == "replace" and at < len(chars):
            chars[at] = draw(st.sampled_from(INJECTIONS))
        elif op in ("insert", "inject"):
            token = draw(st.sampled_from(INJECTIONS)) if op == "inject" else draw(st.characters())
            chars.insert(at, token)
        elif op == "delete" and at < len(chars):
            del chars[at]
        elif op == "truncate":
            del chars[at:]
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "latin-1"]))
    return "".join(chars).encode(encoding, "replace")


@st.composite
def near_json(draw: st.DrawFn) -> bytes:
    array = draw(base_arrays())
    value: Any = array.tolist()
    wrap = draw(
        st.sampled_from(["plain", "plain", "object", "document", "deep", "strings", "loss"])
    )
    if wrap == "object":
        value = {"logits": value, "note": "run 7"}
    elif wrap == "document":  # lossctl's own output, with its "shape" field
        value = {"op": "softmax", "dim": -1, "shape": list(array.shape), "result": value}
    elif wrap == "loss":  # a `ce --json` result, as `merge` takes
        value = json.loads(CE_DOCUMENT)
        value["loss"] = draw(st.sampled_from([value["loss"], "nan", -1.0, 1e308]))
    elif wrap == "deep":
        for _ in range(draw(st.integers(1, 80))):
            value = [value]
    elif wrap == "strings" and array.size:
        flat: list[Any] = array.ravel().tolist()
        flat[draw(st.integers(0, array.size - 1))] = draw(
            st.sampled_from(["nan", "-inf", "Infinity", "x", "", True, None, [1], {}])
        )
        value = np.array([*flat, None], dtype=object)[:-1].reshape(array.shape).tolist()
    return draw(mutated_text(json.dumps(value, indent=draw(st.sampled_from([None, 1])))))


@st.composite
def near_csv(draw: st.DrawFn) -> bytes:
    array = np.atleast_2d(draw(base_arrays()))
    delimiter = draw(st.sampled_from([",", ";", "\t", " "]))
    lines = [
        delimiter.join(repr(float(v)) for v in row)
        for row in array.reshape(array.shape[0], math.prod(array.shape[1:]))
    ]
    if draw(st.booleans()):
        lines.insert(
            0, delimiter.join(f"c{i}" for i in range(array.shape[-1] if array.size else 1))
        )
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", "# note", "  "])))
    if draw(st.booleans()):
        lines = [f'"{line}"' if draw(st.booleans()) else line for line in lines]
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return draw(mutated_text(newline.join(lines) + newline))


NPY_DTYPES = ["<f8", ">f8", "<f4", ">f4", "<f2", "<i8", ">i4", "<i2", "|i1", "<u8", "|u1", "|b1",
              "<c16", "<U3", "<M8[D]"]  # fmt: skip


@st.composite
def near_npy(draw: st.DrawFn) -> bytes:
    array = draw(base_arrays())
    dtype = np.dtype(draw(st.sampled_from(NPY_DTYPES)))
    with np.errstate(all="ignore"):
        converted = array.astype(dtype) if dtype.kind != "M" else array.astype("i8").astype(dtype)
    if draw(st.booleans()) and converted.ndim > 1:
        converted = np.asfortranarray(converted)
    buffer = io.BytesIO()
    np.save(buffer, converted, allow_pickle=False)
    return draw(mutated_bytes(buffer.getvalue()))


@st.composite
def near_npz(draw: st.DrawFn) -> bytes:
    buffer = io.BytesIO()
    arrays = {name: draw(base_arrays()) for name in draw(st.sampled_from([["x"], ["x", "y"]]))}
    save: Callable[..., None] = np.savez_compressed if draw(st.booleans()) else np.savez
    save(buffer, **arrays)
    return draw(mutated_bytes(buffer.getvalue()))


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """Bytes flipped (mostly in the first 128, where the headers are), cut, or appended."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip-head", "flip", "truncate", "append", "set"]))
        if not out:
            break
        if op == "flip-head":
            at = draw(st.integers(0, min(len(out), 128) - 1))
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "flip":
            out[draw(st.integers(0, len(out) - 1))] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del out[draw(st.integers(0, len(out) - 1)) :]
        elif op == "append":
            out += draw(st.binary(min_size=1, max_size=16))
        else:
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


DATA = Path(__file__).resolve().parent.parent / "data"
PT_FIXTURES = sorted((DATA / "pt").glob("*.pt"))
SAFETENSORS_FIXTURES = sorted((DATA / "safetensors").glob("*.safetensors"))
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.sampled_from(["nan", "-inf", "1*2**99999", "-3*2**-4000", "", "F32", "BF16", "x"]),
    st.lists(st.integers(-5, 2**40), max_size=4),
)


@st.composite
def near_pt(draw: st.DrawFn) -> bytes:
    """A real torch.save file (tests/data/pt): bytes mutated, or its pickle's bytes
    mutated inside an otherwise valid zip."""
    data = draw(st.sampled_from(PT_FIXTURES)).read_bytes()
    if not zipfile.is_zipfile(io.BytesIO(data)) or draw(st.booleans()):  # legacy.pt: no zip
        return draw(mutated_bytes(data))
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in source.infolist():
            member = source.read(info)
            if info.filename.endswith(("data.pkl", "byteorder")) or draw(st.booleans()):
                member = draw(mutated_bytes(member))
            archive.writestr(info.filename, member)
    return out.getvalue()


@st.composite
def near_safetensors(draw: st.DrawFn) -> bytes:
    """A real safetensors file (tests/data/safetensors): bytes mutated, or a field of its
    JSON header (dtype, shape, data_offsets, a whole entry) replaced."""
    data = draw(st.sampled_from(SAFETENSORS_FIXTURES)).read_bytes()
    if draw(st.booleans()):
        return draw(mutated_bytes(data))
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    body = data[8 + length :]
    if draw(st.booleans()):  # one tensor only (the one at offset 0), so no --key is needed
        name, entry = next(
            (k, v) for k, v in header.items() if v.get("data_offsets", [None])[0] == 0
        )
        header, body = {name: entry}, body[: entry["data_offsets"][1]]
    names = sorted(header)
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(names))
        entry = header[name]
        if isinstance(entry, dict) and entry and draw(st.booleans()):
            entry[draw(st.sampled_from(sorted(entry)))] = draw(ODD_VALUES)
        else:
            header[name] = draw(ODD_VALUES)
    text = json.dumps(header).encode()
    size = len(text) if draw(st.integers(0, 9)) else draw(st.integers(0, 2**63))
    return size.to_bytes(8, "little") + text + body


@st.composite
def near_merge(draw: st.DrawFn) -> bytes:
    """A real ``ce --json`` document: fields replaced or deleted, or its text mutated."""
    document = json.loads(CE_DOCUMENT)
    if draw(st.integers(0, 3)) == 0:
        return draw(mutated_text(CE_DOCUMENT))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(document)))
        if draw(st.integers(0, 4)) == 0:
            del document[key]
        elif key == "exact" and draw(st.booleans()):
            document[key] = {"sum": draw(ODD_VALUES), "denominator": draw(ODD_VALUES)}
        else:
            document[key] = draw(ODD_VALUES)
        if not document:
            break
    return json.dumps(document).encode()


FORMATS: dict[str, tuple[Callable[[], st.SearchStrategy[bytes]], str]] = {
    "bytes": (lambda: st.binary(max_size=300), ""),
    "json": (near_json, ".json"),
    "csv": (near_csv, ".csv"),
    "npy": (near_npy, ".npy"),
    "npz": (near_npz, ".npz"),
    "pt": (near_pt, ".pt"),
    "safetensors": (near_safetensors, ".safetensors"),
    "merge": (near_merge, ".json"),
}


# ---- running and checking ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A scratch directory; and the click command built once, not per example.

    typer's CliRunner rebuilds the click command from the app's signatures on every
    ``invoke`` (about 25 ms); the command is the same every time, so it is built once
    here, which makes an example about 20 times faster.
    """
    command = typer.main.get_command(app)
    with (
        tempfile.TemporaryDirectory(prefix="lossctl-fuzz-") as directory,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(typer.testing, "_get_command", lambda typer_app: command)
        yield Path(directory)


def plan(command: str, role: str, path: str) -> tuple[list[str], bytes | None]:
    """The argv for ``command`` with the fuzzed file in ``role``; and stdin, if any."""
    stdin = None
    shard = Path(path).with_name("shard.json")  # a valid `merge` input beside the fuzzed one
    if role == "stdin":
        stdin, path = Path(path).read_bytes(), "-"
    if command == "merge":
        shard.write_text(CE_DOCUMENT)
        return [command, path, str(shard), "--json"], stdin
    if command == "doctor" and role == "labels":
        return [command, LOGITS, path, "--json"], stdin
    if command == "doctor":
        return [command, path, LABELS, "--json"], stdin
    if command in ("ce", "nll"):
        if role == "labels":
            return [command, LOGITS, path, "--json"], stdin
        if role == "weight":
            return [command, LOGITS, LABELS, "--weight", path, "--json"], stdin
        return [command, path, LABELS, "--json"], stdin
    return [command, path, "--json"], stdin


def strict_json(text: str) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token} in the output")

    return json.loads(text, parse_constant=refuse)


def check_outcome(code: int, stdout: str, stderr: str, where: str) -> None:
    assert code in (0, 1, 2), f"exit code {code} for {where}: {stderr}"
    assert "Traceback" not in stderr, f"{where}: {stderr}"
    if code == 0:
        assert stdout.endswith("\n") and stdout.count("\n") == 1, f"{where}: {stdout[:300]!r}"
        strict_json(stdout)
        for line in stderr.splitlines():
            assert line.startswith(("lossctl: warning: ", "lossctl: note: ")), f"{where}: {stderr}"
    else:
        assert stdout == "", f"{where}: stdout on failure {stdout[:300]!r}"
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("lossctl: error: "), f"{where}: {stderr!r}"


def independent_result(
    command: str, data: bytes, fmt: str
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None:
    """The input, and what softmax / log-softmax / log of it must be, read by other means;
    None if the file is not something the independent readers agree on."""
    try:
        if fmt == "npy":
            values = np.load(io.BytesIO(data), allow_pickle=False)
        elif fmt == "json":
            document = json.loads(data.decode("utf-8-sig"))
            if not isinstance(document, list):
                return None
            values = np.array(document, dtype=np.float64)
        else:
            return None
    except Exception:
        return None
    if values.dtype.kind not in "iuf" or values.ndim == 0:
        return None
    x = values.astype(np.float64)
    with np.errstate(all="ignore"):
        if command == "log":
            return x, np.log(x)
        if x.shape[-1] == 0 or not np.isfinite(x).all():
            return None
        shifted = x - x.max(axis=-1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return x, np.exp(logp) if command == "softmax" else logp


def check_numbers(command: str, data: bytes, fmt: str, stdout: str) -> None:
    independent = independent_result(command, data, fmt)
    if independent is None:
        return
    values, expected = independent
    document = strict_json(stdout)
    got = np.array(_floats(document["result"]), dtype=np.float64).reshape(document["shape"])
    assert got.shape == expected.shape, (got.shape, expected.shape)
    # lossctl is exact where the naive reference rounds (log-softmax of [0, -100] is
    # -3.7e-44, not 0): compare with a tolerance scaled to the input's magnitude
    scale = float(np.max(np.abs(values[np.isfinite(values)]), initial=1.0))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-13 * scale, equal_nan=True)
    STATS["numbers checked"] += 1


def _floats(value: Any) -> Any:
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return float(value) if isinstance(value, str) else value


def run_in_process(workdir: Path, data: bytes, fmt: str, ext: str, command: str, role: str) -> None:
    path = workdir / f"fuzzed{ext}"
    path.write_bytes(data)
    args, stdin = plan(command, role, str(path))
    with warnings.catch_warnings():  # main() silences stray Python warnings; so do we
        warnings.simplefilter("ignore")
        result = runner.invoke(app, args, input=stdin)
    where = f"{args} with {data[:200]!r}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"exception escaped for {where}") from result.exception
    check_outcome(result.exit_code, result.stdout, result.stderr, where)
    STATS[f"in-process exit {result.exit_code}"] += 1
    if (
        result.exit_code == 0
        and role in ("logits", "stdin")
        and command in ("softmax", "log-softmax", "log")
    ):
        check_numbers(command, data, fmt, result.stdout)


ROLES = {
    "ce": ["logits", "labels", "weight", "stdin"],
    "nll": ["logits", "labels", "stdin"],
    "softmax": ["logits", "stdin"],
    "log-softmax": ["logits"],
    "log": ["logits", "stdin"],
    "doctor": ["logits", "labels"],
    "merge": ["logits", "stdin"],
}
JOBS = st.sampled_from([(command, role) for command, roles in ROLES.items() for role in roles])


@pytest.mark.parametrize(
    ("fmt", "count"),
    [
        ("bytes", 600),
        ("json", 1600),
        ("csv", 1000),
        ("npy", 1400),
        ("npz", 400),
        ("pt", 200),
        ("safetensors", 200),
        ("merge", 200),
    ],
)
def test_fuzz_in_process(workdir: Path, fmt: str, count: int) -> None:
    strategy, natural_ext = FORMATS[fmt]

    @examples(count)
    @given(
        data=strategy(),
        job=JOBS,
        ext=st.sampled_from([natural_ext, natural_ext, *EXTENSIONS]),
    )
    def run(data: bytes, job: tuple[str, str], ext: str) -> None:
        STATS[f"in-process {fmt}"] += 1
        command, role = job
        run_in_process(workdir, data, fmt, ext, command, role)

    before = STATS.copy()
    run()
    ran = STATS - before
    # the fuzzing really happened, at scale, and reached the computation (not only refusals)
    assert ran[f"in-process {fmt}"] >= 0.9 * count * min(SCALE, 1.0), ran
    if fmt in ("json", "csv", "npy", "pt", "safetensors", "merge"):
        assert ran["in-process exit 0"] >= 1, f"no {fmt} input was accepted: the fuzz is too blunt"
    if fmt in ("json", "npy"):  # accepted softmax/log inputs compared with NumPy
        assert ran["numbers checked"] >= 1, ran


@examples(40)
@given(
    fmt=st.sampled_from(list(FORMATS)),
    data=st.data(),
    job=JOBS,
)
def test_fuzz_real_processes(fmt: str, data: st.DataObject, job: tuple[str, str]) -> None:
    """Fewer, slower examples through ``python -m lossctl``: main()'s exit-code plumbing."""
    strategy, ext = FORMATS[fmt]
    content = data.draw(strategy())
    command, role = job
    with tempfile.TemporaryDirectory(prefix="lossctl-fuzz-") as directory:
        path = Path(directory) / f"fuzzed{ext}"
        path.write_bytes(content)
        args, stdin = plan(command, role, str(path))
        proc = run_lossctl(*args, stdin=stdin)
    check_outcome(
        proc.code,
        proc.stdout.decode("utf-8"),
        proc.stderr.decode("utf-8", "replace"),
        f"{args} with {content[:200]!r}",
    )
    STATS[f"subprocess exit {proc.code}"] += 1
