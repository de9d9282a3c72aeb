"""Time ``lossctl kl SHARDS… --scheduler`` against the same ``lossctl kl SHARDS…`` run locally.

Whole processes (start-up included), as a user runs them, taking turns ``--repeat`` times:

* ``local``: ``lossctl kl 'ref-*.npy' 'other-*.npy' 'labels-*.npy'`` (the baseline);
* ``cluster``: the same with ``--scheduler tcp://…`` of an already-running
  ``distributed.LocalCluster`` of ``--workers`` single-threaded worker processes on
  127.0.0.1 (started once by this script, as a cluster normally is);
* ``local:N``: the same with ``--scheduler local:N`` (the command starts and stops its
  own cluster each time).

Every run's ``--json`` is checked against the local one (without ``engine``): equal, or
the benchmark stops. Prints min, median and max wall time of each. Needs the dask extra.

    .venv/bin/python benchmarks/bench_dask_kl.py                 # 8 shards x 2 x 32 MB
    .venv/bin/python benchmarks/bench_dask_kl.py --shards 4 --rows 2000 --repeat 3   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def write_shards(folder: Path, shards: int, rows: int, classes: int) -> list[str]:
    """float32 logits of a reference and of a noisier model, and labels, per shard."""
    rng = np.random.default_rng(15)
    for i in range(shards):
        reference = (rng.normal(size=(rows, classes)) * 3).astype(np.float32)
        other = reference + rng.normal(size=reference.shape).astype(np.float32)
        np.save(folder / f"ref-{i}.npy", reference)
        np.save(folder / f"other-{i}.npy", other)
        np.save(folder / f"labels-{i}.npy", rng.integers(0, classes, rows))
    return [str(folder / f"{name}-*.npy") for name in ("ref", "other", "labels")]


def run(args: list[str]) -> tuple[float, dict[str, Any]]:
    """Wall time of one ``python -m lossctl kl … --json`` process, and its document."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lossctl", "kl", *args, "--json", "--quiet"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),  # not the checkout: ``-m`` puts the cwd first on sys.path
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"lossctl kl {' '.join(args)} failed:\n{proc.stderr}")
    document: dict[str, Any] = json.loads(proc.stdout)
    return seconds, document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--rows", type=int, default=8192, help="rows per shard")
    parser.add_argument("--classes", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    import distributed

    with tempfile.TemporaryDirectory() as scratch:
        files = write_shards(Path(scratch), options.shards, options.rows, options.classes)
        megabytes = 2 * options.shards * options.rows * options.classes * 4 / 1e6
        print(
            f"{options.shards} shards of {options.rows} x {options.classes} float32 (2 models, "
            f"{megabytes:.0f} MB in all) with labels; {os.cpu_count()} CPUs; "
            f"{options.repeat} runs each, taking turns"
        )
        with distributed.LocalCluster(
            n_workers=options.workers,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            worker_dashboard_address="127.0.0.1:0",
        ) as cluster:
            address = str(cluster.scheduler_address)
            variants = {
                "local": [],
                f"cluster ({options.workers} workers, running)": ["--scheduler", address],
                f"local:{options.workers}": ["--scheduler", f"local:{options.workers}"],
            }
            times: dict[str, list[float]] = {name: [] for name in variants}
            _, expected = run(files)
            for _ in range(options.repeat):
                for name, extra in variants.items():
                    seconds, document = run([*files, *extra])
                    document.pop("engine", None)
                    if document != expected:
                        raise SystemExit(f"{name}: the document differs from the local run")
                    times[name].append(seconds)
    for name, values in times.items():
        print(
            f"{name:<28} min {min(values):6.2f} s  median {statistics.median(values):6.2f} s  "
            f"max {max(values):6.2f} s"
        )
    print("every document equal to the local run's (apart from engine)")


if __name__ == "__main__":
    main()
