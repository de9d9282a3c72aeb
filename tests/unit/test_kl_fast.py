"""The stream's fast KL (lossctl.core.kl_fast) against the float64 reference and mpmath.

The documented bound: relative to the exact KL of the float64 rows,
``|err| <= (12 + log2 C) * eps + eps * max_c |x_c - max x|``; rows outside the fast
form's range are computed by the reference itself (equal bits). Not timed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lossctl.core.kl import kl_rows
from lossctl.core.kl_fast import Soft, fast_kl, top_members, top_overlap
from lossctl.core.kl_stats import block_stats, kl_block_stats
from lossctl.core.kl_stream import stream_kl
from tests import helpers

EPS = 2.0**-52


def bound(x: np.ndarray) -> np.ndarray:
    spread = np.max(x, axis=1) - np.min(x, axis=1)
    return np.asarray((12 + math.log2(x.shape[1])) * EPS + EPS * spread)


def mp_kl(x: np.ndarray, y: np.ndarray) -> float:
    return helpers.mp_kl(x, y, digits=200)


def fast(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return fast_kl(Soft.of(x), y)


def adversarial() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    c = 64
    x = rng.normal(0, 3, size=(12, c))
    y = x + rng.normal(0, 0.3, size=x.shape)
    y[0] = x[0]  # identical: exactly 0
    y[1] = x[1] + rng.normal(0, 1e-6, size=c)  # KL ~ 1e-12
    y[2] = x[2] + 1e-9 * np.arange(c)  # KL ~ 1e-16, a shift-invariant part
    y[3] = x[3] + 123.0  # a constant shift: KL 0 up to rounding
    x[4] *= 1e3  # huge logits, nearly one-hot
    y[4] = x[4] + rng.normal(0, 5, size=c)
    x[5] += 1e4  # large offsets (shift invariance, rounding of x - m)
    y[5] = x[5] + rng.normal(0, 0.1, size=c)
    y[6] = x[6] + rng.normal(0, 4, size=c)  # |e| beyond the polynomial's range
    x[7, :60] = -np.inf  # -inf in p: reference path
    y[8, 3] = -np.inf  # q = 0 where p > 0: inf
    x[9, 0] = 1e300  # beyond 2**500: reference path
    x[10, 5] = np.nan
    y[11] = x[11] - 800.0 * (np.arange(c) % 2)  # e far below -600: reference path
    return x, y


def test_adversarial_rows_within_the_bound_of_the_reference() -> None:
    x, y = adversarial()
    got, want = fast(x, y), kl_rows(x, y)
    assert got[0] == 0.0
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert got[8] == np.inf and np.isnan(got[10])
    finite = np.isfinite(want)
    err = np.abs(got[finite] - want[finite])
    assert np.all(err <= 2 * bound(np.where(np.isfinite(x), x, 0))[finite] * want[finite])
    np.testing.assert_array_equal(got[[7, 9, 11]], want[[7, 9, 11]])  # the reference's bits
    assert np.all(got[~np.isnan(got)] >= 0)


@pytest.mark.parametrize("row", [1, 2, 4, 5, 6, 12, 13])
def test_against_mpmath(row: int) -> None:
    x, y = adversarial()
    rng = np.random.default_rng(row)
    if row >= 12:  # float32 inputs, as the CLI reads them
        x = rng.normal(0, 2, size=(1, 1000)).astype(np.float32).astype(np.float64)
        y = (x + rng.normal(0, 10.0 ** (-row + 9), size=x.shape)).astype(np.float32)
        xs, ys = x, y.astype(np.float64)
    else:
        xs, ys = x[row : row + 1], y[row : row + 1]
    want = mp_kl(xs[0], ys[0])
    got = float(fast(xs, ys)[0])
    assert abs(got - want) <= bound(xs)[0] * want + 1e-300


def test_random_blocks_within_the_bound() -> None:
    rng = np.random.default_rng(3)
    for scale, classes in ((1.0, 50), (0.05, 1000), (1e-5, 300), (3.0, 7)):
        x = rng.normal(0, 2, size=(40, classes)).astype(np.float32).astype(np.float64)
        y = (x + rng.normal(0, scale, size=x.shape)).astype(np.float32).astype(np.float64)
        got, want = fast(x, y), kl_rows(x, y)
        assert np.all(np.abs(got - want) <= 2 * bound(x) * want)
        assert fast(x, x.copy()).tolist() == [0.0] * len(x)


def test_top_overlap_equals_the_reference_ranking() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(0, 4, size=(30, 12)).astype(np.float32)  # many ties
    y = rng.integers(0, 4, size=(30, 12)).astype(np.float32)
    x[0] = -np.inf
    want = (top_members(x.astype(np.float64), 5) & top_members(y.astype(np.float64), 5)).sum(1)
    got = top_overlap(x, y, 5)
    assert got is not None and got.tolist() == want.tolist()
    x[1, 1] = np.nan
    assert top_overlap(x, y, 5) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_overlap_of_wide_rows_equals_the_reference_ranking(dtype: type) -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(20, 1500)).astype(dtype)
    y = (x + rng.normal(0, 0.5, size=x.shape)).astype(dtype)
    x[0] = 1.0  # all tied: the lowest five columns
    x[1, 100:110] = 50.0  # ties at the top, in one run of 64
    y[2, [3, 700, 1400, 1499, 64]] = 80.0  # the top five in different runs, one in the tail
    x[3, :] = -np.inf
    x[3, 7] = 0.0
    want = (top_members(x.astype(np.float64), 5) & top_members(y.astype(np.float64), 5)).sum(1)
    got = top_overlap(x, y, 5)
    assert got is not None and got.tolist() == want.tolist()
    assert len(set(got.tolist())) > 2


def test_fast_block_stats_equal_the_reference_but_for_kl_rounding() -> None:
    x, y = adversarial()
    labels = np.arange(12) % 5
    labels[9] = -100  # its NLL (~1e300) cannot be summarised
    fast_stats, values, back = block_stats(x, y, labels, reverse=True, fast=True)
    ref_stats = kl_block_stats(x, y, labels)
    assert fast_stats.same_top1 == ref_stats.same_top1
    assert fast_stats.top_overlap == ref_stats.top_overlap
    assert fast_stats.nll == ref_stats.nll and fast_stats.delta_p == ref_stats.delta_p
    assert back is not None and np.all(np.isnan(back) == np.isnan(kl_rows(y, x)[labels != -100]))
    assert values[0] == 0.0


def test_stream_is_independent_of_blocks_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(0, 2, size=(300, 40)).astype(np.float32)
    y = (x + rng.normal(0, 0.2, size=x.shape)).astype(np.float32)
    labels = rng.integers(0, 40, size=300)
    results = []
    for threads, block in (("1", 1 << 20), ("2", 1000), ("3", 4096)):
        monkeypatch.setenv("LOSSCTL_THREADS", threads)
        run = stream_kl(x, y, labels, both_directions=True, per_position=True, block_bytes=block)
        results.append(run)
    for other in results[1:]:
        assert other.stats == results[0].stats and other.reverse == results[0].reverse
        assert other.per_position is not None and results[0].per_position is not None
        np.testing.assert_array_equal(other.per_position, results[0].per_position)
