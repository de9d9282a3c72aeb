"""The float32 KL form (lossctl.core.kl_fast32) against mpmath and the float64 path.

Its bound, relative to the exact KL of the float32 rows: ``(44 + 14 E_p|e|) u``,
u = 2**-24. Identical rows and rows that differ by a constant give exactly 0; rows out of
its range get the float64 path's bits. Not timed.
"""

from __future__ import annotations

import numpy as np
import pytest

from lossctl.core.kl import kl_rows
from lossctl.core.kl_fast import Soft, fast_kl
from lossctl.core.kl_fast32 import fast_kl32, in_range, soft32
from lossctl.core.kl_stats import block_stats
from lossctl.core.kl_stream import stream_kl
from tests.helpers import float32_kl_bound, mp_kl

U = 2.0**-24


def bound(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.asarray(float32_kl_bound(x, y))


def kl32(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return fast_kl32(soft32(x, "t"), y, *in_range(y, y.max(axis=1).astype(np.float64)))


def kl64(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return kl_rows(x.astype(np.float64), y.astype(np.float64))


def pairs() -> tuple[np.ndarray, np.ndarray]:
    """Random and adversarial float32 rows, all in the float32 form's range."""
    rng = np.random.default_rng(17)
    c = 200
    x = rng.normal(0, 3, size=(12, c)).astype(np.float32)
    y = (x + rng.normal(0, 0.3, size=x.shape)).astype(np.float32)
    y[0] = x[0] + np.float32(2**-20) * (np.arange(c) % 3)  # KL ~ 1e-13: e at float32's ulp
    y[1] = np.nextafter(x[1], np.float32(np.inf))  # one ulp apart everywhere
    x[2] = rng.normal(0, 10, size=c).clip(-30, 30)  # nearly one-hot
    y[2] = x[2] + rng.normal(0, 3, size=c)
    y[3] = x[3] + rng.normal(0, 4, size=c)  # |e| far beyond the polynomial's range
    x[4, 5], y[4, 7] = 1e-30, -3e-9  # tiny logits: d inexact without TwoSum
    x[5, :] = rng.normal(0, 1, size=c)  # a flat distribution,
    y[5, 9] = x[5, 9] + 30.0  # q concentrated where p is not: e ~ -30
    x[6] += 40.0  # an offset: max near 50
    y[6] = x[6] + rng.normal(0, 1e-3, size=c)
    y[7, :] = x[7]
    y[7, 3] = np.nextafter(x[7, 3], np.float32(0))  # one class one ulp off
    return x, y


def test_within_the_bound_of_mpmath() -> None:
    x, y = pairs()
    got = kl32(x, y)
    for row in range(x.shape[0]):
        want = mp_kl(x[row], y[row])
        assert abs(got[row] - want) <= bound(x[row : row + 1], y[row : row + 1])[0] * want, row
    assert np.all(got > 0)


def test_random_blocks_within_the_bound_of_the_float64_path() -> None:
    rng = np.random.default_rng(3)
    for scale, classes in ((1.0, 50), (0.05, 1000), (1e-5, 300), (3.0, 7), (1e-3, 20000)):
        x = rng.normal(0, 2, size=(16, classes)).astype(np.float32)
        y = (x + rng.normal(0, scale, size=x.shape)).astype(np.float32)
        got, want = kl32(x, y), kl64(x, y)
        assert np.all(np.abs(got - want) <= bound(x, y) * want)


def test_identical_and_shifted_rows_give_exactly_zero() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(0, 2, size=(5, 64)).astype(np.float32)
    assert kl32(x, x.copy()).tolist() == [0.0] * 5
    x = np.round(x * 1024) / np.float32(1024)  # on a grid where the shift is exact
    shifted = (x.astype(np.float64) + 0.25).astype(np.float32)
    assert np.all(shifted.astype(np.float64) - x == 0.25)
    assert kl32(x, shifted).tolist() == [0.0] * 5


def test_rows_out_of_range_get_the_float64_bits() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(0, 2, size=(6, 40)).astype(np.float32)
    y = (x + rng.normal(0, 0.5, size=x.shape)).astype(np.float32)
    x[0, 0] = 70.0  # max > 64
    x[1, 0] = -90.0  # min < -80
    x[2, :20] -= 70.0  # spread > 64
    y[3, 1] = np.nan
    y[4, 2] = -np.inf
    y[5] = x[5] - 70.0 * (np.arange(40) % 2)  # e < -60
    got = kl32(x, y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    want = fast_kl(Soft.of(x64), y64)
    np.testing.assert_array_equal(got, want)
    assert got[4] == np.inf and np.isnan(got[3])


def test_block_stats_nlls_within_five_u_and_the_rest_exact() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(0, 4, size=(64, 300)).astype(np.float32)
    y = (x + rng.normal(0, 0.2, size=x.shape)).astype(np.float32)
    labels = rng.integers(0, 300, size=64)
    labels[3] = -100
    fast, values, back = block_stats(x, y, labels, reverse=True, fast=True, precision="auto")
    ref, values64, back64 = block_stats(x, y, labels, reverse=True, fast=True, precision="float64")
    assert fast.same_top1 == ref.same_top1 and fast.top_overlap == ref.top_overlap
    assert np.all(np.abs(values - values64) <= bound(x, y) * values64)
    assert back is not None and back64 is not None
    assert np.all(np.abs(back - back64) <= np.delete(bound(y, x), 3) * back64)
    keep = labels != -100
    rows = np.flatnonzero(keep)
    for soft, raw in ((soft32(x, "a"), x), (soft32(y, "b"), y)):
        nll = soft.nll(labels[keep], keep)
        want = Soft.of(raw.astype(np.float64)).nll(labels[keep], keep)
        assert np.all(np.abs(nll - want) <= 5 * U * want), rows
    assert fast.nll.count == ref.nll.count


@pytest.mark.parametrize("both", [False, True])
def test_stream_auto_within_the_bound_and_float64_unchanged(both: bool) -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(0, 2, size=(300, 40)).astype(np.float32)
    y = (x + rng.normal(0, 0.2, size=x.shape)).astype(np.float32)
    auto = stream_kl(x, y, both_directions=both, per_position=True, block_bytes=4096)
    f64 = stream_kl(x, y, both_directions=both, per_position=True, precision="float64")
    whole = stream_kl(
        x.astype(np.float64), y.astype(np.float64), both_directions=both, per_position=True
    )
    assert auto.per_position is not None and f64.per_position is not None
    assert whole.per_position is not None
    np.testing.assert_array_equal(f64.per_position, whole.per_position)
    assert np.all(np.abs(auto.per_position - f64.per_position) <= bound(x, y) * f64.per_position)


def test_stream_auto_is_independent_of_blocks_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(0, 2, size=(200, 300)).astype(np.float32)
    y = (x + rng.normal(0, 1e-3, size=x.shape)).astype(np.float32)  # |e| << 1/2 mostly
    y[7] += rng.normal(0, 2, size=300).astype(np.float32)  # one block with wide entries
    labels = rng.integers(0, 300, size=200)
    runs = []
    for threads, block in (("1", 1 << 20), ("2", 1300), ("3", 40000)):
        monkeypatch.setenv("LOSSCTL_THREADS", threads)
        runs.append(
            stream_kl(x, y, labels, both_directions=True, per_position=True, block_bytes=block)
        )
    for other in runs[1:]:
        assert other.stats == runs[0].stats and other.reverse == runs[0].reverse
        assert other.per_position is not None and runs[0].per_position is not None
        np.testing.assert_array_equal(other.per_position, runs[0].per_position)
