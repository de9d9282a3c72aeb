"""The typer application: the commands of :mod:`lossctl.cli.commands`, registered once
(only the one a command line names, when it names one).

NumPy and the numeric modules are imported inside the commands, so ``--help``
and ``--version`` start fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

from lossctl import __version__
from lossctl.cli import commands
from lossctl.cli.display import with_display
from lossctl.cli.options import grouped
from lossctl.cli.streams import write_stdout


def version_callback(value: bool) -> None:
    if value:
        write_stdout(f"lossctl {__version__}\n")
        raise typer.Exit()


def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """lossctl computes softmax, log-softmax, NLL and cross-entropy loss like PyTorch does.

    Example: lossctl ce examples/seed/logits.json examples/seed/labels.json
    """


COMMANDS: dict[str, Callable[..., None]] = {
    "ce": commands.ce,
    "nll": commands.nll,
    "kl": commands.kl,
    "softmax": commands.softmax,
    "log-softmax": commands.log_softmax,
    "log": commands.log,
    "doctor": commands.doctor,
    "merge": commands.merge,
}


def build_app(command: str | None = None) -> typer.Typer:
    """The application; with ``command``, only that command is registered (``lossctl ce …``
    builds one command's options instead of all eight's: start-up time)."""
    application = typer.Typer(
        name="lossctl",
        help="Softmax, log-softmax, NLL and cross-entropy with PyTorch's exact semantics, "
        "explained.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )
    application.callback()(root)  # a callback: always a group, even with one command
    for name, handler in COMMANDS.items():
        if command in (None, name):
            application.command(name)(commands.handles_errors(with_display(grouped(handler))))
    return application


def app_for(args: Sequence[str]) -> typer.Typer:
    """The app that runs ``args``: just the command they name, or every command (for
    ``--help``, ``--version`` and a misspelt command's suggestions)."""
    first = args[0] if args else None
    return build_app(first if first in COMMANDS else None)


def __getattr__(name: str) -> Any:
    """``app``: the application with every command (built on first use)."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    application = globals()["app"] = build_app()
    return application
