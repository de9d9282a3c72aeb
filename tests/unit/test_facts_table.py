"""The key/value table drawn in one pass (``render.blocks.FactsTable``) is, line for line,
the rich table it stands for, in every language and colour mode, and gives way to rich
where rich would lay it out otherwise."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from rich.text import Text

from lossctl.render.blocks import FactsTable

COLOUR = re.compile(r"\x1b\[[0-9;]*m")
CASES = [
    ("cross-entropy", [("loss", Text("3.2655", style="bold green")), ("reduction", "mean")]),
    ("交叉熵", [("损失", "3.2655"), ("输入文件", "examples/seed/logits.json")]),
    ("t", [("a[b]", "[bold]not markup[/bold]"), ("", ""), ("x", Text("y", style="red"))]),
    ("a title wider than both columns together", [("a", "b")]),  # rich's layout
    ("lines", [("value", "two\nlines"), ("next", "1")]),  # rich's layout
]


def drawn(renderable: object, width: int, colour: bool, encoding: str = "utf-8") -> str:
    console = Console(
        file=io.TextIOWrapper(io.BytesIO(), encoding=encoding),
        width=width,
        color_system="truecolor" if colour else None,
        force_terminal=colour,
    )
    with console.capture() as captured:
        console.print(renderable)
    return captured.get()


@pytest.mark.parametrize("width", [200, 12])
@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize(("title", "facts"), CASES, ids=[title for title, _ in CASES])
def test_it_draws_what_rich_draws(title: str, facts: list, width: int, colour: bool) -> None:
    table = FactsTable(title, facts)
    mine, rich_s = drawn(table, width, colour), drawn(table.table(), width, colour)
    assert COLOUR.sub("", mine) == COLOUR.sub("", rich_s)
    if colour and width == 200 and title == "cross-entropy":
        assert "\x1b[1;32m3.2655" in mine and "\x1b[3mcross-entropy" in mine  # styles kept


def test_an_ascii_terminal_gets_rich_ascii_box() -> None:
    table = FactsTable(*CASES[0])
    mine = drawn(table, 200, False, "ascii")
    assert mine == drawn(table.table(), 200, False, "ascii") and "| loss " in mine


def test_it_measures_its_natural_width() -> None:
    console = Console(width=200)
    for title, facts in CASES:
        table = FactsTable(title, facts)
        mine = console.measure(table)
        theirs = console.measure(table.table())
        assert mine.maximum == theirs.maximum, title


def test_a_common_table_is_drawn_without_rich_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = drawn(FactsTable(*CASES[0]).table(), 200, False)

    def refused(self: FactsTable) -> None:
        pytest.fail("drawn through rich's table layout")

    monkeypatch.setattr(FactsTable, "table", refused)
    assert drawn(FactsTable(*CASES[0]), 200, False) == expected
    assert Console(width=200).measure(FactsTable(*CASES[1])).maximum > 0
