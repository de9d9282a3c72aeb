"""Start-up time of lossctl against its own imports, measured in one session.

Runs, alternately and ``--repeat`` times each:

- baseline: ``python -c "import numpy, typer, rich.console, rich.table"``;
- ``lossctl ce examples/seed/logits.json examples/seed/labels.json``;
- ``lossctl --version`` and ``lossctl --help`` (these must not import NumPy).

and prints each command's median wall time and its ratio to the baseline's median.
Nothing is asserted: machines are noisy; the ratio is the figure to read.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = ["examples/seed/logits.json", "examples/seed/labels.json"]
COMMANDS: dict[str, list[str]] = {
    "baseline: import numpy, typer, rich": [
        sys.executable,
        "-c",
        "import numpy, typer, rich.console, rich.table",
    ],
    "lossctl ce (seed example)": [sys.executable, "-m", "lossctl", "ce", *SEED],
    "lossctl ce --json (seed)": [sys.executable, "-m", "lossctl", "ce", *SEED, "--json"],
    "lossctl --version": [sys.executable, "-m", "lossctl", "--version"],
    "lossctl --help": [sys.executable, "-m", "lossctl", "--help"],
}


# byte-compiled modules, as an installed lossctl has them: with PYTHONDONTWRITEBYTECODE
# set, every run would compile lossctl's sources again (about 0.1 s; numpy, typer and rich
# are compiled at install time, so the baseline would not pay it)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def time_once(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=ENV, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the file cache
        time_once(command)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeat):
        for name, command in COMMANDS.items():
            samples[name].append(time_once(command))
    baseline = statistics.median(next(iter(samples.values())))
    print(f"{'command':40} {'median':>9} {'ratio':>7}")
    for name, times in samples.items():
        median = statistics.median(times)
        print(f"{name:40} {median * 1000:7.0f}ms {median / baseline:6.2f}x")


if __name__ == "__main__":
    main()
