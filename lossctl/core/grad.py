"""d loss / d input for ``cross_entropy`` and ``nll_loss``, as ``torch.autograd`` gives it.

Pure NumPy, float64, vectorised over positions. The gradient has the input's shape and
layout (the class axis stays where the user had it).

Cross-entropy is ``l = L(logp)`` with ``logp = log_softmax(x)``; with ``G = dl/dlogp`` the
chain rule through log-softmax gives ``dl/dx = G - softmax(x)·ΣG`` (what PyTorch's
``log_softmax`` backward computes). Per position ``n`` with ``C`` classes, weights ``w``
(ones without ``--weight``), ``W = Σ_c w_c``, smoothing ``ε`` and ``s_n`` the reduction's
scale (``1/Σ w[y]`` over counted targets for ``mean``, 1 for ``sum``/``none``)::

    class-index targets:   dl/dx_k = s_n·[(1-ε)·w_y·(p_k - δ_yk) + (ε/C)·(W·p_k - w_k)]
    probability targets:   dl/dx_k = s·Σ_c w_c·q'_c·(p_k - δ_ck),  q' = (1-ε)·q + ε/C,
                           s = 1/(N·d1·…·dk) for mean
    nll_loss:              dl/dx[n, y_n] = -s_n·w_y, 0 elsewhere

Ignored positions (``target == ignore_index``) get 0. As in PyTorch, an ignored position
of ``cross_entropy`` whose softmax is NaN (a NaN or ``+inf`` logit in it) gets NaN: the
backward pass multiplies that softmax by 0. ``nll_loss`` never looks at the input, so its
ignored positions are always 0. ``reduction='none'`` gives the gradient of the *sum* of the
per-position losses (autograd with a ``grad_output`` of ones). When every target is
ignored the gradient is all zeros (PyTorch too), although the mean is NaN; counted
targets whose weights sum to 0 make the mean's gradient NaN (0/0), as in PyTorch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.losses import (
    DEFAULT_IGNORE_INDEX,
    FloatArray,
    LossOp,
    LossResult,
    Reduction,
    loss_result,
)

__all__ = ["grad_from_result", "loss_grad"]


BLOCK_ELEMENTS = 1 << 20  # float64 values per block of rows (8 MiB)


def _rows_last(x: npt.NDArray[Any], axis: int) -> npt.NDArray[Any]:
    """(positions, classes) rows: a view when the classes are already last."""
    moved = np.moveaxis(x, axis, -1)
    return moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1])


def _from_rows(rows: FloatArray, shape: tuple[int, ...], axis: int) -> FloatArray:
    moved_shape = shape[:axis] + shape[axis + 1 :] + (shape[axis],)
    return np.moveaxis(rows.reshape(moved_shape), -1, axis)


def _blocks(count: int, classes: int) -> list[slice]:
    """Consecutive row ranges of about ``BLOCK_ELEMENTS`` values each."""
    step = max(1, BLOCK_ELEMENTS // max(classes, 1))
    return [slice(start, start + step) for start in range(0, count, step)]


def _softmax_into(out: FloatArray, rows: npt.NDArray[Any]) -> None:
    """``out = softmax(rows)`` in place (float64). A row whose maximum is NaN or ±inf
    becomes NaN, as in PyTorch (and :func:`lossctl.core.row_stats`)."""
    out[...] = rows
    with np.errstate(invalid="ignore", over="ignore"):
        out -= out.max(axis=1, keepdims=True)
        np.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)


def grad_from_result(
    result: LossResult,
    input: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    weight: npt.ArrayLike | None = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    label_smoothing: float = 0.0,
) -> FloatArray:
    """The gradient of ``result`` (from :func:`lossctl.core.loss_result` on the same
    arguments) with respect to ``input``; same shape as ``input``, float64.

    Works block by block of positions: the memory it needs beyond the input is the
    gradient itself.
    """
    values = np.asarray(input)
    shape = tuple(values.shape)
    axis = result.class_dim
    classes = shape[axis]
    rows = _rows_last(values, axis)
    count = rows.shape[0]
    grad = np.zeros((count, classes))
    if classes == 0 or count == 0:
        return _from_rows(grad, shape, axis)
    w = None if weight is None else np.asarray(weight, dtype=np.float64)
    mean = result.reduction == "mean"
    eps = float(label_smoothing) if result.op == "cross_entropy" else 0.0

    if result.target_kind == "probabilities":
        targets = _rows_last(np.asarray(target), axis)
        scale = 1.0 / count if mean else 1.0
        for block in _blocks(count, classes):
            q = np.asarray(targets[block], dtype=np.float64)
            if eps > 0.0:
                q = q * (1.0 - eps) + eps / classes
            upstream = -scale * (q if w is None else q * w)  # dl/dlogp
            g = grad[block]
            _softmax_into(g, rows[block])
            with np.errstate(invalid="ignore"):
                g *= -upstream.sum(axis=1, keepdims=True)
                g += upstream
        return _from_rows(grad, shape, axis)

    flat = np.asarray(target).reshape(-1)
    counted = flat != ignore_index
    indices = np.where(counted, flat, 0).astype(np.intp)
    target_weight = np.ones(indices.shape) if w is None else w[indices]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_row = 1.0 / np.float64(result.denominator) if mean else np.float64(1.0)
        scale = np.where(counted, per_row, 0.0)  # ignored rows: exactly 0
        a = scale * (1.0 - eps) * target_weight  # coefficient of the target term
        b = scale * (eps / classes)  # coefficient of the uniform (smoothing) term
    rows_index = np.flatnonzero(counted)

    if result.op == "nll_loss":
        grad[rows_index, indices[rows_index]] = -a[rows_index]
        return _from_rows(grad, shape, axis)

    total_w = float(classes) if w is None else float(np.sum(w))
    with np.errstate(invalid="ignore"):
        coefficient = a + b * total_w if eps > 0.0 else a
    smoothing = None if eps == 0.0 else (np.ones(classes) if w is None else w)
    for block in _blocks(count, classes):
        g = grad[block]
        _softmax_into(g, rows[block])
        with np.errstate(invalid="ignore"):
            g *= coefficient[block, None]
            if smoothing is not None:
                g -= b[block, None] * smoothing[None, :]
    with np.errstate(invalid="ignore"):
        grad[rows_index, indices[rows_index]] -= a[rows_index]
    return _from_rows(grad, shape, axis)


def loss_grad(
    op: LossOp,
    input: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    weight: npt.ArrayLike | None = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    class_dim: int | None = None,
) -> FloatArray:
    """``d loss / d input`` of :func:`lossctl.core.loss_result` with the same arguments
    (validated the same way); for ``reduction='none'`` the gradient of the sum."""
    result = loss_result(
        op,
        input,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        class_dim=class_dim,
    )
    return grad_from_result(
        result,
        input,
        target,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
