"""The ``--explain`` trace as plain data: frozen dataclasses, no text formatting, no I/O.

A :class:`Trace` is a list of :class:`Step` s over one :class:`Layout` (which
cells of the input and which positions are shown, and how). A step carries its
title, formula and note, and its numbers: an input-shaped ``grid``, per-position
:class:`Column` s, the :class:`ReductionTerms` written out or the
:class:`LossStats` of the per-position losses.

Arrays are laid out as the user gave them: rows are the leading indices,
columns the last axis, like ``numpy`` prints a 2-D array. Per-position
quantities (``max``, ``Σ``, ``lse``, the loss…) follow the positions: extra
columns when the class axis is the last one (one row per position, orientation
``down``), extra rows when a 2-D input has its classes along axis 0 (one column
per position, ``across``), and a separate list of positions otherwise
(``list``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lossctl.core.losses import FloatArray, Reduction

IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
Orientation = Literal["down", "across", "list", "none"]
ColumnKind = Literal["number", "index"]
TermStyle = Literal["neg", "weighted", "value"]
DenominatorKind = Literal["count", "weights", "positions"]
ElementwiseOp = Literal["softmax", "log_softmax", "log"]
TargetKind = Literal["indices", "probabilities", "none"]

#: Arrays with at most this many rows (or columns) are never summarised.
SMALL = 10
#: The mark of an elided run of rows, columns, positions or terms.
ELLIPSIS = "…"
#: The tutorial the seed example (and lossctl) comes from.
ARTICLE = "“NLLLoss vs CrossEntropy: code + principle + why it works”"


@dataclass(frozen=True)
class Edges:
    """How much of a large input the trace keeps; ``None`` keeps everything.

    ``rows`` / ``cols``: leading and trailing rows and columns of a grid (and
    positions of a per-position list) once it has more than :data:`SMALL` of
    them; ``terms``: the first terms of the reduction written out before ``…``
    and the last one; ``worst``: how many worst positions the statistics list.
    """

    rows: int | None = 2
    cols: int | None = 3
    terms: int | None = 3
    worst: int = 5

    @staticmethod
    def full() -> Edges:
        return Edges(rows=None, cols=None, terms=None)


def present(indices: Sequence[int | None]) -> IntArray:
    """The kept indices without the ``None`` that marks an elision."""
    return np.array([i for i in indices if i is not None], dtype=np.intp)


def index_label(flat: int, shape: tuple[int, ...]) -> str:
    """``"1, 2"``: the multi-index of ``flat`` in ``shape`` (``""`` for a scalar)."""
    if not shape:
        return ""
    return ", ".join(str(int(i)) for i in np.unravel_index(flat, shape))


@dataclass(frozen=True)
class Layout:
    """Which cells of the input and which positions the trace shows, and how.

    ``rows``/``cols`` index the grid view of the input (rows: leading indices
    flattened, columns: the last axis); ``positions`` are flat indices into
    ``positions_shape`` (the input's shape without its class axis). ``cell_*``
    arrays have one entry per shown cell, shape (shown rows, shown columns).
    """

    shape: tuple[int, ...]
    class_dim: int | None
    axis_names: tuple[str, ...]
    rows: tuple[int | None, ...]
    cols: tuple[int | None, ...]
    orientation: Orientation
    positions_shape: tuple[int, ...]
    positions: tuple[int | None, ...]
    cell_index: tuple[IntArray, ...]
    cell_position: IntArray
    cell_class: IntArray
    full: bool = False

    @property
    def kept_rows(self) -> IntArray:
        return present(self.rows)

    @property
    def kept_cols(self) -> IntArray:
        return present(self.cols)

    @property
    def kept_positions(self) -> IntArray:
        return present(self.positions)

    @property
    def summarised(self) -> bool:
        return None in self.rows or None in self.cols

    @property
    def positions_summarised(self) -> bool:
        return None in self.positions

    @property
    def position_count(self) -> int:
        return math.prod(self.positions_shape)

    def row_label(self, row: int) -> str:
        return index_label(row, self.shape[:-1]) if len(self.shape) >= 2 else ""

    def position_label(self, flat: int) -> str:
        return index_label(flat, self.positions_shape)

    def position_index(self, flat: int) -> list[int]:
        if not self.positions_shape:
            return []
        return [int(i) for i in np.unravel_index(flat, self.positions_shape)]


@dataclass(frozen=True)
class Column:
    """A per-position quantity at the layout's shown positions.

    ``masked``: meaningless at ignored positions (it depends on the target).
    """

    key: str
    name: str
    values: npt.NDArray[Any]
    kind: ColumnKind = "number"
    masked: bool = False


@dataclass(frozen=True)
class ReductionTerms:
    """The reduction written out: the terms that are shown, the sum and the denominator."""

    reduction: Reduction
    style: TermStyle
    positions: tuple[int | None, ...]
    picked: FloatArray
    weights: FloatArray
    losses: FloatArray
    count: int
    total: float
    denominator: float
    denominator_kind: DenominatorKind
    loss: float | None


@dataclass(frozen=True)
class LossStats:
    """Per-position loss statistics over the counted positions, and the worst positions."""

    counted: int
    nan: int
    minimum: float
    median: float
    maximum: float
    worst: IntArray
    worst_target: IntArray
    worst_predicted: IntArray
    worst_picked: FloatArray
    worst_loss: FloatArray
    picked_name: str
    target_name: str


@dataclass(frozen=True)
class Remark:
    """A sentence about the numbers of a step, e.g. why it works on these values.

    ``template`` has ``{name}`` fields; the renderer fills them with ``numbers``,
    formatted the way it formats every other number of the trace.
    """

    template: str
    numbers: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Step:
    """One step of the trace: what it is, its formula, a short note and its numbers."""

    key: str
    title: str
    formula: str
    note: str
    grid: FloatArray | None = None
    grid_key: str = ""
    columns: tuple[Column, ...] = ()
    reduction: ReductionTerms | None = None
    stats: LossStats | None = None
    lines: tuple[str, ...] = ()
    remarks: tuple[Remark, ...] = ()
    equals: float | None = None
    result: str = ""
    warning: bool = False


@dataclass(frozen=True)
class Trace:
    """The steps of one computation and how to lay out their arrays.

    ``target_cells`` / ``ignored_cells`` (shape of the shown grid) mark each
    position's target class and the positions whose target is ``ignore_index``;
    ``ignored_positions`` does the same for the shown positions.
    """

    op: str
    layout: Layout
    steps: tuple[Step, ...]
    target_cells: BoolArray
    ignored_cells: BoolArray
    ignored_positions: BoolArray
    targets: TargetKind = "none"
