"""The typer application: the commands of :mod:`lossctl.cli.commands`, registered once.

NumPy and the numeric modules are imported inside the commands, so ``--help``
and ``--version`` start fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from lossctl import __version__
from lossctl.cli import commands
from lossctl.cli.display import with_display
from lossctl.cli.options import grouped
from lossctl.cli.streams import write_stdout

app = typer.Typer(
    name="lossctl",
    help="Softmax, log-softmax, NLL and cross-entropy with PyTorch's exact semantics, explained.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def version_callback(value: bool) -> None:
    if value:
        write_stdout(f"lossctl {__version__}\n")
        raise typer.Exit()


@app.callback()
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
for name, handler in COMMANDS.items():
    app.command(name)(commands.handles_errors(with_display(grouped(handler))))
