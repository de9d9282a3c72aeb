"""Rows of classes: the one place that moves the class axis last and shifts by the maximum.

Every computation works on (M, C) rows: the M positions flattened, the C classes last.
The max-shift with the maximum term split off (``log1p`` of the rest) lives here::

    m      = max_c x_c
    tail   = sum_{c != argmax} exp(x_c - m)
    logp_c = (x_c - m) - log1p(tail)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from lossctl.core.spec import FloatArray
from lossctl.errors import InputError

BLOCK_ELEMENTS = 1 << 20  # float64 values per block of rows (8 MiB)


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


def rows_last(x: npt.NDArray[Any], axis: int) -> npt.NDArray[Any]:
    """(positions, classes) rows of ``x`` with ``axis`` last: a view when it already is."""
    moved = np.moveaxis(x, axis, -1)
    return moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1])


def from_rows(rows: npt.NDArray[Any], shape: tuple[int, ...], axis: int) -> npt.NDArray[Any]:
    """The inverse of :func:`rows_last`: (M, C) rows back into ``shape``."""
    moved_shape = shape[:axis] + shape[axis + 1 :] + (shape[axis],)
    return np.moveaxis(rows.reshape(moved_shape), -1, axis)


def positions_shape(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """The input's shape without its class axis."""
    return shape[:axis] + shape[axis + 1 :]


def row_blocks(count: int, classes: int) -> Iterator[slice]:
    """Consecutive row ranges of about ``BLOCK_ELEMENTS`` values each (at least one row)."""
    step = max(1, BLOCK_ELEMENTS // max(classes, 1))
    return (slice(start, start + step) for start in range(0, count, step))


class RowStats(NamedTuple):
    """Per-position log-sum-exp pieces of (M, C) float64 rows."""

    shifted: FloatArray  # x - max, shape (M, C)
    log_norm: FloatArray  # log1p(tail) = log sum exp(x - max), shape (M,)


def row_stats(rows: FloatArray) -> RowStats:
    """Max-shift and ``log1p`` log-normaliser of (M, C) float64 rows.

    The maximum term contributes exactly ``exp(0) = 1``; it is split off so
    ``log(1 + tail)`` is evaluated as ``log1p(tail)`` without rounding ``tail``.
    A row whose maximum is NaN or infinite is NaN throughout, as in PyTorch.
    """
    count, classes = rows.shape
    if classes == 0:
        return RowStats(shifted=np.empty((count, 0)), log_norm=np.full(count, -np.inf))
    with np.errstate(invalid="ignore", over="ignore"):
        argmax = np.argmax(rows, axis=1)
        maximum = np.take_along_axis(rows, argmax[:, None], axis=1)
        shifted = rows - maximum
        terms = np.exp(shifted)
        np.put_along_axis(terms, argmax[:, None], 0.0, axis=1)
        log_norm = np.log1p(terms.sum(axis=1))
    bad = ~np.isfinite(maximum[:, 0])
    if bad.any():
        log_norm[bad] = np.nan
    return RowStats(shifted=shifted, log_norm=log_norm)


def log_softmax_rows(rows: FloatArray, stats: RowStats | None = None) -> FloatArray:
    """``logp = (x - m) - log1p(tail)`` for (M, C) rows."""
    stats = row_stats(rows) if stats is None else stats
    with np.errstate(invalid="ignore"):
        return stats.shifted - stats.log_norm[:, None]


def softmax_rows(rows: FloatArray) -> FloatArray:
    """``exp(logp)`` for (M, C) rows."""
    with np.errstate(over="ignore"):
        return np.exp(log_softmax_rows(rows))


def softmax_into(out: FloatArray, rows: npt.NDArray[Any]) -> None:
    """``out = softmax(rows)`` in place, float64, without a second (M, C) buffer.

    A row whose maximum is NaN or ±inf becomes NaN, as in PyTorch and :func:`row_stats`.
    """
    out[...] = rows
    with np.errstate(invalid="ignore", over="ignore"):
        out -= out.max(axis=1, keepdims=True)
        np.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)


def apply_along(
    values: FloatArray, dim: int, row_fn: Callable[[FloatArray], FloatArray]
) -> FloatArray:
    """Apply a (M, C) -> (M, C) row function along axis ``dim`` of ``values``."""
    axis = normalize_axis(dim, values.ndim, "softmax axis")
    if values.size == 0:  # (10**9, 5, 0): nothing to compute, and no (M,) row statistics
        return np.empty(values.shape)
    return np.asarray(
        from_rows(row_fn(rows_last(values, axis)), values.shape, axis), dtype=np.float64
    )
