"""KL of ``dask.array`` inputs, equal to the in-memory core to the last bit.

* :func:`kl_div` is ``torch.nn.functional.kl_div`` as :func:`lossctl.core.kl.kl_div`
  computes it (every reduction, ``log_target``, torch's broadcasting with a
  :class:`~lossctl.core.kl.KLBroadcastWarning`, the ``mean`` warning): each block returns
  the exact sum of its pointwise terms (or, when some are NaN or infinite, their kind),
  the sums are added exactly and the reduction rounded once, as in memory.
* :func:`kl_statistics` is :func:`lossctl.core.kl_stats.kl_statistics`: each block's
  :class:`~lossctl.core.kl_stats.KLStats` (counts, exact sums, histograms), merged
  exactly — every field equal to the in-memory statistics.
* :func:`kl_logits` is :func:`lossctl.core.kl.kl_logits`, the KL at every position.

Bit for bit means: as the core computes the array in memory with its class axis
contiguous (classes last in C order, the usual layout, or a view moving them there). The
core's row sums follow the memory layout, so for an array whose classes are strided in
memory the core itself differs from its contiguous copy in the last bits; the blocks
here always get contiguous rows (see ``_rows``).

For the last two the class axis is kept in one chunk (rechunked with a
:class:`~lossctl.dask.arrays.ClassAxisRechunkWarning` when it is split), as for
cross-entropy; ``kl_div`` is elementwise and keeps the input's chunks. The blocks run on
whatever scheduler Dask is using (threads, or a ``distributed.Client``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.exactsum import ZERO, ExactSum, exact_mean, exact_sum
from lossctl.core.kl import (
    KL_REDUCTIONS,
    MEAN_WARNING,
    KLReductionMeanWarning,
    broadcast_shape,
    kl_div_pointwise,
    kl_rows,
    rows_last,
)
from lossctl.core.kl_stats import KLStats, kl_block_stats, merge_all
from lossctl.core.losses import DEFAULT_IGNORE_INDEX, FloatArray
from lossctl.core.rows import normalize_axis, positions_shape
from lossctl.dask.arrays import as_dask, classes_in_one_chunk, require_dask
from lossctl.errors import InputError


@dataclass(frozen=True)
class _Sum:
    """One block's Σ of pointwise terms: exact when every term is finite, else the kinds."""

    exact: ExactSum | None
    nan: bool
    posinf: bool
    neginf: bool

    @staticmethod
    def of(values: FloatArray) -> _Sum:
        return _Sum(
            exact_sum(values),
            bool(np.isnan(values).any()),
            bool((values == np.inf).any()),
            bool((values == -np.inf).any()),
        )


def _real(array: Any, what: str) -> Any:
    if np.dtype(array.dtype).kind not in "iuf":
        raise InputError(f"{what} must hold real numbers, got dtype {array.dtype}", what)
    return array


def _pointwise(input: npt.NDArray[Any], target: npt.NDArray[Any], log_target: bool) -> FloatArray:
    x = np.asarray(input, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    return kl_div_pointwise(x, t, log_target)


def _block_sum(input: npt.NDArray[Any], target: npt.NDArray[Any], log_target: bool) -> _Sum:
    return _Sum.of(_pointwise(input, target, log_target))


def _total(parts: list[_Sum]) -> tuple[ExactSum | None, float]:
    """The exact Σ (``None`` if any term is not finite) and its float64 value."""
    exact: ExactSum | None = ZERO
    for part in parts:
        exact = None if exact is None or part.exact is None else exact + part.exact
    if exact is not None:
        return exact, exact.to_float()
    if any(p.nan for p in parts) or (any(p.posinf for p in parts) and any(p.neginf for p in parts)):
        return None, math.nan
    return None, math.inf if any(p.posinf for p in parts) else -math.inf


def kl_div(
    input: Any, target: Any, *, reduction: str = "mean", log_target: bool = False
) -> float | FloatArray:
    """:func:`lossctl.kl_div` of dask arrays (or anything ``dask.array.asarray`` takes),
    bit for bit; ``reduction='none'`` returns the pointwise NumPy array."""
    if reduction not in KL_REDUCTIONS:
        raise InputError(
            f"{reduction} is not a valid value for reduction (choose from "
            f"{', '.join(KL_REDUCTIONS)})"
        )
    dask, da = require_dask()
    x = _real(as_dask(input, "input"), "input")
    t = _real(as_dask(target, "target"), "target")
    input_shape = tuple(int(n) for n in x.shape)
    if x.shape != t.shape:
        shape = broadcast_shape(input_shape, tuple(int(n) for n in t.shape))
        x, t = da.broadcast_to(x, shape), da.broadcast_to(t, shape)
    t = t.rechunk(x.chunks)
    if reduction == "none":
        pointwise = da.map_blocks(_pointwise, x, t, log_target, dtype=np.float64)
        return np.asarray(pointwise.compute(), dtype=np.float64)
    score = dask.delayed(_block_sum, pure=True)
    blocks = zip(x.to_delayed().reshape(-1), t.to_delayed().reshape(-1), strict=True)
    parts: list[_Sum] = list(dask.compute(*(score(a, b, log_target) for a, b in blocks)))
    exact, total = _total(parts)
    if reduction == "sum":
        return total
    if reduction == "mean":
        warnings.warn(MEAN_WARNING, KLReductionMeanWarning, stacklevel=2)
        denominator = math.prod(int(n) for n in x.shape)
    else:  # batchmean: the input's first axis, before broadcasting
        if not input_shape:
            return total
        denominator = input_shape[0]
    return exact_mean(exact, ExactSum(denominator, 0), total)


def _rows_grid(reference: Any, other: Any, class_dim: int) -> tuple[Any, Any, int]:
    """Both inputs of one shape as dask arrays, the class axis in one chunk, the other's
    chunks those of the reference."""
    ref = _real(as_dask(reference, "reference"), "reference")
    oth = _real(as_dask(other, "other"), "other")
    if ref.shape != oth.shape:
        raise InputError(
            f"reference shape {list(ref.shape)} and other shape {list(oth.shape)} differ; "
            "kl_logits needs the two models' outputs for the same positions and classes"
        )
    axis = normalize_axis(class_dim, ref.ndim, "class axis")
    ref = classes_in_one_chunk(ref, axis, "reference")  # the warning points at our caller's
    return ref, oth.rechunk(ref.chunks), axis


def _rows(block: npt.NDArray[Any], axis: int) -> tuple[FloatArray, tuple[int, ...]]:
    """A block's (M, C) float64 rows, each row contiguous in memory.

    The core sums along rows as they lie in memory, and NumPy's summation order depends
    on the stride: contiguous rows are what the core sees for an array whose class axis
    is contiguous (classes last in C order, or a view that moves them there), so that
    is the layout the blocks are given, whatever Dask's chunks are.
    """
    moved = np.ascontiguousarray(np.moveaxis(np.asarray(block, dtype=np.float64), axis, -1))
    return rows_last(moved, moved.ndim - 1)


def _stats_block(
    reference: npt.NDArray[Any],
    other: npt.NDArray[Any],
    labels: npt.NDArray[Any] | None,
    axis: int,
    ignore_index: int,
) -> KLStats:
    (ref_rows, _), (oth_rows, _) = _rows(reference, axis), _rows(other, axis)
    flat = None if labels is None else np.asarray(labels).reshape(-1)
    return kl_block_stats(ref_rows, oth_rows, flat, ignore_index=ignore_index)


def _kl_block(
    reference: npt.NDArray[Any], other: npt.NDArray[Any], axis: int, log_probs: bool
) -> FloatArray:
    (ref_rows, positions), (oth_rows, _) = _rows(reference, axis), _rows(other, axis)
    return kl_rows(ref_rows, oth_rows, log_probs=log_probs).reshape(positions)


def kl_statistics(
    reference: Any,
    other: Any,
    labels: Any = None,
    *,
    class_dim: int = -1,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
) -> KLStats:
    """:func:`lossctl.kl_statistics` of dask arrays: every field of the
    :class:`~lossctl.core.kl_stats.KLStats` equal to the in-memory one."""
    dask, _ = require_dask()
    ref, oth, axis = _rows_grid(reference, other, class_dim)
    positions = positions_shape(tuple(int(n) for n in ref.shape), axis)
    position_chunks = ref.chunks[:axis] + ref.chunks[axis + 1 :]
    label_blocks = None
    if labels is not None:
        lab = as_dask(labels, "labels")
        if tuple(int(n) for n in lab.shape) != positions:
            raise InputError(
                f"labels shape {list(lab.shape)} does not match the positions' shape "
                f"{list(positions)}",
                "labels",
            )
        label_blocks = lab.rechunk(position_chunks).to_delayed()
    score = dask.delayed(_stats_block, pure=True)
    ref_blocks, oth_blocks = ref.to_delayed(), oth.to_delayed()
    tasks = []
    for index in np.ndindex(tuple(len(c) for c in position_chunks)):
        block = (*index[:axis], 0, *index[axis:])
        lab_block = None if label_blocks is None else label_blocks[index]
        tasks.append(score(ref_blocks[block], oth_blocks[block], lab_block, axis, ignore_index))
    return merge_all(dask.compute(*tasks))


def kl_logits(
    reference: Any, other: Any, *, class_dim: int = -1, log_probs: bool = False
) -> FloatArray:
    """:func:`lossctl.kl_logits` of dask arrays, bit for bit: the KL at every position
    (a NumPy array of the positions' shape)."""
    _, da = require_dask()
    ref, oth, axis = _rows_grid(reference, other, class_dim)
    per_position = da.map_blocks(
        _kl_block, ref, oth, axis, log_probs, drop_axis=axis, dtype=np.float64
    )
    return np.asarray(per_position.compute(), dtype=np.float64)


__all__ = ["kl_div", "kl_logits", "kl_statistics"]
