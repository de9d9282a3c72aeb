"""What every step of a loss trace draws on, computed once: targets, masks, rows, layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.losses import FloatArray, LossOp, LossResult
from lossctl.errors import InputError
from lossctl.trace.layout import cells, edge_terms, make_layout
from lossctl.trace.model import BoolArray, Column, Edges, IntArray, Layout, present
from lossctl.trace.rows import Rows, fetch_rows
from lossctl.trace.stats import STATS_MIN_POSITIONS, worst_positions

__all__ = ["LossContext", "loss_context"]

#: An input without values (0 classes) has at most this many positions to explain: the trace
#: keeps a few bytes per position, and (10**12, 0) is a 128-byte file.
MAX_EMPTY_POSITIONS = 1 << 20


@dataclass(frozen=True)
class LossContext:
    """One loss computation as the trace sees it.

    ``losses``, ``counted``, ``indices`` and ``target_weight`` have one entry per
    position (all of them); ``rows`` holds the class rows of the positions that
    are shown (cells, positions, written-out terms and worst positions).
    """

    op: LossOp
    values: npt.NDArray[Any]
    labels: npt.NDArray[Any]
    result: LossResult
    weight: npt.ArrayLike | None
    w: FloatArray | None
    ignore_index: int
    label_smoothing: float
    layout: Layout
    rows: Rows
    losses: FloatArray
    counted: BoolArray
    indices: IntArray
    target_weight: FloatArray
    term_positions: tuple[int | None, ...]
    worst: IntArray
    with_stats: bool

    @property
    def probabilities(self) -> bool:
        return self.result.target_kind == "probabilities"

    @property
    def weighted(self) -> bool:
        return self.w is not None

    @property
    def smoothing(self) -> bool:
        return self.label_smoothing > 0.0 and self.op == "cross_entropy"

    @property
    def classes(self) -> int:
        return int(self.values.shape[self.result.class_dim])

    @property
    def kept(self) -> IntArray:
        return self.layout.kept_positions

    @property
    def x_cells(self) -> FloatArray:
        return cells(self.values, self.layout)

    def target_column(self) -> Column:
        kept = self.kept
        return Column(
            "target", "target", np.asarray(self.labels.reshape(-1)[kept]).astype(np.int64), "index"
        )

    def marks(self) -> tuple[BoolArray, BoolArray, BoolArray]:
        """Target cells, ignored cells (grid-shaped) and ignored shown positions."""
        layout = self.layout
        if self.probabilities:
            target_cells = np.zeros(layout.cell_class.shape, dtype=np.bool_)
            return target_cells, target_cells, np.zeros(self.kept.size, dtype=np.bool_)
        cell_counted = self.counted[layout.cell_position]
        target_cells = cell_counted & (self.indices[layout.cell_position] == layout.cell_class)
        return target_cells, ~cell_counted, ~self.counted[self.kept]


def loss_context(
    op: LossOp,
    values: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    result: LossResult,
    *,
    weight: npt.ArrayLike | None,
    ignore_index: int,
    label_smoothing: float,
    edges: Edges,
) -> LossContext:
    """The :class:`LossContext` of ``result`` (computed from these arguments)."""
    axis = result.class_dim
    w = None if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
    count = int(np.asarray(result.per_position).size)
    if values.size == 0 and count > MAX_EMPTY_POSITIONS:
        raise InputError(
            f"--explain: the input has shape {tuple(values.shape)}, {count} positions of 0 "
            "classes each: there are no values to work through; drop --explain for the loss"
        )
    layout = make_layout(tuple(values.shape), axis, edges)
    losses = np.asarray(result.per_position, dtype=np.float64).reshape(-1)
    if result.target_kind == "probabilities":
        counted = np.ones(count, dtype=np.bool_)
        indices = np.zeros(count, dtype=np.intp)
        target_weight = np.ones(count)
    else:
        flat_t = labels.reshape(-1)
        counted = flat_t != ignore_index
        indices = np.where(counted, flat_t, 0).astype(np.intp)
        target_weight = np.ones(count) if w is None else w[indices]
        target_weight = np.where(counted, target_weight, 0.0)
    term_positions = edge_terms(np.flatnonzero(counted).astype(np.intp), edges.terms)
    with_stats = count >= STATS_MIN_POSITIONS
    worst = worst_positions(losses, counted, edges.worst) if with_stats else np.empty(0, np.intp)
    needed = np.concatenate(
        [layout.kept_positions, layout.cell_position.reshape(-1), present(term_positions), worst]
    )
    return LossContext(
        op=op,
        values=values,
        labels=labels,
        result=result,
        weight=weight,
        w=w,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        layout=layout,
        rows=fetch_rows(values, axis, needed),
        losses=losses,
        counted=counted,
        indices=indices,
        target_weight=target_weight,
        term_positions=term_positions,
        worst=worst,
        with_stats=with_stats,
    )
