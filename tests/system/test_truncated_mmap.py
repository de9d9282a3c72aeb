"""Issue #12: a memory-mapped ``.npy`` truncated by another process while lossctl reads it.

The faulting page would kill the process with SIGBUS (exit 135, no message); lossctl's
native handler (lossctl/cli/sigbus.py) turns it into the documented one line, exit 1,
and an ``--output`` file in progress is removed. The input is a sparse 128 MB file
(holes read as zeros), truncated as soon as the child has mapped it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import clean_env, leftovers, lossctl_command

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="watches /proc/PID/maps for the mapping"
)

ROWS, CLASSES = 2_000_000, 8


def _sparse_npy(path: Path, shape: tuple[int, ...], descr: str, itemsize: int) -> None:
    """A .npy whose data is a hole: the size of the array on disk, no bytes written."""
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": descr, "fortran_order": False, "shape": shape}
        )
        header = handle.tell()
    os.truncate(path, header + int(np.prod(shape)) * itemsize)


def _truncate_once_mapped(args: list[str], victim: Path, cwd: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        lossctl_command(*args),
        cwd=cwd,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    maps = Path(f"/proc/{proc.pid}/maps")
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if str(victim.resolve()) in maps.read_text():
                break
        except OSError:
            break
        time.sleep(0.002)
    os.truncate(victim, 4096)  # mid-run: the mapping now reaches past the end of the file
    return proc


@pytest.mark.parametrize(
    "args",
    [
        ["ce", "big.npy", "labels.npy", "-q"],
        ["softmax", "big.npy", "-o", "out.npy"],
    ],
    ids=["ce", "softmax-output"],
)
def test_a_file_truncated_while_mapped_is_one_line_not_sigbus(
    tmp_path: Path, args: list[str]
) -> None:
    _sparse_npy(tmp_path / "big.npy", (ROWS, CLASSES), "<f8", 8)
    _sparse_npy(tmp_path / "labels.npy", (ROWS,), "<i8", 8)  # zeros: class 0
    proc = _truncate_once_mapped(args, tmp_path / "big.npy", tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (proc.returncode, err[-500:])  # SIGBUS would be -7
    lines = err.decode().splitlines()
    assert lines == [
        "lossctl: error: big.npy: the file changed while being read (truncated by another "
        "process?); no result was written"
    ], err
    assert out == b""
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.npy").exists()
