"""Rich renderables for results: number formatting, summarised array grids, result tables.

Nothing here prints: the CLI hands the renderables to a ``rich.console.Console``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from lossctl.core.losses import LossResult
from lossctl.core.merge import Merged

ELLIPSIS = "…"
OP_TITLES = {
    "cross_entropy": "cross-entropy",
    "nll_loss": "NLL loss",
    "softmax": "softmax",
    "log_softmax": "log-softmax",
    "log": "log",
}


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


def array_grid(
    array: npt.NDArray[np.float64],
    *,
    title: str,
    fmt: NumberFormat,
    summary: Summary,
    caption: str | None = None,
) -> Table:
    """A summarised table of ``array``: rows are the leading indices, columns the last axis."""
    if array.size == 0:  # nothing to show (and rich cannot lay out a table without columns)
        table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_header=False)
        table.add_column("")
        table.add_row(f"no values: the shape {shape_text(array.shape)} has a 0")
        return table
    grid, label = as_grid(array)
    rows = kept_indices(grid.shape[0], summary.edge_rows)
    cols = kept_indices(grid.shape[1], summary.edge_cols)
    if caption is None and array.ndim >= 2:
        leading = ", ".join(map(str, range(array.ndim - 1)))
        caption = f"rows: axis {leading}; columns: axis {array.ndim - 1}"
    table = Table(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        caption_justify="left",
        min_width=max(len(title), len(caption or "")) + 2,
    )
    if array.ndim >= 2:
        table.add_column("", style="dim", justify="right")
    for col in cols:
        table.add_column(ELLIPSIS if col is None else str(col), justify="right")
    for row in rows:
        cells: list[str] = []
        if array.ndim >= 2:
            cells.append(ELLIPSIS if row is None else label(row))
        for col in cols:
            if row is None or col is None:
                cells.append(ELLIPSIS)
            else:
                cells.append(fmt(float(grid[row, col])))
        table.add_row(*cells)
    return table


def facts_table(title: str, facts: Sequence[tuple[str, str | Text]]) -> Table:
    """A two-column key/value table."""
    table = Table(
        title=title,
        box=box.SIMPLE,
        show_header=False,
        title_justify="left",
        min_width=len(title) + 2,
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
        return f"{result.count} positions (probability targets: N·d1·…·dk)"
    if weighted:
        return f"Σ w[target] over {result.count} counted targets"
    return f"{result.count} counted targets"


def loss_view(
    result: LossResult,
    *,
    fmt: NumberFormat,
    summary: Summary,
    sources: Sequence[tuple[str, str]],
    weighted: bool,
) -> RenderableType:
    """The result table of ``ce`` / ``nll``: the loss and what it was computed from."""
    title = OP_TITLES[result.op]
    facts: list[tuple[str, str | Text]] = []
    if result.reduction != "none":
        facts.append(("loss", Text(fmt(float(result.loss)), style="bold green")))
    facts += [
        ("reduction", result.reduction),
        ("input shape", shape_text(result.input_shape)),
        ("class axis", f"{result.class_dim} ({result.input_shape[result.class_dim]} classes)"),
        ("targets", result.target_kind),
        ("counted", str(result.count)),
        ("ignored", str(result.ignored)),
        ("sum", fmt(result.total)),
        ("denominator", f"{fmt(result.denominator)} = {denominator_text(result, weighted)}"),
        *sources,
    ]
    parts: list[RenderableType] = [facts_table(title, facts)]
    if result.reduction == "none":
        parts.append(
            array_grid(
                result.per_position,
                title=f"{title} per position, shape {shape_text(result.per_position.shape)}",
                fmt=fmt,
                summary=summary,
            )
        )
    return Group(*parts)


def elementwise_view(
    op: str,
    result: npt.NDArray[np.float64],
    *,
    dim: int | None,
    fmt: NumberFormat,
    summary: Summary,
    sources: Sequence[tuple[str, str]],
) -> RenderableType:
    """The result of ``softmax``, ``log-softmax`` or ``log``: the array and its axis."""
    title = OP_TITLES[op]
    axis = "elementwise" if dim is None else f"{dim} (of {result.ndim})"
    facts: list[tuple[str, str | Text]] = [("shape", shape_text(result.shape)), ("axis", axis)]
    facts += sources
    grid_title = f"{title}, elementwise" if dim is None else f"{title} along axis {dim}"
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
