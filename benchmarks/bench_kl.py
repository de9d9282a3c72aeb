"""Time ``lossctl kl`` on two memory-mapped .npy files against ``lossctl ce`` on one of them.

Whole processes (start-up included), as a user runs them: wall time, CPU time (user +
system, all threads) and peak RSS (the child's ``ru_maxrss``) of each, the two taking
turns ``--repeat`` times (median shown), kl's throughput in positions/s and input MB/s,
and the 1-minute load average before and after (on a shared machine the figures depend on
it). Asserts nothing.

    .venv/bin/python benchmarks/bench_kl.py                       # 2 x 150 MB float32
    .venv/bin/python benchmarks/bench_kl.py --rows 250000 --classes 1000   # 2 x 1 GB
    # before/after in one interleaved run: a source tree of the old version (git archive)
    .venv/bin/python benchmarks/bench_kl.py --baseline /tmp/old   # /tmp/old/lossctl/...
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROBE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "t = time.perf_counter() - t\n"
    "assert p.returncode == 0, p.stderr\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(t, u.ru_maxrss, u.ru_utime + u.ru_stime)\n"
)


def write(path: Path, rows: int, classes: int, seed: int, base: Path | None = None) -> None:
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, "w+", np.float32, (rows, classes))
    ref = None if base is None else np.load(base, mmap_mode="r")
    step = max(1, (64 << 20) // (classes * 4))
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        noise = rng.normal(size=(stop - start, classes)).astype(np.float32)
        out[start:stop] = noise if ref is None else ref[start:stop] + 0.1 * noise
    out.flush()


def run(args: list[str], source: str | None = None) -> tuple[float, float, float]:
    # byte-compiled modules, as an installed lossctl has them: a PYTHONDONTWRITEBYTECODE in
    # the environment would compile every module again in every run (0.17 s for kl)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if source is not None:  # import lossctl from this tree instead of the installed one
        env["PYTHONPATH"] = source
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, sys.executable, "-m", "lossctl", *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tempfile.gettempdir(),  # not the checkout: ``-m`` puts the cwd first on sys.path
    )
    seconds, kilobytes, cpu = proc.stdout.split()
    return float(seconds), int(kilobytes) / 1024, float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=37_500)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--dir", default=None, help="where to write the files (default: a temp dir)"
    )
    parser.add_argument(
        "--baseline", default=None, help="also time kl from this source tree (holds lossctl/)"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=options.dir) as folder:
        d = Path(folder)
        write(d / "ref.npy", options.rows, options.classes, 0)
        write(d / "oth.npy", options.rows, options.classes, 1, base=d / "ref.npy")
        np.save(d / "lab.npy", np.random.default_rng(2).integers(0, options.classes, options.rows))
        files = [str(d / name) for name in ("ref.npy", "oth.npy", "lab.npy")]
        mb = os.path.getsize(files[0]) / 2**20
        commands = {
            "ce (1 file)": ["ce", files[0], files[2], "--json", "-q"],
            "kl (2 files)": ["kl", *files, "--json", "-q"],
        }
        if options.baseline:
            commands["kl baseline"] = commands["kl (2 files)"]
        times: dict[str, list[float]] = {name: [] for name in commands}
        peaks: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        started, load = time.perf_counter(), os.getloadavg()[0]
        for _ in range(options.repeat):
            for name, args in commands.items():
                seconds, peak, cpu = run(args, options.baseline if name == "kl baseline" else None)
                times[name].append(seconds)
                peaks[name].append(peak)
                cpus[name].append(cpu)
        print(
            f"{options.rows} x {options.classes} float32, {mb:.0f} MB per file, "
            f"median of {options.repeat} ({time.perf_counter() - started:.0f} s in all), "
            f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after"
        )
        print(f"{'command':<14}{'wall s':>9}{'CPU s':>8}{'peak RSS MB':>13}{'input MB/s':>12}")
        for name in commands:
            seconds, cpu = statistics.median(times[name]), statistics.median(cpus[name])
            size = mb * (2 if name.startswith("kl") else 1)
            peak = max(peaks[name])
            print(f"{name:<14}{seconds:>9.2f}{cpu:>8.2f}{peak:>13.0f}{size / seconds:>12.1f}")
        ce = statistics.median(times["ce (1 file)"])
        if options.baseline:
            print(f"kl baseline / ce time: {statistics.median(times['kl baseline']) / ce:.1f}x")
        ratio = statistics.median(times["kl (2 files)"]) / ce
        rate = options.rows / statistics.median(times["kl (2 files)"])
        print(f"kl / ce time: {ratio:.1f}x; kl: {rate:,.0f} positions/s")


if __name__ == "__main__":
    main()
