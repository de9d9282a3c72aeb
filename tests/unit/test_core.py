"""The numeric core: the worked example, accuracy, class-axis inference, refusals, properties."""

from __future__ import annotations

import pickle
import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lossctl import (
    AmbiguousClassAxisWarning,
    InputError,
    cross_entropy,
    log_softmax,
    loss_result,
    nll_loss,
    softmax,
)
from lossctl.core.spec import LossSpec

SEED_LOGITS = np.array([[1.1741, -0.4859], [-3.718, 1.5257], [0.0222, 0.5898]])
SEED_LABELS = np.array([1, 2])


def test_seed_example_cross_entropy_and_nll_with_inferred_class_axis() -> None:
    assert cross_entropy(SEED_LOGITS, SEED_LABELS) == pytest.approx(3.2654828147938195, rel=1e-15)
    assert nll_loss(SEED_LOGITS, SEED_LABELS) == pytest.approx(1.5641, rel=1e-15)
    result = loss_result("cross_entropy", SEED_LOGITS, SEED_LABELS)
    assert result.class_dim == 0
    assert (result.count, result.ignored, result.denominator) == (2, 0, 2.0)


def test_a_loss_spec_is_validated_immutable_and_travels() -> None:
    spec = LossSpec("cross_entropy", weight=[1, 2], reduction="sum", label_smoothing=0.1)
    assert spec.weight is not None and spec.weight.dtype == np.float64
    with pytest.raises(AttributeError):
        spec.reduction = "mean"  # type: ignore[misc]
    resolved = spec.with_class_dim(1)
    assert (resolved.class_dim, resolved.reduction, spec.class_dim) == (1, "sum", None)
    back = pickle.loads(pickle.dumps(resolved))  # as Dask sends it to workers
    assert repr(back) == repr(resolved) and "reduction='sum'" in repr(back)
    for bad in ({"op": "bce"}, {"weight": [1.0, np.nan]}, {"label_smoothing": 2.0}):
        with pytest.raises(InputError):
            LossSpec(**bad)  # type: ignore[arg-type]


def test_seed_example_intermediate_steps() -> None:
    probs = softmax(SEED_LOGITS, 0)
    np.testing.assert_allclose(probs[:, 0], [0.7555, 0.0057, 0.2388], atol=5e-5)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-15)
    logp = log_softmax(SEED_LOGITS, 0)
    picked = logp[SEED_LABELS, [0, 1]]
    np.testing.assert_allclose(picked, [-5.1724, -1.3586], atol=5e-5)
    assert nll_loss(logp, SEED_LABELS) == pytest.approx(cross_entropy(SEED_LOGITS, SEED_LABELS))


def exact_confident_loss(classes: int, target_logit: int) -> float:
    """-log softmax for logits all 0 except the target: log(1 + (C-1)·e^-x), to 40 digits."""
    mpmath.mp.dps = 40
    return float(mpmath.log1p((classes - 1) * mpmath.exp(-target_logit)))


@pytest.mark.parametrize("target_logit", [20, 30, 60, 100])
@pytest.mark.parametrize("target", [0, 5, 8, 50256])
def test_confident_predictions_stay_exact(target_logit: int, target: int) -> None:
    logits = np.zeros(50257, dtype=np.float32)
    logits[target] = target_logit
    exact = exact_confident_loss(50257, target_logit)
    got = cross_entropy(logits, np.array(target))
    assert got == pytest.approx(exact, rel=1e-12)
    if target_logit == 20:
        assert got == pytest.approx(1.0357997185876725e-4, rel=1e-12)


def test_large_logits_use_the_max_shift() -> None:
    x = np.array([[1e4, 0.0, -1e4]])
    assert cross_entropy(x, np.array([1])) == 10000.0
    assert cross_entropy(x, np.array([2])) == 20000.0


def test_infinities_follow_pytorch() -> None:
    assert cross_entropy([[1.0, -np.inf, 0.0]], [0]) == pytest.approx(0.31326166, rel=1e-7)
    assert cross_entropy([[1.0, -np.inf, 0.0]], [1]) == np.inf
    assert np.isnan(cross_entropy([[-np.inf, -np.inf]], [0]))
    assert np.isnan(cross_entropy([[np.inf, 0.0]], [1]))
    assert cross_entropy([[1.0, -np.inf, 0.0]], [0], label_smoothing=0.1) == np.inf
    assert np.all(np.isnan(softmax([[np.inf, 0.0]])))
    # NaN in an ignored row does not leak into the loss.
    got = cross_entropy([[np.nan, 0.0], [1.0, 2.0]], [-100, 1], class_dim=1)
    assert got == pytest.approx(cross_entropy([[1.0, 2.0]], [1]))


def test_empty_and_all_ignored_inputs() -> None:
    empty = np.zeros((0, 4))
    assert np.isnan(cross_entropy(empty, np.zeros(0)))
    assert cross_entropy(empty, np.zeros(0), reduction="sum") == 0.0
    assert np.asarray(cross_entropy(empty, np.zeros(0), reduction="none")).shape == (0,)
    assert np.isnan(nll_loss([[0.1, 0.2]], [-100]))
    assert nll_loss([[0.1, 0.2]], [-100], reduction="sum") == 0.0


def test_ignore_index_ignores_targets_not_classes() -> None:
    x = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    # class 0 still in the softmax denominator of row 1
    got = cross_entropy(x, [0, 1], ignore_index=0)
    assert got == pytest.approx(-log_softmax(x[1])[1])


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        (((3, 2), (2,)), 0),
        (((2, 3), (2,)), 1),
        (((4, 5, 7), (4, 5)), 2),
        (((4, 7, 5), (4, 5)), 1),
        (((7,), ()), 0),
        (((2, 3), (2, 3)), 1),  # probability targets: PyTorch's axis
    ],
)
def test_class_axis_is_inferred_from_shapes(
    shapes: tuple[tuple[int, ...], tuple[int, ...]], expected: int
) -> None:
    input_shape, target_shape = shapes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = loss_result(
            "cross_entropy", np.zeros(input_shape), np.zeros(target_shape, dtype=np.int64)
        )
    assert result.class_dim == expected


def test_ambiguous_class_axis_warns_and_uses_pytorch_convention() -> None:
    x = np.arange(18.0).reshape(2, 3, 3) / 7
    y = np.array([[0, 1, 2], [2, 1, 0]])
    with pytest.warns(AmbiguousClassAxisWarning, match="axes 1, 2"):
        got = cross_entropy(x, y)
    assert got == pytest.approx(cross_entropy(x, y, class_dim=1))
    assert got != pytest.approx(cross_entropy(x, y, class_dim=2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label_smoothing": -0.1}, "label_smoothing must be between 0.0 and 1.0"),
        ({"label_smoothing": 1.5}, "label_smoothing must be between 0.0 and 1.0"),
        ({"label_smoothing": float("nan")}, "label_smoothing must be between 0.0 and 1.0"),
        ({"weight": [1.0, 2.0]}, "one value per class"),
        ({"weight": [1.0, np.nan, 1.0]}, "finite"),
        ({"reduction": "avg"}, "reduction must be one of"),
        ({"class_dim": 2}, "class axis 2 is out of range"),
        ({"class_dim": 0}, "does not fit input shape"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        cross_entropy(np.zeros((2, 3)), [0, 1], **kwargs)  # type: ignore[arg-type]


def test_bad_targets_name_position_and_value() -> None:
    with pytest.raises(InputError, match=r"target 3 at position \(1, 0\) is out of range") as err:
        cross_entropy(np.zeros((2, 3, 1)), [[0], [3]])
    assert err.value.subject == "target"
    with pytest.raises(InputError, match=r"target 1\.5 at position \(0,\) is not a whole"):
        cross_entropy(np.zeros((2, 3)), np.array([1.5, 0.0]))
    with pytest.raises(InputError, match="target -1"):
        nll_loss(np.zeros((2, 3)), [-1, 0])
    with pytest.raises(InputError, match="0 classes"):
        cross_entropy(np.zeros((2, 0)), [0, 0])


def test_probability_target_refusals() -> None:
    with pytest.raises(InputError, match="ignore_index applies to class-index targets"):
        cross_entropy(np.zeros((2, 3)), np.full((2, 3), 1 / 3), ignore_index=0)
    with pytest.raises(InputError, match="nll_loss takes class-index targets"):
        nll_loss(np.zeros((2, 3)), np.full((2, 3), 1 / 3))


def test_weighted_mean_divides_by_target_weights() -> None:
    x = np.array([[0.3, 1.2, -0.7], [2.0, 0.1, 0.4]])
    w = np.array([0.5, 2.0, 3.0])
    per = np.asarray(cross_entropy(x, [1, 2], weight=w, reduction="none"))
    assert cross_entropy(x, [1, 2], weight=w) == pytest.approx(per.sum() / (2.0 + 3.0))


# ---- properties -----------------------------------------------------------------------------

finite = st.floats(-30, 30, allow_nan=False, width=64)


@st.composite
def logits_and_targets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    rows = draw(st.integers(1, 6))
    classes = draw(st.integers(1, 6))
    x = draw(hnp.arrays(np.float64, (rows, classes), elements=finite))
    y = draw(hnp.arrays(np.int64, (rows,), elements=st.integers(0, classes - 1)))
    return x, y


@settings(max_examples=200, deadline=None)
@given(logits_and_targets(), st.floats(-1e3, 1e3))
def test_shift_invariance(data: tuple[np.ndarray, np.ndarray], shift: float) -> None:
    x, y = data
    assert cross_entropy(x + shift, y, class_dim=1) == pytest.approx(
        cross_entropy(x, y, class_dim=1), rel=1e-9, abs=1e-9
    )


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5), elements=finite)
)
def test_softmax_rows_sum_to_one(x: np.ndarray) -> None:
    for axis in range(x.ndim):
        np.testing.assert_allclose(softmax(x, axis).sum(axis=axis), 1.0, rtol=1e-12)
        np.testing.assert_allclose(np.exp(log_softmax(x, axis)), softmax(x, axis), rtol=1e-12)


@settings(max_examples=200, deadline=None)
@given(logits_and_targets(), st.sampled_from([0.0, 0.1, 1.0]))
def test_one_hot_probability_targets_equal_index_targets(
    data: tuple[np.ndarray, np.ndarray], smoothing: float
) -> None:
    x, y = data
    one_hot = np.eye(x.shape[1])[y]
    soft = cross_entropy(x, one_hot, label_smoothing=smoothing, reduction="none", class_dim=1)
    hard = cross_entropy(x, y, label_smoothing=smoothing, reduction="none", class_dim=1)
    np.testing.assert_allclose(soft, hard, rtol=1e-9, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(logits_and_targets(), st.data())
def test_ignore_index_equals_dropping_positions(
    data: tuple[np.ndarray, np.ndarray], draw: st.DataObject
) -> None:
    x, y = data
    drop = draw.draw(hnp.arrays(np.bool_, y.shape))
    labelled = np.where(drop, -100, y)
    for reduction in ("mean", "sum"):
        got = cross_entropy(x, labelled, reduction=reduction, class_dim=1)  # type: ignore[arg-type]
        kept = cross_entropy(x[~drop], y[~drop], reduction=reduction, class_dim=1)  # type: ignore[arg-type]
        np.testing.assert_allclose(got, kept, rtol=1e-12, equal_nan=True)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4), st.integers(2, 5), st.integers(1, 4), st.data())
def test_moving_the_class_axis_gives_the_same_result(
    n: int, c: int, d: int, draw: st.DataObject
) -> None:
    x = draw.draw(hnp.arrays(np.float64, (n, c, d), elements=finite))
    y = draw.draw(hnp.arrays(np.int64, (n, d), elements=st.integers(0, c - 1)))
    expected = cross_entropy(x, y, class_dim=1, reduction="none")
    moved = np.moveaxis(x, 1, 2)
    np.testing.assert_allclose(cross_entropy(moved, y, class_dim=2, reduction="none"), expected)
    np.testing.assert_allclose(cross_entropy(moved, y, class_dim=-1, reduction="none"), expected)
