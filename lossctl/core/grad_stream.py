"""The gradient of :mod:`lossctl.core.grad`, block by block, for writing it to a file.

:func:`grad_blocks` yields ``(index, block)`` pairs covering the input's shape (the
class axis where the user had it), each block holding whole lines along the class axis
(:func:`lossctl.core.blocked.block_indices`) and the same numbers as
:func:`lossctl.core.grad.grad_from_result` at those cells: the same formulas, row by
row, on float64 copies of one block at a time. Nothing of the input's size is
allocated, and the pages of a memory-mapped input are released as it goes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core import blocked
from lossctl.core.blocked import Index, PageBudget, block_indices
from lossctl.core.losses import LossResult
from lossctl.core.rows import from_rows, positions_shape, rows_last, softmax_into
from lossctl.core.spec import FloatArray

__all__ = ["grad_blocks"]


def grad_blocks(
    result: LossResult,
    input: npt.NDArray[Any],
    target: npt.ArrayLike,
    dtype: npt.DTypeLike = np.float64,
    *,
    budget: int | None = None,
) -> Iterator[tuple[Index, npt.NDArray[Any]]]:
    """``d loss / d input`` of ``result`` in blocks ``(index into input.shape, values)``."""
    values = input
    shape = tuple(values.shape)
    axis = result.class_dim
    classes = shape[axis]
    out_dtype = np.dtype(dtype)
    count = int(np.prod(positions_shape(shape, axis), dtype=np.int64))
    if classes == 0 or count == 0:
        yield tuple(slice(None) for _ in shape), np.zeros(shape, dtype=out_dtype)
        return
    pages = PageBudget(values)
    targets = np.asarray(target)
    for index in block_indices(shape, axis, budget or blocked.BLOCK_VALUES):
        block = values[index]
        block_axis = axis - sum(1 for i in index[:axis] if isinstance(i, int))
        rows = rows_last(block, block_axis)
        g = np.empty(rows.shape)
        if result.targets is None:
            q = np.asarray(rows_last(targets[index], block_axis), dtype=np.float64)
            _probability_rows(g, rows, q, result, count)
        else:
            position = index[:axis] + index[axis + 1 :]
            _index_rows(g, rows, result, position)
        pages.touched(block)
        moved = from_rows(g, tuple(block.shape), block_axis)
        yield index, np.asarray(moved, dtype=out_dtype)
    pages.release()


def _probability_rows(
    g: FloatArray, rows: npt.NDArray[Any], q: FloatArray, result: LossResult, count: int
) -> None:
    """Probability targets: ``g = s·Σ_c w_c·q'_c·(p - onehot(c))`` for these rows."""
    spec = result.spec
    eps = spec.label_smoothing
    classes = g.shape[1]
    scale = 1.0 / count if result.reduction == "mean" else 1.0
    if eps > 0.0:
        q = q * (1.0 - eps) + eps / classes
    upstream = -scale * (q if spec.weight is None else q * spec.weight)  # dl/dlogp
    softmax_into(g, rows)
    with np.errstate(invalid="ignore"):
        g *= -upstream.sum(axis=1, keepdims=True)
        g += upstream


def _index_rows(g: FloatArray, rows: npt.NDArray[Any], result: LossResult, position: Index) -> None:
    """Class-index targets at the positions ``position`` (an index into the positions)."""
    assert result.targets is not None
    spec, targets = result.spec, result.targets
    shape = positions_shape(result.input_shape, result.class_dim)
    indices = targets.indices.reshape(shape)[position].reshape(-1)
    counted = targets.counted.reshape(shape)[position].reshape(-1)
    weight = targets.weight.reshape(shape)[position].reshape(-1)
    classes = g.shape[1]
    eps = spec.label_smoothing
    with np.errstate(divide="ignore", invalid="ignore"):
        per_row = 1.0 / np.float64(result.denominator) if result.reduction == "mean" else 1.0
        scale = np.where(counted, per_row, 0.0)  # ignored rows: exactly 0
        a = scale * (1.0 - eps) * weight
        b = scale * (eps / classes)
    rows_index = np.flatnonzero(counted)
    picked = indices[rows_index]
    if result.op == "nll_loss":
        g[...] = 0.0
        g[rows_index, picked] = -a[rows_index]
        return
    total_w = float(classes) if spec.weight is None else float(np.sum(spec.weight))
    with np.errstate(invalid="ignore"):
        coefficient = a + b * total_w if eps > 0.0 else a
    softmax_into(g, rows)
    with np.errstate(invalid="ignore"):
        g *= coefficient[:, None]
        if eps != 0.0:
            smoothing = np.ones(classes) if spec.weight is None else spec.weight
            g -= b[:, None] * smoothing[None, :]
        g[rows_index, picked] -= a[rows_index]
