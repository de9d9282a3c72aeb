"""Every command on a large memory-mapped float32 ``.npy`` keeps its resident memory far
below the file's size: the loss's pass (and the checks' facts collected in it, the metrics'
pass, nll's picked values, label smoothing, the streamed softmax) read the rows block by
block and release the file's pages after each (before: ``nll`` kept the whole file
resident, ``ce --metrics`` 1.3 times it; ``--explain`` gathered every target and compared
every value at once, the whole file again).

The file is 256 MiB, sparse (written in a moment): random logits in its first rows, one
NaN and one -inf among them (their targets ignored), zeros after (holes read as zero pages,
which count as resident when mapped). A small launcher starts the CLI and reads the
child's peak (``RUSAGE_CHILDREN``), so the test process's own memory is not counted."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROWS, CLASSES = 2048, 32768  # 256 MiB of float32
WRITTEN = 64  # rows of random logits at the start; the rest is a hole (zeros)
BOUND_MIB = 110  # the interpreter and NumPy are about 30 MiB of it

LAUNCHER = (
    "import resource, subprocess, sys\n"
    "proc = subprocess.run([sys.executable, '-m', 'lossctl', *sys.argv[1:]], capture_output=True)\n"
    "sys.stderr.write(proc.stderr.decode())\n"
    "print(proc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "print(proc.stdout.decode(), end='')\n"
)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("loss-memory")
    x_path, y_path = folder / "x.npy", folder / "y.npy"
    rng = np.random.default_rng(0)
    head = rng.standard_normal((WRITTEN, CLASSES), dtype=np.float32)
    head[7, 3], head[9, 4] = np.nan, -np.inf
    with x_path.open("wb") as f:
        header = {"descr": "<f4", "fortran_order": False, "shape": (ROWS, CLASSES)}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(head.tobytes())
        f.truncate(f.tell() + (ROWS - WRITTEN) * CLASSES * 4)  # the rest: a hole
    labels = rng.integers(0, CLASSES, ROWS)
    labels[7] = labels[9] = -100  # the NaN and -inf rows ignored: every loss stays finite
    np.save(y_path, labels)
    yield x_path, y_path
    x_path.unlink()


def peak(*args: str) -> tuple[float, str]:
    """(peak RSS in MiB of ``lossctl ARGS``, its standard output), measured in a launcher."""
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *args], capture_output=True, text=True, timeout=600
    )
    first, _, out = proc.stdout.partition("\n")
    code, kib = first.split()
    assert code == "0", proc.stderr
    return int(kib) / 1024, out


CASES = {
    "ce": ("ce", "X", "Y", "--json", "-q"),
    "nll": ("nll", "X", "Y", "--json", "-q"),
    "doctor": ("doctor", "X", "Y", "--json"),
    "ce --metrics": ("ce", "X", "Y", "--metrics", "--json", "-q"),
    "ce --label-smoothing": ("ce", "X", "Y", "--label-smoothing", "0.1", "--json", "-q"),
    "softmax -o": ("softmax", "X", "-d", "1", "-o", "OUT"),
    "ce --explain": ("ce", "X", "Y", "--explain", "--json", "-q"),
    "nll --explain": ("nll", "X", "Y", "--explain", "--json", "-q"),
    "ce --grad (table)": ("ce", "X", "Y", "--grad", "-q"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_peak_memory_stays_far_below_the_file(
    big: tuple[Path, Path], tmp_path: Path, name: str
) -> None:
    x, y = big
    out = tmp_path / "s.npy"
    paths = {"X": str(x), "Y": str(y), "OUT": str(out)}
    mib, stdout = peak(*[paths.get(a, a) for a in CASES[name]])
    size = x.stat().st_size >> 20
    assert mib < BOUND_MIB, f"{name}: peak {mib:.0f} MiB for a {size} MiB input"
    if name == "softmax -o":
        written = np.load(out, mmap_mode="r")
        assert written.shape == (ROWS, CLASSES) and written.dtype == np.float32
        out.unlink()
        return
    if name == "ce --grad (table)":
        assert "gradient d loss / d input, shape (2048, 32768)" in stdout
        return
    document = json.loads(stdout)
    if name == "doctor":
        assert {"nonfinite-input", "input-kind"} <= {f["code"] for f in document["findings"]}
        return
    from lossctl import loss_result

    op = "cross_entropy" if name.startswith("ce") else "nll_loss"
    smoothing = 0.1 if "smoothing" in name else 0.0
    expected = loss_result(op, np.load(x, mmap_mode="r"), np.load(y), label_smoothing=smoothing)
    assert document["loss"] == expected.loss  # the streamed result is the in-memory one
    if name == "ce --metrics":
        assert document["metrics"]["count"] == ROWS - 2  # the NaN and -inf rows are ignored
