"""Mean cross-entropy with integer targets: lossctl's kernel vs naive NumPy vs PyTorch.

Run from the project root::

    .venv/bin/python benchmarks/bench_ce.py            # the issue #4 shapes, median of 9
    .venv/bin/python benchmarks/bench_ce.py --quick    # smaller shapes, a smoke run
    .venv/bin/python benchmarks/bench_ce.py --memmap-gb 3.3   # + a memmapped file's peak RSS

Everything runs in one process; the implementations take turns within each repeat
so that load from elsewhere falls on all of them alike. Times are medians; the
ratio column divides by torch's median (by naive NumPy's when torch is absent).
"extra" is the peak of Python-visible allocations (tracemalloc, which NumPy reports
to) during one call, beyond the input; "rel err" is the distance to lossctl's
``precision="float64"`` result. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lossctl.core import kernels, threads
from lossctl.core.losses import cross_entropy

FULL_SHAPES = [(8192, 32000), (2048, 50257), (512, 128256), (4096, 1000)]
QUICK_SHAPES = [(1024, 32000), (256, 50257), (64, 128256), (4096, 1000)]


def naive_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook version: x - max, exp, sum, log, pick."""
    m = x.max(axis=1, keepdims=True)
    e = np.exp(x - m)
    s = e.sum(axis=1)
    picked = x[np.arange(x.shape[0]), y] - m[:, 0]
    return float(np.mean(np.log(s) - picked))


def lossctl_ce(x: np.ndarray, y: np.ndarray) -> float:
    return float(cross_entropy(x, y, class_dim=1))  # type: ignore[arg-type]


def load_torch(threads: int) -> Any:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def extra_bytes(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def bench_shape(
    rows: int, classes: int, dtype: type, repeat: int, torch: Any
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(rows * classes)
    x = rng.standard_normal((rows, classes), dtype=np.float32).astype(dtype, copy=False)
    y = rng.integers(0, classes, rows)
    impls: dict[str, Callable[[], float]] = {
        "lossctl": lambda: lossctl_ce(x, y),
        "naive NumPy": lambda: naive_numpy(x, y),
    }
    if torch is not None:
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        impls["torch"] = lambda: float(torch.nn.functional.cross_entropy(xt, yt))
    exact = float(np.mean(kernels.nll_of_logits(x, y, precision="float64")))
    values = {name: fn() for name, fn in impls.items()}  # warm-up, and the values
    times: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(repeat):
        for name, fn in impls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    baseline = medians["torch" if torch is not None else "naive NumPy"]
    extras = {
        "lossctl": extra_bytes(impls["lossctl"]),
        "naive NumPy": extra_bytes(impls["naive NumPy"]),
    }
    return [
        {
            "shape": f"{rows} x {classes}",
            "dtype": np.dtype(dtype).name,
            "impl": name,
            "ms": medians[name] * 1e3,
            "ratio": medians[name] / baseline,
            "gbps": x.nbytes / medians[name] / 1e9,
            "extra": extras.get(name),
            "err": abs(values[name] - exact) / abs(exact),
        }
        for name in impls
    ]


def print_table(results: list[dict[str, Any]], baseline: str) -> None:
    header = ["shape", "dtype", "implementation", "median ms", f"x {baseline}", "GB/s", "extra"]
    header.append("rel err")
    lines = [
        [
            r["shape"],
            r["dtype"],
            r["impl"],
            f"{r['ms']:.1f}",
            f"{r['ratio']:.2f}",
            f"{r['gbps']:.2f}",
            fmt_bytes(r["extra"]),
            f"{r['err']:.1e}",
        ]
        for r in results
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in lines:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")


MEMMAP_CHILD = """
import sys, time
import numpy as np
from lossctl.core.losses import cross_entropy

def hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1

x = np.load(sys.argv[1], mmap_mode="r")
y = np.random.default_rng(0).integers(0, x.shape[1], x.shape[0])
start = time.perf_counter()
loss = cross_entropy(x, y, class_dim=1)
print(time.perf_counter() - start, hwm(), loss)
"""


def bench_memmap(gigabytes: float, classes: int, directory: str | None) -> None:
    rows = max(1, int(gigabytes * 1e9 / (4 * classes)))
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = Path(tmp) / "logits.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, classes))
        rng = np.random.default_rng(0)
        for r0 in range(0, rows, 1024):
            chunk = out[r0 : r0 + 1024]
            chunk[:] = rng.standard_normal(chunk.shape, dtype=np.float32)
        out.flush()
        size = out.nbytes
        del out, chunk
        print(
            f"\nmemmapped .npy: {rows} x {classes} float32, {size / 1e9:.2f} GB, "
            "lossctl ce in a fresh process (file in page cache after writing):"
        )
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=root)
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(MEMMAP_CHILD), str(path)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        seconds, peak, loss = proc.stdout.split()
        print(
            f"  time {float(seconds):.2f} s ({size / float(seconds) / 1e9:.2f} GB/s), "
            f"peak RSS {int(peak) / 2**20:.0f} MiB, loss {float(loss):.6f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=9, help="timed runs per case (median)")
    parser.add_argument("--quick", action="store_true", help="smaller shapes")
    parser.add_argument("--threads", type=int, default=2, help="threads for lossctl and torch")
    parser.add_argument("--no-float64", action="store_true", help="skip the float64 rows")
    parser.add_argument("--memmap-gb", type=float, default=0.0, help="also a memmapped file")
    parser.add_argument("--memmap-classes", type=int, default=32000)
    parser.add_argument("--memmap-dir", default=None, help="where to write that file")
    parser.add_argument("--memmap-only", action="store_true", help="skip the table")
    args = parser.parse_args()

    threads.set_workers(args.threads)
    load_before = os.getloadavg()[0]
    torch = load_torch(args.threads)
    baseline = "torch" if torch is not None else "naive NumPy"
    print(
        f"lossctl cross-entropy benchmark, {datetime.date.today()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, NumPy {np.__version__}, "
        + (f"torch {torch.__version__}" if torch is not None else "torch absent")
        + f"; {args.threads} threads; median of {args.repeat}"
    )
    if torch is None:
        print("note: torch is not importable; ratios are relative to naive NumPy")
    if args.memmap_only:
        bench_memmap(args.memmap_gb or 3.3, args.memmap_classes, args.memmap_dir)
        return
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    dtypes: list[type] = [np.float32] if args.no_float64 else [np.float32, np.float64]
    results: list[dict[str, Any]] = []
    for dtype in dtypes:
        for rows, classes in shapes:
            results += bench_shape(rows, classes, dtype, args.repeat, torch)
    print()
    print_table(results, baseline)
    print(f"\nload average (1 min) before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}")
    if args.memmap_gb > 0:
        bench_memmap(args.memmap_gb, args.memmap_classes, args.memmap_dir)


if __name__ == "__main__":
    main()
