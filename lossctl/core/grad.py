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

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from lossctl.core.exactsum import ExactSum
from lossctl.core.losses import LossResult, compute
from lossctl.core.overflow import weight_scale
from lossctl.core.rows import from_rows, row_blocks, rows_last, softmax_into
from lossctl.core.spec import FloatArray, LossKeywords, LossOp, spec_of

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["grad_from_result", "loss_grad"]


def grad_from_result(result: LossResult, input: npt.ArrayLike, target: npt.ArrayLike) -> FloatArray:
    """The gradient of ``result`` (from :func:`lossctl.core.losses.compute` on ``input`` and
    ``target``) with respect to ``input``; same shape as ``input``, float64.

    The options come from ``result.spec``, the validated class indices from
    ``result.targets``. Works block by block of positions: the memory it needs beyond
    the input is the gradient itself.
    """
    values = np.asarray(input)
    shape = tuple(values.shape)
    axis = result.class_dim
    classes = shape[axis]
    rows = rows_last(values, axis)
    count = rows.shape[0]
    grad = np.zeros((count, classes))
    if classes == 0 or count == 0:
        return np.asarray(from_rows(grad, shape, axis), dtype=np.float64)
    spec = result.spec
    mean = result.reduction == "mean"
    eps = spec.label_smoothing
    # weights in units of 2**e (largest magnitude in [0.5, 1)), scaled back at the end,
    # so that neither Σw nor w/Σw overflows when the gradient itself is finite
    e = weight_scale(spec.weight)
    weight = None if spec.weight is None else np.ldexp(spec.weight, -e)
    if result.targets is None:
        targets = rows_last(np.asarray(target), axis)
        scale = 1.0 / count if mean else 1.0
        for block in row_blocks(count, classes):
            q = np.asarray(targets[block], dtype=np.float64)
            if eps > 0.0:
                q = q * (1.0 - eps) + eps / classes
            upstream = -scale * (q if weight is None else q * weight)  # dl/dlogp / 2**e
            g = grad[block]
            softmax_into(g, rows[block])
            with np.errstate(invalid="ignore"):
                g *= -upstream.sum(axis=1, keepdims=True)
                g += upstream
    elif result.reduction == "mean":  # w[t]/Σw: the scale cancels
        _index_grad(grad, rows, result, weight, e)
        e = 0
    else:
        _index_grad(grad, rows, result, weight, e)
    if e:
        with np.errstate(over="ignore"):
            np.ldexp(grad, e, out=grad)
    return np.asarray(from_rows(grad, shape, axis), dtype=np.float64)


def _index_grad(
    grad: FloatArray, rows: npt.NDArray[Any], result: LossResult, weight: FloatArray | None, e: int
) -> None:
    """Fill ``grad`` for class-index targets (``result.targets``), with the weights in
    units of ``2**e`` (``weight``; the caller scales ``grad`` back)."""
    assert result.targets is not None
    spec, targets = result.spec, result.targets
    count, classes = grad.shape
    eps = spec.label_smoothing
    denominator = ExactSum(result.exact_denominator.mantissa, result.exact_denominator.exponent - e)
    with np.errstate(divide="ignore", invalid="ignore"):
        # mean: w[t]/Σw = (w[t]·2**-e)/(Σw·2**-e), so the result needs no scaling back
        per_row = 1.0 / np.float64(denominator.to_float()) if result.reduction == "mean" else 1.0
        scale = np.where(targets.counted, per_row, 0.0)  # ignored rows: exactly 0
        a = scale * (1.0 - eps) * np.ldexp(targets.weight, -e)
        b = scale * (eps / classes)  # coefficient of the uniform (smoothing) term
    rows_index = np.flatnonzero(targets.counted)
    picked = targets.indices[rows_index]
    if result.op == "nll_loss":
        grad[rows_index, picked] = -a[rows_index]
        return
    total_w = float(classes) if weight is None else float(np.sum(weight))
    with np.errstate(invalid="ignore"):
        coefficient = a + b * total_w if eps > 0.0 else a
    smoothing = None if eps == 0.0 else (np.ones(classes) if weight is None else weight)
    for block in row_blocks(count, classes):
        g = grad[block]
        softmax_into(g, rows[block])
        with np.errstate(invalid="ignore"):
            g *= coefficient[block, None]
            if smoothing is not None:
                g -= b[block, None] * smoothing[None, :]
    with np.errstate(invalid="ignore"):
        grad[rows_index, picked] -= a[rows_index]


def loss_grad(
    op: LossOp, input: npt.ArrayLike, target: npt.ArrayLike, **options: Unpack[LossKeywords]
) -> FloatArray:
    """``d loss / d input`` of :func:`lossctl.core.loss_result` with the same arguments
    (validated the same way); for ``reduction='none'`` the gradient of the sum."""
    return grad_from_result(compute(spec_of(op, options), input, target), input, target)
