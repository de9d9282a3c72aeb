"""``lossctl.explain(...)``: the ``--explain`` trace as an object for the REPL and Jupyter.

It prints in a terminal (rich calls ``__rich__``; ``print`` gives plain text),
renders in a notebook (``_repr_html_``, rich's recorded HTML export) and keeps
its steps as data (``steps``: the ``steps`` of ``--explain --json``).
"""

from __future__ import annotations

import io
from typing import Any, Literal

import numpy.typing as npt
from rich.console import Console, RenderableType

from lossctl.core.grad import grad_from_result
from lossctl.core.losses import loss_result
from lossctl.render.explain import explain_view
from lossctl.render.explain_data import steps_json
from lossctl.render.results import NumberFormat
from lossctl.trace import Edges, Trace, explain_elementwise, explain_loss, with_gradient

__all__ = ["ExplainedTrace", "explain"]

Op = Literal["cross_entropy", "nll_loss", "softmax", "log_softmax", "log"]
ALIASES: dict[str, Op] = {
    "ce": "cross_entropy",
    "cross_entropy": "cross_entropy",
    "nll": "nll_loss",
    "nll_loss": "nll_loss",
    "softmax": "softmax",
    "log_softmax": "log_softmax",
    "log-softmax": "log_softmax",
    "log": "log",
}
#: The width of ``str()`` and of the HTML export.
WIDTH = 100


class ExplainedTrace:
    """A trace and the number format to show it in."""

    def __init__(self, trace: Trace, fmt: NumberFormat | None = None, width: int = WIDTH) -> None:
        self.trace = trace
        self.fmt = NumberFormat() if fmt is None else fmt
        self.width = width

    @property
    def steps(self) -> list[dict[str, Any]]:
        """Every step as plain data: name, title, formula, note and values."""
        return steps_json(self.trace, self.fmt)

    def __rich__(self) -> RenderableType:
        return explain_view(self.trace, fmt=self.fmt)

    def _console(self, **options: Any) -> Console:
        return Console(file=io.StringIO(), width=self.width, highlight=False, **options)

    def __str__(self) -> str:
        console = self._console(color_system=None)
        with console.capture() as captured:
            console.print(self)
        return captured.get()

    def _repr_html_(self) -> str:
        console = self._console(record=True, force_terminal=True, color_system="truecolor")
        console.print(self)
        return console.export_html(inline_styles=True)

    def __repr__(self) -> str:
        names = ", ".join(step.key for step in self.trace.steps)
        return f"<ExplainedTrace {self.trace.op} {self.trace.layout.shape}: {names}>"


def explain(
    input: npt.ArrayLike,
    target: npt.ArrayLike | None = None,
    op: str = "cross_entropy",
    *,
    digits: int = 4,
    full: bool = False,
    grad: bool = False,
    **options: Any,
) -> ExplainedTrace:
    """The ``--explain`` trace of ``op`` on ``input`` (and ``target``), to print or display.

    ``op``: ``cross_entropy`` (``ce``), ``nll_loss`` (``nll``), ``softmax``,
    ``log_softmax`` or ``log``; ``options`` are those of :func:`lossctl.loss_result`
    (``weight``, ``ignore_index``, ``reduction``, ``label_smoothing``, ``class_dim``)
    or, for the elementwise ops, ``dim``. ``grad`` adds the gradient step.
    """
    name = ALIASES.get(op)
    if name is None:
        raise ValueError(f"op must be one of {', '.join(sorted(ALIASES))}, not {op!r}")
    edges = Edges.full() if full else Edges()
    fmt = NumberFormat(digits=digits)
    if name == "softmax" or name == "log_softmax" or name == "log":
        dim = options.pop("dim", -1 if name != "log" else None)
        if options or target is not None or grad:
            raise TypeError(f"{name} takes an input and dim only")
        return ExplainedTrace(explain_elementwise(name, input, dim=dim, edges=edges), fmt)
    if target is None:
        raise TypeError(f"{name} needs a target")
    result = loss_result(name, input, target, **options)
    trace = explain_loss(name, input, target, edges=edges, result=result, **options)
    if grad:
        gradient = grad_from_result(result, input, target)
        trace = with_gradient(
            trace,
            gradient,
            result,
            weighted=options.get("weight") is not None,
            label_smoothing=options.get("label_smoothing", 0.0),
        )
    return ExplainedTrace(trace, fmt)
