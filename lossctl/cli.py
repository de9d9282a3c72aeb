"""The ``lossctl`` command line: wires readers, core and renderers; owns stdout, stderr, exit codes.

NumPy and the numeric modules are imported inside the commands, so ``--help``
and ``--version`` start fast.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from lossctl import __version__
from lossctl.errors import EXIT_INPUT, InputError, LossctlError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from lossctl.readers import Loaded
    from lossctl.render import NumberFormat, Summary

app = typer.Typer(
    name="lossctl",
    help="Softmax, log-softmax, NLL and cross-entropy with PyTorch's exact semantics, explained.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

F = TypeVar("F", bound=Callable[..., None])


class Reduction(str, Enum):
    mean = "mean"
    sum = "sum"
    none = "none"


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else.")
]
DigitsOption = Annotated[
    int, typer.Option("--digits", min=0, max=17, help="Decimal places in tables.")
]
FullOption = Annotated[
    bool, typer.Option("--full", help="Show every number instead of summarising large arrays.")
]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", help="Array to take from an NPZ file or a JSON object (or FILE:KEY)."),
]
LabelsKeyOption = Annotated[
    str | None, typer.Option("--labels-key", help="Array to take from the labels file.")
]
ClassDimOption = Annotated[
    int | None,
    typer.Option(
        "--class-dim",
        "-d",
        help="Axis of the input that holds the classes. Default: inferred from the shapes.",
    ),
]
IgnoreIndexOption = Annotated[
    int, typer.Option("--ignore-index", help="Target value that is skipped (PyTorch's default).")
]
ReductionOption = Annotated[
    Reduction, typer.Option("--reduction", "-r", help="mean, sum, or none (one loss per position).")
]
WeightOption = Annotated[
    str | None,
    typer.Option("--weight", "-w", help="Class weights: a file, or an inline list like 1,2,0.5."),
]
DimOption = Annotated[
    int, typer.Option("--dim", "-d", help="Axis to normalise over (default: the last).")
]


def fail(message: str, code: int = EXIT_INPUT) -> typer.Exit:
    """Write one error line on stderr; return the Exit to raise."""
    sys.stderr.write(f"lossctl: error: {' '.join(message.split())}\n")
    return typer.Exit(code)


def warn(message: str) -> None:
    sys.stderr.write(f"lossctl: warning: {' '.join(message.split())}\n")


def handles_errors(command: F) -> F:
    """Turn a :class:`LossctlError` into its one-line message and exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except LossctlError as error:
            raise fail(str(error), error.exit_code) from None

    return wrapper  # type: ignore[return-value]


def version_callback(value: bool) -> None:
    if value:
        sys.stdout.write(f"lossctl {__version__}\n")
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


@dataclass(frozen=True)
class Output:
    """How to print a result."""

    json: bool
    digits: int
    full: bool

    def number_format(self) -> NumberFormat:
        from lossctl.render import NumberFormat

        return NumberFormat(digits=self.digits)

    def summary(self) -> Summary:
        from lossctl.render import Summary

        return Summary.full() if self.full else Summary()


def check_stdin(specs: list[str]) -> None:
    """At most one argument may be ``-``, and standard input must not be a terminal."""
    if specs.count("-") > 1:
        raise InputError("only one argument can be '-' (standard input)")
    if "-" in specs and sys.stdin.isatty():
        raise InputError(
            "'-' reads standard input, but it is a terminal: pipe or redirect a file, "
            "e.g. `lossctl softmax - < logits.json`"
        )


def read(spec: str, key: str | None) -> Loaded:
    from lossctl.readers import read_array

    return read_array(spec, key=key, stdin=sys.stdin.buffer)


def read_weight(spec: str | None) -> npt.NDArray[np.float64] | None:
    """``--weight``: an existing file (or ``-``), else an inline list of numbers."""
    if spec is None:
        return None
    import os

    from lossctl.readers import parse_number_list

    if spec == "-" or os.path.exists(spec.rsplit(":", 1)[0]):
        return read(spec, None).array.astype("float64")
    return parse_number_list(spec, what="--weight")


def emit_json(document: dict[str, Any]) -> None:
    from lossctl.jsonout import dumps

    sys.stdout.write(dumps(document))


def emit_rich(renderable: Any) -> None:
    from rich.console import Console

    Console(highlight=False).print(renderable)


def collect_warnings(action: Callable[[], Any]) -> tuple[Any, list[str]]:
    """Run ``action``, returning its value and the messages of the warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = action()
    return value, [str(w.message) for w in caught]


def run_loss(
    op: str,
    input_spec: str,
    labels_spec: str,
    *,
    class_dim: int | None,
    ignore_index: int,
    reduction: Reduction,
    weight_spec: str | None,
    label_smoothing: float,
    key: str | None,
    labels_key: str | None,
    output: Output,
) -> None:
    """Read, compute and print ``ce`` or ``nll``."""
    from lossctl.core import loss_result
    from lossctl.diagnose import nonfinite_reason

    check_stdin([input_spec, labels_spec])
    values = read(input_spec, key)
    labels = read(labels_spec, labels_key)
    weight = read_weight(weight_spec)
    if class_dim is None and isinstance(values.meta.get("dim"), int):
        class_dim = int(values.meta["dim"])  # type: ignore[call-overload]
    sources = {"input": values.source, "target": labels.source, "weight": weight_spec}
    try:
        result, messages = collect_warnings(
            lambda: loss_result(
                op,  # type: ignore[arg-type]
                values.array,
                labels.array,
                weight=weight,
                ignore_index=ignore_index,
                reduction=reduction.value,
                label_smoothing=label_smoothing,
                class_dim=class_dim,
            )
        )
    except InputError as error:
        where = sources.get(error.subject or "")
        raise InputError(f"{where}: {error}" if where else str(error)) from None
    reason = nonfinite_reason(result, values.array)
    if reason:
        messages.append(reason)
    for message in messages:
        warn(message)
    if output.json:
        emit_json(loss_document(result, sources, ignore_index, label_smoothing, weight, messages))
        return
    from lossctl.render import loss_view

    emit_rich(
        loss_view(
            result,
            fmt=output.number_format(),
            summary=output.summary(),
            sources=[(f"{name} file", str(src)) for name, src in sources.items() if src],
            weighted=weight is not None,
        )
    )


def loss_document(
    result: Any,
    sources: dict[str, str | None],
    ignore_index: int,
    label_smoothing: float,
    weight: Any,
    messages: list[str],
) -> dict[str, Any]:
    """The ``--json`` document of ``ce`` / ``nll`` (schema in the README)."""
    return {
        "op": result.op,
        "loss": result.loss,
        "reduction": result.reduction,
        "count": result.count,
        "ignored": result.ignored,
        "sum": result.total,
        "denominator": result.denominator,
        "class_dim": result.class_dim,
        "classes": result.input_shape[result.class_dim],
        "shape": list(result.input_shape),
        "target_kind": result.target_kind,
        "ignore_index": ignore_index,
        "label_smoothing": label_smoothing,
        "weight": weight,
        "inputs": sources,
        "warnings": messages,
    }


def run_elementwise(
    op: str, input_spec: str, *, dim: int | None, key: str | None, output: Output
) -> None:
    """Read, compute and print ``softmax``, ``log-softmax`` or ``log``."""
    import numpy as np

    from lossctl.core import log_softmax, normalize_axis, softmax

    check_stdin([input_spec])
    values = read(input_spec, key)
    messages: list[str] = []
    if op == "log":
        carried = values.meta.get("dim")
        dim = carried if isinstance(carried, int) else None
        array = np.asarray(values.array, dtype=np.float64)
        if (array < 0).any():
            messages.append("log of negative numbers is nan: the input is not probabilities")
        with np.errstate(divide="ignore", invalid="ignore"):
            result = np.log(array)
    else:
        assert dim is not None
        function = softmax if op == "softmax" else log_softmax
        dim = normalize_axis(dim, values.array.ndim, "--dim")
        result = function(values.array, dim)
    for message in messages:
        warn(message)
    if output.json:
        emit_json(
            {
                "op": op,
                "dim": dim,
                "shape": list(result.shape),
                "result": result,
                "input": values.source,
                "warnings": messages,
            }
        )
        return
    from lossctl.render import elementwise_view

    emit_rich(
        elementwise_view(
            op,
            result,
            dim=dim,
            fmt=output.number_format(),
            summary=output.summary(),
            sources=[("input file", values.source)],
        )
    )


@app.command("ce")
@handles_errors
def ce_command(
    logits: Annotated[str, typer.Argument(help="Logits file (JSON, CSV, NPY, NPZ) or '-'.")],
    labels: Annotated[str, typer.Argument(help="Class indices or class probabilities, or '-'.")],
    class_dim: ClassDimOption = None,
    ignore_index: IgnoreIndexOption = -100,
    reduction: ReductionOption = Reduction.mean,
    weight: WeightOption = None,
    label_smoothing: Annotated[
        float, typer.Option("--label-smoothing", help="Smoothing ε in [0, 1].")
    ] = 0.0,
    key: KeyOption = None,
    labels_key: LabelsKeyOption = None,
    json_output: JsonOption = False,
    digits: DigitsOption = 4,
    full: FullOption = False,
) -> None:
    """Cross-entropy loss: softmax over the class axis, log, then NLL.

    Example: lossctl ce examples/seed/logits.json examples/seed/labels.json
    """
    run_loss(
        "cross_entropy",
        logits,
        labels,
        class_dim=class_dim,
        ignore_index=ignore_index,
        reduction=reduction,
        weight_spec=weight,
        label_smoothing=label_smoothing,
        key=key,
        labels_key=labels_key,
        output=Output(json=json_output, digits=digits, full=full),
    )


@app.command("nll")
@handles_errors
def nll_command(
    logprobs: Annotated[str, typer.Argument(help="Log-probabilities file or '-'.")],
    labels: Annotated[str, typer.Argument(help="Class indices, or '-'.")],
    class_dim: ClassDimOption = None,
    ignore_index: IgnoreIndexOption = -100,
    reduction: ReductionOption = Reduction.mean,
    weight: WeightOption = None,
    key: KeyOption = None,
    labels_key: LabelsKeyOption = None,
    json_output: JsonOption = False,
    digits: DigitsOption = 4,
    full: FullOption = False,
) -> None:
    """Negative log-likelihood loss: minus the input at each target class, averaged.

    Example: lossctl nll examples/seed/logits.json examples/seed/labels.json
    """
    run_loss(
        "nll_loss",
        logprobs,
        labels,
        class_dim=class_dim,
        ignore_index=ignore_index,
        reduction=reduction,
        weight_spec=weight,
        label_smoothing=0.0,
        key=key,
        labels_key=labels_key,
        output=Output(json=json_output, digits=digits, full=full),
    )


@app.command("softmax")
@handles_errors
def softmax_command(
    logits: Annotated[str, typer.Argument(help="Logits file or '-'.")],
    dim: DimOption = -1,
    key: KeyOption = None,
    json_output: JsonOption = False,
    digits: DigitsOption = 4,
    full: FullOption = False,
) -> None:
    """Softmax along an axis: exp(x - max) / sum exp(x - max).

    Example: lossctl softmax examples/seed/logits.json -d 0
    """
    output = Output(json=json_output, digits=digits, full=full)
    run_elementwise("softmax", logits, dim=dim, key=key, output=output)


@app.command("log-softmax")
@handles_errors
def log_softmax_command(
    logits: Annotated[str, typer.Argument(help="Logits file or '-'.")],
    dim: DimOption = -1,
    key: KeyOption = None,
    json_output: JsonOption = False,
    digits: DigitsOption = 4,
    full: FullOption = False,
) -> None:
    """Log-softmax along an axis: (x - max) - log sum exp(x - max).

    Example: lossctl log-softmax examples/seed/logits.json -d 0
    """
    output = Output(json=json_output, digits=digits, full=full)
    run_elementwise("log_softmax", logits, dim=dim, key=key, output=output)


@app.command("log")
@handles_errors
def log_command(
    probs: Annotated[str, typer.Argument(help="Probabilities file or '-'.")],
    key: KeyOption = None,
    json_output: JsonOption = False,
    digits: DigitsOption = 4,
    full: FullOption = False,
) -> None:
    """Elementwise natural log (the middle step of softmax -> log -> NLL).

    Example: lossctl softmax examples/seed/logits.json -d 0 --json | lossctl log -
    """
    output = Output(json=json_output, digits=digits, full=full)
    run_elementwise("log", probs, dim=None, key=key, output=output)


def main() -> None:
    """Entry point of the ``lossctl`` script and ``python -m lossctl``."""
    app()
