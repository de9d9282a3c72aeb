"""The numeric core: softmax, log-softmax, NLL and cross-entropy, PyTorch's semantics.

Pure NumPy: no I/O, no printing. Everything is computed in float64 whatever the
input dtype, with the maximum shifted out and the maximum term split off with
``log1p`` so that confident predictions keep their small losses exactly, except
cross-entropy with class-index targets and no label smoothing, which goes through
the blocked kernel of :mod:`lossctl.core.kernels` (float32 ``exp`` with float64 sums for
float16/float32 input unless ``precision="float64"``; no float64 copy of the input)::

    m      = max_c x_c
    tail   = sum_{c != argmax} exp(x_c - m)
    lse    = m + log1p(tail)                      # log-sum-exp
    logp_c = (x_c - m) - log1p(tail)              # log-softmax
    nll    = log1p(tail) - (x_t - m)              # -log softmax(x)_t
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from lossctl.core.exactsum import ExactSum, exact_mean, exact_sum
from lossctl.core.kernels import PRECISIONS, Precision, nll_of_logits
from lossctl.errors import InputError

Reduction = Literal["mean", "sum", "none"]
TargetKind = Literal["indices", "probabilities"]
LossOp = Literal["cross_entropy", "nll_loss"]
FloatArray = npt.NDArray[np.float64]

REDUCTIONS: tuple[Reduction, ...] = ("mean", "sum", "none")
DEFAULT_IGNORE_INDEX = -100


class AmbiguousClassAxisWarning(UserWarning):
    """Several axes of the input could hold the classes; PyTorch's convention was used."""


@dataclass(frozen=True)
class LossResult:
    """A loss with everything it was computed from.

    ``loss`` is ``total / denominator`` for ``mean``, ``total`` for ``sum`` and
    ``per_position`` for ``none``. ``total`` and ``denominator`` are the exact
    partial sums, so results over shards can be merged.
    """

    op: LossOp
    loss: float | FloatArray
    per_position: FloatArray
    total: float
    denominator: float
    exact_total: ExactSum | None  # None when a per-position loss is NaN or infinite
    exact_denominator: ExactSum
    count: int
    ignored: int
    class_dim: int
    input_shape: tuple[int, ...]
    reduction: Reduction
    target_kind: TargetKind


@dataclass(frozen=True)
class RowStats:
    """Per-position log-sum-exp pieces of logits laid out as (positions, classes)."""

    shifted: FloatArray  # x - max, shape (M, C)
    log_norm: FloatArray  # log1p(tail) = log sum exp(x - max), shape (M,)


def _real_array(x: npt.ArrayLike, what: str) -> npt.NDArray[np.generic]:
    array = np.asarray(x)
    if array.dtype.kind not in "iuf":
        raise InputError(f"{what} must hold real numbers, got dtype {array.dtype}", what)
    return array


def _as_float64(x: npt.ArrayLike, what: str) -> FloatArray:
    return np.asarray(_real_array(x, what), dtype=np.float64)


def normalize_axis(axis: int, ndim: int, what: str) -> int:
    """``axis`` as a non-negative index into ``ndim`` axes (negative counts from the end)."""
    if ndim == 0:
        raise InputError(f"the input is a single number: it has no axis for the {what}", "input")
    if not -ndim <= axis < ndim:
        raise InputError(
            f"{what} {axis} is out of range for an input with {ndim} axes "
            f"(valid: {-ndim} to {ndim - 1})"
        )
    return axis % ndim


def row_stats(rows: FloatArray) -> RowStats:
    """Max-shift and ``log1p`` log-normaliser of (M, C) float64 rows.

    The maximum term contributes exactly ``exp(0) = 1``; it is split off so
    ``log(1 + tail)`` is evaluated as ``log1p(tail)`` without rounding ``tail``.
    """
    count, classes = rows.shape
    if classes == 0:
        empty = np.empty((count, 0))
        return RowStats(shifted=empty, log_norm=np.full(count, -np.inf))
    with np.errstate(invalid="ignore", over="ignore"):
        argmax = np.argmax(rows, axis=1)
        maximum = np.take_along_axis(rows, argmax[:, None], axis=1)
        shifted = rows - maximum
        terms = np.exp(shifted)
        np.put_along_axis(terms, argmax[:, None], 0.0, axis=1)
        log_norm = np.log1p(terms.sum(axis=1))
    # A row whose maximum is NaN or infinite is NaN throughout, as in PyTorch.
    bad = ~np.isfinite(maximum[:, 0])
    if bad.any():
        log_norm[bad] = np.nan
    return RowStats(shifted=shifted, log_norm=log_norm)


def log_softmax_rows(rows: FloatArray, stats: RowStats | None = None) -> FloatArray:
    """``logp = (x - m) - log1p(tail)`` for (M, C) rows."""
    stats = row_stats(rows) if stats is None else stats
    with np.errstate(invalid="ignore"):
        return stats.shifted - stats.log_norm[:, None]


def _rows_last(x: FloatArray, axis: int) -> tuple[FloatArray, tuple[int, ...]]:
    """Move ``axis`` last and flatten the rest: (M, C) rows and the positions' shape."""
    moved = np.moveaxis(x, axis, -1)
    return moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1]), moved.shape[:-1]


def _apply_along(
    x: npt.ArrayLike, dim: int, row_fn: Callable[[FloatArray], FloatArray]
) -> FloatArray:
    """Apply a (M, C) -> (M, C) row function along axis ``dim`` of ``x``."""
    values = _as_float64(x, "input")
    axis = normalize_axis(dim, values.ndim, "softmax axis")
    rows, _ = _rows_last(values, axis)
    moved_shape = values.shape[:axis] + values.shape[axis + 1 :] + (values.shape[axis],)
    return np.moveaxis(row_fn(rows).reshape(moved_shape), -1, axis)


def log_softmax(x: npt.ArrayLike, dim: int = -1) -> FloatArray:
    """``log softmax(x)_c = (x_c - m) - log1p(sum_{j != argmax} exp(x_j - m))`` along ``dim``."""
    return _apply_along(x, dim, log_softmax_rows)


def softmax(x: npt.ArrayLike, dim: int = -1) -> FloatArray:
    """``softmax(x)_c = exp(x_c - m) / sum_j exp(x_j - m)`` along ``dim``."""

    def softmax_rows(rows: FloatArray) -> FloatArray:
        with np.errstate(over="ignore"):
            return np.exp(log_softmax_rows(rows))

    return _apply_along(x, dim, softmax_rows)


def torch_class_dim(ndim: int) -> int:
    """PyTorch's class axis: 0 for a 1-D input, else 1."""
    return 0 if ndim == 1 else 1


def infer_class_dim(input_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> int:
    """The axis of the input whose removal gives the target's shape.

    Probability targets (same shape as the input) use PyTorch's axis. When
    several axes fit (equal sizes side by side), PyTorch's axis is used if it
    fits, else the last fitting axis, with an :class:`AmbiguousClassAxisWarning`.
    """
    ndim = len(input_shape)
    if ndim == 0:
        raise InputError("input is a scalar; it needs at least one axis of classes")
    if target_shape == input_shape:
        return torch_class_dim(ndim)
    fitting = [
        axis for axis in range(ndim) if input_shape[:axis] + input_shape[axis + 1 :] == target_shape
    ]
    if not fitting:
        raise InputError(
            f"target shape {_fmt_shape(target_shape)} does not fit input shape "
            f"{_fmt_shape(input_shape)}: class-index targets need the input's shape without "
            "its class axis, probability targets the input's shape"
        )
    if len(fitting) == 1:
        return fitting[0]
    default = torch_class_dim(ndim)
    chosen = default if default in fitting else fitting[-1]
    warnings.warn(
        f"the class axis is ambiguous: axes {', '.join(map(str, fitting))} of input shape "
        f"{_fmt_shape(input_shape)} all fit target shape {_fmt_shape(target_shape)}; "
        f"using axis {chosen} (pass class_dim / --class-dim to choose)",
        AmbiguousClassAxisWarning,
        stacklevel=3,
    )
    return chosen


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return str(tuple(int(n) for n in shape))


def _position(flat_index: int, shape: tuple[int, ...]) -> str:
    if not shape:
        return "the only position"
    return "position " + _fmt_shape(tuple(int(i) for i in np.unravel_index(flat_index, shape)))


def _check_weight(weight: npt.ArrayLike | None, classes: int) -> FloatArray | None:
    if weight is None:
        return None
    w = _as_float64(weight, "weight")
    if w.ndim != 1 or w.shape[0] != classes:
        raise InputError(
            f"weight must have one value per class ({classes}), got shape {_fmt_shape(w.shape)}",
            "weight",
        )
    if not np.all(np.isfinite(w)):
        raise InputError("weight values must be finite numbers", "weight")
    return w


def _check_options(reduction: str, label_smoothing: float, ignore_index: int) -> None:
    if not -(2**63) <= ignore_index < 2**63:
        raise InputError(
            f"ignore_index must fit in a 64-bit integer, as in PyTorch; got {ignore_index}"
        )
    if reduction not in REDUCTIONS:
        raise InputError(f"reduction must be one of mean, sum, none; got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:  # also refuses NaN
        raise InputError(f"label_smoothing must be between 0.0 and 1.0; got {label_smoothing}")


def _class_indices(
    target: FloatArray | npt.NDArray[np.integer], classes: int, ignore_index: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """Validated class indices (ignored positions set to 0) and the counted mask."""
    flat = target.reshape(-1)
    if flat.dtype.kind == "f":
        bad = ~np.isfinite(flat) | (flat != np.round(flat))
        if bad.any():
            where = int(np.argmax(bad))
            raise InputError(
                f"target {float(flat[where])} at {_position(where, target.shape)} is not a whole "
                "class index",
                "target",
            )
    if flat.dtype.kind == "f" and float(ignore_index) != ignore_index:
        # no float64 equals an integer it cannot hold; `flat != ignore_index` would round it
        counted = np.ones(flat.shape, dtype=np.bool_)
    else:
        counted = flat != ignore_index
    out_of_range = counted & ((flat < 0) | (flat >= classes))
    if out_of_range.any():
        where = int(np.argmax(out_of_range))
        value = flat[where]
        shown = int(value) if abs(float(value)) < 2**63 else float(value)
        raise InputError(
            f"target {shown} at {_position(where, target.shape)} is out of range: there are "
            f"{classes} classes, so targets must be in [0, {classes}) or equal "
            f"ignore_index ({ignore_index})",
            "target",
        )
    indices = np.where(counted, flat, 0).astype(np.intp)
    return indices, counted


@dataclass(frozen=True)
class _Common:
    class_dim: int
    input_shape: tuple[int, ...]
    reduction: Reduction


def _reduce(
    op: LossOp,
    per_position: FloatArray,
    denominator: ExactSum,
    count: int,
    ignored: int,
    target_kind: TargetKind,
    common: _Common,
) -> LossResult:
    exact_total = exact_sum(per_position)
    total = float(np.sum(per_position)) if exact_total is None else exact_total.to_float()
    loss: float | FloatArray
    if common.reduction == "none":
        loss = per_position
    elif common.reduction == "sum":
        loss = total
    else:
        loss = exact_mean(exact_total, denominator, total)
    return LossResult(
        op=op,
        loss=loss,
        per_position=per_position,
        total=total,
        denominator=denominator.to_float(),
        exact_total=exact_total,
        exact_denominator=denominator,
        count=count,
        ignored=ignored,
        class_dim=common.class_dim,
        input_shape=common.input_shape,
        reduction=common.reduction,
        target_kind=target_kind,
    )


def _resolve_class_dim(
    input_shape: tuple[int, ...], target_shape: tuple[int, ...], class_dim: int | None
) -> int:
    if class_dim is None:
        return infer_class_dim(input_shape, target_shape)
    axis = normalize_axis(class_dim, len(input_shape), "class axis")
    if target_shape != input_shape:
        expected = input_shape[:axis] + input_shape[axis + 1 :]
        if target_shape != expected:
            raise InputError(
                f"target shape {_fmt_shape(target_shape)} does not fit input shape "
                f"{_fmt_shape(input_shape)} with class axis {axis}: expected "
                f"{_fmt_shape(expected)} (class indices) or {_fmt_shape(input_shape)} "
                "(probabilities)"
            )
    return axis


def loss_result(
    op: LossOp,
    input: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    weight: npt.ArrayLike | None = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    class_dim: int | None = None,
    precision: Precision = "auto",
    on_rows: Callable[[int, int], None] | None = None,
) -> LossResult:
    """NLL or cross-entropy with the counts and partial sums behind it.

    Class-index targets: ``l_n = (1-eps)·w[t_n]·(-logp[n, t_n]) + (eps/C)·sum_c w_c·(-logp[n, c])``,
    0 where ``t_n == ignore_index``; mean divides by ``sum_n w[t_n]`` over counted positions.
    Probability targets: ``l_n = -sum_c w_c·q'[n, c]·logp[n, c]`` with
    ``q' = (1-eps)·q + eps/C``; mean divides by the number of positions.
    For ``nll_loss`` the input is taken as ``logp`` as it is. ``on_rows(k, M)`` reports
    progress through the blocked kernel (``k`` more of ``M`` positions done). Cross-entropy with
    class-index targets and no smoothing reads the input in its own dtype, block by
    block (:func:`lossctl.kernels.nll_of_logits`, ``precision`` "auto" or "float64");
    every other path converts it to float64.
    """
    array = _real_array(input, "input")
    labels = np.asarray(target)
    if labels.dtype.kind not in "iuf":
        raise InputError(f"target must hold numbers, got dtype {labels.dtype}", "target")
    _check_options(reduction, label_smoothing, ignore_index)
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of auto, float64; got {precision!r}")
    axis = _resolve_class_dim(array.shape, labels.shape, class_dim)
    classes = array.shape[axis]
    w = _check_weight(weight, classes)
    positions_shape = array.shape[:axis] + array.shape[axis + 1 :]
    common = _Common(class_dim=axis, input_shape=tuple(array.shape), reduction=reduction)

    def float64_rows() -> FloatArray:
        return _rows_last(np.asarray(array, dtype=np.float64), axis)[0]

    if labels.shape == array.shape:
        if op == "nll_loss":
            raise InputError(
                "nll_loss takes class-index targets (the input's shape without the class axis); "
                f"the target has the input's shape {_fmt_shape(array.shape)}"
            )
        if ignore_index != DEFAULT_IGNORE_INDEX:
            raise InputError(
                "ignore_index applies to class-index targets; probability targets have no "
                "ignored positions (drop --ignore-index)"
            )
        probs, _ = _rows_last(np.asarray(labels, dtype=np.float64), axis)
        if label_smoothing > 0.0:
            probs = probs * (1.0 - label_smoothing) + label_smoothing / classes
        rows = float64_rows()
        logp = log_softmax_rows(rows)
        weighted = probs if w is None else probs * w
        with np.errstate(invalid="ignore", over="ignore"):
            per_row = -np.sum(weighted * logp, axis=1)
        count = rows.shape[0]
        return _reduce(
            op,
            per_row.reshape(positions_shape),
            ExactSum(count, 0),
            count,
            0,
            "probabilities",
            common,
        )

    if classes == 0:
        raise InputError("the input has 0 classes along its class axis; there is nothing to pick")
    indices, counted = _class_indices(labels, classes, ignore_index)
    target_weight = np.ones(indices.shape) if w is None else w[indices]
    target_weight = np.where(counted, target_weight, 0.0)
    if op == "nll_loss":
        picked = -np.take_along_axis(float64_rows(), indices[:, None], axis=1)[:, 0]
        smooth = None
    elif label_smoothing == 0.0:
        moved = np.moveaxis(array, axis, -1)
        picked = nll_of_logits(moved, indices, precision=precision, on_rows=on_rows).reshape(-1)
        smooth = None
    else:
        rows = float64_rows()
        stats = row_stats(rows)
        shifted_target = np.take_along_axis(stats.shifted, indices[:, None], axis=1)[:, 0]
        with np.errstate(invalid="ignore"):
            picked = stats.log_norm - shifted_target
        smooth = None
        if label_smoothing > 0.0:
            logp = log_softmax_rows(rows, stats)
            with np.errstate(invalid="ignore"):
                smooth = -np.sum(logp if w is None else logp * w, axis=1)
    with np.errstate(invalid="ignore"):
        per_row = target_weight * picked
        if smooth is not None:
            per_row = (1.0 - label_smoothing) * per_row + (label_smoothing / classes) * smooth
    per_row = np.where(counted, per_row, 0.0)
    count = int(np.count_nonzero(counted))
    denominator = exact_sum(target_weight)
    assert denominator is not None, "weights are checked to be finite"
    ignored = int(counted.size - count)
    return _reduce(
        op, per_row.reshape(positions_shape), denominator, count, ignored, "indices", common
    )


def nll_loss(
    input: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    weight: npt.ArrayLike | None = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: Reduction = "mean",
    class_dim: int | None = None,
) -> float | FloatArray:
    """``l_n = -w[t_n]·input[n, t_n]``; mean = ``sum l_n / sum w[t_n]`` over non-ignored targets."""
    return loss_result(
        "nll_loss",
        input,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        class_dim=class_dim,
    ).loss


def cross_entropy(
    input: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    weight: npt.ArrayLike | None = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    class_dim: int | None = None,
    precision: Precision = "auto",
) -> float | FloatArray:
    """``nll_loss(log_softmax(input, class_dim), target)``; also label smoothing, soft targets."""
    return loss_result(
        "cross_entropy",
        input,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        class_dim=class_dim,
        precision=precision,
    ).loss
