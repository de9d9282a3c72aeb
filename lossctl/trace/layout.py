"""Which cells and positions of an input the trace shows: the grid view and its summary.

A small input is shown whole; a large one keeps its first and last few rows and
columns (and positions), with ``None`` marking the elided middle (see
:class:`lossctl.trace.model.Edges`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.losses import FloatArray
from lossctl.trace.model import SMALL, Edges, IntArray, Layout, Orientation, present

__all__ = ["cells", "edge_terms", "kept_indices", "make_layout"]


def kept_indices(length: int, edge: int | None, small: int = SMALL) -> tuple[int | None, ...]:
    """Indices to show along an axis of ``length``; ``None`` marks the elided middle."""
    if edge is None or length <= max(small, 2 * edge + 1):
        return tuple(range(length))
    return (*range(edge), None, *range(length - edge, length))


def edge_terms(flat: IntArray, edge: int | None) -> tuple[int | None, ...]:
    """The reduction's written-out terms: the first ``edge``, ``None``, the last one."""
    if edge is None or flat.size <= max(SMALL - 2, edge + 1):
        return tuple(int(i) for i in flat)
    return (*(int(i) for i in flat[:edge]), None, int(flat[-1]))


def _grid_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The (rows, columns) of ``shape`` viewed like ``render.as_grid``."""
    if not shape:
        return 1, 1
    if len(shape) == 1:
        return 1, shape[0]
    return math.prod(shape[:-1]), shape[-1]


def _axis_names(ndim: int, class_dim: int | None, class_name: str) -> tuple[str, ...]:
    others = [axis for axis in range(ndim) if axis != class_dim]
    return tuple(
        class_name
        if axis == class_dim
        else ("position" if class_dim is not None and len(others) == 1 else f"axis {axis}")
        for axis in range(ndim)
    )


def _cell_index(shape: tuple[int, ...], r: IntArray, c: IntArray) -> tuple[IntArray, ...]:
    """The input's index of every shown cell, one array per axis, shape (rows, columns)."""
    ndim = len(shape)
    if ndim == 0:
        return ()
    if ndim == 1:
        return (np.broadcast_to(c[None, :], (r.size, c.size)).astype(np.intp),)
    leading = np.unravel_index(r, shape[:-1]) if r.size else [r for _ in shape[:-1]]
    return (
        *(
            np.broadcast_to(np.asarray(i, dtype=np.intp)[:, None], (r.size, c.size)).copy()
            for i in leading
        ),
        np.broadcast_to(c[None, :], (r.size, c.size)).astype(np.intp),
    )


def _list_positions(positions_shape: tuple[int, ...], edge: int | None) -> tuple[int | None, ...]:
    """The positions of a separate list; none of (10**9, 0) positions, all elided (``None``)
    rather than written out as 10**9 empty lists."""
    count = math.prod(positions_shape)
    if count == 0 and 0 in positions_shape:
        outer = math.prod(positions_shape[: positions_shape.index(0)])
        return (None,) if outer > SMALL else ()
    return kept_indices(count, edge)


def make_layout(
    shape: tuple[int, ...], class_dim: int | None, edges: Edges, class_name: str = "class"
) -> Layout:
    """The cells and positions to show of an input of ``shape`` with classes on ``class_dim``."""
    ndim = len(shape)
    names = _axis_names(ndim, class_dim, class_name)
    full = edges.cols is None
    if 0 in shape and edges.rows is None:
        edges = Edges()  # no value to show: (10**9, 0) is not 10**9 empty rows, even in full
    grid_rows, grid_cols = _grid_shape(shape)
    rows = kept_indices(grid_rows, edges.rows)
    cols = kept_indices(grid_cols, edges.cols)
    r, c = present(rows), present(cols)
    cell_index = _cell_index(shape, r, c)
    zeros = np.zeros((r.size, c.size), dtype=np.intp)
    if class_dim is None:
        return Layout(
            shape=shape,
            class_dim=None,
            axis_names=names,
            rows=rows,
            cols=cols,
            orientation="none",
            positions_shape=(),
            positions=(),
            cell_index=cell_index,
            cell_position=zeros,
            cell_class=zeros,
            full=full,
        )
    positions_shape = shape[:class_dim] + shape[class_dim + 1 :]
    orientation: Orientation
    if class_dim == ndim - 1:
        orientation, positions = "down", rows
    elif ndim == 2:
        orientation, positions = "across", cols
    else:
        orientation = "list"
        positions = _list_positions(positions_shape, edges.rows)
    others_index = tuple(cell_index[axis] for axis in range(ndim) if axis != class_dim)
    if positions_shape and zeros.size:
        cell_position = np.ravel_multi_index(others_index, positions_shape).astype(np.intp)
    else:
        cell_position = zeros
    return Layout(
        shape=shape,
        class_dim=class_dim,
        axis_names=names,
        rows=rows,
        cols=cols,
        orientation=orientation,
        positions_shape=positions_shape,
        positions=positions,
        cell_index=cell_index,
        cell_position=cell_position,
        cell_class=cell_index[class_dim].copy() if zeros.size else zeros,
        full=full,
    )


def cells(values: npt.NDArray[Any], layout: Layout) -> FloatArray:
    """The input at the shown cells, as float64."""
    if not layout.shape:
        return np.asarray(values, dtype=np.float64).reshape(1, 1)
    shown: FloatArray = np.asarray(values[layout.cell_index], dtype=np.float64)
    return shown.reshape(layout.cell_position.shape)
