"""Measured error of ``lossctl kl``'s KL per position against mpmath, both precisions.

Float32 rows as ``lossctl kl`` reads them from .npy files; the exact KL of those rows from
mpmath (60 digits). Prints, per case, the largest relative error of ``precision="auto"``
(float32 exp, float64 sums) and of ``"float64"``, in units of u = 2**-24 and as numbers,
with the largest ratio to the documented bound of the auto form. Asserts nothing.

    .venv/bin/python benchmarks/accuracy_kl.py            # about a minute
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lossctl.core.kl_stream import stream_kl
from tests.helpers import float32_kl_bound as bound
from tests.helpers import mp_kl as exact

U = 2.0**-24


def cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(2026)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for scale in (1.0, 0.1, 1e-3, 1e-5):
        x = rng.normal(0, 3, size=(24, 2000)).astype(np.float32)
        out[f"random, y = x + N(0, {scale:g})"] = (
            x,
            (x + rng.normal(0, scale, x.shape)).astype(np.float32),
        )
    x = rng.normal(0, 3, size=(24, 2000)).astype(np.float32)
    out["one ulp apart everywhere"] = (x, np.nextafter(x, np.float32(np.inf)))
    y = x.copy()
    y[np.arange(24), rng.integers(0, 2000, 24)] += np.float32(2**-12)
    out["one class 2**-12 off"] = (x, y)
    sharp = (rng.normal(0, 12, size=(24, 2000))).clip(-30, 30).astype(np.float32)
    out["nearly one-hot, y = x + N(0, 3)"] = (
        sharp,
        (sharp + rng.normal(0, 3, sharp.shape)).astype(np.float32),
    )
    flat = rng.normal(0, 1, size=(24, 2000)).astype(np.float32)
    peaked = flat.copy()
    peaked[:, 7] += 25.0
    out["q peaked where p is flat (e ~ -25)"] = (flat, peaked)
    offset = (x + 45.0).astype(np.float32)
    out["offset 45, y = x + N(0, 1e-3)"] = (
        offset,
        (offset + rng.normal(0, 1e-3, x.shape)).astype(np.float32),
    )
    return out


def main() -> None:
    print(f"{'case':<38}{'KL range':>22}{'auto (u)':>10}{'float64':>10}{'auto/bound':>12}")
    for name, (x, y) in cases().items():
        want = np.array([exact(a, b) for a, b in zip(x, y, strict=True)])
        auto = stream_kl(x, y, per_position=True).per_position
        f64 = stream_kl(x, y, per_position=True, precision="float64").per_position
        assert auto is not None and f64 is not None
        rel_auto = np.abs(auto - want) / want
        rel_f64 = np.abs(f64 - want) / want
        worst = float(np.max(rel_auto / bound(x, y)))
        span = f"{want.min():.1e}..{want.max():.1e}"
        print(
            f"{name:<38}{span:>22}{rel_auto.max() / U:>10.2f}{rel_f64.max():>10.1e}{worst:>12.3f}"
        )


if __name__ == "__main__":
    main()
