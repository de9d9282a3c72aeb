"""Peak memory of reading JSON and CSV text, as a multiple of the file's size (issue #10).

Writes, in a temporary directory deleted at the end, a JSON file of ``(rows, 100)`` float
logits as ``json.dump`` writes them, the same values as CSV (``np.savetxt``, comma), a
JSON file of integer labels, and a sparse file of NUL bytes (``truncate``, no disk).
Each is read by ``lossctl.io.readers.read_array`` in its own child process, whose peak
RSS (``wait4``'s ``ru_maxrss``) is reported beside a child that only imports the reader;
``grown`` is the difference, ``x size`` that over the file's size. Also runs ``lossctl ce``
on the JSON logits and labels; ``--compare DIR`` runs everything again with the lossctl of
another checkout (the baseline, in the same run). Wall times are of the whole child.
Nothing is asserted (see tests/system/test_text_memory.py).

    .venv/bin/python benchmarks/bench_text_memory.py                        # ~60 MB of JSON
    .venv/bin/python benchmarks/bench_text_memory.py --size-mb 20           # quicker
    .venv/bin/python benchmarks/bench_text_memory.py --compare ../before    # beside a checkout
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
import os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status), time.perf_counter() - start)
"""
READ = "import sys; from lossctl.io.readers import read_array; read_array(sys.argv[1])"
IMPORT = "import sys; from lossctl.io.readers import read_array"


def peak_mib(command: list[str], code: Path) -> tuple[float, int, float]:
    """Peak RSS in MiB, exit status and wall seconds of ``command`` run with lossctl from
    ``code`` (a checkout), measured by a launcher process."""
    environment = {**os.environ, "PYTHONPATH": str(code)}
    launcher = [sys.executable, "-c", LAUNCHER, *command]
    kib, status, seconds = subprocess.check_output(launcher, cwd=code, env=environment).split()
    return int(kib) / 1024, int(status), float(seconds)


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
    parser.add_argument(
        "--compare", type=Path, help="another checkout (e.g. before the change) run the same way"
    )
    args = parser.parse_args()
    codes = [("this", ROOT)] + ([("compare", args.compare.resolve())] if args.compare else [])
    print(f"`{' '.join(['.venv/bin/python', *sys.argv])}`\n")
    print("| code | file | size MiB | peak MiB | grown MiB | x size | seconds | status |")
    print("|------|------|----------|----------|-----------|--------|---------|--------|")
    with tempfile.TemporaryDirectory() as scratch:
        files = write_files(Path(scratch), args.size_mb)
        jobs = {name: [sys.executable, "-c", READ, str(files[name])] for name in NAMES}
        jobs["lossctl ce logits.json"] = [
            *[sys.executable, "-m", "lossctl", "ce"],
            *[str(files["logits.json"]), str(files["labels_rows.json"]), "--json"],
        ]
        for label, code in codes:
            base = peak_mib([sys.executable, "-c", IMPORT], code)[0]
            print(f"| {label} | (import only) | | {base:.0f} | | | | |")
            for name, command in jobs.items():
                size = files[name.split()[-1]].stat().st_size / 2**20
                peak, status, seconds = peak_mib(command, code)
                grown = peak - base
                print(
                    f"| {label} | {name} | {size:.0f} | {peak:.0f} | {grown:.0f} | "
                    f"{grown / size:.2f} | {seconds:.1f} | {status} |"
                )


NAMES = ("logits.json", "logits.csv", "labels.json", "nul.json")

if __name__ == "__main__":
    main()
