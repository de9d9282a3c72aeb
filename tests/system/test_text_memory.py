"""JSON and CSV text read in bounded memory (issue #10), measured in child processes.

Before: reading a JSON file of floats peaked at 4.4x its size above the interpreter, a CSV
file at 6.4x, and a 256 MiB sparse file of NUL bytes took 512 MiB just to be refused
(benchmarks/bench_text_memory.py, docs/inputs.md). The files are written as users write
them (``json.dump`` of ``tolist()``, ``np.savetxt``); the arrays read in the child are
checked against the values written.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import lossctl_command, peak_rss_mib

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss units: Linux")

ROWS, CLASSES = 16000, 100  # about 32 MiB of JSON, 27 MiB of CSV
LABELS = 4_000_000  # about 15 MiB of JSON, a 30.5 MiB int64 array
READ = (
    "import hashlib, sys\n"
    "from lossctl.io.readers import read_array\n"
    "array = read_array(sys.argv[1]).array\n"
    "print(array.dtype, array.shape, hashlib.sha256(array).hexdigest())  # no copy\n"
)
IMPORT_ONLY = "import lossctl.io.readers"
BOUND = 1.5  # peak growth over the file size (before: 4.4 for JSON, 6.4 for CSV)


def _digest(array: np.ndarray) -> str:
    return f"{array.dtype} {array.shape} {hashlib.sha256(array.tobytes()).hexdigest()}"


@pytest.fixture(scope="module")
def text_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("text-memory")
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((ROWS, CLASSES))
    labels = rng.integers(0, CLASSES, LABELS)
    files = {}
    path = folder / "logits.json"
    with open(path, "w") as handle:
        json.dump(logits.tolist(), handle)
    files["json"] = (path, _digest(logits))
    path = folder / "logits.csv"
    np.savetxt(path, logits, delimiter=",", fmt="%.17g")
    files["csv"] = (path, _digest(logits))
    path = folder / "labels.json"
    with open(path, "w") as handle:
        json.dump(labels.tolist(), handle)
    files["labels"] = (path, _digest(labels))
    return files


def _baseline() -> float:
    mib, run = peak_rss_mib([sys.executable, "-c", IMPORT_ONLY])
    assert run.code == 0, run.err
    return mib


@pytest.mark.parametrize("name", ["json", "csv"])
def test_text_is_read_in_a_fraction_of_its_former_peak(
    text_files: dict[str, tuple[Path, str]], name: str
) -> None:
    path, expected = text_files[name]
    size = path.stat().st_size / 2**20
    mib, run = peak_rss_mib([sys.executable, "-c", READ, str(path)])
    assert run.code == 0, run.err
    assert run.out.strip() == expected  # the values written, exactly
    grown = mib - _baseline()
    assert grown < BOUND * size, f"{name}: grew by {grown:.0f} MiB for a {size:.0f} MiB file"


def test_integer_labels_cost_little_more_than_their_int64_array(
    text_files: dict[str, tuple[Path, str]],
) -> None:
    """Labels below 100: the int64 array alone is about twice the text; the reader needs
    little more than the array (before: 6.1x the text in all, the array being 2.1x)."""
    path, expected = text_files["labels"]
    mib, run = peak_rss_mib([sys.executable, "-c", READ, str(path)])
    assert run.code == 0, run.err
    assert run.out.strip() == expected
    array_mib = LABELS * 8 / 2**20
    grown = mib - _baseline()
    assert grown < array_mib + 24, f"grew by {grown:.0f} MiB for a {array_mib:.0f} MiB array"


def test_lossctl_ce_on_json_logits_stays_small(
    text_files: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    path, _ = text_files["json"]
    labels = tmp_path / "labels.json"
    y = np.random.default_rng(3).integers(0, CLASSES, ROWS)
    labels.write_text(json.dumps(y.tolist()))
    size = path.stat().st_size / 2**20
    mib, run = peak_rss_mib(lossctl_command("ce", str(path), str(labels), "--json"))
    assert run.code == 0, run.err
    base, version = peak_rss_mib(lossctl_command("--version"))
    assert version.code == 0, version.err
    from lossctl import cross_entropy

    x = np.array(json.loads(path.read_text()))
    assert json.loads(run.stdout)["loss"] == cross_entropy(x, y)
    assert mib - base < BOUND * size + 16, f"peak {mib:.0f} MiB, {base:.0f} MiB at rest"


@pytest.mark.parametrize("name", ["zeros.json", "zeros.csv", "zeros"])
def test_a_sparse_file_of_nul_bytes_is_refused_from_its_first_block(
    tmp_path: Path, name: str
) -> None:
    """256 MiB of NUL bytes (sparse: no disk) refused in one line, without reading it."""
    path = tmp_path / name
    with open(path, "wb") as handle:
        handle.truncate(256 << 20)
    mib, run = peak_rss_mib(lossctl_command("softmax", str(path)))
    what = "JSON" if name.endswith(".json") else "CSV"
    assert run.error_line() == (
        f"lossctl: error: {path}: binary data (NUL byte at offset 0), not {what} text"
    )
    assert run.code == 1
    small = tmp_path / f"small-{name}"
    small.write_bytes(bytes(16))  # the same refusal, 16 bytes read: the process at rest
    base, same = peak_rss_mib(lossctl_command("softmax", str(small)))
    assert same.code == 1 and "NUL byte at offset 0" in same.err
    assert mib - base < 16, f"peak {mib:.0f} MiB ({base:.0f} MiB for 16 bytes) for 256 MiB"
