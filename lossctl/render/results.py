"""Rich renderables for results: number formatting, summarised array grids, result tables.

Nothing here prints: the CLI hands the renderables to a ``rich.console.Console``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from rich import box
from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from lossctl.core.losses import LossResult
from lossctl.render.i18n import t, tr

if TYPE_CHECKING:
    from lossctl.core.merge import Merged  # only merged results need the module

ELLIPSIS = "…"


@dataclass(frozen=True)
class NumberFormat:
    """Fixed ``digits`` decimals; scientific where fixed would show 0.0000 or be too wide."""

    digits: int = 4
    max_fixed_width: int = 12

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


@dataclass(frozen=True)
class Summary:
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


@dataclass(frozen=True)
class Corners:
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


def array_grid(
    array: npt.NDArray[np.float64] | Corners,
    *,
    title: str,
    fmt: NumberFormat,
    summary: Summary,
    caption: str | None = None,
) -> Table:
    """A summarised table of ``array``: rows are the leading indices, columns the last axis."""
    if math.prod(array.shape) == 0:  # nothing to show (rich cannot lay out a table without columns)
        table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_header=False)
        table.add_column("")
        table.add_row(f"no values: the shape {shape_text(array.shape)} has a 0")
        return table
    corners = array if isinstance(array, Corners) else Corners.of(array, summary)
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
        min_width=max(cell_len(title), cell_len(caption or "")) + 2,
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


def facts_table(title: str, facts: Sequence[tuple[str, str | Text]]) -> Table:
    """A two-column key/value table."""
    table = Table(
        title=title,
        box=box.SIMPLE,
        show_header=False,
        title_justify="left",
        min_width=cell_len(title) + 2,
    )
    table.add_column("what", style="bold")
    table.add_column("value")
    for name, value in facts:
        table.add_row(name, value)
    return table


def shape_text(shape: Sequence[int]) -> str:
    return str(tuple(int(n) for n in shape))


def denominator_text(result: LossResult, weighted: bool) -> str:
    """What the mean divides by, in words."""
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
                ("shifted", f"{shape_text(result.input_shape)} (logits at t predict label t+1)"),
            ]
        ),
        (
            t("result.class_axis"),
            t("result.class_axis_value", axis=result.class_dim, classes=classes),
        ),
        (t("result.targets"), result.target_kind),
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
    title = f"{settings['op'].replace('_', ' ')} over {merged.shards} shards"
    facts = facts_table(
        title,
        [
            ("loss", "per position, below" if per_position else fmt(float(merged.loss))),
            ("reduction", str(settings["reduction"])),
            ("counted", str(merged.count)),
            ("ignored", str(merged.ignored)),
            ("sum", fmt(merged.total)),
            ("denominator", fmt(merged.exact_denominator.to_float())),
        ],
    )
    if not per_position:
        return facts
    grid = array_grid(
        np.asarray(merged.loss), title=f"{title}, per position", fmt=fmt, summary=summary
    )
    return Group(facts, grid)
