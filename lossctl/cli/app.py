"""The ``lossctl`` command line: wires readers, core and renderers; owns stdout, stderr, exit codes.

NumPy and the numeric modules are imported inside the commands, so ``--help``
and ``--version`` start fast.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from lossctl import __version__
from lossctl.cli.process import StdoutClosed, reason, report_interrupt
from lossctl.errors import EXIT_INPUT, InputError, LossctlError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from lossctl.explain import Edges
    from lossctl.io.readers import Loaded
    from lossctl.render.results import NumberFormat, Summary

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


def check_output_option(value: str | None) -> str | None:
    """``--output``: refuse an impossible path before any work (exit code 2)."""
    if value is not None:
        from lossctl.io.atomic import check_output_path

        problem = check_output_path(value)
        if problem:
            raise typer.BadParameter(problem)
    return value


OutputOption = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        callback=check_output_option,
        help="Also write the result to FILE, atomically: the array if FILE ends in .npy "
        "(np.save), else the --json document. With --json, nothing is printed.",
    ),
]
DigitsOption = Annotated[
    int, typer.Option("--digits", min=0, max=17, help="Decimal places in tables.")
]
FullOption = Annotated[
    bool, typer.Option("--full", help="Show every number instead of summarising large arrays.")
]
FilesArgument = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="INPUT LABELS",
        help="The input and its labels (JSON, CSV, NPY, NPZ, or '-'); for many shards, glob "
        "patterns ('logits-*.npy' 'labels-*.npy') or INPUTS… LABELS…",
        show_default=False,
    ),
]
ManifestOption = Annotated[
    str | None,
    typer.Option("--manifest", help="A file listing shards, one 'INPUT LABELS' pair per line."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar on stderr.")]


class Precision(str, Enum):
    auto = "auto"
    float64 = "float64"


PrecisionOption = Annotated[
    Precision,
    typer.Option(
        "--precision",
        help="auto: float32 inputs use float32 exp with float64 sums (within 5e-7 relative); "
        "float64: every step in float64.",
    ),
]
ExplainOption = Annotated[
    bool,
    typer.Option(
        "--explain",
        help="Show every intermediate step as tables (with --json: add a 'steps' array).",
    ),
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
    int,
    typer.Option("--ignore-index", help="Target value that is skipped (PyTorch's default)."),
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
StrictOption = Annotated[
    bool,
    typer.Option("--strict", help="Exit with status 1 when there is any warning (for CI)."),
]
GradOption = Annotated[
    bool,
    typer.Option(
        "--grad",
        help="Also give d loss / d input, as torch.autograd does (ignored positions get 0; "
        "with --reduction none, the gradient of the sum).",
    ),
]
MetricsOption = Annotated[
    bool,
    typer.Option(
        "--metrics",
        help="Also give perplexity exp(mean NLL), accuracy, top-k accuracy, mean entropy "
        "and a per-class breakdown (unweighted, unsmoothed, over counted positions).",
    ),
]
TopkOption = Annotated[
    int | None,
    typer.Option("--topk", min=1, help="k of the top-k accuracy (default 5; implies --metrics)."),
]
ShiftOption = Annotated[
    bool,
    typer.Option(
        "--shift",
        help="Causal LM (Hugging Face): logits (N, L, C) or (L, C) with classes last, labels "
        "(N, L) or (L,) token ids; logits at t predict label t+1, so the last logit position "
        "and the first label are dropped along the sequence axis (the last non-class axis).",
    ),
]


def fail(message: str, code: int = EXIT_INPUT) -> typer.Exit:
    """Write one error line on stderr; return the Exit to raise."""
    sys.stderr.write(f"lossctl: error: {' '.join(message.split())}\n")
    return typer.Exit(code)


def warn(message: str) -> None:
    sys.stderr.write(f"lossctl: warning: {' '.join(message.split())}\n")


def handles_errors(command: F) -> F:
    """Turn a :class:`LossctlError` into its one-line message and exit code.

    Also, inside the command (so that click/typer's own handlers never see them):
    Ctrl-C becomes ``lossctl: interrupted`` and exit code 130, a MemoryError one
    error line, and a closed stdout pipe :class:`StdoutClosed` (a quiet exit 141
    in :func:`run_cli`). Any other exception is a bug, reported by :func:`run_cli`.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            try:
                command(*args, **kwargs)
            except LossctlError as error:
                raise fail(str(error), error.exit_code) from None
            except KeyboardInterrupt:
                raise typer.Exit(report_interrupt()) from None
            except MemoryError:
                raise fail("not enough memory for this input (MemoryError)") from None
        except BrokenPipeError:
            raise StdoutClosed() from None

    return wrapper  # type: ignore[return-value]


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


@dataclass(frozen=True)
class Output:
    """How to print a result."""

    json: bool
    digits: int
    full: bool
    explain: bool = False
    path: str | None = None  # --output FILE: the JSON document, or the array for *.npy

    def number_format(self) -> NumberFormat:
        from lossctl.render.results import NumberFormat

        return NumberFormat(digits=self.digits)

    def summary(self) -> Summary:
        from lossctl.render.results import Summary

        return Summary.full() if self.full else Summary()

    def edges(self) -> Edges:
        """How much of a large input ``--explain`` shows."""
        from lossctl.explain import Edges

        return Edges.full() if self.full else Edges()


def check_stdin(specs: list[str]) -> None:
    """At most one argument may be ``-``, and standard input must not be a terminal."""
    if sum(map(is_stdin_spec, specs)) > 1:
        raise InputError("only one argument can be '-' (standard input)")
    if any(map(is_stdin_spec, specs)):
        check_stdin_readable()


def is_stdin_spec(spec: str) -> bool:
    """``-`` or ``-:KEY`` (unless a file of that name exists)."""
    return spec == "-" or (spec.startswith("-:") and not os.path.exists(spec))


def check_stdin_readable() -> None:
    """Refuse at once, rather than wait for typing, when stdin is a terminal or closed."""
    if sys.stdin is None:
        raise InputError("'-' reads standard input, but it is closed: pipe or redirect a file")
    try:
        terminal = sys.stdin.isatty()
    except (ValueError, OSError):
        terminal = False
    if terminal:
        raise InputError(
            "'-' reads standard input, but it is a terminal: pipe or redirect a file, "
            "e.g. `lossctl softmax - < logits.json`"
        )


def read(spec: str, key: str | None) -> Loaded:
    from lossctl.io.readers import read_array

    if is_stdin_spec(spec):  # also --weight -, which check_stdin does not see
        check_stdin_readable()
    return read_array(spec, key=key, stdin=getattr(sys.stdin, "buffer", None))


def read_weight(spec: str | None) -> npt.NDArray[np.float64] | None:
    """``--weight``: an existing file (or ``-``), else an inline list of numbers."""
    if spec is None:
        return None
    import os

    from lossctl.io.readers import parse_number_list

    if spec == "-" or os.path.exists(spec.rsplit(":", 1)[0]):
        return read(spec, None).array.astype("float64")
    return parse_number_list(spec, what="--weight")


def emit_json(document: dict[str, Any], output: Output | None = None) -> None:
    """Print ``document`` as one JSON line; with ``--output FILE``, write the file instead.

    The file gets the same document, or with a ``.npy`` name the result array: the
    document's ``"result"`` (softmax, log-softmax, log), else its ``"loss"`` (a 0-d
    array for mean/sum).
    """
    if output is not None and output.path is not None:
        from lossctl.io.atomic import write_result

        write_result(output.path, document, document.get("result", document.get("loss")))
        return
    from lossctl.io.atomic import json_for_encoding
    from lossctl.io.documents import dumps

    write_stdout(json_for_encoding(dumps(document), getattr(sys.stdout, "encoding", None)))


def emit_rich(renderable: Any, *, soft_wrap: bool = False) -> None:
    """Print a table at its natural width at least, so that nothing is cut to fit.

    rich fits tables to the terminal (or ``COLUMNS``) by truncating cells ("3.26…")
    or dropping whole columns; numbers must never be shortened, so a narrow terminal
    gets lines it wraps instead. Renderables that expand to any width keep the
    terminal's. ``soft_wrap``: print lines as they are and let the terminal wrap them.
    """
    from rich.console import Console
    from rich.measure import Measurement

    console = Console(highlight=False, soft_wrap=soft_wrap)
    if not soft_wrap:  # soft-wrapped text is never cut; tables are measured
        limit = 1 << 16
        natural = Measurement.get(console, console.options.update_width(limit), renderable).maximum
        if console.width < natural < limit:
            console = Console(highlight=False, width=natural)
    with console.capture() as captured:
        console.print(renderable)
    write_stdout(captured.get())


def write_stdout(text: str) -> None:
    """Write ``text`` to stdout, all of it or an exception, and flush.

    A buffered writer can report a short count, without an error, when the pipe's
    reader goes away part-way (a blocking write cut short); the text layer ignores
    counts, so that would lose the rest silently. The bytes are therefore written
    to the binary buffer in a loop until all are taken, so that a closed pipe
    always raises ``BrokenPipeError`` (a quiet exit 141).
    """
    stream = sys.stdout
    if stream is None:
        raise LossctlError("standard output is closed; redirect it to a file or use --output FILE")
    buffer = getattr(stream, "buffer", None)
    encoding = getattr(stream, "encoding", None)
    if buffer is None or not encoding:  # a plain text stream (tests, embedding)
        stream.write(text)
        stream.flush()
        return
    data = memoryview(text.encode(encoding, getattr(stream, "errors", None) or "strict"))
    try:
        stream.flush()
        while data:
            written = buffer.write(data[: 1 << 16])
            if not written:  # a non-blocking stream that takes nothing: do not spin
                raise OSError(errno.EAGAIN, "standard output takes no more data")
            data = data[written:]
        buffer.flush()
    except BrokenPipeError:
        raise StdoutClosed() from None  # not an OSError: typer/click must not catch it
    except OSError as error:  # a full disk, an I/O error: not a bug, one error line
        raise LossctlError(f"cannot write to standard output: {reason(error)}") from None


def located(error: InputError, sources: dict[str, str | None]) -> InputError:
    """The core's error, prefixed with the file (or option) it is about."""
    where = sources.get(error.subject or "")
    if error.subject == "weight":
        where = f"--weight {where}"
    return InputError(f"{where}: {error}" if where else str(error))


def collect_warnings(action: Callable[[], Any]) -> tuple[Any, list[str]]:
    """Run ``action``, returning its value and the messages of the warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = action()
    return value, [str(w.message) for w in caught]


@dataclass(frozen=True)
class LossOptions:
    """The options of ``ce`` / ``nll`` that shape the computation."""

    class_dim: int | None
    ignore_index: int
    reduction: Reduction
    weight_spec: str | None
    label_smoothing: float
    key: str | None
    labels_key: str | None
    precision: str = "auto"
    quiet: bool = False  # no progress bar


def compute_loss(
    op: str,
    values: Loaded,
    labels: Loaded,
    weight: npt.NDArray[np.float64] | None,
    options: LossOptions,
    class_dim: int | None,
) -> tuple[Any, list[str], dict[str, str | None]]:
    """``loss_result`` on read inputs: the result, the warnings it raised, the sources."""
    from lossctl.cli.progress import Progress
    from lossctl.core.losses import loss_result

    sources = {"input": values.source, "target": labels.source, "weight": options.weight_spec}
    progress = Progress(0, "positions", enabled=not options.quiet)
    try:
        result, messages = collect_warnings(
            lambda: loss_result(
                op,  # type: ignore[arg-type]
                values.array,
                labels.array,
                weight=weight,
                ignore_index=options.ignore_index,
                reduction=options.reduction.value,
                label_smoothing=options.label_smoothing,
                class_dim=class_dim,
                precision=options.precision,  # type: ignore[arg-type]
                on_rows=progress.advance,
            )
        )
    except InputError as error:
        raise located(error, sources) from None
    finally:
        progress.close()
    return result, messages, sources


def loss_inputs(files: list[str] | None, manifest: str | None) -> list[tuple[str, str]]:
    """(input, labels) pairs from the arguments or a manifest (one pair per shard)."""
    from lossctl.io.shards import read_manifest, split_arguments

    if manifest is not None:
        if files:
            raise typer.BadParameter("give either --manifest or INPUT LABELS files, not both")
        return read_manifest(manifest)
    if not files or len(files) < 2:
        raise typer.BadParameter(
            "give an input file and its labels file (INPUT LABELS), glob patterns for many "
            "shards, or --manifest FILE",
            param_hint="'INPUT LABELS'",
        )
    return split_arguments(files)


def loss_command(op: str, params: dict[str, Any]) -> None:
    """``ce`` and ``nll``: their parameters (the command's ``locals()``) into a run of one
    input, or of many shards."""
    options = LossOptions(
        class_dim=params["class_dim"],
        ignore_index=params["ignore_index"],
        reduction=params["reduction"],
        weight_spec=params["weight"],
        label_smoothing=params["label_smoothing"],
        key=params["key"],
        labels_key=params["labels_key"],
        precision=params["precision"].value,
        quiet=params["quiet"],
    )
    output = Output(
        json=params["json_output"],
        digits=params["digits"],
        full=params["full"],
        explain=params["explain"],
        path=params["output_path"],
    )
    extras = Extras.of(
        params["grad"], params["metrics"], params["topk"], params["shift"], params["strict"]
    )
    pairs = loss_inputs(params["files"], params["manifest"])
    if len(pairs) == 1:  # one input: the full report
        run_loss(op, *pairs[0], options, output=output, extras=extras)
    else:  # several: each shard in turn, merged exactly
        run_shards(op, pairs, options, output=output, extras=extras)


def run_shards(
    op: str,
    pairs: list[tuple[str, str]],
    options: LossOptions,
    *,
    output: Output,
    extras: Extras,
) -> None:
    """The loss of many (input, labels) shards: each read and computed alone (bounded memory),
    then combined through their exact partial sums, so it equals the loss of the concatenation.
    """
    import numpy as np

    from lossctl.cli.progress import Progress
    from lossctl.core.merge import merge_partials, partial_from_result

    if output.explain or extras.grad or extras.metrics or extras.shift:
        raise InputError(
            "--explain, --grad, --metrics and --shift work on one input at a time; run them "
            "per shard"
        )
    check_stdin([spec for pair in pairs for spec in pair])
    weight = read_weight(options.weight_spec)
    settings = {
        "ignore_index": options.ignore_index,
        "label_smoothing": options.label_smoothing,
        "weight": None if weight is None else weight.tolist(),
    }
    progress = Progress(len(pairs), "shards", enabled=not options.quiet)
    partials, per_position, messages = [], [], []
    for input_spec, labels_spec in pairs:
        values = read(input_spec, options.key)
        labels = read(labels_spec, options.labels_key)
        result, shard_messages, _ = compute_loss(
            op, values, labels, weight, options, options.class_dim
        )
        partials.append(partial_from_result(result, settings, values.source))
        per_position.append(result.per_position)
        messages += [f"{values.source}: {message}" for message in shard_messages]
        progress.advance()
    progress.close()
    merged = merge_partials(partials)
    if options.reduction == Reduction.none:
        try:
            merged = dataclasses.replace(merged, loss=np.concatenate(per_position))
        except ValueError:
            raise InputError(
                "--reduction none over shards concatenates the per-position losses along the "
                "first axis; these shards' shapes do not line up"
            ) from None
    for message in messages:
        warn(message)
    inputs = [{"input": i, "target": t} for i, t in pairs]
    emit_merged(merged, inputs, messages, output)
    finish_strict(extras.strict, messages)


def run_loss(
    op: str,
    input_spec: str,
    labels_spec: str,
    options: LossOptions,
    *,
    output: Output,
    extras: Extras,
) -> None:
    """Read, compute and print ``ce`` or ``nll`` of one input."""
    check_stdin([input_spec, labels_spec])
    values = read(input_spec, options.key)
    labels = read(labels_spec, options.labels_key)
    weight = read_weight(options.weight_spec)
    class_dim = options.class_dim
    if class_dim is None and isinstance(values.meta.get("dim"), int):
        class_dim = int(values.meta["dim"])  # type: ignore[call-overload]
    if extras.shift:
        values, labels, class_dim = shifted_inputs(values, labels, class_dim)
    result, messages, sources = compute_loss(op, values, labels, weight, options, class_dim)
    ignore_index, reduction = options.ignore_index, options.reduction
    label_smoothing = options.label_smoothing
    checks, messages = loss_checks(
        op,
        values,
        labels,
        result,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        class_dim=class_dim,
        extras=extras,
        messages=messages,
    )
    for message in messages:
        warn(message)
    if output.explain:
        from lossctl.explain import explain_loss

        trace = explain_loss(
            op,  # type: ignore[arg-type]
            values.array,
            labels.array,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction.value,
            label_smoothing=label_smoothing,
            class_dim=result.class_dim,
            edges=output.edges(),
            result=result,
        )
        trace = with_gradient_step(trace, checks, result, weight is not None, label_smoothing)
        if output.json or output.path:
            from lossctl.render.explain_data import steps_json

            document = loss_document(
                result, sources, ignore_index, label_smoothing, weight, messages
            )
            document["steps"] = steps_json(trace, output.number_format())
            emit_json(document | checks.document(), output)
        if not output.json:
            from lossctl.render.explain import explain_view

            emit_rich(explain_view(trace, fmt=output.number_format()))
            emit_loss_extras(checks, result, output)
        finish_strict(extras.strict, messages)
        return
    if output.json or output.path:
        document = loss_document(result, sources, ignore_index, label_smoothing, weight, messages)
        emit_json(document | checks.document(), output)
    if output.json:
        finish_strict(extras.strict, messages)
        return
    from lossctl.render.results import loss_view

    emit_rich(
        loss_view(
            result,
            fmt=output.number_format(),
            summary=output.summary(),
            sources=[(f"{name} file", str(src)) for name, src in sources.items() if src],
            weighted=weight is not None,
        )
    )
    emit_loss_extras(checks, result, output)
    finish_strict(extras.strict, messages)


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
        "exact": exact_document(result.exact_total, result.exact_denominator),
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


def exact_document(total: Any, denominator: Any) -> dict[str, str | None]:
    """The exact partial sums as ``"M*2**E"`` strings (``sum`` is null when not finite)."""
    return {"sum": None if total is None else total.text(), "denominator": denominator.text()}


def run_elementwise(
    op: str, input_spec: str, *, dim: int | None, key: str | None, output: Output
) -> None:
    """Read, compute and print ``softmax``, ``log-softmax`` or ``log``."""
    import numpy as np

    from lossctl.core.losses import log_softmax, normalize_axis, softmax

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
    if output.explain:
        from lossctl.explain import explain_elementwise

        trace = explain_elementwise(
            op,  # type: ignore[arg-type]
            values.array,
            dim=dim,
            edges=output.edges(),
        )
    if output.json or output.path:
        document: dict[str, Any] = {
            "op": op,
            "dim": dim,
            "shape": list(result.shape),
            "result": result,
            "input": values.source,
            "warnings": messages,
        }
        if output.explain:
            from lossctl.render.explain_data import steps_json

            document["steps"] = steps_json(trace, output.number_format())
        emit_json(document, output)
    if output.json:
        return
    if output.explain:
        from lossctl.render.explain import explain_view

        emit_rich(explain_view(trace, fmt=output.number_format()))
        return
    from lossctl.render.results import elementwise_view

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
    files: FilesArgument = None,
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
    output_path: OutputOption = None,
    digits: DigitsOption = 4,
    full: FullOption = False,
    explain: ExplainOption = False,
    grad: GradOption = False,
    metrics: MetricsOption = False,
    topk: TopkOption = None,
    shift: ShiftOption = False,
    strict: StrictOption = False,
    manifest: ManifestOption = None,
    precision: PrecisionOption = Precision.auto,
    quiet: QuietOption = False,
) -> None:
    """Cross-entropy loss: softmax over the class axis, log, then NLL.

    Example: lossctl ce examples/seed/logits.json examples/seed/labels.json
    """
    loss_command("cross_entropy", locals())


@app.command("nll")
@handles_errors
def nll_command(
    files: FilesArgument = None,
    class_dim: ClassDimOption = None,
    ignore_index: IgnoreIndexOption = -100,
    reduction: ReductionOption = Reduction.mean,
    weight: WeightOption = None,
    key: KeyOption = None,
    labels_key: LabelsKeyOption = None,
    json_output: JsonOption = False,
    output_path: OutputOption = None,
    digits: DigitsOption = 4,
    full: FullOption = False,
    explain: ExplainOption = False,
    grad: GradOption = False,
    metrics: MetricsOption = False,
    topk: TopkOption = None,
    shift: ShiftOption = False,
    strict: StrictOption = False,
    manifest: ManifestOption = None,
    precision: PrecisionOption = Precision.auto,
    quiet: QuietOption = False,
) -> None:
    """Negative log-likelihood loss: minus the input at each target class, averaged.

    Example: lossctl nll examples/seed/logits.json examples/seed/labels.json
    """
    loss_command("nll_loss", locals() | {"label_smoothing": 0.0})


@app.command("softmax")
@handles_errors
def softmax_command(
    logits: Annotated[str, typer.Argument(help="Logits file or '-'.")],
    dim: DimOption = -1,
    key: KeyOption = None,
    json_output: JsonOption = False,
    output_path: OutputOption = None,
    digits: DigitsOption = 4,
    full: FullOption = False,
    explain: ExplainOption = False,
) -> None:
    """Softmax along an axis: exp(x - max) / sum exp(x - max).

    Example: lossctl softmax examples/seed/logits.json -d 0
    """
    output = Output(json=json_output, digits=digits, full=full, explain=explain, path=output_path)
    run_elementwise("softmax", logits, dim=dim, key=key, output=output)


@app.command("log-softmax")
@handles_errors
def log_softmax_command(
    logits: Annotated[str, typer.Argument(help="Logits file or '-'.")],
    dim: DimOption = -1,
    key: KeyOption = None,
    json_output: JsonOption = False,
    output_path: OutputOption = None,
    digits: DigitsOption = 4,
    full: FullOption = False,
    explain: ExplainOption = False,
) -> None:
    """Log-softmax along an axis: (x - max) - log sum exp(x - max).

    Example: lossctl log-softmax examples/seed/logits.json -d 0
    """
    output = Output(json=json_output, digits=digits, full=full, explain=explain, path=output_path)
    run_elementwise("log_softmax", logits, dim=dim, key=key, output=output)


@app.command("log")
@handles_errors
def log_command(
    probs: Annotated[str, typer.Argument(help="Probabilities file or '-'.")],
    key: KeyOption = None,
    json_output: JsonOption = False,
    output_path: OutputOption = None,
    digits: DigitsOption = 4,
    full: FullOption = False,
    explain: ExplainOption = False,
) -> None:
    """Elementwise natural log (the middle step of softmax -> log -> NLL).

    Example: lossctl softmax examples/seed/logits.json -d 0 --json | lossctl log -
    """
    output = Output(json=json_output, digits=digits, full=full, explain=explain, path=output_path)
    run_elementwise("log", probs, dim=None, key=key, output=output)


# ---- doctor-style checks, --grad, --metrics, --shift and --strict ---------------------------


@dataclass(frozen=True)
class Extras:
    """What ``ce`` / ``nll`` compute besides the loss."""

    grad: bool = False
    metrics: bool = False
    topk: int = 5
    shift: bool = False
    strict: bool = False

    @staticmethod
    def of(grad: bool, metrics: bool, topk: int | None, shift: bool, strict: bool) -> Extras:
        """``--topk`` implies ``--metrics``."""
        return Extras(
            grad=grad,
            metrics=metrics or topk is not None,
            topk=5 if topk is None else topk,
            shift=shift,
            strict=strict,
        )


NEG_INF_CODES = {"neg-inf-at-target", "neg-inf-label-smoothing", "neg-inf-zero-probability"}


@dataclass
class LossChecks:
    """The findings, gradient and metrics that go with a ``ce`` / ``nll`` result."""

    findings: list[Any]
    grad: Any = None
    metrics: Any = None
    shift: bool = False

    def document(self) -> dict[str, Any]:
        """Keys added to the ``--json`` document."""
        document: dict[str, Any] = {"findings": [f.as_json() for f in self.findings]}
        if self.shift:
            document["shift"] = True
        if self.grad is not None:
            document["grad"] = self.grad
        if self.metrics is not None:
            document["metrics"] = self.metrics.as_json()
        return document


def shifted_inputs(
    values: Loaded, labels: Loaded, class_dim: int | None
) -> tuple[Loaded, Loaded, int]:
    """``--shift``: drop the last logit position and the first label (Hugging Face)."""
    import dataclasses

    from lossctl.core.metrics import causal_shift

    x, y, axis = causal_shift(values.array, labels.array, class_dim)
    return dataclasses.replace(values, array=x), dataclasses.replace(labels, array=y), axis


def loss_checks(
    op: str,
    values: Loaded,
    labels: Loaded,
    result: Any,
    *,
    weight: Any,
    ignore_index: int,
    label_smoothing: float,
    class_dim: int | None,
    extras: Extras,
    messages: list[str],
) -> tuple[LossChecks, list[str]]:
    """Findings (as warnings), gradient and metrics; returns them and every warning message.

    ``messages`` are the core's warnings; a finding that says the same thing better
    replaces them (the ambiguous class axis, the NaN of a mean over no targets).
    """
    from lossctl.doctor.checks import diagnose
    from lossctl.doctor.reasons import nonfinite_reason

    findings = [
        finding
        for finding in diagnose(
            values.array,
            labels.array,
            op=op,  # type: ignore[arg-type]
            class_dim=class_dim,
            weight=weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            result=result,
            inline=True,
        )
        if finding.severity != "info"
    ]
    codes = {finding.code for finding in findings}
    kept = [
        message
        for message in messages
        if not ("ambiguous-class-axis" in codes and message.startswith("the class axis is"))
    ]
    kept += [finding.message for finding in findings]
    reason = nonfinite_reason(result, values.array)
    explained = "all-ignored" in codes or (
        reason is not None and "-inf" in reason and bool(codes & NEG_INF_CODES)
    )
    if reason and not explained:
        kept.append(reason)
    checks = LossChecks(findings=findings, shift=extras.shift)
    if extras.grad:
        from lossctl.core.grad import grad_from_result
        from lossctl.core.metrics import unshift_grad

        grad = grad_from_result(
            result,
            values.array,
            labels.array,
            weight=weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
        )
        checks.grad = unshift_grad(grad) if extras.shift else grad
    if extras.metrics:
        from lossctl.core.metrics import compute_metrics

        checks.metrics = compute_metrics(
            op,  # type: ignore[arg-type]
            values.array,
            labels.array,
            class_dim=result.class_dim,
            ignore_index=ignore_index,
            topk=extras.topk,
        )
    return checks, kept


def with_gradient_step(
    trace: Any, checks: LossChecks, result: Any, weighted: bool, label_smoothing: float
) -> Any:
    """The ``--explain`` trace with the gradient as its final step (when ``--grad``)."""
    if checks.grad is None:
        return trace
    import dataclasses

    from lossctl.explain import gradient_step

    step = gradient_step(
        checks.grad[..., :-1, :] if checks.shift else checks.grad,  # the trace is shifted
        result,
        trace.layout.cell_index,
        weighted=weighted,
        label_smoothing=label_smoothing,
    )
    return dataclasses.replace(trace, steps=(*trace.steps, step))


def emit_loss_extras(checks: LossChecks, result: Any, output: Output) -> None:
    """The gradient grid and the metrics tables, after the result."""
    from rich.console import Group

    from lossctl.render.findings import grad_view, metrics_view

    parts: list[Any] = []
    if checks.grad is not None and not output.explain:
        parts.append(
            grad_view(
                checks.grad,
                class_dim=result.class_dim,
                reduction=result.reduction,
                fmt=output.number_format(),
                summary=output.summary(),
                shifted=checks.shift,
            )
        )
    if checks.metrics is not None:
        parts.append(metrics_view(checks.metrics, fmt=output.number_format()))
    if parts:
        emit_rich(Group(*parts))


def finish_strict(strict: bool, messages: list[str], noun: str = "warning") -> None:
    """``--strict``: any warning makes the exit status 1 (after the output)."""
    if strict and messages:
        count = len(messages)
        raise fail(f"--strict: {count} {noun}{'' if count == 1 else 's'} (see above)")


class LossName(str, Enum):
    ce = "ce"
    nll = "nll"


@app.command("doctor")
@handles_errors
def doctor_command(
    input: Annotated[
        str, typer.Argument(help="Logits, probabilities or log-probabilities (file or '-').")
    ],
    labels: Annotated[
        str | None,
        typer.Argument(help="Optional class indices or class probabilities (file or '-')."),
    ] = None,
    loss: Annotated[
        LossName,
        typer.Option("--loss", help="The loss the input is meant for: ce (default) or nll."),
    ] = LossName.ce,
    class_dim: ClassDimOption = None,
    ignore_index: IgnoreIndexOption = -100,
    weight: WeightOption = None,
    label_smoothing: Annotated[
        float, typer.Option("--label-smoothing", help="Smoothing ε in [0, 1] (ce only).")
    ] = 0.0,
    key: KeyOption = None,
    labels_key: LabelsKeyOption = None,
    json_output: JsonOption = False,
    output_path: OutputOption = None,
    strict: StrictOption = False,
) -> None:
    """Find the classic loss mistakes: one finding per line, with its numbers and the fix.

    Reports what the input holds (logits, probabilities, log-probabilities) and, with
    labels, double softmax, NLL on logits, an ambiguous class axis, every out-of-range
    target, ignore_index inside [0, C), all targets ignored, soft targets that do not sum
    to 1, -inf at a target or under label smoothing, and float16 overflow or precision
    loss. Exit status 0 whatever it finds (1 with --strict when there is a warning or
    an error).

    Example: lossctl doctor examples/mistakes/probs.json examples/seed/labels.json
    """
    from lossctl.doctor.checks import diagnose

    op = "cross_entropy" if loss == LossName.ce else "nll_loss"
    if op == "nll_loss" and label_smoothing:
        raise InputError("--label-smoothing applies to cross-entropy only (--loss ce)")
    check_stdin([input] + ([labels] if labels is not None else []))
    values = read(input, key)
    target = None if labels is None else read(labels, labels_key)
    weights = read_weight(weight)
    if class_dim is None and isinstance(values.meta.get("dim"), int):
        class_dim = int(values.meta["dim"])  # type: ignore[call-overload]
    sources = {
        "input": values.source,
        "target": None if target is None else target.source,
        "weight": weight,
    }
    try:
        findings = diagnose(
            values.array,
            None if target is None else target.array,
            op=op,  # type: ignore[arg-type]
            class_dim=class_dim,
            weight=weights,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
        )
    except InputError as error:
        raise located(error, sources) from None
    if json_output or output_path:
        emit_json(
            {
                "op": "doctor",
                "loss": op,
                "shape": list(values.array.shape),
                "inputs": sources,
                "findings": [finding.as_json() for finding in findings],
            },
            Output(json=json_output, digits=4, full=False, path=output_path),
        )
    if not json_output:
        from lossctl.render.findings import findings_view

        emit_rich(findings_view(findings), soft_wrap=True)
    problems = [finding for finding in findings if finding.severity != "info"]
    finish_strict(strict, [finding.message for finding in problems], "problem")


@app.command("merge")
@handles_errors
def merge_command(
    results: Annotated[
        list[str], typer.Argument(help="--json results of lossctl ce or nll, or '-'.")
    ],
    json_output: JsonOption = False,
    output_path: OutputOption = None,
    digits: DigitsOption = 4,
) -> None:
    """Merge shard results into the loss of all the data, exactly (Σ sums / Σ denominators).

    Example: lossctl merge shard-0.json shard-1.json  (each from lossctl ce ... --json)
    """
    from lossctl.core.merge import merge_partials, partial_from_document
    from lossctl.io.readers import read_document

    check_stdin(results)
    partials = [
        partial_from_document(*read_document(spec, stdin=sys.stdin.buffer)) for spec in results
    ]
    merged = merge_partials(partials)
    output = Output(json=json_output, digits=digits, full=False, path=output_path)
    emit_merged(merged, [p.source for p in partials], [], output)


def emit_merged(merged: Any, inputs: list[Any], messages: list[str], output: Output) -> None:
    """Print (or write) a merged result: the same schema as ce/nll, plus ``shards``."""
    document = {
        "op": merged.settings["op"],
        "loss": merged.loss,
        "reduction": merged.settings["reduction"],
        "count": merged.count,
        "ignored": merged.ignored,
        "sum": merged.total,
        "denominator": merged.exact_denominator.to_float(),
        "exact": exact_document(merged.exact_total, merged.exact_denominator),
        "shards": merged.shards,
        **{k: merged.settings[k] for k in ("classes", "target_kind", "ignore_index")},
        **{k: merged.settings[k] for k in ("label_smoothing", "weight")},
        "inputs": inputs,
        "warnings": messages,
    }
    if output.json or output.path:
        emit_json(document, output)
    if output.json:
        return
    from rich.console import Group

    from lossctl.render.results import array_grid, facts_table

    fmt = output.number_format()
    per_position = merged.settings["reduction"] == "none"
    title = f"{merged.settings['op'].replace('_', ' ')} over {merged.shards} shards"
    facts = facts_table(
        title,
        [
            ("loss", "per position, below" if per_position else fmt(merged.loss)),
            ("reduction", str(merged.settings["reduction"])),
            ("counted", str(merged.count)),
            ("ignored", str(merged.ignored)),
            ("sum", fmt(merged.total)),
            ("denominator", fmt(merged.exact_denominator.to_float())),
        ],
    )
    if not per_position:
        emit_rich(facts)
        return
    grid = array_grid(
        merged.loss, title=f"{title}, per position", fmt=fmt, summary=output.summary()
    )
    emit_rich(Group(facts, grid))
