"""Small rich building blocks of the ``--explain`` view: probability bars, first-fit tables."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table

__all__ = ["BAR_WIDTH", "BLOCKS", "FirstFit", "bar"]

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
