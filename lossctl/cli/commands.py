"""The commands: thin handlers that take typed option groups and call the library.

Each handler is registered in :mod:`lossctl.cli.app` through
:func:`lossctl.cli.options.grouped` (groups spread into typer options) and
:func:`handles_errors` (one line and an exit status for every error).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any

import typer

from lossctl.cli import loss
from lossctl.cli.emit import edges, emit_document, emit_rich, number_format, summary
from lossctl.cli.inputs import check_stdin, located, read, read_weight
from lossctl.cli.options import (
    DigitsOption,
    DimOption,
    ExtraOptions,
    FilesArgument,
    JsonOption,
    KeyOption,
    LabelSmoothingOption,
    LossName,
    LossOptions,
    OutputOptions,
    OutputPathOption,
    SmoothingOptions,
    StrictOption,
    TargetOptions,
)
from lossctl.cli.streams import StdoutClosed, current, error_line, report_interrupt, warn
from lossctl.errors import InputError, LossctlError


def handles_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Turn a :class:`LossctlError` into its one-line message and exit status.

    Also, inside the command (so that click/typer's own handlers never see them):
    Ctrl-C becomes ``lossctl: interrupted`` and exit status 130, a MemoryError one
    error line, and a closed stdout pipe :class:`StdoutClosed` (a quiet exit 141 in
    :func:`lossctl.cli.process.run_cli`). Any other exception is a bug, reported there.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            try:
                command(*args, **kwargs)
            except LossctlError as error:
                error_line(str(error))
                raise typer.Exit(error.exit_code) from None
            except KeyboardInterrupt:
                raise typer.Exit(report_interrupt()) from None
            except MemoryError:
                error_line("not enough memory for this input (MemoryError)")
                raise typer.Exit(1) from None
        except BrokenPipeError:
            raise StdoutClosed() from None

    return wrapper


def ce(
    files: FilesArgument = None,
    *,
    target: TargetOptions,
    options: LossOptions,
    smoothing: SmoothingOptions,
    extras: ExtraOptions,
    output: OutputOptions,
) -> None:
    """Cross-entropy loss: softmax over the class axis, log, then NLL.

    Example: lossctl ce examples/seed/logits.json examples/seed/labels.json
    """
    request = loss.LossRequest(
        "cross_entropy", target, options, smoothing.label_smoothing, extras, output
    )
    loss.run(request, files)


def nll(
    files: FilesArgument = None,
    *,
    target: TargetOptions,
    options: LossOptions,
    extras: ExtraOptions,
    output: OutputOptions,
) -> None:
    """Negative log-likelihood loss: minus the input at each target class, averaged.

    Example: lossctl nll examples/seed/logits.json examples/seed/labels.json
    """
    loss.run(loss.LossRequest("nll_loss", target, options, 0.0, extras, output), files)


def softmax(
    logits: Annotated[str, typer.Argument(help="Logits file or '-'.")],
    dim: DimOption = -1,
    key: KeyOption = None,
    *,
    output: OutputOptions,
) -> None:
    """Softmax along an axis: exp(x - max) / sum exp(x - max).

    Example: lossctl softmax examples/seed/logits.json -d 0
    """
    run_elementwise("softmax", logits, dim=dim, key=key, output=output)


def log_softmax(
    logits: Annotated[str, typer.Argument(help="Logits file or '-'.")],
    dim: DimOption = -1,
    key: KeyOption = None,
    *,
    output: OutputOptions,
) -> None:
    """Log-softmax along an axis: (x - max) - log sum exp(x - max).

    Example: lossctl log-softmax examples/seed/logits.json -d 0
    """
    run_elementwise("log_softmax", logits, dim=dim, key=key, output=output)


def log(
    probs: Annotated[str, typer.Argument(help="Probabilities file or '-'.")],
    key: KeyOption = None,
    *,
    output: OutputOptions,
) -> None:
    """Elementwise natural log (the middle step of softmax -> log -> NLL).

    Example: lossctl softmax examples/seed/logits.json -d 0 --json | lossctl log -
    """
    run_elementwise("log", probs, dim=None, key=key, output=output)


def run_elementwise(
    op: str, input_spec: str, *, dim: int | None, key: str | None, output: OutputOptions
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
    trace = None
    if output.explain:
        from lossctl.explain.trace import explain_elementwise

        trace = explain_elementwise(op, values.array, dim=dim, edges=edges(output))  # type: ignore[arg-type]
    if output.document_wanted:
        from lossctl.io.documents import elementwise_document

        document = elementwise_document(op, dim, result, values.source, messages)
        if trace is not None:
            from lossctl.explain.trace import steps_json

            document["steps"] = steps_json(trace, number_format(output))
        emit_document(document, output)
    if output.json:
        return
    if trace is not None:
        from lossctl.render.explain import explain_view

        emit_rich(explain_view(trace, fmt=number_format(output)))
        return
    from lossctl.render.results import elementwise_view

    emit_rich(
        elementwise_view(
            op,
            result,
            dim=dim,
            fmt=number_format(output),
            summary=summary(output),
            sources=[("input file", values.source)],
        )
    )


def doctor(
    input: Annotated[
        str, typer.Argument(help="Logits, probabilities or log-probabilities (file or '-').")
    ],
    labels: Annotated[
        str | None,
        typer.Argument(help="Optional class indices or class probabilities (file or '-')."),
    ] = None,
    loss_name: Annotated[
        LossName,
        typer.Option("--loss", help="The loss the input is meant for: ce (default) or nll."),
    ] = LossName.ce,
    label_smoothing: LabelSmoothingOption = 0.0,
    json_output: JsonOption = False,
    output_path: OutputPathOption = None,
    strict: StrictOption = False,
    *,
    target: TargetOptions,
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

    op = "cross_entropy" if loss_name == LossName.ce else "nll_loss"
    if op == "nll_loss" and label_smoothing:
        raise InputError("--label-smoothing applies to cross-entropy only (--loss ce)")
    check_stdin([input] + ([labels] if labels is not None else []))
    values = read(input, target.key)
    targets = None if labels is None else read(labels, target.labels_key)
    weights = read_weight(target.weight)
    class_dim = target.class_dim
    if class_dim is None and isinstance(values.meta.get("dim"), int):
        class_dim = int(values.meta["dim"])  # type: ignore[call-overload]
    sources = {
        "input": values.source,
        "target": None if targets is None else targets.source,
        "weight": target.weight,
    }
    try:
        findings = diagnose(
            values.array,
            None if targets is None else targets.array,
            op=op,  # type: ignore[arg-type]
            class_dim=class_dim,
            weight=weights,
            ignore_index=target.ignore_index,
            label_smoothing=label_smoothing,
        )
    except InputError as error:
        raise located(error, sources) from None
    output = OutputOptions(json=json_output, path=output_path)
    if output.document_wanted:
        from lossctl.io.documents import doctor_document

        shape = values.array.shape
        emit_document(doctor_document(op, shape, sources, [f.as_json() for f in findings]), output)
    if not json_output:
        from lossctl.render.findings import findings_view

        emit_rich(findings_view(findings), soft_wrap=True)
    problems = [finding for finding in findings if finding.severity != "info"]
    loss.finish_strict(strict, [finding.message for finding in problems], "problem")


def merge(
    results: Annotated[
        list[str],
        typer.Argument(help="--json results of lossctl ce or nll, or '-' (JSON Lines on stdin)."),
    ],
    json_output: JsonOption = False,
    output_path: OutputPathOption = None,
    digits: DigitsOption = 4,
    allow_duplicates: Annotated[
        bool,
        typer.Option(
            "--allow-duplicates",
            help="Merge results computed from the same inputs (same fingerprint) or files "
            "named twice, counting their data twice.",
        ),
    ] = False,
) -> None:
    """Merge shard results into the loss of all the data, exactly (Σ sums / Σ denominators).

    Example: lossctl merge shard-0.json shard-1.json  (each from lossctl ce ... --json)
    """
    from lossctl.core.merge import merge_partials
    from lossctl.io.documents import documents_from_bytes, partial_from_document
    from lossctl.io.fingerprint import same_files
    from lossctl.io.readers import read_document

    check_stdin(results)
    repeated = same_files(results)
    if repeated and not allow_duplicates:
        raise InputError(
            f"{repeated[0]} is named twice: merging it twice would count its data twice "
            "(pass --allow-duplicates if that is what you want)"
        )
    stdin = current().stdin
    partials = []
    for spec in results:
        if spec == "-":
            data = stdin.read() if stdin is not None else b""
            documents = documents_from_bytes(data, "standard input")
            many = len(documents) > 1
            partials += [
                partial_from_document(
                    document, f"standard input (document {n})" if many else "standard input"
                )
                for n, document in enumerate(documents, 1)
            ]
        else:
            partials.append(partial_from_document(*read_document(spec, stdin=stdin)))
    merged = merge_partials(partials, allow_duplicates=allow_duplicates)
    output = OutputOptions(json=json_output, path=output_path, digits=digits)
    loss.emit_merged(merged, [p.source for p in partials], [], output)
