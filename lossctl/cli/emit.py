"""Printing results: JSON documents as text, rich renderables captured to text, both to stdout.

Everything goes through :func:`lossctl.cli.streams.write_stdout`, so a closed pipe is
a quiet exit 141 and a full disk one error line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lossctl.cli.display import current as current_display
from lossctl.cli.display import without_trailing_spaces
from lossctl.cli.options import OutputOptions
from lossctl.cli.streams import stdout_encoding, write_stdout

if TYPE_CHECKING:
    from rich.console import Console

    from lossctl.render.results import NumberFormat, Summary
    from lossctl.trace import Edges


def number_format(output: OutputOptions) -> NumberFormat:
    from lossctl.render.results import NumberFormat

    return NumberFormat(digits=output.digits)


def summary(output: OutputOptions) -> Summary:
    from lossctl.render.results import Summary

    return Summary.full() if output.full else Summary()


def edges(output: OutputOptions) -> Edges:
    """How much of a large input ``--explain`` shows."""
    from lossctl.trace import Edges

    return Edges.full() if output.full else Edges()


def emit_document(document: dict[str, Any], output: OutputOptions, array: Any = None) -> None:
    """Print ``document`` as one JSON line; with ``--output FILE``, write the file instead.

    The file gets the same document, or with a ``.npy`` name ``array`` (default: the
    document's ``"result"`` for softmax, log-softmax, log, else its ``"loss"``; a 0-d
    array for mean/sum).
    """
    if output.path is not None:
        from lossctl.io.atomic import write_result

        if array is None:
            array = document.get("result", document.get("loss"))
        write_result(output.path, document, array)
        return
    from lossctl.io.documents import dumps
    from lossctl.io.encoding import json_for_encoding

    write_stdout(json_for_encoding(dumps(document), stdout_encoding()))


def console(*, soft_wrap: bool = False, width: int | None = None) -> Console:
    """A console for stdout with this run's ``--color``: auto follows the terminal and NO_COLOR,
    always forces colour (for ``less -R``; NO_COLOR too), never prints no escape codes."""
    from rich.console import Console

    color = current_display().options.color
    if color == "always":
        return Console(
            highlight=False,
            soft_wrap=soft_wrap,
            width=width,
            force_terminal=True,
            no_color=False,
            emoji=False,
        )
    if color == "never":
        return Console(
            highlight=False, soft_wrap=soft_wrap, width=width, color_system=None, emoji=False
        )
    return Console(highlight=False, soft_wrap=soft_wrap, width=width, emoji=False)


def emit_rich(renderable: Any, *, soft_wrap: bool = False) -> None:
    """Print a table at its natural width at least, so that nothing is cut to fit.

    rich fits tables to the terminal (or ``COLUMNS``) by truncating cells ("3.26…")
    or dropping whole columns; numbers must never be shortened, so a narrow terminal
    gets lines it wraps instead. Renderables that expand to any width keep the
    terminal's. ``soft_wrap``: into a pipe, print lines as they are (one line per
    doctor finding, for grep); on a terminal, the renderable wraps at its width.
    Trailing spaces (rich pads table lines to the table's width) are dropped.
    """
    from rich.measure import Measurement

    limit = 1 << 16
    width: int | None
    if not soft_wrap and at_natural_width(renderable):  # the same lines at any width:
        out = console(width=limit)  # one console, no measuring pass
        width = None  # --export measures it, if asked (display.exported)
    else:
        out = console()
        soft_wrap = soft_wrap and not out.is_terminal
        if soft_wrap:  # soft-wrapped text is never cut; tables are measured
            out = console(soft_wrap=True)
        else:
            natural = Measurement.get(out, out.options.update_width(limit), renderable).maximum
            if out.width < natural < limit:
                out = console(width=natural)
        width = out.width
    with out.capture() as captured:
        out.print(renderable)
    current_display().drawn.append((renderable, width, soft_wrap))
    write_stdout(without_trailing_spaces(captured.get()))


def at_natural_width(renderable: Any) -> bool:
    """Whether ``renderable`` is drawn at its natural width on any console at least that
    wide: a table that neither expands nor has a set width, or a group of such tables."""
    from rich.console import Group
    from rich.table import Table

    from lossctl.render.blocks import FactsTable

    if isinstance(renderable, FactsTable):
        return True
    if isinstance(renderable, Table):
        return not renderable.expand and renderable.width is None
    if isinstance(renderable, Group):
        return all(at_natural_width(part) for part in renderable.renderables)
    return False
