"""Whole-process benchmark: each command of issue 11 through the CLI, against a PyTorch script.

Generates once, in a temporary directory that is deleted at the end, a float32 ``.npy``
of ``(rows, 32000)`` logits (8192 rows = 1 GB by default; ``--size-mb`` for a quick
run), its int64 labels, and a copy with one NaN and one ``-inf``. Each command then
runs as its own process under ``/usr/bin/time -v`` (wall time, peak RSS), and so does
a PyTorch script doing the same job (``np.load(mmap_mode='r')`` + ``torch.from_numpy``
+ ``F.cross_entropy`` / ``F.softmax`` / ``F.nll_loss`` + ``np.save`` or ``print``),
with ``--torch-python`` (default ``/work/torchenv/bin/python``; skipped when missing).
lossctl and torch take turns inside each repeat. Prints a markdown table; nothing is
asserted (the machine is shared; read the ratios).

    .venv/bin/python benchmarks/bench_cli.py                 # 1 GB, 1 repeat
    .venv/bin/python benchmarks/bench_cli.py --size-mb 100   # quick
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLASSES = 32000
LOSSCTL = [sys.executable, "-m", "lossctl"]
# byte-compiled modules, as an installed lossctl has them (a PYTHONDONTWRITEBYTECODE in the
# environment would make every run compile lossctl's sources again)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

TORCH_PRELUDE = """
import sys, json, numpy as np, torch
import torch.nn.functional as F
torch.set_num_threads(2)
x = torch.from_numpy(np.load(sys.argv[1], mmap_mode='r'))
y = torch.from_numpy(np.load(sys.argv[2]))
"""
TORCH_JOBS = {
    "ce": "print(json.dumps({'loss': F.cross_entropy(x, y).item()}))",
    "smoothing": "print(json.dumps({'loss': F.cross_entropy(x, y, label_smoothing=0.1).item()}))",
    "none": "np.save(sys.argv[3], F.cross_entropy(x, y, reduction='none').numpy())",
    "grad": "x = x.clone().requires_grad_()  # from_numpy of a read-only map cannot be a leaf\n"
    "F.cross_entropy(x, y).backward(); np.save(sys.argv[3], x.grad.numpy())",
    "softmax-o": "np.save(sys.argv[3], F.softmax(x, dim=1).numpy())",
    "softmax-table": "print(F.softmax(x, dim=1))",
    "metrics": "l = F.cross_entropy(x, y); a = (x.argmax(1) == y).double().mean()\n"
    "print(json.dumps({'loss': l.item(), 'accuracy': a.item()}))",
    "nll": "print(json.dumps({'loss': F.nll_loss(x, y).item()}))",
}


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]  # lossctl arguments; X, Y, BAD, OUT are replaced
    torch: str | None  # key of TORCH_JOBS
    input: str = "X"


CASES = [
    Case("ce x.npy y.npy --json", ["ce", "X", "Y", "--json", "-q"], "ce"),
    Case("ce, one NaN and one -inf (--json)", ["ce", "BAD", "Y", "--json", "-q"], "ce", "BAD"),
    Case(
        "ce --label-smoothing 0.1 --json",
        ["ce", "X", "Y", "--label-smoothing", "0.1", "--json", "-q"],
        "smoothing",
    ),
    Case("ce --reduction none -o l.npy", ["ce", "X", "Y", "-r", "none", "-o", "OUT", "-q"], "none"),
    Case("ce --grad -o g.npy", ["ce", "X", "Y", "--grad", "-o", "OUT", "-q"], "grad"),
    Case("ce --grad --json (refused)", ["ce", "X", "Y", "--grad", "--json", "-q"], None),
    Case("softmax x.npy -d 1 -o s.npy", ["softmax", "X", "-d", "1", "-o", "OUT"], "softmax-o"),
    Case("softmax x.npy -d 1 (table)", ["softmax", "X", "-d", "1"], "softmax-table"),
    Case("ce --metrics --json", ["ce", "X", "Y", "--metrics", "--json", "-q"], "metrics"),
    Case("nll x.npy y.npy --json", ["nll", "X", "Y", "--json", "-q"], "nll"),
    Case("doctor x.npy y.npy --json", ["doctor", "X", "Y", "--json"], None),
    Case("ce --explain", ["ce", "X", "Y", "--explain", "-q"], None),
]


def generate(directory: Path, rows: int) -> dict[str, str]:
    """The logits, labels and the NaN/-inf copy, written block by block."""
    paths = {k: str(directory / f"{k.lower()}.npy") for k in ("X", "Y", "BAD")}
    rng = np.random.default_rng(0)
    x = np.lib.format.open_memmap(paths["X"], mode="w+", dtype=np.float32, shape=(rows, CLASSES))
    for r0 in range(0, rows, 256):
        block = rng.standard_normal((min(256, rows - r0), CLASSES), dtype=np.float32)
        x[r0 : r0 + block.shape[0]] = block * 3
    x.flush()
    del x
    np.save(paths["Y"], rng.integers(0, CLASSES, rows))
    shutil.copyfile(paths["X"], paths["BAD"])
    bad = np.load(paths["BAD"], mmap_mode="r+")
    bad[rows // 3, 5] = np.nan
    bad[rows // 2, 7] = -np.inf
    bad.flush()
    del bad
    return paths


def timed(command: list[str], out: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit status) of one process under /usr/bin/time -v."""
    report = out.with_suffix(".time")
    completed = subprocess.run(
        ["/usr/bin/time", "-v", "-o", str(report), *command],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    text = report.read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    assert wall and rss, text
    seconds = 0.0
    for part in wall.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    if out.exists():
        out.unlink()
    return seconds, int(rss.group(1)) / 1024, completed.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=1000.0, help="logits file size")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--torch-python", default="/work/torchenv/bin/python")
    parser.add_argument("--only", default="", help="run the cases whose name has this")
    args = parser.parse_args()
    rows = max(1, round(args.size_mb * 1e6 / (CLASSES * 4)))
    torch_python = args.torch_python if Path(args.torch_python).exists() else None
    directory = Path(tempfile.mkdtemp(prefix="lossctl-bench-cli-"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "lossctl")], env=ENV)
    try:
        paths = generate(directory, rows)
        out = directory / "out.npy"
        script = directory / "torch_job.py"
        results = []
        for case in [c for c in CASES if args.only in c.name]:
            mine, theirs = [], []
            for _ in range(args.repeat):
                command = [*LOSSCTL, *[{**paths, "OUT": str(out)}.get(a, a) for a in case.args]]
                mine.append(timed(command, out))
                if case.torch and torch_python:
                    script.write_text(TORCH_PRELUDE + TORCH_JOBS[case.torch] + "\n")
                    job = [torch_python, str(script), paths[case.input], paths["Y"], str(out)]
                    theirs.append(timed(job, out))
            results.append((case.name, mine, theirs))
        load = os.getloadavg()
        size = os.path.getsize(paths["X"]) / 1e6
        print(
            f"lossctl CLI vs torch, {datetime.date.today()}, {platform.machine()}, "
            f"{os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / "
            f"{load[2]:.1f}; logits ({rows}, {CLASSES}) float32 = {size:.0f} MB memmapped; "
            f"median of {args.repeat}\n"
        )
        print(
            "| command | lossctl wall s | lossctl peak RSS MB | exit | torch wall s "
            "| torch peak RSS MB | wall x torch |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, mine, theirs in results:
            wall = statistics.median(m[0] for m in mine)
            rss = statistics.median(m[1] for m in mine)
            status = mine[0][2]
            if theirs:
                twall = statistics.median(t[0] for t in theirs)
                trss = statistics.median(t[1] for t in theirs)
                torch_cells = f"{twall:.2f} | {trss:,.0f} | {wall / twall:.2f}"
            else:
                torch_cells = "— | — | —"
            print(f"| `{name}` | {wall:.2f} | {rss:,.0f} | {status} | {torch_cells} |")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
