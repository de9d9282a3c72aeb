"""Start-up time of lossctl against its own imports, measured in one session.

Runs, alternately and ``--repeat`` times each:

- baseline: ``python -c "import numpy, typer, rich.console, rich.table"``;
- ``lossctl ce examples/seed/logits.json examples/seed/labels.json``;
- ``lossctl --version`` and ``lossctl --help`` (these must not import NumPy).

and prints each command's median wall time and median CPU time (user + system, from
``RUSAGE_CHILDREN``: less sensitive than wall time to other processes on a shared machine)
with their ratios to the baseline's medians. ``--other DIR`` adds ``lossctl ce`` run from
another checkout, e.g. the previous commit (``git archive HEAD~1 | tar -x -C DIR``), in the
same alternation: run in DIR, whose ``lossctl`` ``python -m`` then finds first (a
``PYTHONPATH`` would not do: ``-m`` puts the working directory before it).
Nothing is asserted: machines are noisy; the ratio is the figure to read.

``--instructions`` counts instead the instructions each command executes, once each under
valgrind's callgrind (``apt install valgrind``; about 15 s a command): a figure that does
not depend on the machine's load. It runs every command with ``OPENBLAS_NUM_THREADS=1``,
as lossctl's entry point does: NumPy's import otherwise starts a thread per core in the
baseline that spins, which valgrind counts unpredictably.
"""

from __future__ import annotations

import argparse
import os
import resource
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


def time_once(command: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=ENV, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


def instructions(command: list[str], cwd: Path) -> int:
    """The instructions ``command`` executes (callgrind's total), bytecode written first."""
    subprocess.run(command, cwd=cwd, env=ENV, check=True, capture_output=True)
    env = {**ENV, "OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    valgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    proc = subprocess.run(
        [*valgrind, *command], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    total = proc.stderr.rsplit("refs:", 1)[1].split()[0]
    return int(total.replace(",", ""))


def count_instructions(commands: dict[str, tuple[list[str], Path]]) -> None:
    counts = {name: instructions(command, cwd) for name, (command, cwd) in commands.items()}
    base = counts[next(iter(counts))]
    print(f"{'command':44} {'instructions':>14} {'ratio':>6}")
    for name, count in counts.items():
        print(f"{name:44} {count / 1e6:12.0f} M {count / base:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--other", help="another checkout whose `lossctl ce` to time too")
    parser.add_argument("--instructions", action="store_true", help="count, under valgrind")
    args = parser.parse_args()
    commands = {name: (command, ROOT) for name, command in COMMANDS.items()}
    if args.other:
        commands[f"lossctl ce (seed) from {args.other}"] = (
            COMMANDS["lossctl ce (seed example)"],
            Path(args.other).resolve(),
        )
    if args.instructions:
        count_instructions(commands)
        return
    for command, cwd in commands.values():  # warm the file cache, write the bytecode
        time_once(command, cwd)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, (command, cwd) in commands.items():
            samples[name].append(time_once(command, cwd))
    base = samples[next(iter(samples))]
    wall0 = statistics.median(w for w, _ in base)
    cpu0 = statistics.median(c for _, c in base)
    load = os.getloadavg()
    print(f"median of {args.repeat}; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(f"{'command':44} {'wall':>8} {'ratio':>6} {'cpu':>8} {'ratio':>6}")
    for name, runs in samples.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(
            f"{name:44} {wall * 1000:6.0f}ms {wall / wall0:5.2f}x "
            f"{cpu * 1000:6.0f}ms {cpu / cpu0:5.2f}x"
        )


if __name__ == "__main__":
    main()
