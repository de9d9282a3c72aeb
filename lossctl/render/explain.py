"""Rich renderables of an ``--explain`` trace (:mod:`lossctl.trace`): one block per step.

Each step is a heading (number, title, formula), a one-line note and its
numbers: the arrays laid out as the user gave them, with each position's
quantities (``max``, ``Σ``, the loss…) beside them. Marks survive without
colour: a target cell ends in ``*`` (bold green on a terminal) and the values
of an ignored position are in parentheses (dim). Nothing here prints.
"""

from __future__ import annotations

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from lossctl.render.blocks import FirstFit, bar, paragraph
from lossctl.render.explain_data import equation, remark_text
from lossctl.render.i18n import t, tr
from lossctl.render.results import NumberFormat
from lossctl.trace.model import ELLIPSIS, Column, LossStats, Step, Trace

INDENT = 3
TARGET_STYLE = "bold green"
IGNORED_STYLE = "dim"
EXTRA_STYLE = "cyan"
LABEL_STYLE = "dim"


Cell = tuple[str, str]  # text and style


def _cell(text: str, *, target: bool = False, ignored: bool = False, style: str = "") -> Cell:
    """A value with a one-character mark after it, so that the decimals line up."""
    if ignored:
        return f"({text})", IGNORED_STYLE
    if target:
        return f"{text}*", TARGET_STYLE
    return f"{text} ", style


def _fill(table: Table, rows: list[list[Cell]], sections: frozenset[int] = frozenset()) -> Table:
    """Add ``rows``, each column padded on the left to its widest cell.

    Rich drops trailing spaces when it right-justifies, which would shift the
    unmarked values by one place; padding by hand and justifying left keeps the
    marks in a column of their own.
    """
    widths = [
        max([cell_len(str(column.header)), *(cell_len(row[i][0]) for row in rows)])
        for i, column in enumerate(table.columns)
    ]
    for number, row in enumerate(rows):
        table.add_row(
            *(
                Text(" " * (width - cell_len(text)) + text, style=style, justify="left")
                for (text, style), width in zip(row, widths, strict=True)
            ),
            end_section=number in sections,
        )
    return table


def _value(column: Column, index: int, fmt: NumberFormat, ignored: bool) -> str:
    if column.masked and ignored:
        return "-"
    value = column.values[index]
    if column.kind == "index":
        return str(int(value))
    return fmt(float(value))


def _table() -> Table:
    """A borderless table with a rule under its header."""
    return Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        header_style="bold",
    )


def is_compact(trace: Trace) -> bool:
    """Large inputs print tighter, so that a summarised trace fits about one screen."""
    return trace.layout.summarised or trace.layout.positions_summarised


def _axis_text(trace: Trace, axes: range | list[int]) -> str:
    names = trace.layout.axis_names
    parts = [
        names[a] if names[a].startswith("axis") else t("legend.axis", name=tr(names[a]), axis=a)
        for a in axes
    ]
    return ", ".join(parts)


def legend(trace: Trace) -> Text:
    """What the rows, columns and marks of the grids mean."""
    layout = trace.layout
    ndim = len(layout.shape)
    parts: list[str] = []
    if ndim >= 2:
        parts.append(t("legend.rows", axes=_axis_text(trace, range(ndim - 1))))
    if ndim >= 1:
        parts.append(t("legend.columns", axes=_axis_text(trace, [ndim - 1])))
    if trace.targets == "indices":
        parts.append(t("legend.target"))
        if trace.ignored_positions.any() or trace.ignored_cells.any():
            parts.append(t("legend.ignored"))
    if layout.summarised or layout.positions_summarised:
        parts.append(t("legend.elided"))
    return Text(t("list.semicolon").join(parts), style="dim italic")


ColumnChoice = tuple[tuple[int, int] | None, ...]  # (grid column, its index in the data)
#: A grid's columns, how many of its per-position extra columns (``None``: all) and
#: whether its probabilities get bars.
Fit = tuple[ColumnChoice, int | None, bool]


def column_choices(trace: Trace) -> list[ColumnChoice]:
    """The grid's columns to try, widest first: fewer leading/trailing ones when it is too wide.

    With ``--full`` there is one choice, every column.
    """
    cols = trace.layout.cols
    shown = [(col, j) for j, col in enumerate(c for c in cols if c is not None)]
    choices: list[ColumnChoice] = [tuple(None if c is None else shown.pop(0) for c in cols)]
    if trace.layout.full:
        return choices
    kept = [c for c in choices[0] if c is not None]
    edge = (len(kept) - 1) // 2 if None not in cols else cols.index(None)
    for k in range(edge, 0, -1):
        if 2 * k + 1 < len(choices[-1]):
            choices.append((*kept[:k], None, *kept[-k:]))
    return choices


def fits(trace: Trace, step: Step) -> list[Fit]:
    """What to try, widest first: fewer grid columns (with bars, then without), then,
    for a narrow terminal, only the first column or none, and fewer per-position extras.

    Numbers are never cut: what does not fit is elided, marked ``…``.
    """
    choices = column_choices(trace)
    bars = step.grid_key == "softmax"
    tries: list[Fit] = [(choice, None, bars) for choice in choices]
    if bars:
        tries += [(choice, None, False) for choice in choices]
    if trace.layout.full:
        return tries
    kept = [c for c in choices[0] if c is not None]
    if len(kept) > 1:
        tries += [((kept[0], None), None, False), ((None,), None, False)]
    if trace.layout.orientation == "down" and len(step.columns) > 1:
        narrowest = tries[-1][0]
        tries += [(narrowest, n, False) for n in range(len(step.columns) - 1, -1, -1)]
    return tries


class FittedGrid:
    """A :func:`grid_table`, indented, with as many columns as fit the width it is drawn at."""

    def __init__(self, trace: Trace, step: Step, fmt: NumberFormat, indent: int = 0) -> None:
        self.trace, self.step, self.fmt, self.indent = trace, step, fmt, indent

    def choose(self, console: Console, options: ConsoleOptions) -> Table:
        """The widest table that fits ``options.max_width`` (else the narrowest)."""
        tries = fits(self.trace, self.step)
        unbounded = options.update_width(10**6)
        for choice, extras, bars in tries[:-1]:
            table = grid_table(self.trace, self.step, self.fmt, choice, extras, bars)
            width = Measurement.get(console, unbounded, table).maximum
            if width + self.indent <= options.max_width:
                return table
        return grid_table(self.trace, self.step, self.fmt, *tries[-1])

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Padding(self.choose(console, options), (0, 0, 0, self.indent), expand=False)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        table = self.choose(console, options)
        inner = Measurement.get(console, options.update_width(10**6), table)
        return Measurement(inner.minimum + self.indent, inner.maximum + self.indent)


def corner(trace: Trace) -> str:
    """The grid's top-left cell: what its rows and its columns are, e.g. ``class ↓  position →``."""
    names = trace.layout.axis_names
    return f"{', '.join(map(tr, names[:-1]))} ↓  {tr(names[-1])} →"


def _grid_cells(
    trace: Trace, step: Step, fmt: NumberFormat, columns: ColumnChoice, row: int, bars: bool
) -> list[Cell]:
    """The grid's values in shown row ``row``, marked, with a bar each if ``bars``."""
    assert step.grid is not None
    cells: list[Cell] = []
    for choice in columns:
        if choice is None:
            cells.append((ELLIPSIS + " ", ""))
            continue
        j = choice[1]
        value = float(step.grid[row, j])
        text, style = _cell(
            fmt(value),
            target=bool(trace.target_cells[row, j]),
            ignored=bool(trace.ignored_cells[row, j]),
        )
        cells.append((f"{text} {bar(value)}" if bars else text, style))
    return cells


def _extra_cells(
    trace: Trace, shown: tuple[Column, ...], fmt: NumberFormat, row: int, elided: bool
) -> list[Cell]:
    """The per-position extras of shown row ``row``, after the ``│``."""
    cells: list[Cell] = [("│", LABEL_STYLE)]
    ignored = bool(trace.ignored_positions[row])
    for column in shown:
        cells.append(_cell(_value(column, row, fmt, ignored), ignored=ignored, style=EXTRA_STYLE))
    return cells + ([(ELLIPSIS + " ", "")] if elided else [])


def grid_table(
    trace: Trace,
    step: Step,
    fmt: NumberFormat,
    columns: ColumnChoice | None = None,
    extras: int | None = None,
    bars: bool = True,
) -> Table:
    """The step's input-shaped array as the user laid it out, marks and per-position extras.

    ``extras``: how many of the per-position columns to show (the rest is one ``…``);
    ``bars``: draw a bar beside each probability (softmax steps).
    """
    layout = trace.layout
    columns = column_choices(trace)[0] if columns is None else columns
    table = _table()
    with_index = len(layout.shape) >= 2
    down = layout.orientation == "down" and bool(step.columns)
    shown = step.columns if extras is None else step.columns[:extras]
    elided = down and len(shown) < len(step.columns)
    bars = bars and step.grid_key == "softmax"
    if with_index:
        table.add_column(corner(trace), justify="right")
    for choice in columns:
        table.add_column(ELLIPSIS if choice is None else str(choice[0]), justify="right")
    if down:
        table.add_column("│", justify="center")
        for column in shown:
            table.add_column(
                Text(tr(column.name)), justify="right", header_style=f"bold {EXTRA_STYLE}"
            )
        if elided:
            table.add_column(ELLIPSIS, justify="right")
    rows: list[list[Cell]] = []
    row_index = 0
    for row in layout.rows:
        cells: list[Cell] = []
        if with_index:
            cells.append((ELLIPSIS if row is None else layout.row_label(row), LABEL_STYLE))
        if row is None:
            width = len(columns) + (1 + len(shown) + elided if down else 0)
            cells += [(ELLIPSIS + " ", "")] * width
            if down:
                cells[len(cells) - width + len(columns)] = ("│", LABEL_STYLE)
        else:
            cells += _grid_cells(trace, step, fmt, columns, row_index, bars)
            if down:
                cells += _extra_cells(trace, shown, fmt, row_index, elided)
            row_index += 1
        rows.append(cells)
    if layout.orientation != "across" or not step.columns:
        return _fill(table, rows)
    sections = frozenset({len(rows) - 1})
    rows += [_position_row(trace, column, fmt, columns) for column in step.columns]
    return _fill(table, rows, sections)


def _position_row(
    trace: Trace, column: Column, fmt: NumberFormat, columns: ColumnChoice | None = None
) -> list[Cell]:
    """One per-position quantity as a row across the position columns (or those of ``columns``)."""
    if columns is None:
        kept = iter(range(len(trace.layout.positions)))
        columns = tuple(None if p is None else (p, next(kept)) for p in trace.layout.positions)
    cells: list[Cell] = [(tr(column.name), f"bold {EXTRA_STYLE}")]
    for choice in columns:
        if choice is None:
            cells.append((ELLIPSIS + " ", ""))
            continue
        index = choice[1]
        ignored = bool(trace.ignored_positions[index])
        text = _value(column, index, fmt, ignored)
        cells.append(_cell(text, ignored=ignored, style=EXTRA_STYLE))
    return cells


def positions_table(trace: Trace, columns: tuple[Column, ...], fmt: NumberFormat) -> Table:
    """Per-position quantities alone: across the positions, or one row per position."""
    layout = trace.layout
    table = _table()
    if layout.orientation == "across":
        table.add_column(tr(layout.axis_names[1 - (layout.class_dim or 0)]), justify="right")
        for position in layout.positions:
            table.add_column(
                ELLIPSIS if position is None else layout.position_label(position), justify="right"
            )
        return _fill(table, [_position_row(trace, column, fmt) for column in columns])
    position_axes = [a for a in range(len(layout.shape)) if a != layout.class_dim]
    header = ", ".join(tr(layout.axis_names[a]) for a in position_axes) or tr("position")
    table.add_column(header, justify="right")
    for column in columns:
        table.add_column(Text(tr(column.name)), justify="right", header_style=f"bold {EXTRA_STYLE}")
    rows: list[list[Cell]] = []
    index = 0
    for position in layout.positions:
        if position is None:
            rows.append([(ELLIPSIS, LABEL_STYLE)] + [(ELLIPSIS + " ", "")] * len(columns))
            continue
        ignored = bool(trace.ignored_positions[index])
        cells: list[Cell] = [(layout.position_label(position), LABEL_STYLE)]
        for column in columns:
            cells.append(_cell(_value(column, index, fmt, ignored), ignored=ignored))
        rows.append(cells)
        index += 1
    return _fill(table, rows)


def stats_summary(stats: LossStats, fmt: NumberFormat) -> str:
    """``min … · median … · max … over N counted positions``."""
    key = "trace.stats.summary" + (".one" if stats.counted == 1 else "")
    numbers = {"min": fmt(stats.minimum), "median": fmt(stats.median), "max": fmt(stats.maximum)}
    text = t(key, **numbers, count=stats.counted)
    return text + (t("trace.stats.nan", nan=stats.nan) if stats.nan else "")


def stats_table(
    trace: Trace, stats: LossStats, fmt: NumberFormat, drop: frozenset[str] = frozenset()
) -> Table:
    """The worst positions: their target, predicted class, target probability and loss
    (without the ``drop`` columns, for a narrow terminal)."""
    layout = trace.layout
    header = ", ".join(
        tr(layout.axis_names[a]) for a in range(len(layout.shape)) if a != layout.class_dim
    )
    table = _table()
    worst = t("trace.stats.worst", header=header or tr("position"))
    table.add_column(worst, justify="right", no_wrap=True)
    names = [stats.target_name, "predicted", stats.picked_name, "loss"]
    keep = [name not in drop for name in names]
    for name in (n for n, k in zip(names, keep, strict=True) if k):
        table.add_column(Text(tr(name)), justify="right")
    rows: list[list[Cell]] = []
    for i, position in enumerate(stats.worst.tolist()):
        cells: list[Cell] = [
            (str(int(stats.worst_target[i])), ""),
            (str(int(stats.worst_predicted[i])), ""),
            (fmt(float(stats.worst_picked[i])), ""),
            (fmt(float(stats.worst_loss[i])), "bold"),
        ]
        label = (layout.position_label(position) or "()", LABEL_STYLE)
        rows.append([label, *(c for c, k in zip(cells, keep, strict=True) if k)])
    return _fill(table, rows)


def fitted_stats(trace: Trace, stats: LossStats, fmt: NumberFormat) -> FirstFit:
    """The worst positions' table, dropping 'predicted', then the target probability, to fit."""
    drops = [frozenset(), frozenset({"predicted"}), frozenset({"predicted", stats.picked_name})]
    return FirstFit([stats_table(trace, stats, fmt, drop) for drop in drops])


class Heading:
    """``N. Title   formula`` on one line, or the formula on a line of its own under the
    title when they do not fit together, so that a wrapped heading never splits it."""

    def __init__(self, number: int, step: Step, fmt: NumberFormat) -> None:
        formula = tr(step.formula) if step.stats is None else stats_summary(step.stats, fmt)
        numbers = step.stats is not None
        if step.equals is not None and step.reduction is None and not step.result:
            formula += f" = {fmt(step.equals)}"
            numbers = True
        self.title = Text(
            f"{number}. {tr(step.title)}", style="bold yellow" if step.warning else "bold"
        )
        self.formula = Text(formula, style="bold cyan" if numbers else "cyan")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.title.cell_len + 3 + self.formula.cell_len <= options.max_width:
            yield Text.assemble(self.title, "   ", self.formula)
            return
        yield self.title
        if self.formula.cell_len + INDENT <= options.max_width:
            parts = [self.formula]
        else:  # one part of the formula a line: "a,   b,   c" is three parts
            parts = list(self.formula.split("   "))
        for part in parts:
            yield Padding(part, (0, 0, 0, INDENT), expand=False)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        width = self.title.cell_len + 3 + self.formula.cell_len
        return Measurement(min(width, self.title.cell_len), width)


def step_body(trace: Trace, step: Step, fmt: NumberFormat) -> list[RenderableType]:
    """The parts under a step's heading, not yet indented."""
    compact = is_compact(trace)
    body: list[RenderableType] = []
    if step.key == "input":
        body.append(legend(trace))  # how to read the grid
    shown = step.key != "input" or step.note != "As given."
    if shown and not (compact and step.key in ("identity", "stats")):
        body.append(paragraph(Text(tr(step.note), style="dim")))
    if step.grid is not None:
        body.append(FittedGrid(trace, step, fmt, INDENT))
        if step.columns and trace.layout.orientation == "list":
            body.append(positions_table(trace, step.columns, fmt))
    elif step.columns:
        body.append(positions_table(trace, step.columns, fmt))
    if step.reduction is not None:
        body.append(Text(equation(step.reduction, fmt), style="bold"))
    if step.stats is not None:
        body.append(fitted_stats(trace, step.stats, fmt))
    for line in step.lines:
        body.append(paragraph(Text(tr(line), style="yellow" if step.warning else "")))
    for remark in step.remarks:
        body.append(paragraph(Text(remark_text(remark, fmt), style="italic")))
    if step.result and step.equals is not None:
        body.append(Text(f"{tr(step.result)} = {fmt(step.equals)}", style="bold"))
    return body


def step_view(trace: Trace, step: Step, number: int, fmt: NumberFormat) -> RenderableType:
    """One step: heading, note, then its table, equation, statistics or lines."""
    indented = (
        part if isinstance(part, FittedGrid) else Padding(part, (0, 0, 0, INDENT), expand=False)
        for part in step_body(trace, step, fmt)
    )
    parts: list[RenderableType] = [Heading(number, step, fmt), *indented, Text("")]
    return Group(*parts)


class ExplainView:
    """The whole trace, step after step.

    Its measured width is the width its tables need so that no number is cut (the
    narrowest column choice of each grid); text wraps to whatever width it gets.
    A caller that widens the console to a renderable's natural width (as the CLI
    does, so that rich never truncates a table) thus keeps the terminal's width
    whenever the tables fit in it.
    """

    def __init__(self, trace: Trace, fmt: NumberFormat) -> None:
        self.trace, self.fmt = trace, fmt

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for number, step in enumerate(self.trace.steps, 1):
            yield step_view(self.trace, step, number, self.fmt)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        unbounded = options.update_width(10**6)
        needed = 0
        for step in self.trace.steps:
            for part in step_body(self.trace, step, self.fmt):
                if isinstance(part, FittedGrid):
                    narrowest = grid_table(self.trace, step, self.fmt, *fits(self.trace, step)[-1])
                    width = Measurement.get(console, unbounded, narrowest).maximum + INDENT
                elif isinstance(part, Table):
                    width = Measurement.get(console, unbounded, part).maximum + INDENT
                elif isinstance(part, FirstFit):
                    width = Measurement.get(console, unbounded, part.tables[-1]).maximum + INDENT
                else:
                    continue
                needed = max(needed, width)
        return Measurement(needed, needed)


def explain_view(trace: Trace, *, fmt: NumberFormat) -> RenderableType:
    """The whole trace as one renderable (see :class:`ExplainView`)."""
    return ExplainView(trace, fmt)
