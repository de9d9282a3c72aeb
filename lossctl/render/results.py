"""Rich renderables for results: number formatting, summarised array grids, result tables.

Nothing here prints: the CLI hands the renderables to a ``rich.console.Console``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt
from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from lossctl.core.losses import LossResult
from lossctl.render.blocks import FactsTable, FirstFit
from lossctl.render.i18n import t, tr

if TYPE_CHECKING:
    from lossctl.core.merge import Merged  # only merged results need the module

ELLIPSIS = "…"


class NumberFormat:
    """Fixed ``digits`` decimals; scientific where fixed would show 0.0000 or be too wide."""

    __slots__ = ("digits", "max_fixed_width")

    def __init__(self, digits: int = 4, max_fixed_width: int = 12) -> None:
        self.digits = digits
        self.max_fixed_width = max_fixed_width

    def __call__(self, value: float) -> str:
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        fixed = f"{value:.{self.digits}f}"
        tiny = value != 0 and abs(value) < 0.5 * 10.0**-self.digits
        if tiny or len(fixed) > self.max_fixed_width:
            return f"{value:.{self.digits}e}"
        return fixed


class Summary(NamedTuple):
    """How many leading and trailing rows/columns to keep; ``None`` keeps everything."""

    edge_rows: int | None = 4
    edge_cols: int | None = 4

    @staticmethod
    def full() -> Summary:
        return Summary(edge_rows=None, edge_cols=None)


def kept_indices(length: int, edge: int | None) -> list[int | None]:
    """Indices to show along an axis of ``length``; ``None`` marks the elided middle."""
    if edge is None or length <= 2 * edge + 1:
        return list(range(length))
    return [*range(edge), None, *range(length - edge, length)]


def as_grid(
    array: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], Callable[[int], str]]:
    """View any array as rows x last-axis columns, with the label of a row (its leading index).

    Labels are made only for the rows shown: an input of shape (10**12, 0) has 10**12 rows.
    """
    if array.ndim <= 1:
        return array.reshape(1, -1 if array.ndim else 1), lambda row: ""
    leading = array.shape[:-1]

    def label(row: int) -> str:
        return ", ".join(str(int(i)) for i in np.unravel_index(row, leading))

    return array.reshape(math.prod(leading), array.shape[-1]), label


class Corners(NamedTuple):
    """The cells a summarised grid shows, computed without the rest of the array.

    ``rows`` index the leading positions (C order over ``shape[:-1]``), ``cols`` the last
    axis, ``None`` marking the elided middle (:func:`kept_indices`); ``cells`` holds the
    values at the kept rows x kept columns, ``(rows without None, cols without None)``.
    """

    shape: tuple[int, ...]
    rows: list[int | None]
    cols: list[int | None]
    cells: npt.NDArray[np.float64]

    @staticmethod
    def indices(
        shape: tuple[int, ...], summary: Summary
    ) -> tuple[list[int | None], list[int | None]]:
        """The grid rows and columns ``summary`` keeps of an array of ``shape``."""
        count = math.prod(shape[:-1]) if len(shape) >= 2 else 1
        width = shape[-1] if shape else 1
        return kept_indices(count, summary.edge_rows), kept_indices(width, summary.edge_cols)

    @staticmethod
    def of(array: npt.NDArray[np.float64], summary: Summary) -> Corners:
        grid, _ = as_grid(np.asarray(array))
        rows, cols = Corners.indices(tuple(array.shape), summary)
        kept_rows = [r for r in rows if r is not None]
        kept_cols = [c for c in cols if c is not None]
        cells = np.asarray(grid[np.ix_(kept_rows, kept_cols)], dtype=np.float64)
        return Corners(tuple(array.shape), rows, cols, cells)

    @staticmethod
    def from_blocks(
        shape: tuple[int, ...],
        summary: Summary,
        blocks: Iterable[tuple[tuple[slice | int, ...], npt.NDArray[Any]]],
    ) -> Corners:
        """The shown cells of an array of ``shape`` that arrives in rectangular blocks
        (``(index into shape, values)``, as the streamed gradient does): nothing else kept."""
        rows, cols = Corners.indices(shape, summary)
        kept_rows = np.array([r for r in rows if r is not None], dtype=np.intp)
        kept_cols = np.array([c for c in cols if c is not None], dtype=np.intp)
        at_row, at_col = np.meshgrid(
            np.arange(kept_rows.size), np.arange(kept_cols.size), indexing="ij"
        )
        lead = np.unravel_index(kept_rows, shape[:-1]) if len(shape) >= 2 else ()
        coords = [axis_index[at_row] for axis_index in lead] + [kept_cols[at_col]]
        cells = np.full(at_row.shape, np.nan)
        for index, values in blocks:
            inside = np.ones(at_row.shape, dtype=np.bool_)
            local = []
            for axis, (part, where) in enumerate(zip(index, coords, strict=True)):
                if isinstance(part, int):  # a fixed index: the axis is not in ``values``
                    inside &= where == part
                    continue
                start, stop, _ = part.indices(shape[axis])
                inside &= (where >= start) & (where < stop)
                local.append(where - start)
            if inside.any():
                cells[inside] = values[tuple(position[inside] for position in local)]
        return Corners(shape, rows, cols, cells)


def array_grid(
    array: npt.NDArray[np.float64] | Corners,
    *,
    title: str,
    fmt: NumberFormat,
    summary: Summary,
    caption: str | None = None,
) -> RenderableType:
    """A summarised table of ``array``: rows are the leading indices, columns the last axis.

    On a console narrower than the table, middle columns give way to one ``…`` column
    (never a broken number); ``--full`` (no column summary) keeps every column.
    """
    if math.prod(array.shape) == 0:  # nothing to show (rich cannot lay out a table without columns)
        table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_header=False)
        table.add_column("")
        table.add_row(t("result.no_values", shape=shape_text(array.shape)))
        return table
    corners = array if isinstance(array, Corners) else Corners.of(array, summary)
    choices = [corners]
    if summary.edge_cols is not None:
        shown = sum(col is not None for col in corners.cols)
        choices += [fewer_columns(corners, keep) for keep in range(shown - 1, 0, -1)]
    tables = [
        _grid_table(choice, title=title, fmt=fmt, caption=caption, wrap_caption=wrap)
        for wrap in (False, True)
        for choice in choices
    ]
    return WidestThatFits(tables)


def fewer_columns(corners: Corners, keep: int) -> Corners:
    """``corners`` with only ``keep`` of its shown columns: the first and last, ``…`` between."""
    shown = [j for j, col in enumerate(corners.cols) if col is not None]
    left, right = (keep + 1) // 2, keep // 2
    chosen = shown[:left] + shown[len(shown) - right :] if right else shown[:left]
    cols: list[int | None] = [corners.cols[j] for j in shown[:left]]
    cols += [None] + [corners.cols[j] for j in shown[len(shown) - right :]] if right else [None]
    position = {j: k for k, j in enumerate(shown)}
    cells = corners.cells[:, [position[j] for j in chosen]]
    return Corners(corners.shape, corners.rows, cols, cells)


class WidestThatFits(FirstFit):
    """The first of ``tables`` (widest first) that fits the console; the last if none does.

    Measured at the narrowest table's width, so that the CLI (which widens the console
    to a renderable's natural width, :func:`lossctl.cli.emit.emit_rich`) keeps the
    terminal's width whenever some choice fits it. A table whose caption wraps is made
    as wide as the console allows, up to the caption's width.
    """

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        chosen = self.choose(console, options)
        widest = self.tables[0].min_width or 0
        if (chosen.min_width or 0) < widest:
            chosen = copy.copy(chosen)
            chosen.min_width = min(widest, options.max_width)
        yield chosen

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        unbounded = options.update_width(1 << 16)
        narrowest = Measurement.get(console, unbounded, self.tables[-1]).maximum
        return Measurement(narrowest, narrowest)


def _grid_table(
    corners: Corners, *, title: str, fmt: NumberFormat, caption: str | None, wrap_caption: bool
) -> Table:
    """The table of the cells ``corners`` keeps (at least as wide as its title, and as its
    caption unless ``wrap_caption``)."""
    shape = corners.shape
    ndim = len(shape)
    if caption is None and ndim >= 2:
        leading = ", ".join(map(str, range(ndim - 1)))
        caption = t("result.grid_caption", rows=leading, columns=ndim - 1)
    table = Table(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        caption_justify="left",
        min_width=max(cell_len(title), 0 if wrap_caption else cell_len(caption or "")) + 2,
    )
    if ndim >= 2:
        table.add_column("", style="dim", justify="right")
    for col in corners.cols:
        table.add_column(ELLIPSIS if col is None else str(col), justify="right")
    i = 0
    for row in corners.rows:
        cells: list[str] = []
        if ndim >= 2:
            label = "" if row is None else ", ".join(map(str, np.unravel_index(row, shape[:-1])))
            cells.append(ELLIPSIS if row is None else label)
        j = 0
        for col in corners.cols:
            if row is None or col is None:
                cells.append(ELLIPSIS)
            else:
                cells.append(fmt(float(corners.cells[i, j])))
            j += col is not None
        i += row is not None
        table.add_row(*cells)
    return table


def facts_table(title: str, facts: Sequence[tuple[str, str | Text]]) -> FactsTable:
    """A two-column key/value table."""
    return FactsTable(title, facts)


def shape_text(shape: Sequence[int]) -> str:
    return str(tuple(int(n) for n in shape))


def denominator_text(result: LossResult, weighted: bool) -> str:
    """What the mean divides by, in words."""
    if result.target_kind == "probabilities" and result.input_shape[result.class_dim] == 0:
        return t("result.denominator.no_classes")  # PyTorch's numel/C is 0/0
    if result.target_kind == "probabilities":
        return t("result.denominator.positions", count=result.count)
    targets = t("result.target" if result.count == 1 else "result.targets_plural")
    key = "result.denominator.weights" if weighted else "result.denominator.count"
    return t(key, count=result.count, targets=targets)


def loss_view(
    result: LossResult,
    *,
    fmt: NumberFormat,
    summary: Summary,
    sources: Sequence[tuple[str, str]],
    weighted: bool,
    unshifted_shape: Sequence[int] | None = None,
) -> RenderableType:
    """The result table of ``ce`` / ``nll``: the loss and what it was computed from
    (``unshifted_shape``: the input's shape before ``--shift`` dropped a position)."""
    title = t(f"result.{result.op}")
    classes = result.input_shape[result.class_dim]
    facts: list[tuple[str, str | Text]] = []
    if result.reduction != "none":
        facts.append((t("result.loss"), Text(fmt(float(result.loss)), style="bold green")))
    facts += [
        (t("result.reduction"), result.reduction),
        *(
            [(t("result.input_shape"), shape_text(result.input_shape))]
            if unshifted_shape is None
            else [
                (t("result.input_shape"), shape_text(unshifted_shape)),
                (
                    t("result.shifted"),
                    t("result.shifted_value", shape=shape_text(result.input_shape)),
                ),
            ]
        ),
        (
            t("result.class_axis"),
            t("result.class_axis_value", axis=result.class_dim, classes=classes),
        ),
        (t("result.targets"), t(f"result.kind.{result.target_kind}")),
        (t("result.counted"), str(result.count)),
        (t("result.ignored"), str(result.ignored)),
        (t("result.sum"), fmt(result.total)),
        (
            t("result.denominator"),
            f"{fmt(result.denominator)} = {denominator_text(result, weighted)}",
        ),
        *((tr(name), value) for name, value in sources),
    ]
    parts: list[RenderableType] = [facts_table(title, facts)]
    if result.reduction == "none":
        parts.append(
            array_grid(
                result.per_position,
                title=t(
                    "result.per_position", title=title, shape=shape_text(result.per_position.shape)
                ),
                fmt=fmt,
                summary=summary,
            )
        )
    return Group(*parts)


def elementwise_view(
    op: str,
    result: npt.NDArray[np.float64] | Corners,
    *,
    dim: int | None,
    fmt: NumberFormat,
    summary: Summary,
    sources: Sequence[tuple[str, str]],
    stats: Sequence[tuple[str, str]] = (),
) -> RenderableType:
    """The result of ``softmax``, ``log-softmax`` or ``log``: the array and its axis.

    ``result`` is the whole array, or only the :class:`Corners` the grid shows (a large
    input); ``stats`` are extra facts (what was computed for the corners).
    """
    title = t(f"result.{op}")
    shape = result.shape
    axis = t("result.elementwise") if dim is None else t("result.axis_of", dim=dim, ndim=len(shape))
    facts: list[tuple[str, str | Text]] = [
        (t("result.shape"), shape_text(shape)),
        (t("result.axis"), axis),
    ]
    facts += stats
    facts += [(tr(name), value) for name, value in sources]
    if dim is None:
        grid_title = t("result.grid_elementwise", title=title)
    else:
        grid_title = t("result.grid_along", title=title, dim=dim)
    grid = array_grid(result, title=grid_title, fmt=fmt, summary=summary)
    return Group(facts_table(title, facts), grid)


def merged_view(merged: Merged, *, fmt: NumberFormat, summary: Summary) -> RenderableType:
    """The result of ``lossctl merge`` (or of many shards): the totals, and per position."""
    settings = merged.settings
    per_position = settings["reduction"] == "none"
    title = t("merge.title", op=t(f"merge.op.{settings['op']}"), shards=merged.shards)
    loss = t("merge.per_position_below") if per_position else fmt(float(merged.loss))
    facts = facts_table(
        title,
        [
            (t("result.loss"), loss),
            (t("result.reduction"), str(settings["reduction"])),
            (t("result.counted"), str(merged.count)),
            (t("result.ignored"), str(merged.ignored)),
            (t("result.sum"), fmt(merged.total)),
            (t("result.denominator"), fmt(merged.exact_denominator.to_float())),
        ],
    )
    if not per_position:
        return facts
    grid_title = t("merge.per_position", title=title)
    grid = array_grid(np.asarray(merged.loss), title=grid_title, fmt=fmt, summary=summary)
    return Group(facts, grid)
