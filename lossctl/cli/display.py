"""How every command draws on the terminal: ``--color``, ``--export FILE`` and ``--lang``.

These options are the same for every command, so :func:`with_display` adds them to
each one (in the Output panel of ``--help``) and installs them for the run;
:func:`lossctl.cli.emit.emit_rich` reads them through :func:`current`. What the
command printed with rich is recorded, and written to the ``--export`` file once the
command has finished (SVG, HTML or plain text, by the file's extension).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import re
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal, NamedTuple

import typer

from lossctl.cli.options import OUTPUT, group_parameters, option

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions
    from rich.measure import Measurement
    from rich.segment import Segment

EXPORT_FORMATS = (".svg", ".html", ".txt")


Color = Literal["auto", "always", "never"]
Lang = Literal["en", "zh"]


def check_export_option(value: str | None) -> str | None:
    """``--export``: a known extension and a writable place, before any work (exit status 2)."""
    if value is None:
        return value
    if not value.lower().endswith(EXPORT_FORMATS):
        raise typer.BadParameter(f"FILE must end in {', '.join(EXPORT_FORMATS)}")
    from lossctl.io.atomic import check_output_path

    problem = check_output_path(value)
    if problem:
        raise typer.BadParameter(problem)
    return value


class DisplayOptions(NamedTuple):
    """Colour, export and language: options every command takes."""

    color: Annotated[
        Color,
        option(
            OUTPUT,
            "--color",
            help="always: also into a pipe (less -R); never: plain text. auto honours NO_COLOR.",
        ),
    ] = "auto"
    export: Annotated[
        str | None,
        option(
            OUTPUT,
            "--export",
            metavar="FILE",
            callback=check_export_option,
            help="Also save what is shown as FILE.svg, .html or .txt.",
        ),
    ] = None
    lang: Annotated[
        Lang,
        option(
            OUTPUT,
            "--lang",
            envvar="LOSSCTL_LANG",
            help="Language of tables and messages: en or zh (简体中文).",
        ),
    ] = "en"


class Display:
    """This run's display options and what it has drawn so far (for ``--export``)."""

    def __init__(self, options: DisplayOptions | None = None) -> None:
        self.options = DisplayOptions() if options is None else options
        # (renderable, width drawn at (None: its natural width, at least the terminal's),
        # soft-wrapped)
        self.drawn: list[tuple[Any, int | None, bool]] = []


_DISPLAY: contextvars.ContextVar[Display | None] = contextvars.ContextVar(
    "lossctl_display", default=None
)


def current() -> Display:
    """This run's display (defaults when no command installed one, e.g. in tests)."""
    return _DISPLAY.get() or Display()


@contextlib.contextmanager
def installed(options: DisplayOptions) -> Iterator[Display]:
    """Run the block with ``options`` as the display, the render language set from them."""
    from lossctl.render import i18n

    display = Display(options)
    token = _DISPLAY.set(display)
    try:
        with i18n.language(options.lang):
            yield display
    finally:
        _DISPLAY.reset(token)


def with_display(handler: Callable[..., None]) -> Callable[..., None]:
    """``handler`` (a flat typer signature) with the :class:`DisplayOptions` added.

    The wrapper installs them for the run and writes the ``--export`` file after a
    command that printed something (also when it ends with an exit status, e.g. --strict).
    """
    names = DisplayOptions._fields
    extra = group_parameters(DisplayOptions)
    signature = inspect.signature(handler)
    parameters = [*signature.parameters.values(), *extra]

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        options = DisplayOptions(**{name: kwargs.pop(name) for name in names})
        with installed(options) as display:
            try:
                handler(*args, **kwargs)
            except typer.Exit:
                export(display)
                raise
            export(display)

    with contextlib.suppress(AttributeError):
        del wrapper.__wrapped__
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


def export(display: Display) -> None:
    """Write what was drawn to the ``--export`` file (nothing to write: a warning)."""
    path = display.options.export
    if path is None:
        return
    if not display.drawn:
        from lossctl.cli.streams import warn
        from lossctl.render.i18n import t

        warn(t("warning.export-nothing-drawn", path=path))
        return
    from lossctl.io.atomic import write_atomic

    data = exported(display.drawn, path, plain=display.options.color == "never").encode()

    def write(file: IO[bytes]) -> None:
        file.write(data)

    write_atomic(path, write)


_TRAILING = re.compile(r"(?:[ \t]|\x1b\[[0-9;]*m)+$", re.M)
_SPACES = re.compile(r"[ \t]+")


def without_trailing_spaces(text: str) -> str:
    """``text`` with no white space at the end of any line (colour codes there are kept)."""
    return _TRAILING.sub(lambda tail: _SPACES.sub("", tail.group()), text)


def exported(drawn: list[tuple[Any, int | None, bool]], path: str, *, plain: bool) -> str:
    """What was drawn, rendered again into a recording console, as SVG, HTML or text.

    The same widths as on the terminal; in colour unless ``plain`` (``--color never``).
    Doctor findings wrap as on a terminal (an SVG would cut a long line).
    """
    import io

    from rich.console import Console
    from rich.measure import Measurement

    terminal, wide = Console().width, Console(width=1 << 16)

    def natural(renderable: Any) -> int:
        return max(terminal, Measurement.get(wide, wide.options, renderable).maximum)

    widths = [natural(r) if width is None else width for r, width, _ in drawn]
    recorder = Console(
        record=True,
        file=io.StringIO(),
        width=max(widths),
        force_terminal=True,
        color_system="truecolor",
        highlight=False,
    )
    for (renderable, _, _), width in zip(drawn, widths, strict=True):
        # wrapped as on a terminal, even if stdout is a pipe
        recorder.print(Plain(renderable) if plain else renderable, width=width)
    suffix = path.lower().rsplit(".", 1)[-1]
    if suffix == "svg":
        return recorder.export_svg(title="lossctl")
    if suffix == "html":
        return recorder.export_html()
    return without_trailing_spaces(recorder.export_text())


class Plain:
    """A renderable drawn without styles (``--color never`` in an export)."""

    def __init__(self, renderable: Any) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        from rich.segment import Segment

        yield from Segment.strip_styles(console.render(self.renderable, options))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        from rich.measure import Measurement

        return Measurement.get(console, options, self.renderable)
