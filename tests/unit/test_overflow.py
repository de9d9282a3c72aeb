"""No intermediate overflow when the result is finite: losses and gradients against exact
references (mpmath at 60 digits, from the exact float64 inputs)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from lossctl.core.grad import loss_grad
from lossctl.core.losses import loss_result

mpmath.mp.dps = 60
BIG = [1e308, -1e308]


def _nll_terms(row: list[float]) -> list[mpmath.mpf]:
    x = [mpmath.mpf(v) for v in row]
    lse = mpmath.log(mpmath.fsum(mpmath.exp(v - max(x)) for v in x)) + max(x)
    return [lse - v for v in x]


def reference_loss(
    x: list[list[float]],
    t: list[int],
    *,
    weight: list[float] | None = None,
    eps: float = 0.0,
    reduction: str = "mean",
) -> float:
    classes = len(x[0])
    w = [mpmath.mpf(v) for v in (weight or [1.0] * classes)]
    e = mpmath.mpf(eps)
    total, denominator = mpmath.mpf(0), mpmath.mpf(0)
    for row, target in zip(x, t, strict=True):
        nll = _nll_terms(row)
        total += (1 - e) * w[target] * nll[target] + e / classes * mpmath.fsum(
            wc * n for wc, n in zip(w, nll, strict=True)
        )
        denominator += w[target]
    value = total / denominator if reduction == "mean" else total
    return float(value) if abs(value) < mpmath.mpf(2) ** 1024 else math.inf


def close(actual: float, expected: float, ulps: float = 8) -> bool:
    return math.isfinite(actual) and abs(actual - expected) <= ulps * math.ulp(expected)


@pytest.mark.parametrize(
    ("x", "t", "options"),
    [
        ([BIG], [1], {"reduction": "sum", "weight": [0.5, 0.5]}),  # the issue: inf, exact 1e308
        ([BIG], [0], {"eps": 0.1}),  # the issue: inf, exact 1e307
        ([BIG], [0], {"eps": 0.1, "reduction": "sum"}),
        ([BIG], [1], {"reduction": "sum", "weight": [1e-3, 0.25]}),
        ([[1e308, 0.0, -1e308, 5e307]], [2], {"reduction": "sum", "weight": [1, 1, 0.3, 1]}),
        ([[1e308, -1e308, -1e308]], [0], {"eps": 0.3, "weight": [1e308, 1e308, 1e308]}),
        ([BIG, [0.0, 1.0]], [1, 0], {"weight": [0.5, 0.5], "reduction": "sum"}),
        ([[-1.7e308, 1.7e308]], [0], {"reduction": "sum", "weight": [0.5, 1.0]}),
    ],
)
def test_per_row_losses_do_not_overflow(x: list[list[float]], t: list[int], options: dict) -> None:  # type: ignore[type-arg]
    expected = reference_loss(x, t, **options)
    assert math.isfinite(expected)
    result = loss_result(
        "cross_entropy",
        np.array(x),
        np.array(t),
        weight=options.get("weight"),
        reduction=options.get("reduction", "mean"),
        label_smoothing=options.get("eps", 0.0),
        class_dim=1,
    )
    assert close(float(result.loss), expected), (result.loss, expected)


def test_a_truly_infinite_loss_stays_inf() -> None:
    result = loss_result("cross_entropy", np.array([BIG]), np.array([1]), reduction="sum")
    assert result.loss == math.inf  # 2e308 is beyond float64


def test_float32_logits_whose_loss_only_fits_float64() -> None:
    x = np.array([[3e38, -3e38]], dtype=np.float32)
    expected = 2 * float(np.float32(3e38))
    assert float(loss_result("cross_entropy", x, np.array([1])).loss) == expected


def test_probability_targets_do_not_overflow() -> None:
    result = loss_result("cross_entropy", np.array([BIG]), np.array([[0.25, 0.5]]), reduction="sum")
    x = [mpmath.mpf(v) for v in BIG]
    nll = _nll_terms(BIG)
    expected = float(mpmath.mpf(0.25) * nll[0] + mpmath.mpf(0.5) * nll[1])
    assert x and close(float(result.loss), expected)
    zero = loss_result("cross_entropy", np.array([BIG]), np.array([[1.0, 0.0]]))
    assert float(zero.loss) == 0.0  # 0·(-2e308) is 0, not 0·(-inf)


def test_ordinary_rows_keep_their_bits() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 7)) * 30
    t = rng.integers(0, 7, size=64)
    ordinary = loss_result("cross_entropy", x, t, reduction="none", label_smoothing=0.2)
    mixed = loss_result(
        "cross_entropy",
        np.vstack([x, [[1e308, -1e308, 0, 0, 0, 0, 0]]]),
        np.append(t, 0),
        reduction="none",
        label_smoothing=0.2,
    )
    assert np.array_equal(np.asarray(mixed.loss)[:-1], np.asarray(ordinary.loss))
    assert math.isfinite(float(np.asarray(mixed.loss)[-1]))


@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_with_huge_weights(eps: float, reduction: str) -> None:
    """``-w 1e308,1e308`` gave an all-zero gradient (1/Σw overflowed)."""
    x = np.array([[0.0, 1.0], [2.0, -1.0]])
    t = np.array([0, 1])
    unit = loss_grad(
        "cross_entropy", x, t, weight=[1.0, 1.0], label_smoothing=eps, reduction=reduction
    )  # type: ignore[arg-type]
    huge = loss_grad(
        "cross_entropy", x, t, weight=[1e308, 1e308], label_smoothing=eps, reduction=reduction
    )  # type: ignore[arg-type]
    expected = unit if reduction == "mean" else unit * 1e308
    assert np.all(np.isfinite(huge)) and np.any(huge != 0)
    np.testing.assert_allclose(huge, expected, rtol=1e-15)


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
def test_gradient_with_tiny_weights(op: str) -> None:
    x = np.log(np.array([[0.25, 0.75], [0.5, 0.5]]))
    t = np.array([0, 1])
    unit = loss_grad(op, x, t, weight=[1.0, 3.0])  # type: ignore[arg-type]
    tiny = loss_grad(op, x, t, weight=[1e-320, 3e-320])  # type: ignore[arg-type]
    np.testing.assert_allclose(tiny, unit, rtol=1e-3)  # subnormal weights: 3e-320 is inexact


def test_probability_gradient_with_huge_weights() -> None:
    x = np.array([[0.0, 1.0]])
    q = np.array([[1.0, 1.0]])
    unit = loss_grad("cross_entropy", x, q, weight=[1.0, 1.0], reduction="sum")
    huge = loss_grad("cross_entropy", x, q, weight=[1e308, 1e308], reduction="sum")
    np.testing.assert_allclose(huge, unit * 1e308, rtol=1e-15)
