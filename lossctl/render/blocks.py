"""Small rich building blocks: probability bars, first-fit tables, key/value tables."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

__all__ = [
    "BAR_WIDTH",
    "BLOCKS",
    "FactsTable",
    "FirstFit",
    "Paragraph",
    "bar",
    "paragraph",
    "wide",
]

#: The cells of a probability bar, and its eighths.
BAR_WIDTH = 8
BLOCKS = "▏▎▍▌▋▊▉█"


def bar(p: float, width: int = BAR_WIDTH) -> str:
    """``p`` in [0, 1] as a bar of ``width`` cells of unicode blocks, to the nearest eighth."""
    if p != p:  # nan
        return " " * width
    eighths = round(min(max(p, 0.0), 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    text = BLOCKS[-1] * full + (BLOCKS[part - 1] if part else "")
    return text.ljust(width)


class FirstFit:
    """The first of some tables (widest first) that fits the width it is drawn at."""

    def __init__(self, tables: list[Table]) -> None:
        self.tables = tables

    def choose(self, console: Console, options: ConsoleOptions) -> Table:
        unbounded = options.update_width(10**6)
        for table in self.tables[:-1]:
            if Measurement.get(console, unbounded, table).maximum <= options.max_width:
                return table
        return self.tables[-1]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.choose(console, options)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.choose(console, options))


class FactsTable:
    """A titled two-column table: names in bold, then values.

    It draws what ``rich.table.Table(title=…, box=box.SIMPLE, show_header=False,
    title_justify="left")`` draws, line for line, but in one pass. A test holds the two
    equal. Every ``ce`` result is one of these, and rich's general table layout was most
    of a small run's drawing time. Values are text, never markup.

    A table that rich would lay out differently is drawn by rich instead: no rows, a value
    of several lines, a title wider than the columns, less room than its width, or a
    terminal that takes only ASCII (rich draws an ASCII box there).
    """

    def __init__(self, title: str, facts: Sequence[tuple[str, str | Text]]) -> None:
        self.title = title
        self.facts = [
            (name, Text(value) if isinstance(value, str) else value) for name, value in facts
        ]
        self.name_width = max((cell_len(name) for name, _ in self.facts), default=0)
        self.value_width = max((value.cell_len for _, value in self.facts), default=0)
        self.width = self.name_width + self.value_width + 7  # edges, padding, the rule

    def table(self) -> Table:
        """The same table as rich lays it out."""
        table = Table(
            title=self.title,
            box=box.SIMPLE,
            show_header=False,
            title_justify="left",
            min_width=cell_len(self.title) + 2,
        )
        table.add_column("what", style="bold")
        table.add_column("value")
        for name, value in self.facts:
            table.add_row(Text(name), value)
        return table

    def _simple(self, options: ConsoleOptions) -> bool:
        """Whether rich would lay the table out as :meth:`__rich_console__` draws it."""
        if not self.facts or options.ascii_only or options.legacy_windows:
            return False  # rich draws no rows differently, and an ASCII box where it must
        if any("\n" in value.plain for _, value in self.facts):
            return False
        return options.max_width >= self.width >= cell_len(self.title) + 2

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self._simple(options):
            yield self.table()
            return
        title, bold = console.get_style("table.title"), console.get_style("bold")
        blank = Segment(" " * self.width)
        yield Segment(self.title + " " * (self.width - cell_len(self.title)), title)
        yield from (Segment.line(), blank, Segment.line())
        for name, value in self.facts:
            yield Segment("  ")
            yield Segment(name + " " * (self.name_width - cell_len(name)), bold)
            yield Segment("   ")
            yield from Segment.apply_style(value.render(console), console.get_style(value.style))
            yield Segment(" " * (self.value_width - value.cell_len + 2))
            yield Segment.line()
        yield from (blank, Segment.line())

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        if not self._simple(options.update_width(1 << 16)):
            return Measurement.get(console, options, self.table())
        return Measurement(self.width, self.width)


#: The units a line of Chinese may break between: a run of Latin letters, digits and
#: signs (with its spaces) is one unit, a CJK character is one; closing punctuation
#: sticks to the unit before it, opening punctuation to the unit after it.
_OPENING = "\uff08\u300a\u201c\u2018\u3010"  # fullwidth ( and the opening brackets, quotes
CLOSING = "\uff0c\u3002\uff1b\uff1a\u3001\uff01\uff1f\uff09\u300b\u201d\u2019\u3011"
_CJK = "\u2e80-\u9fff\uff00-\uffef"


@functools.cache
def _unit() -> re.Pattern[str]:
    """The pattern of a unit, compiled on first use (3 ms: only Chinese text needs it)."""
    return re.compile(f"[{_OPENING}]*(?:[^\\s{_CJK}{_OPENING}]+|[{_CJK}])[{CLOSING}]*\\s*")


def wide(text: str) -> bool:
    """Whether ``text`` holds characters two columns wide (CJK)."""
    return cell_len(text) != len(text)


class Paragraph:
    """Text with CJK characters, wrapped between characters but never inside a Latin
    word, a number or a formula, and with no closing punctuation at a line's start."""

    def __init__(self, text: Text) -> None:
        self.text = text

    def _units(self) -> list[str]:
        return _unit().findall(self.text.plain)

    def lines(self, width: int, then: int | None = None) -> list[Text]:
        """The lines at ``width`` cells (``then``: the width of the lines after the first)."""
        offsets: list[int] = []
        used = position = 0
        for unit in self._units():
            room = width if not offsets else then or width
            if used and used + cell_len(unit.rstrip()) > room:
                offsets.append(position)
                used = 0
            used += cell_len(unit)
            position += len(unit)
        lines = list(self.text.divide(offsets))
        for line in lines:
            line.rstrip()
        return lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.lines(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        longest = max((cell_len(unit.rstrip()) for unit in self._units()), default=0)
        return Measurement(longest, cell_len(self.text.plain))


def paragraph(text: Text) -> RenderableType:
    """``text`` as a paragraph: rich's word wrap, or :class:`Paragraph` for CJK text."""
    return Paragraph(text) if wide(text.plain) else text
