"""Block statistics computed chunk by chunk (lossctl.core.kl_block) and the doctor's
probability check that stops once decided: the same results as one chunk, one look.

A stream unit is several kernel chunks summarised once; these tests split the same
rows into chunks of one row, a few rows and all rows and require every statistic and
every per-row value to be equal, on adversarial rows (identical, one-hot, -inf and
huge logits, NaN, nearly identical, out of the float32 form's range). Not timed.
"""

from __future__ import annotations

import numpy as np
import pytest

from lossctl.core.kl import kl_rows
from lossctl.core.kl_fast import top_members, top_overlap
from lossctl.core.kl_stats import block_stats
from lossctl.core.spec import Precision
from lossctl.doctor.kl import KLInputCheck
from tests.helpers import float32_kl_bound


def adversarial32() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(31)
    c = 300
    x = rng.normal(0, 2, size=(14, c)).astype(np.float32)
    y = (x + rng.normal(0, 0.2, size=x.shape)).astype(np.float32)
    y[0] = x[0]  # identical: exactly 0
    y[1] = np.nextafter(x[1], np.float32(np.inf))  # one ulp apart everywhere
    x[2] = -20.0  # nearly one-hot
    x[2, 17] = 20.0
    x[3] = np.round(x[3] * 64) / 64
    y[3] = x[3] + np.float32(3.0)  # a constant shift (exact in float32): exactly 0
    x[4, :200] = -np.inf  # -inf logits: float64 path
    x[5, 9] = np.float32(1e30)  # huge logit: float64 path
    x[6, 4] = np.nan  # NaN: reference ranking for its chunk
    y[7] = x[7] + rng.normal(0, 3, size=c).astype(np.float32)  # |e| beyond 1/2
    y[8] = x[8] + rng.normal(0, 1e-5, size=c).astype(np.float32)  # nearly identical
    x[9, 3], y[9, 5] = 1e-30, -3e-9  # tiny logits: d inexact without TwoSum
    x[10, :] = 1.0  # all tied: the top five are the lowest columns
    labels = rng.integers(0, c, size=14)
    labels[[2, 11]] = -100  # ignored rows in the middle of chunks
    return x, y, labels


def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (
        a is not None and b is not None and np.array_equal(a, b, equal_nan=True)
    )


@pytest.mark.parametrize("precision", ["auto", "float64"])
@pytest.mark.parametrize("fast", [True, False])
def test_block_stats_do_not_depend_on_the_chunks(precision: Precision, fast: bool) -> None:
    x, y, labels = adversarial32()
    whole = block_stats(x, y, labels, reverse=True, fast=fast, precision=precision)
    for chunk in (1, 3 * 300 * 4, 5 * 300 * 4):  # one row, three rows, five rows a chunk
        split = block_stats(
            x,
            y,
            labels,
            reverse=True,
            fast=fast,
            precision=precision,
            chunk_bytes=chunk,
        )
        if fast and precision == "float64":  # the float64 polynomial's degree is per chunk
            assert split[0].nll == whole[0].nll and split[0].delta_p == whole[0].delta_p
            assert split[0].same_top1 == whole[0].same_top1
            assert split[0].top_overlap == whole[0].top_overlap
            np.testing.assert_allclose(split[1], whole[1], rtol=2.0**-50, atol=0)
            continue
        assert split[0] == whole[0]
        assert same(split[1], whole[1]) and same(split[2], whole[2])


def test_chunked_block_stats_keep_the_float32_bound_and_exact_zeros() -> None:
    x, y, labels = adversarial32()
    stats, values, _ = block_stats(x, y, labels, fast=True, precision="auto", chunk_bytes=1)
    want = kl_rows(x.astype(np.float64), y.astype(np.float64))
    assert values[0] == 0.0 and values[3] == 0.0 and np.isnan(values[6])
    finite = np.isfinite(want) & (want > 0)
    safe = np.where(np.isfinite(x), x, 0).astype(np.float32)
    limit = np.asarray(float32_kl_bound(safe, np.where(np.isfinite(y), y, 0)))
    assert np.all(np.abs(values[finite] - want[finite]) <= limit[finite] * want[finite])
    ref = (top_members(x.astype(np.float64), 5) & top_members(y.astype(np.float64), 5)).sum(1)
    keep = labels != -100
    assert stats.top_overlap == int(ref[keep].sum())


def test_top_overlap_takes_nan_from_the_known_maxima() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 2000)).astype(np.float32)
    y = (x + rng.normal(0, 0.5, size=x.shape)).astype(np.float32)
    maxima = (x.max(axis=1).astype(np.float64), y.max(axis=1).astype(np.float64))
    got = top_overlap(x, y, 5, maxima)
    want = (top_members(x.astype(np.float64), 5) & top_members(y.astype(np.float64), 5)).sum(1)
    assert got is not None and got.tolist() == want.tolist()
    y[2, 7] = np.nan
    assert top_overlap(x, y, 5, (maxima[0], y.max(axis=1).astype(np.float64))) is None
    assert top_overlap(x, y, 5, (maxima[0], None)) is None  # unknown: looked up


def _findings(check: KLInputCheck) -> list[tuple[str, object]]:
    return [(f.code.value, f.evidence) for f in check.findings({"reference": "r", "other": "o"})]


def test_probability_check_decided_early_gives_the_findings_of_one_look() -> None:
    rng = np.random.default_rng(4)
    probs = rng.random(size=(12, 8))
    probs /= probs.sum(axis=1, keepdims=True)
    logits = rng.normal(size=(12, 8))
    for ref in (probs, np.vstack((probs[:6], logits[6:])), np.vstack((logits[:6], probs[6:]))):
        whole, blocks = KLInputCheck(False), KLInputCheck(False)
        whole.observe(ref, logits)
        for start in range(0, 12, 4):
            blocks.observe(ref[start : start + 4], logits[start : start + 4])
        assert _findings(blocks) == _findings(whole)
        assert blocks.tallies["reference"].rows == 12
    assert _findings(whole) == []  # the last: probabilities after logits
    first = KLInputCheck(False)
    first.observe(probs, probs)
    assert len(_findings(first)) == 2  # both inputs are probabilities
