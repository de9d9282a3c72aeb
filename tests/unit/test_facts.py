"""core.facts: blocks merge to the facts of the whole, the facts are NumPy's own numbers,
and the doctor reads a memory-mapped input in bounded memory."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lossctl.core.facts import (
    FIRST_ROWS,
    InputFacts,
    facts_of_array,
    facts_of_block,
    kind_of,
    row_blocks,
)


def same(a: InputFacts, b: InputFacts) -> bool:
    """Field by field, NaN equal to NaN (the -inf row list: where both track it)."""
    tracked = a.neginf_index is not None and b.neginf_index is not None
    if tracked and not np.array_equal(a.neginf_index, b.neginf_index):
        return False
    for name in InputFacts._fields:
        if name == "neginf_index":
            continue
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        if x != y:
            return False
    return True


def hostile(seed: int, rows: int, classes: int, dtype: Any = np.float32) -> np.ndarray:
    """Random logits with NaN, +inf and -inf sprinkled in (and one row of only -inf)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=3.0, size=(rows, classes)).astype(dtype)
    for value, n in ((np.nan, 3), (np.inf, 2), (-np.inf, 5)):
        x[rng.integers(0, rows, n), rng.integers(0, classes, n)] = value
    x[rng.integers(0, rows)] = -np.inf
    return x


CASES = [
    ("logits", lambda: np.random.default_rng(1).normal(size=(300, 17))),
    ("hostile float32", lambda: hostile(2, 257, 31)),
    ("hostile float64", lambda: hostile(3, 100, 8, np.float64)),
    ("hostile float16", lambda: hostile(4, 64, 9, np.float16) * np.float16(4000)),
    ("probabilities", lambda: np.random.default_rng(5).dirichlet(np.ones(6), size=200)),
    ("log-probabilities", lambda: np.log(np.random.default_rng(6).dirichlet(np.ones(5), 90))),
    ("integers", lambda: np.random.default_rng(7).integers(-5, 5, size=(40, 3))),
]


@pytest.mark.parametrize("name, make", CASES, ids=[c[0] for c in CASES])
def test_blocks_merge_to_the_facts_of_the_whole(name: str, make: Any) -> None:
    x = make()
    whole = facts_of_block(x, 0, logsumexp=True)
    rng = np.random.default_rng(len(name))
    cuts = sorted({0, x.shape[0], *rng.integers(0, x.shape[0], 6).tolist()})
    merged = InputFacts(classes=x.shape[1])
    for start, stop in itertools.pairwise(cuts):
        merged = merged.merge(facts_of_block(x[start:stop], start, logsumexp=True))
    assert same(merged, whole), (merged, whole)
    for block_bytes in (1, 100, 1 << 20):  # one row per block … everything in one
        assert same(facts_of_array(x, 1, logsumexp=True, block_bytes=block_bytes), whole)
    lazy = facts_of_block(x, 0)
    assert same(facts_of_array(x, 1, block_bytes=64), lazy)  # log-sum-exp skipped alike


def test_merge_is_order_free_and_checks_the_classes() -> None:
    x = hostile(8, 120, 7)
    a, b = facts_of_block(x[:50], 0), facts_of_block(x[50:], 50)
    assert same(a.merge(b), b.merge(a))
    assert same(InputFacts(classes=7).merge(a), a)
    with pytest.raises(ValueError, match="do not merge"):
        a.merge(InputFacts(classes=8))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_facts_are_numpys_direct_computation(seed: int, dtype: Any) -> None:
    x = hostile(seed, 97, 13, dtype) * dtype(1000 if dtype == np.float16 else 1)
    got = facts_of_array(x, 1, logsumexp=True, block_bytes=200)
    nan, posinf, neginf = np.isnan(x), np.isposinf(x), np.isneginf(x)
    bad = nan.any(axis=1) | posinf.any(axis=1)
    usable = x[~bad]
    finite = usable[np.isfinite(usable)]
    assert (got.rows, got.classes) == x.shape
    assert (got.nan, got.posinf, got.neginf) == (nan.sum(), posinf.sum(), neginf.sum())
    assert got.bad_rows == bad.sum() and got.usable_rows == usable.shape[0]
    assert list(got.bad_first) == np.flatnonzero(bad)[:FIRST_ROWS].tolist()
    assert list(got.neginf_first) == np.flatnonzero(neginf.any(axis=1))[:FIRST_ROWS].tolist()
    assert got.usable_neginf_rows == np.isneginf(usable).any(axis=1).sum()
    assert (got.value_min, got.value_max) == (finite.min(), finite.max())
    assert got.abs_max == np.abs(x[np.isfinite(x)].astype(np.float64)).max()
    wide = usable.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        m = wide.max(axis=1)
    assert (got.row_max_min, got.row_max_max) == (m.min(), m.max())
    assert got.lse_min is not None and got.lse_max is not None
    assert math.isnan(got.lse_min) and math.isnan(got.lse_max)  # the row of only -inf
    clean = wide[np.isfinite(wide).all(axis=1)]
    lse_clean = facts_of_array(clean, 1, logsumexp=True)
    expected = np.log(np.exp(clean - clean.max(1, keepdims=True)).sum(1)) + clean.max(1)
    assert lse_clean.lse_min == pytest.approx(expected.min(), rel=1e-15, abs=1e-12)
    assert lse_clean.lse_max == pytest.approx(expected.max(), rel=1e-15, abs=1e-12)
    if dtype == np.float16:
        assert got.float16_saturated == (np.abs(x) == np.float16(65504)).sum()
        f = np.isfinite(x)
        span = np.where(f, wide_all := x.astype(np.float64), -np.inf).max(1) - np.where(
            f, wide_all, np.inf
        ).min(1)
        assert got.float16_wide_rows == (span > 65504).sum()
    else:
        assert got.float16_saturated == got.float16_wide_rows == 0


def test_kinds_and_row_sums() -> None:
    rng = np.random.default_rng(9)
    p = rng.dirichlet(np.ones(4), size=50)
    facts = facts_of_array(p, 1)
    sums = p.sum(axis=1)
    assert (facts.sum_min, facts.sum_max) == (sums.min(), sums.max())
    assert (
        facts.all_in_unit_interval and facts.rows_sum_to_one and kind_of(facts) == "probabilities"
    )
    assert kind_of(facts_of_array(np.log(p), 1)) == "log-probabilities"
    assert facts_of_array(np.log(p), 1).all_nonpositive
    assert kind_of(facts_of_array(np.log(p) - 1.0, 1)) == "logits"  # ≤ 0, log-sum-exp -1
    assert kind_of(facts_of_array(p.T, 0)) == "probabilities"  # the class axis first
    assert kind_of(facts_of_array(np.full((3, 2), np.nan), 1)) == "unknown"
    assert facts_of_array(p * 2, 1).sum_min is None  # outside [0, 1]: sums never needed


def test_row_blocks_cover_every_row_once_in_order() -> None:
    x = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    for axis in range(3):
        rows = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
        blocks = list(row_blocks(x, axis, block_bytes=40))
        step = 40 // (4 * x.shape[axis])  # rows of float32 in 40 bytes
        assert [start for start, _ in blocks] == list(range(0, rows.shape[0], step))
        np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), rows)


LAUNCHER = """
import resource, subprocess, sys
with open(sys.argv[1], "wb") as out, open(sys.argv[2], "wb") as err:
    code = subprocess.call(sys.argv[3:], stdout=out, stderr=err, stdin=subprocess.DEVNULL)
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def test_doctor_reads_a_memory_mapped_input_in_bounded_memory(tmp_path: Path) -> None:
    """``lossctl doctor x.npy y.npy --json`` on a 200 MB memory-mapped float32 input (with a
    NaN and a -inf): the child's peak RSS stays far below the file's size (before the blocked
    facts it was about twice the size).

    A small launcher process starts the CLI and reads ``RUSAGE_CHILDREN``: measured from the
    test process, a child's peak would include the test process's own (Linux counts the
    memory a vforked child shares before ``exec``). The file is written with plain writes,
    so that no process but the CLI maps it.
    """
    rows, classes = 2048, 25600  # 200 MiB of float32
    x_path, y_path = tmp_path / "x.npy", tmp_path / "y.npy"
    out_path, err_path = tmp_path / "out.json", tmp_path / "err.txt"
    rng = np.random.default_rng(0)
    try:
        with x_path.open("wb") as f:
            header = {"descr": "<f4", "fortran_order": False, "shape": (rows, classes)}
            np.lib.format.write_array_header_1_0(f, header)
            for start in range(0, rows, 128):
                block = rng.standard_normal((128, classes), dtype=np.float32)
                if start == 0:
                    block[7, 3], block[9, 4] = np.nan, -np.inf  # the non-finite paths too
                f.write(block.astype("<f4").tobytes())
        np.save(y_path, rng.integers(0, classes, rows))
        command = [sys.executable, "-m", "lossctl", "doctor", str(x_path), str(y_path), "--json"]
        launched = subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(out_path), str(err_path), *command],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        code, max_rss = (int(n) for n in launched.stdout.split())
        assert code == 0, err_path.read_text()
        document = out_path.read_text()
        assert '"nonfinite-input"' in document and '"input-kind"' in document
    finally:
        x_path.unlink(missing_ok=True)
        y_path.unlink(missing_ok=True)
    assert max_rss < 120 * 1024, f"max RSS {max_rss} KiB for a {rows * classes * 4 >> 20} MiB file"
