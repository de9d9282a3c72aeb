"""The ``--explain`` trace: every intermediate step of a loss or a softmax, as data.

Pure NumPy: no rich, no typer, no I/O. :mod:`lossctl.render.explain` draws the
steps as tables and :func:`steps_json` turns them into the ``steps`` array of
``--json``.

Every number comes from :mod:`lossctl.core.losses` (``row_stats``, ``log_softmax_rows``,
``loss_result``), so the trace shows the very float64 values the loss was
computed from. The work is O(size of the input) and mostly less: the loss is
computed once over everything (or handed in by the caller), and the per-class
steps are evaluated only on the positions that are shown, which for a large
input are the first and last few rows and columns, the terms of the reduction
that are written out and the worst positions.

Arrays are laid out as the user gave them (a :class:`Layout`): rows are the
leading indices, columns the last axis, like ``numpy`` prints a 2-D array.
Per-position quantities (``max``, ``Σ``, ``lse``, the loss…) follow the
positions: extra columns when the class axis is the last one (one row per
position), extra rows when a 2-D input has its classes along axis 0 (one column
per position), and a separate list of positions otherwise.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lossctl.core.losses import (
    DEFAULT_IGNORE_INDEX,
    FloatArray,
    LossOp,
    LossResult,
    Reduction,
    RowStats,
    log_softmax_rows,
    loss_result,
    normalize_axis,
    row_stats,
)

IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
Orientation = Literal["down", "across", "list", "none"]
ColumnKind = Literal["number", "index"]
TermStyle = Literal["neg", "weighted", "value"]
DenominatorKind = Literal["count", "weights", "positions"]
ElementwiseOp = Literal["softmax", "log_softmax", "log"]
Formatter = Callable[[float], str]

#: Arrays with at most this many rows (or columns) are never summarised.
SMALL = 10
#: The statistics step appears from this many positions on.
STATS_MIN_POSITIONS = 10
#: A row of log-probabilities has log Σ exp = 0; farther than this, it is not one.
LOGPROB_TOLERANCE = 1e-3
ELLIPSIS = "…"


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


def kept_indices(length: int, edge: int | None, small: int = SMALL) -> tuple[int | None, ...]:
    """Indices to show along an axis of ``length``; ``None`` marks the elided middle."""
    if edge is None or length <= max(small, 2 * edge + 1):
        return tuple(range(length))
    return (*range(edge), None, *range(length - edge, length))


def present(indices: Sequence[int | None]) -> IntArray:
    """The kept indices without the ``None`` that marks an elision."""
    return np.array([i for i in indices if i is not None], dtype=np.intp)


def _grid_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The (rows, columns) of ``shape`` viewed like ``render.as_grid``."""
    if not shape:
        return 1, 1
    if len(shape) == 1:
        return 1, shape[0]
    return math.prod(shape[:-1]), shape[-1]


def _label(flat: int, shape: tuple[int, ...]) -> str:
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
        return _label(row, self.shape[:-1]) if len(self.shape) >= 2 else ""

    def position_label(self, flat: int) -> str:
        return _label(flat, self.positions_shape)

    def position_index(self, flat: int) -> list[int]:
        if not self.positions_shape:
            return []
        return [int(i) for i in np.unravel_index(flat, self.positions_shape)]


def make_layout(
    shape: tuple[int, ...], class_dim: int | None, edges: Edges, class_name: str = "class"
) -> Layout:
    """The cells and positions to show of an input of ``shape`` with classes on ``class_dim``."""
    ndim = len(shape)
    others = [axis for axis in range(ndim) if axis != class_dim]
    names = tuple(
        class_name
        if axis == class_dim
        else ("position" if class_dim is not None and len(others) == 1 else f"axis {axis}")
        for axis in range(ndim)
    )
    grid_rows, grid_cols = _grid_shape(shape)
    rows = kept_indices(grid_rows, edges.rows)
    cols = kept_indices(grid_cols, edges.cols)
    r, c = present(rows), present(cols)
    if ndim == 0:
        cell_index: tuple[IntArray, ...] = ()
    elif ndim == 1:
        cell_index = (np.broadcast_to(c[None, :], (r.size, c.size)).astype(np.intp),)
    else:
        leading = np.unravel_index(r, shape[:-1]) if r.size else [r for _ in shape[:-1]]
        cell_index = (
            *(
                np.broadcast_to(np.asarray(i, dtype=np.intp)[:, None], (r.size, c.size)).copy()
                for i in leading
            ),
            np.broadcast_to(c[None, :], (r.size, c.size)).astype(np.intp),
        )
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
            full=edges.cols is None,
        )
    positions_shape = shape[:class_dim] + shape[class_dim + 1 :]
    orientation: Orientation
    if class_dim == ndim - 1:
        orientation, positions = "down", rows
    elif ndim == 2:
        orientation, positions = "across", cols
    else:
        orientation = "list"
        positions = kept_indices(math.prod(positions_shape), edges.rows)
    others_index = tuple(cell_index[axis] for axis in others)
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
        full=edges.cols is None,
    )


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
    targets: Literal["indices", "probabilities", "none"] = "none"


@dataclass(frozen=True)
class _Rows:
    """Full class rows of some positions, with their core statistics."""

    positions: IntArray  # sorted, unique flat positions
    x: FloatArray  # (k, C)
    stats: RowStats
    logp: FloatArray

    def at(self, flat: npt.NDArray[np.integer[Any]]) -> IntArray:
        return np.searchsorted(self.positions, flat).astype(np.intp)

    @property
    def maximum(self) -> FloatArray:
        if self.x.shape[1] == 0:
            return np.full(self.x.shape[0], -np.inf)
        maximum: FloatArray = np.max(self.x, axis=1)
        return maximum


def _fetch_rows(values: npt.NDArray[Any], class_dim: int, flat: IntArray) -> _Rows:
    """The class rows of ``flat`` positions as float64, and ``row_stats`` of them."""
    positions = np.unique(flat).astype(np.intp)
    moved = np.moveaxis(values, class_dim, -1)
    if moved.ndim == 1:
        x = np.broadcast_to(moved.astype(np.float64), (positions.size, moved.shape[0])).copy()
    elif positions.size:
        multi = np.unravel_index(positions, moved.shape[:-1])
        x = np.asarray(moved[multi], dtype=np.float64)
    else:
        x = np.empty((0, moved.shape[-1]))
    stats = row_stats(x)
    return _Rows(positions=positions, x=x, stats=stats, logp=log_softmax_rows(x, stats))


def _cells(values: npt.NDArray[Any], layout: Layout) -> FloatArray:
    """The input at the shown cells, as float64."""
    if not layout.shape:
        return np.asarray(values, dtype=np.float64).reshape(1, 1)
    cells: FloatArray = np.asarray(values[layout.cell_index], dtype=np.float64)
    return cells.reshape(layout.cell_position.shape)


def _edge_terms(flat: IntArray, edge: int | None) -> tuple[int | None, ...]:
    """The reduction's written-out terms: the first ``edge``, ``None``, the last one."""
    if edge is None or flat.size <= max(SMALL - 2, edge + 1):
        return tuple(int(i) for i in flat)
    return (*(int(i) for i in flat[:edge]), None, int(flat[-1]))


def _worst(losses: FloatArray, counted: BoolArray, k: int) -> IntArray:
    """Flat positions of the ``k`` largest counted losses, largest (and NaN) first."""
    k = min(k, int(np.count_nonzero(counted)))
    if k == 0:
        return np.empty(0, dtype=np.intp)
    masked = np.where(counted, losses, -np.inf)
    top = np.argpartition(masked, masked.size - k)[masked.size - k :]
    order = np.argsort(masked[top], kind="stable")[::-1]
    return top[order].astype(np.intp)


def _stats(
    losses: FloatArray,
    counted: BoolArray,
    worst: IntArray,
    rows: _Rows,
    targets: IntArray,
    picked_name: str,
    target_name: str,
    picked_as_probability: bool,
) -> LossStats:
    values = losses[counted]
    nan = int(np.count_nonzero(np.isnan(values)))
    finite = values[~np.isnan(values)]
    if finite.size:
        minimum, median, maximum = (
            float(np.min(finite)),
            float(np.median(finite)),
            float(np.max(finite)),
        )
    else:
        minimum = median = maximum = math.nan
    at = rows.at(worst)
    if not rows.x.shape[1]:
        picked = np.full(worst.size, np.nan)
    elif picked_as_probability:
        with np.errstate(over="ignore"):
            picked = np.exp(rows.logp[at, targets])
    else:
        picked = rows.x[at, targets]
    with np.errstate(invalid="ignore"):
        predicted = (
            np.argmax(rows.x[at], axis=1) if rows.x.shape[1] else np.zeros(worst.size, np.intp)
        )
    return LossStats(
        counted=int(values.size),
        nan=nan,
        minimum=minimum,
        median=median,
        maximum=maximum,
        worst=worst,
        worst_target=targets.astype(np.intp),
        worst_predicted=np.asarray(predicted, dtype=np.intp),
        worst_picked=np.asarray(picked, dtype=np.float64),
        worst_loss=losses[worst],
        picked_name=picked_name,
        target_name=target_name,
    )


def _shared_steps(rows: _Rows, layout: Layout, x_cells: FloatArray) -> list[Step]:
    """Max-shift, exp and sum: the start of softmax, log-softmax and cross-entropy."""
    cell_rows = rows.at(layout.cell_position)
    classes = layout.cell_class
    p_rows = rows.at(layout.kept_positions)
    maximum = rows.maximum[p_rows]
    log_norm = rows.stats.log_norm[p_rows]
    shifted = rows.stats.shifted[cell_rows, classes]
    with np.errstate(over="ignore", invalid="ignore"):
        exp_cells = np.exp(shifted)
        total = np.exp(log_norm)
        lse = maximum + log_norm
    return [
        Step(
            key="shift",
            title="Max-shift",
            formula="x - max,   max = the largest x of each position",
            note=(
                "For stability: exp(x - max) ≤ 1 cannot overflow; the result does not change "
                "(exp(-max) cancels)."
            ),
            grid=shifted,
            grid_key="shifted",
            columns=(Column("max", "max", maximum),),
        ),
        Step(
            key="exp",
            title="Exponentiate and sum",
            formula="exp(x - max),   Σ = Σ_c exp(x_c - max),   lse = max + log Σ",
            note=(
                "The max's term is exactly 1, so 1 ≤ Σ ≤ classes; lse = log Σ_c exp(x_c), "
                "without overflow."
            ),
            grid=exp_cells,
            grid_key="exp",
            columns=(
                Column("sum", "Σ", total),
                Column("log_sum", "log Σ", log_norm),
                Column("lse", "lse", lse),
            ),
        ),
    ]


def _softmax_step(rows: _Rows, layout: Layout, article: bool) -> Step:
    cell_rows = rows.at(layout.cell_position)
    with np.errstate(over="ignore"):
        probs = np.exp(rows.logp[cell_rows, layout.cell_class])
        sums = np.exp(rows.logp[rows.at(layout.kept_positions)]).sum(axis=1)
    return Step(
        key="softmax",
        title="Softmax" + (" (the article's step 1)" if article else ""),
        formula="softmax = exp(x - max) / Σ",
        note="Probabilities: each position's values are in [0, 1] and sum to 1.",
        grid=probs,
        grid_key="softmax",
        columns=(Column("softmax_sum", "Σ", sums),),
    )


def _log_softmax_step(
    rows: _Rows, layout: Layout, article: bool, columns: tuple[Column, ...]
) -> Step:
    cell_rows = rows.at(layout.cell_position)
    return Step(
        key="log_softmax",
        title="Log of the softmax = log-softmax" + (" (step 2)" if article else ""),
        formula="log_softmax = log(softmax) = (x - max) - log Σ",
        note=(
            "Computed as (x - max) - log Σ, not log(softmax): tiny probabilities keep exact logs."
        ),
        grid=rows.logp[cell_rows, layout.cell_class],
        grid_key="log_softmax",
        columns=columns,
    )


def _input_step(
    title: str, x_cells: FloatArray, layout: Layout, note: str, columns: tuple[Column, ...]
) -> Step:
    shape = str(tuple(int(n) for n in layout.shape))
    if layout.class_dim is None:
        formula = f"shape {shape}"
    else:
        formula = (
            f"shape {shape}: {layout.shape[layout.class_dim]} classes along axis "
            f"{layout.class_dim}, {layout.position_count} position"
            + ("" if layout.position_count == 1 else "s")
        )
    return Step(
        key="input",
        title=title,
        formula=formula,
        note=note,
        grid=x_cells,
        grid_key="x",
        columns=columns,
    )


def _reduce_step(
    op: LossOp,
    result: LossResult,
    terms: ReductionTerms | None,
    weighted: bool,
) -> Step:
    reduction = result.reduction
    if result.target_kind == "probabilities":
        denominator = "the number of positions, N·d1·…·dk (probability targets)"
        formula = "mean = Σ_n loss_n / (N·d1·…·dk)"
    elif weighted:
        denominator = f"the sum of the class weights w[t_n] of the {result.count} counted targets"
        formula = "mean = Σ_n loss_n / Σ_n w[t_n]   (counted n)"
    else:
        denominator = f"the number of counted targets ({result.count})"
        formula = "mean = Σ_n loss_n / (number of counted targets)"
    ignored = (
        f"; {result.ignored} ignored position"
        + (" counts" if result.ignored == 1 else "s count")
        + " for nothing"
        if result.ignored
        else ""
    )
    if reduction == "mean":
        note = f"Divided by {denominator}{ignored}."
    elif reduction == "sum":
        formula = "sum = Σ_n loss_n"
        note = f"No division{ignored}."
    else:
        formula = "none: one loss per position, no reduction"
        note = "The per-position losses of the previous step are the result."
    title = {"mean": "Reduction: mean", "sum": "Reduction: sum", "none": "Reduction: none"}
    return Step(
        key="reduce",
        title=title[reduction],
        formula=formula,
        note=note,
        reduction=terms,
        equals=None if reduction == "none" else float(result.loss),
    )


def explain_loss(
    op: LossOp,
    input: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    weight: npt.ArrayLike | None = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    class_dim: int | None = None,
    edges: Edges | None = None,
    result: LossResult | None = None,
) -> Trace:
    """The trace of ``cross_entropy`` or ``nll_loss`` (same arguments as ``core.loss_result``).

    Pass ``result`` when the loss was already computed with the same arguments
    (the CLI does) so that the work is not done twice.
    """
    edges = Edges() if edges is None else edges
    if result is None:
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
    values = np.asarray(input)
    labels = np.asarray(target)
    axis = result.class_dim
    classes = values.shape[axis]
    w = None if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
    layout = make_layout(tuple(values.shape), axis, edges)
    losses = np.asarray(result.per_position, dtype=np.float64).reshape(-1)
    count = losses.size
    probabilities = result.target_kind == "probabilities"

    if probabilities:
        counted = np.ones(count, dtype=np.bool_)
        indices = np.zeros(count, dtype=np.intp)
        target_weight = np.ones(count)
    else:
        flat_t = labels.reshape(-1)
        counted = flat_t != ignore_index
        indices = np.where(counted, flat_t, 0).astype(np.intp)
        target_weight = np.ones(count) if w is None else w[indices]
        target_weight = np.where(counted, target_weight, 0.0)
    counted_flat = np.flatnonzero(counted).astype(np.intp)
    term_positions = _edge_terms(counted_flat, edges.terms)
    with_stats = count >= STATS_MIN_POSITIONS
    worst = _worst(losses, counted, edges.worst) if with_stats else np.empty(0, np.intp)
    needed = np.concatenate(
        [
            layout.kept_positions,
            layout.cell_position.reshape(-1),
            present(term_positions),
            worst,
        ]
    )
    rows = _fetch_rows(values, axis, needed)

    # Marks: the target cell of each position, and the ignored positions.
    kept = layout.kept_positions
    if probabilities:
        target_cells = np.zeros(layout.cell_class.shape, dtype=np.bool_)
        ignored_cells = target_cells
        ignored_positions = np.zeros(kept.size, dtype=np.bool_)
    else:
        cell_counted = counted[layout.cell_position]
        target_cells = cell_counted & (indices[layout.cell_position] == layout.cell_class)
        ignored_cells = ~cell_counted
        ignored_positions = ~counted[kept]

    x_cells = _cells(values, layout)
    p_rows = rows.at(kept)
    t_kept = indices[kept]
    target_column = Column(
        "target", "target", np.asarray(labels.reshape(-1)[kept]).astype(np.int64), "index"
    )
    smoothing = label_smoothing > 0.0 and op == "cross_entropy"
    weighted = w is not None
    steps: list[Step] = []

    if op == "nll_loss":
        picked_x = rows.x[p_rows, t_kept] if classes else np.zeros(kept.size)
        lse = rows.maximum[p_rows] + rows.stats.log_norm[p_rows]
        steps.append(
            _input_step(
                "Input log-probabilities",
                x_cells,
                layout,
                "As given. NLL expects log-probabilities: each position's log Σ exp is then 0.",
                (target_column, Column("lse", "log Σ exp", lse)),
            )
        )
        steps.append(
            Step(
                key="pick",
                title="Pick",
                formula="x[n, t_n]: each position's value at its target class",
                note="NLL only picks: it does not normalise, and never looks at the other classes.",
                columns=(target_column, Column("picked", "x[target]", picked_x, masked=True)),
            )
        )
        steps.append(
            Step(
                key="negate",
                title="Negate",
                formula="-x[n, t_n]",
                note="A log-probability is ≤ 0, so its negation is a loss ≥ 0.",
                columns=(Column("negated", "-x[target]", -picked_x, masked=True),),
            )
        )
        steps.append(_mask_weight_step(target_weight[kept], counted[kept], losses[kept], weighted))
    else:
        steps.append(
            _input_step(
                "Input logits",
                x_cells,
                layout,
                "As given."
                if probabilities
                else "As given; the target class of each position is marked.",
                () if probabilities else (target_column,),
            )
        )
        steps += _shared_steps(rows, layout, x_cells)
        steps.append(_softmax_step(rows, layout, article=True))
        logp_t = rows.logp[p_rows, t_kept] if classes else np.zeros(kept.size)
        steps.append(
            _log_softmax_step(
                rows,
                layout,
                article=True,
                columns=()
                if probabilities
                else (Column("picked", "logp[target]", logp_t, masked=True),),
            )
        )
        if probabilities:
            steps += _probability_steps(values, labels, layout, rows, w, label_smoothing, losses)
        else:
            steps.append(
                _nll_step(
                    rows,
                    kept,
                    t_kept,
                    target_column,
                    target_weight[kept],
                    counted[kept],
                    losses[kept],
                    w,
                    label_smoothing,
                    classes,
                    weighted,
                    smoothing,
                )
            )

    # The reduction, written out.
    terms: ReductionTerms | None = None
    if result.reduction != "none":
        tp = present(term_positions)
        t_rows = rows.at(tp)
        if op == "nll_loss":
            picked = rows.x[t_rows, indices[tp]] if classes else np.zeros(tp.size)
        elif probabilities or not classes:
            picked = np.zeros(tp.size)
        else:
            picked = rows.logp[t_rows, indices[tp]]
        style: TermStyle = (
            "value" if probabilities or smoothing else ("weighted" if weighted else "neg")
        )
        terms = ReductionTerms(
            reduction=result.reduction,
            style=style,
            positions=term_positions,
            picked=picked,
            weights=target_weight[tp],
            losses=losses[tp],
            count=int(counted_flat.size),
            total=result.total,
            denominator=result.denominator,
            denominator_kind="positions" if probabilities else ("weights" if weighted else "count"),
            loss=float(result.loss),
        )
    steps.append(_reduce_step(op, result, terms, weighted))

    if with_stats:
        if probabilities:
            q_rows = _fetch_rows(labels, axis, worst)
            q_worst = q_rows.x[q_rows.at(worst)]
            worst_targets = (
                np.argmax(q_worst, axis=1) if q_worst.size else np.zeros(worst.size, np.intp)
            )
        else:
            worst_targets = indices[worst]
        steps.append(
            Step(
                key="stats",
                title="Per-position losses",
                formula="min, median, max over the counted positions; the worst positions",
                note=(
                    "predicted = the class with the largest input value; "
                    + ("p(target)" if op == "cross_entropy" else "x[target]")
                    + " at the target class."
                    if not probabilities
                    else "predicted = the class with the largest input; target = the class "
                    "with the largest target probability."
                ),
                stats=_stats(
                    losses,
                    counted,
                    worst,
                    rows,
                    np.asarray(worst_targets, dtype=np.intp),
                    "p(target)" if op == "cross_entropy" else "x[target]",
                    "top target" if probabilities else "target",
                    picked_as_probability=op == "cross_entropy",
                ),
            )
        )

    if op == "nll_loss":
        steps.append(
            _logprob_check(
                values,
                labels,
                rows,
                layout,
                losses,
                counted,
                result,
                weight,
                ignore_index,
                class_dim=axis,
            )
        )
    else:
        steps.append(
            Step(
                key="identity",
                title="What this showed",
                formula="cross_entropy = nll(log(softmax(x)))",
                note=(
                    "Softmax, then log, then NLL: cross-entropy is NLL applied to log-softmax"
                    + (", with the targets smoothed by ε" if smoothing else "")
                    + "."
                ),
                equals=None if result.reduction == "none" else float(result.loss),
            )
        )
    return Trace(
        op=op,
        layout=layout,
        steps=tuple(steps),
        target_cells=target_cells,
        ignored_cells=ignored_cells,
        ignored_positions=ignored_positions,
        targets="probabilities" if probabilities else "indices",
    )


def _mask_weight_step(
    target_weight: FloatArray, counted: BoolArray, losses: FloatArray, weighted: bool
) -> Step:
    columns = [Column("mask", "mask", counted.astype(np.int64), "index")]
    if weighted:
        columns.append(Column("weight", "w[target]", target_weight, masked=True))
    columns.append(Column("loss", "loss", losses))
    return Step(
        key="mask_weight",
        title="Mask and weight" if weighted else "Mask",
        formula="loss_n = mask_n · w[t_n] · (-x[n, t_n]),   mask_n = 0 where t_n = ignore_index"
        if weighted
        else "loss_n = mask_n · (-x[n, t_n]),   mask_n = 0 where t_n = ignore_index",
        note="Ignored positions contribute 0 and are not counted"
        + ("; counted ones are scaled by the weight of their target class." if weighted else "."),
        columns=tuple(columns),
    )


def _nll_step(
    rows: _Rows,
    kept: IntArray,
    t_kept: IntArray,
    target_column: Column,
    target_weight: FloatArray,
    counted: BoolArray,
    losses: FloatArray,
    w: FloatArray | None,
    eps: float,
    classes: int,
    weighted: bool,
    smoothing: bool,
) -> Step:
    p_rows = rows.at(kept)
    nll = -rows.logp[p_rows, t_kept] if classes else np.zeros(kept.size)
    columns = [target_column, Column("nll", "-logp[target]", nll, masked=True)]
    if weighted:
        columns.append(Column("weight", "w[target]", target_weight, masked=True))
    columns.append(Column("mask", "mask", counted.astype(np.int64), "index"))
    if smoothing:
        logp = rows.logp[p_rows]
        with np.errstate(invalid="ignore"):
            uniform = -np.sum(logp if w is None else logp * w, axis=1)
            picked_part = (1.0 - eps) * target_weight * nll
            uniform_part = (eps / classes) * uniform
        columns += [
            Column(
                "target_part", "(1-ε)·w·nll" if weighted else "(1-ε)·nll", picked_part, masked=True
            ),
            Column("uniform", "Σ_c w_c·(-logp_c)" if weighted else "Σ_c -logp_c", uniform),
            Column("uniform_part", "ε/C·Σ", uniform_part, masked=True),
        ]
        formula = (
            "loss_n = (1 - ε)·w[t_n]·(-logp[n, t_n]) + (ε/C)·Σ_c w_c·(-logp[n, c])"
            if weighted
            else "loss_n = (1 - ε)·(-logp[n, t_n]) + (ε/C)·Σ_c -logp[n, c]"
        )
        note = (
            f"Label smoothing, ε = {eps:g}, C = {classes}: the target keeps 1 - ε, every class "
            "gets ε/C (the uniform part)."
        )
    else:
        formula = (
            "loss_n = w[t_n]·(-logp[n, t_n]),   0 where t_n = ignore_index"
            if weighted
            else "loss_n = -logp[n, t_n],   0 where t_n = ignore_index"
        )
        note = (
            "Pick each position's log-softmax at its target class and negate it"
            + (", times the class weight" if weighted else "")
            + "; ignored positions count 0."
        )
    columns.append(Column("loss", "loss", losses))
    return Step(
        key="nll",
        title="NLL (step 3)",
        formula=formula,
        note=note,
        columns=tuple(columns),
    )


def _probability_steps(
    values: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    layout: Layout,
    rows: _Rows,
    w: FloatArray | None,
    eps: float,
    losses: FloatArray,
) -> list[Step]:
    classes = layout.shape[layout.class_dim or 0]
    q = _cells(labels, layout)
    q_rows = _fetch_rows(labels, layout.class_dim or 0, layout.kept_positions)
    q_sum = q_rows.x.sum(axis=1)[q_rows.at(layout.kept_positions)]
    if eps > 0.0:
        q = q * (1.0 - eps) + eps / classes
        q_sum = q_sum * (1.0 - eps) + eps
    logp = rows.logp[rows.at(layout.cell_position), layout.cell_class]
    weight = 1.0 if w is None else w[layout.cell_class]
    with np.errstate(invalid="ignore"):
        products = -(q * weight) * logp
    kept = layout.kept_positions
    return [
        Step(
            key="targets",
            title="Target probabilities" + (" (smoothed)" if eps > 0 else ""),
            formula=f"q' = (1 - ε)·q + ε/C,   ε = {eps:g}, C = {classes}" if eps > 0 else "q",
            note="Probability targets: one distribution per position, the input's shape.",
            grid=q,
            grid_key="q",
            columns=(Column("q_sum", "Σ", q_sum),),
        ),
        Step(
            key="nll",
            title="Cross-entropy per position (step 3)",
            formula=(
                "loss_n = -Σ_c w_c·q'[n, c]·logp[n, c]"
                if eps > 0
                else "loss_n = -Σ_c w_c·q[n, c]·logp[n, c]"
            )
            if w is not None
            else (
                "loss_n = -Σ_c q'[n, c]·logp[n, c]"
                if eps > 0
                else "loss_n = -Σ_c q[n, c]·logp[n, c]"
            ),
            note=(
                "Each cell is one term of the sum; a one-hot q picks one entry, as class "
                "indices do."
            ),
            grid=products,
            grid_key="terms",
            columns=(Column("loss", "loss", losses[kept]),),
        ),
    ]


def _logprob_check(
    values: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    rows: _Rows,
    layout: Layout,
    losses: FloatArray,
    counted: BoolArray,
    result: LossResult,
    weight: npt.ArrayLike | None,
    ignore_index: int,
    class_dim: int,
) -> Step:
    """Is the input of ``nll`` log-probabilities? If not, say so and show what ``ce`` gives."""
    reasons: list[str] = []
    with np.errstate(invalid="ignore"):
        positive = int(np.count_nonzero(values > LOGPROB_TOLERANCE)) if values.size else 0
        lse = rows.maximum + rows.stats.log_norm
        far = np.abs(lse) > LOGPROB_TOLERANCE
        negative = int(np.count_nonzero(counted & (losses < 0)))
    if positive:
        reasons.append(
            f"{positive} value{'s are' if positive != 1 else ' is'} above 0 (a log-probability "
            "is ≤ 0)"
        )
    if far.any():
        where = int(rows.positions[int(np.argmax(np.where(far, np.abs(lse), -1)))])
        reasons.append(
            f"{int(np.count_nonzero(far))} of the {rows.positions.size} checked positions have "
            f"log Σ exp far from 0 (the farthest: position {layout.position_label(where) or '()'})"
        )
    if negative:
        first = int(np.argmax(counted & (losses < 0)))
        reasons.append(
            f"{negative} position{'s have' if negative != 1 else ' has'} a negative loss "
            f"(the first: position {layout.position_label(first) or '()'}), which -log p ≥ 0 "
            "never gives"
        )
    if not reasons:
        return Step(
            key="identity",
            title="What this showed",
            formula="nll_loss(log_softmax(x), t) = cross_entropy(x, t)",
            note=(
                "The input looks like log-probabilities (log Σ exp = 0 at every checked position), "
                "so this is the cross-entropy of the logits it came from."
            ),
            equals=None if result.reduction == "none" else float(result.loss),
        )
    ce = loss_result(
        "cross_entropy",
        values,
        labels,
        weight=weight,
        ignore_index=ignore_index,
        reduction=result.reduction,
        class_dim=class_dim,
    )
    lines = (
        "nll only picks and negates. On raw logits it rewards a large value at the target "
        "whatever the other classes hold, so it can favour the wrong class and go negative. "
        "Take log_softmax first, or use ce, which does.",
    )
    return Step(
        key="check",
        title="The input is not log-probabilities",
        formula="every value ≤ 0 and log Σ exp = 0 at each position",
        note=_sentence("; ".join(reasons)),
        lines=lines,
        result="ce gives: cross_entropy(x, t) = nll_loss(log_softmax(x), t)",
        equals=None if ce.reduction == "none" else float(ce.loss),
        warning=True,
    )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def explain_elementwise(
    op: ElementwiseOp,
    input: npt.ArrayLike,
    *,
    dim: int | None,
    edges: Edges | None = None,
) -> Trace:
    """The trace of ``softmax`` / ``log_softmax`` along ``dim``, or of the elementwise ``log``.

    ``log`` takes ``dim`` as the axis its input was normalised along (``None``
    when unknown); it is used only to show each position's sum.
    """
    edges = Edges() if edges is None else edges
    values = np.asarray(input)
    if values.dtype.kind not in "iuf":
        values = np.asarray(values, dtype=np.float64)
    axis = None if dim is None else normalize_axis(dim, values.ndim, "softmax axis")
    layout = make_layout(tuple(values.shape), axis, edges)
    x_cells = _cells(values, layout)
    nothing = np.zeros(layout.cell_class.shape, dtype=np.bool_)
    steps: list[Step] = []
    if op == "log":
        columns: tuple[Column, ...] = ()
        if axis is not None:
            rows = _fetch_rows(values, axis, layout.kept_positions)
            sums = rows.x.sum(axis=1)[rows.at(layout.kept_positions)]
            columns = (Column("sum", "Σ", sums),)
        steps.append(
            _input_step(
                "Input probabilities p",
                x_cells,
                layout,
                "As given; probabilities are in [0, 1]"
                + (" and sum to 1 along the axis." if axis is not None else "."),
                columns,
            )
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(x_cells)
        steps.append(
            Step(
                key="log",
                title="Log",
                formula="log(p), elementwise",
                note="log 1 = 0, log 0 = -inf, and the log of a negative number is nan.",
                grid=logs,
                grid_key="log",
            )
        )
        steps.append(
            Step(
                key="identity",
                title="What this showed",
                formula="log(softmax(x)) = log_softmax(x)",
                note="The middle step of softmax → log → NLL; log_softmax does both at once, "
                "more accurately for tiny probabilities.",
            )
        )
    else:
        assert axis is not None
        rows = _fetch_rows(
            values, axis, np.concatenate([layout.kept_positions, layout.cell_position.reshape(-1)])
        )
        steps.append(_input_step("Input x", x_cells, layout, "As given.", ()))
        steps += _shared_steps(rows, layout, x_cells)
        if op == "softmax":
            step = _softmax_step(rows, layout, article=False)
            steps.append(dataclasses.replace(step, title="Divide: softmax"))
            identity = "softmax(x) = exp(x - max) / Σ_c exp(x_c - max) = exp(x) / Σ_c exp(x_c)"
        else:
            step = _log_softmax_step(rows, layout, article=False, columns=())
            steps.append(dataclasses.replace(step, title="Subtract: log-softmax"))
            identity = "log_softmax(x) = x - lse = log(softmax(x))"
        steps.append(
            Step(
                key="identity",
                title="What this showed",
                formula=identity,
                note=f"Along axis {axis}; the max-shift changed nothing but the safety of exp.",
            )
        )
    return Trace(
        op=op,
        layout=layout,
        steps=tuple(steps),
        target_cells=nothing,
        ignored_cells=nothing,
        ignored_positions=np.zeros(layout.kept_positions.size, dtype=np.bool_),
    )


# ----------------------------------------------------------------- text and JSON


def equation(terms: ReductionTerms, fmt: Formatter) -> str:
    """The reduction with its numbers, e.g. ``[-(-5.1724) + -(-1.3586)] / 2 = 3.2655``."""
    written: list[str] = []
    i = 0
    for position in terms.positions:
        if position is None:
            written.append(ELLIPSIS)
            continue
        if terms.style == "neg":
            written.append(f"-({fmt(float(terms.picked[i]))})")
        elif terms.style == "weighted":
            written.append(f"{fmt(float(terms.weights[i]))}·-({fmt(float(terms.picked[i]))})")
        else:
            written.append(fmt(float(terms.losses[i])))
        i += 1
    body = " + ".join(written) if written else "0"
    if terms.reduction == "sum":
        return f"{body} = {fmt(terms.total)}"
    if terms.denominator_kind == "weights":
        denominator = fmt(terms.denominator)
    else:
        denominator = str(int(terms.denominator))
    loss = math.nan if terms.loss is None else terms.loss
    return f"[{body}] / {denominator} = {fmt(loss)}"


def _grid_json(grid: npt.NDArray[Any], layout: Layout) -> dict[str, Any]:
    doc: dict[str, Any] = {"shape": list(layout.shape), "axes": list(layout.axis_names)}
    if layout.summarised:
        doc.update(
            summarised=True,
            rows=[int(r) for r in layout.kept_rows],
            row_index=[
                [int(i) for i in np.unravel_index(r, layout.shape[:-1])]
                if len(layout.shape) >= 2
                else []
                for r in layout.kept_rows
            ],
            cols=[int(c) for c in layout.kept_cols],
            values=grid,
        )
    else:
        doc.update(summarised=False, values=grid.reshape(layout.shape))
    return doc


def _column_json(column: Column, trace: Trace) -> dict[str, Any]:
    layout = trace.layout
    values: list[Any] = []
    for value, ignored in zip(
        column.values.tolist(), trace.ignored_positions.tolist(), strict=True
    ):
        values.append(None if column.masked and ignored else value)
    doc: dict[str, Any] = {"name": column.name, "shape": list(layout.positions_shape)}
    if layout.positions_summarised:
        doc.update(
            summarised=True,
            positions=[layout.position_index(int(p)) for p in layout.kept_positions],
            values=values,
        )
    else:
        doc.update(
            summarised=False,
            values=np.asarray(values, dtype=object).reshape(layout.positions_shape).tolist(),
        )
    return doc


def steps_json(trace: Trace, fmt: Formatter) -> list[dict[str, Any]]:
    """The ``steps`` array of ``--explain --json`` (non-finite numbers left to ``jsonable``)."""
    layout = trace.layout
    out: list[dict[str, Any]] = []
    for step in trace.steps:
        values: dict[str, Any] = {}
        if step.grid is not None:
            values[step.grid_key] = _grid_json(step.grid, layout)
            if step.key == "input" and trace.targets == "indices":
                values["target_cells"] = _grid_json(trace.target_cells, layout)["values"]
        for column in step.columns:
            values[column.key] = _column_json(column, trace)
        if step.reduction is not None:
            terms = step.reduction
            values["reduction"] = {
                "reduction": terms.reduction,
                "equation": equation(terms, fmt),
                "count": terms.count,
                "sum": terms.total,
                "denominator": terms.denominator,
                "denominator_kind": terms.denominator_kind,
                "loss": terms.loss,
                "terms": [
                    {
                        "position": layout.position_index(p),
                        "picked": float(terms.picked[i]),
                        "weight": float(terms.weights[i]),
                        "loss": float(terms.losses[i]),
                    }
                    for i, p in enumerate(present(terms.positions).tolist())
                ],
                "summarised": None in terms.positions,
            }
        if step.stats is not None:
            stats = step.stats
            values["stats"] = {
                "counted": stats.counted,
                "nan": stats.nan,
                "min": stats.minimum,
                "median": stats.median,
                "max": stats.maximum,
                "worst": [
                    {
                        "position": layout.position_index(int(p)),
                        stats.target_name.replace(" ", "_"): int(stats.worst_target[i]),
                        "predicted": int(stats.worst_predicted[i]),
                        stats.picked_name: float(stats.worst_picked[i]),
                        "loss": float(stats.worst_loss[i]),
                    }
                    for i, p in enumerate(stats.worst.tolist())
                ],
            }
        if step.lines:
            values["lines"] = list(step.lines)
        if step.equals is not None:
            values["equals"] = step.equals
        if step.result:
            values["result"] = step.result
        out.append(
            {
                "name": step.key,
                "title": step.title,
                "formula": step.formula,
                "note": step.note,
                "values": values,
            }
        )
    return out
