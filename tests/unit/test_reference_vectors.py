"""Every PyTorch reference case (tests/data/reference) through the Python API."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from lossctl import InputError, cross_entropy, log_softmax, nll_loss, softmax
from tests.conftest import VECTORS, as_array, load_reference_cases

CASES = load_reference_cases()
RTOL = 1e-9
ATOL = 1e-12


def run_case(case: dict[str, Any]) -> Any:
    x = as_array(case, "input", "input_shape")
    op = case["op"]
    if op in ("softmax", "log_softmax"):
        fn = softmax if op == "softmax" else log_softmax
        return fn(x, case["dim"])
    target = as_array(case, "target", "target_shape")
    options = dict(case.get("options", {}))
    kwargs: dict[str, Any] = {"class_dim": case["class_dim"]}
    for name in ("weight", "ignore_index", "reduction"):
        if name in options:
            kwargs[name] = options[name]
    if op == "nll_loss":
        assert "label_smoothing" not in options
        return nll_loss(x, target, **kwargs)
    if "label_smoothing" in options:
        kwargs["label_smoothing"] = options["label_smoothing"]
    return cross_entropy(x, target, **kwargs)


@pytest.mark.parametrize("case", [c for c in CASES if "error" not in c], ids=lambda c: c["id"])
def test_reference_case_matches_pytorch(case: dict[str, Any]) -> None:
    expected = as_array(case, "expected", "expected_shape")
    got = np.asarray(run_case(case))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, equal_nan=True)


@pytest.mark.parametrize("case", [c for c in CASES if "error" in c], ids=lambda c: c["id"])
def test_reference_error_case_is_refused(case: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        run_case(case)


def test_every_case_is_collected() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)) == 257


def test_reference_file_is_the_shared_copy() -> None:
    """The committed copy is byte for byte the shared file it was taken from."""
    digest = hashlib.sha256(VECTORS.read_bytes()).hexdigest()
    assert digest == "a070c750210fdac9fbbf6952bbbab9c4bb81ed3ed803b4b9056a05b0c6e2c6bf"
