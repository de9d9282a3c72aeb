"""lossctl merge refuses nonsense: every field bounded, contradictions, duplicates; JSON Lines."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lossctl.cli.process import run_cli
from lossctl.cli.streams import Environment
from lossctl.errors import InputError
from lossctl.io.documents import documents_from_bytes, parse_exact_bounded, partial_from_document


def run(args: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_cli(args, Environment(stdin=io.BytesIO(stdin), stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(1)
    for i in range(3):
        np.save(directory / f"x{i}.npy", rng.normal(size=(4, 3)))
        np.save(directory / f"y{i}.npy", rng.integers(0, 3, size=4))
        code, out, err = run(
            ["ce", str(directory / f"x{i}.npy"), str(directory / f"y{i}.npy"), "--json"]
        )
        assert code == 0, err
        (directory / f"r{i}.json").write_text(out)
    return directory


def document(shards: Path, i: int = 0) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((shards / f"r{i}.json").read_text())
    return loaded


def test_results_carry_a_fingerprint(shards: Path) -> None:
    fingerprint = document(shards)["fingerprint"]
    assert len(fingerprint["digest"]) == 32
    assert {f["role"] for f in fingerprint["files"]} == {"input", "target"}
    assert all(f["size"] > 0 and len(f["blake2b"]) == 32 for f in fingerprint["files"])


BROKEN = {
    "negative count": {"count": -3},
    "negative ignored": {"ignored": -1},
    "float count": {"count": 2.5},
    "denominator not the count": {"exact": {"sum": "1*2**0", "denominator": "3*2**0"}},
    "negative denominator": {
        "exact": {"sum": "1*2**0", "denominator": "-4*2**0"},
        "weight": [1, 1, 1],
    },
    "huge exponent": {"exact": {"sum": "1*2**20000", "denominator": "1*2**2"}},
    "huge mantissa": {"exact": {"sum": "9" * 5000 + "*2**0", "denominator": "1*2**2"}},
    "not a string": {"exact": {"sum": 5, "denominator": "1*2**2"}},
    "sum contradicts exact": {"sum": 123.0},
    "loss contradicts exact": {"loss": 0.5},
    "denominator contradicts exact": {"denominator": 7.0},
    "bad smoothing": {"label_smoothing": 2.0},
    "bad classes": {"classes": -1},
    "bad weight": {"weight": [1, 2]},
    "bad kind": {"target_kind": "soft"},
    "sum not a number": {"sum": "lots"},
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_every_field_is_validated(shards: Path, name: str) -> None:
    doc = document(shards) | BROKEN[name]
    with pytest.raises(InputError):
        partial_from_document(doc, "r.json")


def test_a_huge_exponent_is_refused_before_any_arithmetic() -> None:
    start = time.perf_counter()
    with pytest.raises(ValueError, match="outside"):
        parse_exact_bounded("1*2**4000000000", "exact.sum")
    with pytest.raises(ValueError):
        parse_exact_bounded("1*2**" + "9" * 100, "exact.sum")  # no 100-digit int either
    assert time.perf_counter() - start < 0.1


def test_exact_sums_lossctl_writes_are_accepted() -> None:
    for text in ["0*2**0", "1*2**1086", "-3*2**-1127", "12345*2**-40"]:
        parse_exact_bounded(text, "exact.sum")


def test_contradiction_through_the_cli(shards: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document(shards) | {"count": -3}))
    code, out, err = run(["merge", str(shards / "r1.json"), str(bad)])
    assert code == 1 and out == "" and "count" in err and err.count("\n") == 1


def test_the_same_file_twice_is_refused(shards: Path) -> None:
    r0 = str(shards / "r0.json")
    code, _, err = run(["merge", r0, r0])
    assert code == 1 and "named twice" in err
    code, _, err = run(["merge", r0, r0, "--allow-duplicates"])
    assert code == 0, err


def test_the_same_inputs_under_two_names_are_refused(shards: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.json"
    copy.write_text((shards / "r0.json").read_text())
    code, _, err = run(["merge", str(shards / "r0.json"), str(copy)])
    assert code == 1 and "same inputs" in err and "--allow-duplicates" in err
    code, out, _ = run(
        ["merge", str(shards / "r0.json"), str(copy), "--allow-duplicates", "--json"]
    )
    assert code == 0 and json.loads(out)["count"] == 8


def test_a_merged_result_merged_again_with_a_part_is_refused(shards: Path, tmp_path: Path) -> None:
    code, out, _ = run(["merge", str(shards / "r0.json"), str(shards / "r1.json"), "--json"])
    assert code == 0
    merged = tmp_path / "merged.json"
    merged.write_text(out)
    code, _, err = run(["merge", str(merged), str(shards / "r1.json")])
    assert code == 1 and "same inputs" in err


def test_shard_lists_naming_a_file_twice_are_refused(shards: Path) -> None:
    x, y = str(shards / "x0.npy"), str(shards / "y0.npy")
    for command in ("ce", "nll"):
        code, _, err = run([command, x, x, y, str(shards / "y1.npy")])
        assert code == 1 and "named twice" in err, err


def test_json_lines_on_stdin_merge_every_document(shards: Path) -> None:
    lines = b"".join((shards / f"r{i}.json").read_bytes() for i in range(3))
    code, out, err = run(["merge", "-", "--json"], stdin=lines)
    assert code == 0, err
    merged = json.loads(out)
    code, files_out, _ = run(["merge", *(str(shards / f"r{i}.json") for i in range(3)), "--json"])
    expected = json.loads(files_out)
    assert merged["loss"] == expected["loss"] and merged["exact"] == expected["exact"]
    assert merged["shards"] == 3


def test_json_lines_errors_name_the_document() -> None:
    with pytest.raises(InputError, match="document 2"):
        documents_from_bytes(b'{"a": 1}\n[1]\n', "standard input")
    with pytest.raises(InputError, match="empty"):
        documents_from_bytes(b"  \n", "standard input")


def test_a_shell_loop_into_merge_through_real_pipes(shards: Path) -> None:
    """``for f in …; do lossctl ce … --json; done | lossctl merge -`` with real processes."""
    loop = "; ".join(
        f"{sys.executable} -m lossctl ce {shards}/x{i}.npy {shards}/y{i}.npy --json"
        for i in range(3)
    )
    proc = subprocess.run(
        f"({loop}) | {sys.executable} -m lossctl merge - --json",
        shell=True,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["shards"] == 3
