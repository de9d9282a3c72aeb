"""Printing results: JSON documents as text, rich renderables captured to text, both to stdout.

Everything goes through :func:`lossctl.cli.streams.write_stdout`, so a closed pipe is
a quiet exit 141 and a full disk one error line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lossctl.cli.options import OutputOptions
from lossctl.cli.streams import stdout_encoding, write_stdout

if TYPE_CHECKING:
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
    from lossctl.io.atomic import json_for_encoding
    from lossctl.io.documents import dumps

    write_stdout(json_for_encoding(dumps(document), stdout_encoding()))


def emit_rich(renderable: Any, *, soft_wrap: bool = False) -> None:
    """Print a table at its natural width at least, so that nothing is cut to fit.

    rich fits tables to the terminal (or ``COLUMNS``) by truncating cells ("3.26…")
    or dropping whole columns; numbers must never be shortened, so a narrow terminal
    gets lines it wraps instead. Renderables that expand to any width keep the
    terminal's. ``soft_wrap``: print lines as they are and let the terminal wrap them.
    """
    from rich.console import Console
    from rich.measure import Measurement

    console = Console(highlight=False, soft_wrap=soft_wrap, emoji=False)
    if not soft_wrap:  # soft-wrapped text is never cut; tables are measured
        limit = 1 << 16
        natural = Measurement.get(console, console.options.update_width(limit), renderable).maximum
        if console.width < natural < limit:
            console = Console(highlight=False, width=natural, emoji=False)
    with console.capture() as captured:
        console.print(renderable)
    write_stdout(captured.get())
