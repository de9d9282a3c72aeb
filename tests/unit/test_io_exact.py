"""Exact integers: the float64 gate for integer logits, and exact ignore_index."""

from __future__ import annotations

import numpy as np
import pytest

from lossctl.core.losses import cross_entropy
from lossctl.errors import InputError, ReadError
from lossctl.io.exact import exact_float64


def test_inexact_int64_logits_are_refused_with_position() -> None:
    with pytest.raises(ReadError, match=r"integer 1152921504606846977 at \[0\]\[1\]"):
        exact_float64(np.array([[2**60, 2**60 + 1]], dtype=np.int64), "x.npy")


@pytest.mark.parametrize(
    "values",
    [[2**60, 3], [2**53, -(2**53)], [2**63 - 2**10, 0]],
)
def test_representable_integers_pass(values: list[int]) -> None:
    out = exact_float64(np.array(values, dtype=np.int64), "x.npy")
    assert out.dtype == np.float64 and [int(v) for v in out] == values


def test_uint64_max_is_refused() -> None:
    with pytest.raises(ReadError, match=r"integer 18446744073709551615 at \[1\]"):
        exact_float64(np.array([0, 2**64 - 1], dtype=np.uint64), "x.npy")


def test_floats_pass_through() -> None:
    array = np.array([1.5], dtype=np.float32)
    assert exact_float64(array, "x") is array


def test_float_label_is_not_ignored_by_a_rounding_ignore_index() -> None:
    # 2**53 == float(2**53 + 1): the old comparison ignored this label silently
    with pytest.raises(InputError, match="out of range"):
        cross_entropy(np.zeros((1, 3)), np.array([2.0**53]), ignore_index=2**53 + 1)


def test_int_label_compared_exactly() -> None:
    with pytest.raises(InputError, match="out of range"):
        cross_entropy(np.zeros((1, 3)), np.array([2**53], dtype=np.int64), ignore_index=2**53 + 1)
    loss = cross_entropy(np.zeros((2, 3)), np.array([2**53 + 1, 1]), ignore_index=2**53 + 1)
    assert float(loss) == pytest.approx(np.log(3))
