"""Softmax, log-softmax and log of an array of any size, block by block, in bounded memory.

The array is cut into rectangular blocks that each hold the whole normalised axis
(:func:`block_indices`). A float64 result is computed block by block with the row
functions of :mod:`lossctl.core.rows` (the very arithmetic of :func:`lossctl.core.softmax`);
a float32 or float16 result with float32 ``exp`` and float64 sums
(:func:`elementwise_block32`, within a few float32 ulps of it). Nothing of the input's
size is allocated: one block of about ``BLOCK_VALUES`` numbers and its buffers.

Pages of an ``np.memmap`` input (or output) that the blocks touched are released with
``madvise(MADV_DONTNEED)`` once more than ``RESIDENT_BYTES`` of them may be resident
(:class:`PageBudget`), so the resident memory stays bounded whatever the file size.
The page cache keeps the data; only this process's resident set shrinks.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lossctl.core.rows import log_softmax_rows, rows_last, softmax_rows
from lossctl.core.spec import FloatArray

__all__ = [
    "BLOCK_VALUES",
    "ElementwiseOp",
    "Index",
    "PageBudget",
    "Scratch",
    "block_indices",
    "elementwise_block",
    "elementwise_block32",
    "elementwise_blocks",
    "output_dtype",
    "shown_cells",
]

ElementwiseOp = Literal["softmax", "log_softmax", "log"]
Index = tuple[slice | int, ...]

BLOCK_VALUES = 1 << 18  # numbers per block (2 MiB as float64)
MIN_SEGMENT = 512  # numbers per contiguous run when the axis itself is longer than a block
RESIDENT_BYTES = 16 << 20  # mapped pages allowed to stay resident before they are released


def output_dtype(dtype: npt.DTypeLike, precision: str = "auto") -> np.dtype[Any]:
    """The dtype of a streamed result: the input's float dtype (float16, float32 or
    float64) under ``"auto"``, float64 for integer inputs and for ``"float64"``."""
    dt = np.dtype(dtype)
    if precision == "auto" and dt.kind == "f" and dt.itemsize in (2, 4, 8):
        native: np.dtype[Any] = dt.newbyteorder("=")
        return native
    return np.dtype(np.float64)


def block_indices(
    shape: tuple[int, ...], axis: int | None, budget: int = BLOCK_VALUES
) -> Iterator[Index]:
    """Rectangular blocks covering ``shape`` in C order, each with the whole ``axis``.

    Axes before the *split* axis are fixed indices, the split axis is a range, the later
    axes (and ``axis``) are whole; the split axis is the first one whose inner blocks fit
    ``budget`` numbers (one line along ``axis`` at least). When the axis comes before
    the split axis, blocks are widened up to ``MIN_SEGMENT`` contiguous numbers (at
    most 8 x ``budget``), so that strided reads and writes do not go a few bytes a page.
    """
    ndim = len(shape)
    if ndim == 0 or math.prod(shape) == 0:
        yield tuple(slice(None) for _ in shape)
        return
    line = 1 if axis is None else shape[axis]
    others = [i for i in range(ndim) if i != axis]
    if not others:
        yield (slice(None),)
        return
    split, inner = others[-1], line
    for position, candidate in enumerate(others):
        after = math.prod(shape[i] for i in others[position + 1 :]) * line
        if after <= budget:
            split, inner = candidate, after
            break
    step = max(1, budget // inner)
    if axis is not None and axis < split:  # the contiguous runs are step x the later axes
        run = inner // line
        wanted = -(-MIN_SEGMENT // run)
        step = max(step, min(wanted, max(1, (8 * budget) // inner)))
    step = min(step, shape[split])
    fixed = [i for i in others if i < split]
    for outer in np.ndindex(*(shape[i] for i in fixed)):
        for start in range(0, shape[split], step):
            index: list[slice | int] = [slice(None)] * ndim
            for i, value in zip(fixed, outer, strict=True):
                index[i] = int(value)
            index[split] = slice(start, min(start + step, shape[split]))
            yield tuple(index)


def elementwise_block(op: ElementwiseOp, block: npt.NDArray[Any], axis: int | None) -> FloatArray:
    """``op`` of one block (any real dtype) in float64, ``axis`` counted in the block."""
    values = np.array(block, dtype=np.float64)  # one copy, C-ordered
    if op == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            np.log(values, out=values)
        return values
    assert axis is not None
    function = softmax_rows if op == "softmax" else log_softmax_rows
    rows = np.ascontiguousarray(rows_last(values, axis))
    moved = np.moveaxis(values, axis, -1).shape
    return np.moveaxis(function(rows).reshape(moved), -1, axis)


class Scratch:
    """Reused block buffers: a fresh 2 MiB array per block costs its page faults every time."""

    def __init__(self) -> None:
        self._arrays: dict[str, npt.NDArray[Any]] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: npt.DTypeLike) -> npt.NDArray[Any]:
        array = self._arrays.get(name)
        if array is None or array.shape != shape or array.dtype != np.dtype(dtype):
            array = self._arrays[name] = np.empty(shape, dtype=dtype)
        return array


def elementwise_block32(
    op: ElementwiseOp,
    block: npt.NDArray[Any],
    axis: int | None,
    scratch: Scratch | None = None,
) -> npt.NDArray[np.float32]:
    """``op`` of one block with float32 ``exp`` / ``log`` (for a float32 or float16 result).

    ``x - m`` is exact in float64; ``exp`` is taken in float32 of its float32 rounding
    ``hi`` and corrected by the rest, ``exp(hi)·(1 + (x - m - hi))``; the row sums and
    the log-sum-exp are float64. Within a few float32 ulps of the float64 result rounded
    to float32, at about a third of the cost of float64 ``exp`` (AVX2). A row whose
    maximum is NaN or ±inf is NaN throughout, as in :func:`lossctl.core.rows.row_stats`.
    With ``scratch``, the result lives in a reused buffer (valid until the next call).
    """
    scratch = Scratch() if scratch is None else scratch
    shape = tuple(block.shape)
    terms = scratch.get("terms", shape, np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        if op == "log":
            np.copyto(terms, block, casting="unsafe")
            np.log(terms, out=terms)
            return terms
        assert axis is not None
        shifted = scratch.get("shifted", shape, np.float64)
        np.copyto(shifted, block, casting="unsafe")
        maximum = shifted.max(axis=axis, keepdims=True)
        shifted -= maximum  # exact: both are float32 numbers
        np.copyto(terms, shifted, casting="unsafe")
        if op == "softmax":
            rest = scratch.get("rest", shape, np.float32)
            np.subtract(shifted, terms, out=rest, casting="unsafe")
            np.copyto(rest, 0.0, where=np.isnan(rest))  # -inf - -inf: exp(-inf) needs none
            np.exp(terms, out=terms)
            rest += 1.0
            terms *= rest
        else:
            np.exp(terms, out=terms)  # the sum needs no correction: big terms have tiny rests
        total = np.add.reduce(terms, axis=axis, dtype=np.float64, keepdims=True)
        if op == "softmax":
            terms *= (1.0 / total).astype(np.float32)
        else:
            shifted -= np.log(total)
            np.copyto(terms, shifted, casting="unsafe")
        bad = ~np.isfinite(maximum)
        if bad.any():
            terms[np.broadcast_to(bad, shape)] = np.nan
    return terms


def _block_axis(index: Index, axis: int | None) -> int | None:
    """``axis`` of the full array counted in the block ``index`` (integers drop axes)."""
    if axis is None:
        return None
    return axis - sum(1 for i in index[:axis] if isinstance(i, int))


def elementwise_blocks(
    op: ElementwiseOp,
    values: npt.NDArray[Any],
    axis: int | None,
    dtype: np.dtype[Any],
    *,
    budget: int | None = None,
    inspect: Callable[[npt.NDArray[Any]], None] | None = None,
) -> Iterator[tuple[Index, npt.NDArray[Any]]]:
    """``(index, result block in dtype)`` over ``values``; releases the input's pages.

    A float64 ``dtype`` is computed as :func:`lossctl.core.softmax` does (the same numbers);
    float32 and float16 with :func:`elementwise_block32`. A yielded block is valid until
    the next one is asked for (its buffer is reused): write or copy it.

    ``inspect`` sees each input block first (for checks made in the same pass).
    """
    pages = PageBudget(values)
    scratch = Scratch()
    for index in block_indices(tuple(values.shape), axis, budget or BLOCK_VALUES):
        block = values[index]
        if inspect is not None:
            inspect(block)
        block_axis = _block_axis(index, axis)
        result: npt.NDArray[Any]
        if dtype.itemsize <= 4:
            result = elementwise_block32(op, block, block_axis, scratch)
        else:
            result = elementwise_block(op, block, block_axis)
        pages.touched(block)
        yield index, result.astype(dtype, copy=False)
    pages.release()


@dataclass
class _Mapping:
    mm: mmap.mmap


class PageBudget:
    """Releases the resident pages of the shared ``np.memmap`` under ``array`` now and then.

    :meth:`touched` counts the pages a block may have brought in (a block narrower than
    a page touches a whole page per line); past ``RESIDENT_BYTES`` the whole mapping is
    ``madvise(MADV_DONTNEED)``-ed. Arrays that are not shared memory maps are left alone.
    """

    def __init__(self, array: npt.NDArray[Any], limit: int = RESIDENT_BYTES) -> None:
        self._mapping = _shared_mmap(array)
        self._limit = limit
        self._pending = 0

    def touched(self, block: npt.NDArray[Any]) -> None:
        if self._mapping is None:
            return
        if block.ndim == 0 or block.size == 0:
            return
        run = block.shape[-1] * block.itemsize
        lines = block.size // max(block.shape[-1], 1)
        self._pending += lines * (run + 2 * mmap.PAGESIZE)
        if self._pending > self._limit:
            self.release()

    def release(self) -> None:
        self._pending = 0
        if self._mapping is None:
            return
        try:
            self._mapping.mm.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # pragma: no cover - best effort (a closed mapping)
            self._mapping = None


def _shared_mmap(array: npt.NDArray[Any]) -> _Mapping | None:
    base: object = array
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap):
            mm = getattr(base, "_mmap", None)
            if isinstance(mm, mmap.mmap) and base.mode != "c" and hasattr(mm, "madvise"):
                return _Mapping(mm)
            return None
        base = base.base
    if isinstance(base, mmap.mmap) and hasattr(base, "madvise"):
        return _Mapping(base)
    return None


def shown_cells(
    op: ElementwiseOp,
    values: npt.NDArray[Any],
    axis: int | None,
    rows: list[int],
    cols: list[int],
) -> tuple[FloatArray, FloatArray]:
    """The result at the grid cells ``rows`` x ``cols`` without computing the rest.

    The grid views the array as (leading positions, last axis), as the tables do: row
    ``r`` is the C-order index over ``shape[:-1]``, column ``c`` an index of the last
    axis. Each cell needs its line along ``axis`` only. Returns the ``(len(rows),
    len(cols))`` cells and every value computed on the way (the whole lines), for stats.
    """
    shape = tuple(values.shape)
    ndim = len(shape)
    cells = np.empty((len(rows), len(cols)))
    if ndim == 0:
        computed = elementwise_block(op, values, None) if op == "log" else np.asarray(values)
        cells[...] = computed
        return cells, np.asarray(computed, dtype=np.float64).reshape(-1)
    lead_shape = shape[:-1]
    leads = [tuple(int(i) for i in np.unravel_index(r, lead_shape)) for r in rows]
    if op == "log" or axis is None:
        picked = np.array([[values[tuple([*lead, c])] for c in cols] for lead in leads])
        cells[...] = elementwise_block("log", picked, None)
        return cells, cells.reshape(-1)
    if axis == ndim - 1:
        lines = np.array([values[lead] for lead in leads]).reshape(len(rows), shape[-1])
        computed = elementwise_block(op, lines, 1)
        cells[...] = computed[:, cols]
        return cells, computed.reshape(-1)
    gathered = []
    for lead in leads:
        for c in cols:
            index: list[slice | int] = [*lead, c]
            index[axis] = slice(None)
            gathered.append(values[tuple(index)])
    computed = elementwise_block(op, np.array(gathered).reshape(len(gathered), shape[axis]), 1)
    for i, lead in enumerate(leads):
        for j, _ in enumerate(cols):
            cells[i, j] = computed[i * len(cols) + j, lead[axis]]
    return cells, computed.reshape(-1)
