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
from lossctl.cli.emit import emit_document, emit_rich
from lossctl.cli.inputs import check_stdin, read, read_weight
from lossctl.cli.options import (
    DigitsOption,
    DimOption,
    ElementwiseOptions,
    ExtraOptions,
    FilesArgument,
    Header,
    HeaderOption,
    JsonOption,
    KeyOption,
    KLFilesArgument,
    KLOptions,
    LabelSmoothingOption,
    LossName,
    LossOptions,
    OutputOptions,
    OutputPathOption,
    SmoothingOptions,
    StrictOption,
    TargetOptions,
)
from lossctl.cli.streams import (
    StdoutClosed,
    current,
    error_line,
    report_interrupt,
    stderr_line,
    take_notes,
)
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
        take_notes()
        try:
            try:
                command(*args, **kwargs)
                for text in take_notes():
                    stderr_line(f"lossctl: note: {text}")
            except LossctlError as error:
                notes = take_notes()
                error_line(str(error) + (f" (note: {'; '.join(notes)})" if notes else ""))
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


def kl(
    files: KLFilesArgument,
    *,
    options: KLOptions,
    output: OutputOptions,
) -> None:
    """KL(P_ref ‖ P_other) per position between two models' logits, and its statistics.

    Example: lossctl kl examples/kl/reference.json examples/kl/other.json examples/kl/labels.json

    Mean ± standard error, extremes and percentiles of the KL, same top-1,
    top-5 overlap; with LABELS also both perplexities, their ratio and the
    change in the target token's probability. Streams .npy files block by
    block; shards merge exactly (lossctl merge).
    """
    from lossctl.cli import kl as kl_command

    kl_command.run(options, output, files)


def normalising_command(op: str, doc: str) -> Callable[..., None]:
    """The ``softmax`` / ``log-softmax`` command: one declaration for both, ``doc`` its help."""

    def command(
        logits: Annotated[str, typer.Argument(help="Logits file or '-'.")],
        dim: DimOption = -1,
        key: KeyOption = None,
        header: HeaderOption = "auto",
        *,
        output: OutputOptions,
        compute: ElementwiseOptions,
    ) -> None:
        run_elementwise(op, logits, dim=dim, key=key, header=header, output=output, compute=compute)

    command.__name__ = command.__qualname__ = op
    command.__doc__ = doc
    return command


softmax = normalising_command(
    "softmax",
    """Softmax along an axis: exp(x - max) / sum exp(x - max).

    Example: lossctl softmax examples/seed/logits.json -d 0
    """,
)
log_softmax = normalising_command(
    "log_softmax",
    """Log-softmax along an axis: (x - max) - log sum exp(x - max).

    Example: lossctl log-softmax examples/seed/logits.json -d 0
    """,
)


def log(
    probs: Annotated[str, typer.Argument(help="Probabilities file or '-'.")],
    key: KeyOption = None,
    header: HeaderOption = "auto",
    *,
    output: OutputOptions,
    compute: ElementwiseOptions,
) -> None:
    """Elementwise natural log (the middle step of softmax -> log -> NLL).

    Example: lossctl softmax examples/seed/logits.json -d 0 --json | lossctl log -
    """
    run_elementwise("log", probs, dim=None, key=key, header=header, output=output, compute=compute)


def run_elementwise(
    op: str,
    input_spec: str,
    *,
    dim: int | None,
    key: str | None,
    header: Header,
    output: OutputOptions,
    compute: ElementwiseOptions,
) -> None:
    """Read, compute and print (or stream to ``-o FILE.npy``) ``softmax``, ``log-softmax``
    or ``log``: see :mod:`lossctl.cli.elementwise`."""
    from lossctl.cli import elementwise

    elementwise.run(
        op,
        input_spec,
        dim=dim,
        key=key,
        header=header,
        output=output,
        precision=compute.precision,
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
    ] = "ce",
    label_smoothing: LabelSmoothingOption = 0.0,
    json_output: JsonOption = False,
    output_path: OutputPathOption = None,
    strict: StrictOption = False,
    *,
    target: TargetOptions,
) -> None:
    """Find the classic loss mistakes: one finding per line, with its numbers and the fix.

    Example: lossctl doctor examples/mistakes/probs.json examples/seed/labels.json

    Reports what the input holds (logits, probabilities, log-probabilities) and, with
    labels, double softmax, NLL on logits, an ambiguous class axis, every out-of-range
    target, ignore_index inside [0, C), all targets ignored, soft targets that do not sum
    to 1, -inf at a target or under label smoothing, and float16 overflow or precision
    loss. Exit status 0 whatever it finds (1 with --strict when there is a warning or
    an error).
    """
    from lossctl.doctor import diagnose
    from lossctl.render.messages import finding_json, message

    op = "cross_entropy" if loss_name == "ce" else "nll_loss"
    if op == "nll_loss" and label_smoothing:
        raise InputError("--label-smoothing applies to cross-entropy only (--loss ce)")
    check_stdin([input] + ([labels] if labels is not None else []), target.weight)
    values = read(input, target.key, target.header, values=True)
    targets = None if labels is None else read(labels, target.labels_key, target.header)
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
        raise error.located(sources) from None
    output = OutputOptions(json=json_output, path=output_path)
    if output.document_wanted:
        from lossctl.io.documents import doctor_document

        shape = values.array.shape
        emit_document(
            doctor_document(op, shape, sources, [finding_json(f) for f in findings]), output
        )
    if not json_output:
        from lossctl.render.findings import findings_view

        emit_rich(findings_view(findings), soft_wrap=True)
    problems = [finding for finding in findings if finding.severity != "info"]
    loss.finish_strict(strict, [message(finding) for finding in problems], "problem")


def merge(
    results: Annotated[
        list[str],
        typer.Argument(
            help="--json results of lossctl ce, nll or kl, or '-' (JSON Lines on stdin)."
        ),
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

    kl results merge with kl results only: their exact statistics add up (percentiles
    through the histograms they carry).
    """
    from lossctl.core.merge import merge_partials
    from lossctl.io.documents import documents_from_bytes, partial_from_document
    from lossctl.io.fingerprint import same_files
    from lossctl.io.readers import read_document
    from lossctl.io.sources import STDIN_NAME, read_stream

    check_stdin(results)
    repeated = same_files(results)
    if repeated and not allow_duplicates:
        raise InputError(
            f"{repeated[0]} is named twice: merging it twice would count its data twice "
            "(pass --allow-duplicates if that is what you want)"
        )
    stdin = current().stdin
    documents: list[tuple[dict[str, Any], str]] = []
    for spec in results:
        if spec == "-":
            data = read_stream(stdin, STDIN_NAME, "standard input") if stdin is not None else b""
            found = documents_from_bytes(data, "standard input")
            many = len(found) > 1
            documents += [
                (document, f"standard input (document {n})" if many else "standard input")
                for n, document in enumerate(found, 1)
            ]
        else:
            documents.append(read_document(spec, stdin=stdin))
    output = OutputOptions(json=json_output, path=output_path, digits=digits)
    if any(document.get("op") == "kl" for document, _ in documents):
        from lossctl.cli.kl import merge_documents

        merge_documents(documents, output)
        return
    partials = [partial_from_document(*pair) for pair in documents]
    merged = merge_partials(partials, allow_duplicates=allow_duplicates)
    loss.emit_merged(merged, [p.source for p in partials], [], output)
