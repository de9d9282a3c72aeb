"""Peak memory of reading JSON and CSV text, as a multiple of the file's size (issue #10).

Writes, in a temporary directory deleted at the end, a JSON file of ``(rows, 100)`` float
logits as ``json.dump`` writes them, the same values as CSV (``np.savetxt``, comma), a
JSON file of integer labels, and a sparse file of NUL bytes (``truncate``, no disk).
Each is read by ``lossctl.io.readers.read_array`` in its own child process, whose peak
RSS (``wait4``'s ``ru_maxrss``) is reported beside a child that only imports the reader;
``grown`` is the difference, ``x size`` that over the file's size. Also runs ``lossctl ce``
on the JSON logits and labels. Nothing is asserted (see tests/system/test_text_memory.py).

    .venv/bin/python benchmarks/bench_text_memory.py              # ~60 MB of JSON
    .venv/bin/python benchmarks/bench_text_memory.py --size-mb 20 # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLASSES = 100

LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""
READ = "import sys; from lossctl.io.readers import read_array; read_array(sys.argv[1])"
IMPORT = "import sys; from lossctl.io.readers import read_array"


def peak_mib(command: list[str]) -> tuple[float, int]:
    """The peak RSS in MiB of ``command`` and its exit status (measured by a launcher)."""
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *command],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    kib, status = out.split()
    return int(kib) / 1024, int(status)


def write_files(folder: Path, size_mb: float) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    rows = max(1, int(size_mb * 2**20 / (CLASSES * 21)))  # json.dump of a float: ~21 bytes
    logits = rng.standard_normal((rows, CLASSES))
    files = {
        "logits.json": folder / "logits.json",
        "logits.csv": folder / "logits.csv",
        "labels.json": folder / "labels.json",
        "nul.json": folder / "nul.json",
    }
    with open(files["logits.json"], "w") as handle:
        json.dump(logits.tolist(), handle)
    np.savetxt(files["logits.csv"], logits, delimiter=",", fmt="%.17g")
    labels = rng.integers(0, CLASSES, int(size_mb * 2**20 // 4))
    with open(files["labels.json"], "w") as handle:
        json.dump(labels.tolist(), handle)
    labels_small = folder / "labels_rows.json"
    with open(labels_small, "w") as handle:
        json.dump(labels[:rows].tolist(), handle)
    with open(files["nul.json"], "wb") as handle:
        handle.truncate(256 << 20)  # sparse: no disk
    files["labels_rows.json"] = labels_small
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=60.0)
    args = parser.parse_args()
    base, _ = peak_mib([sys.executable, "-c", IMPORT])
    print(f"`{' '.join(['.venv/bin/python', *sys.argv])}`; import-only child: {base:.0f} MiB\n")
    print("| file | size MiB | peak MiB | grown MiB | x size | status |")
    print("|------|----------|----------|-----------|--------|--------|")
    with tempfile.TemporaryDirectory() as scratch:
        files = write_files(Path(scratch), args.size_mb)
        for name in ("logits.json", "logits.csv", "labels.json", "nul.json"):
            path = files[name]
            size = path.stat().st_size / 2**20
            peak, status = peak_mib([sys.executable, "-c", READ, str(path)])
            grown = peak - base
            print(f"| {name} | {size:.0f} | {peak:.0f} | {grown:.0f} | {grown / size:.2f} | {status} |")
        ce = [sys.executable, "-m", "lossctl", "ce", str(files["logits.json"]),
              str(files["labels_rows.json"]), "--json"]  # fmt: skip
        peak, status = peak_mib(ce)
        size = files["logits.json"].stat().st_size / 2**20
        print(f"| lossctl ce logits.json | {size:.0f} | {peak:.0f} | {peak - base:.0f} | "
              f"{(peak - base) / size:.2f} | {status} |")  # fmt: skip


if __name__ == "__main__":
    main()
