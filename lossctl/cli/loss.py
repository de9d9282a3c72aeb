"""``ce`` and ``nll``: read, compute, check and print the loss of one input or of many shards."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, NamedTuple

from lossctl.cli.elementwise import corners_suffice, npy_output, refuse_large_json
from lossctl.cli.emit import edges, emit_document, emit_rich, number_format, summary
from lossctl.cli.inputs import (
    check_stdin,
    labels_without_pandas_header,
    loss_inputs,
    read,
    read_weight,
)
from lossctl.cli.options import ExtraOptions, LossOptions, OutputOptions, TargetOptions
from lossctl.cli.streams import warn
from lossctl.errors import InputError, LossctlError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from lossctl.core.losses import LossResult, LossSpec
    from lossctl.core.spec import LossOp
    from lossctl.doctor import Finding
    from lossctl.io.readers import Loaded


class LossRequest(NamedTuple):
    """Everything ``ce`` / ``nll`` were asked for, as typed groups."""

    op: LossOp
    target: TargetOptions
    loss: LossOptions
    label_smoothing: float
    extras: ExtraOptions
    output: OutputOptions

    def spec(self, weight: npt.NDArray[np.float64] | None, class_dim: int | None) -> LossSpec:
        """The core's spec of this request (raises :class:`InputError` for bad options)."""
        from lossctl.core.spec import LossSpec

        return LossSpec(
            self.op,
            weight=weight,
            ignore_index=self.target.ignore_index,
            reduction=self.loss.reduction,
            label_smoothing=self.label_smoothing,
            class_dim=class_dim,
            precision=self.loss.precision,
        )


def run(request: LossRequest, files: list[str] | None) -> None:
    """One input: the full report; several: each shard in turn, merged exactly."""
    pairs = loss_inputs(files, request.loss.manifest)
    if request.loss.scheduler:
        run_on_cluster(request, pairs, request.loss.scheduler)
    elif len(pairs) == 1:
        run_one(request, *pairs[0])
    else:
        run_shards(request, pairs)


def compute_loss(
    request: LossRequest,
    values: Loaded,
    labels: Loaded,
    weight: npt.NDArray[np.float64] | None,
    class_dim: int | None,
) -> tuple[LossResult, dict[str, str | None]]:
    """The core's result on read inputs, and the sources (for messages and documents)."""
    from lossctl.cli.progress import Progress
    from lossctl.core.losses import compute

    sources = {"input": values.source, "target": labels.source, "weight": request.target.weight}
    progress = Progress(0, "positions", enabled=not request.loss.quiet)
    try:
        spec = request.spec(weight, class_dim)
        # the checks' facts come from the loss's own pass (the input is read once)
        result = compute(spec, values.array, labels.array, on_rows=progress.advance, facts="plain")
    except InputError as error:
        raise error.located(sources) from None
    finally:
        progress.close()
    return result, sources


def run_shards(request: LossRequest, pairs: list[tuple[str, str]]) -> None:
    """The loss of many (input, labels) shards: each read and computed alone (bounded memory),
    then combined through their exact partial sums, so it equals the loss of the concatenation.
    """
    from lossctl.cli.progress import Progress
    from lossctl.core.merge import partial_from_result
    from lossctl.io.fingerprint import result_fingerprint, same_files

    refuse_per_input_extras(request)
    check_stdin([spec for pair in pairs for spec in pair], request.target.weight)
    repeated = same_files([i for i, _ in pairs]) + same_files([t for _, t in pairs])
    if repeated:
        raise InputError(
            f"{repeated[0]} is named twice in the shard list: its data would be counted twice"
        )
    weight = read_weight(request.target.weight)
    progress = Progress(len(pairs), "shards", enabled=not request.loss.quiet)
    partials, per_position, messages = [], [], []
    for input_spec, labels_spec in pairs:
        values = read(input_spec, request.target.key, request.target.header, values=True)
        labels = read(labels_spec, request.target.labels_key, request.target.header)
        result, _ = compute_loss(request, values, labels, weight, request.target.class_dim)
        digest = result_fingerprint(
            [("input", input_spec, values.array), ("target", labels_spec, labels.array)]
        )["digest"]
        partial = partial_from_result(result, values.source)
        partials.append(dataclasses.replace(partial, fingerprints=(digest,)))
        per_position.append(result.per_position)
        _, found = loss_checks(values, labels, result, request.extras, request.target.class_dim)
        messages += [f"{values.source}: {message}" for message in found]
        progress.advance()
    progress.close()
    finish_shards(request, pairs, partials, per_position, messages, None)


def refuse_per_input_extras(request: LossRequest) -> None:
    """What needs the whole of one input cannot run over shards."""
    extras, output = request.extras, request.output
    if output.explain or extras.grad or extras.wants_metrics or extras.shift:
        raise InputError(
            "--explain, --grad, --metrics and --shift work on one input at a time; run them "
            "per shard"
        )


def finish_shards(
    request: LossRequest,
    pairs: list[tuple[str, str]],
    partials: list[Any],
    per_position: list[Any],
    messages: list[str],
    engine: dict[str, Any] | None,
) -> None:
    """Merge the shards' partial results exactly, in shard order, and print them."""
    import numpy as np

    from lossctl.core.merge import merge_partials

    merged = merge_partials(partials)
    if request.loss.reduction == "none":
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
    emit_merged(merged, inputs, messages, request.output, engine)
    finish_strict(request.extras.strict, messages)


def run_on_cluster(request: LossRequest, pairs: list[tuple[str, str]], scheduler: str) -> None:
    """The shards scored by Dask workers (``--scheduler``), merged here exactly."""
    from lossctl.cli.progress import following_tasks
    from lossctl.dask.shards import ShardOptions, score_shards

    refuse_per_input_extras(request)
    weight = read_weight(request.target.weight)
    try:
        spec = request.spec(weight, request.target.class_dim)
    except InputError as error:
        raise error.located({"weight": request.target.weight}) from None
    options = ShardOptions(
        spec,
        weight_source=request.target.weight,
        key=request.target.key,
        labels_key=request.target.labels_key,
    )
    with following_tasks(len(pairs), request.loss.quiet) as on_done:
        scores, engine = score_shards(pairs, options, scheduler=scheduler, on_done=on_done)
    messages = [f"{s.source}: {message}" for s in scores for message in s.messages]
    per_position = [s.per_position for s in scores]
    finish_shards(request, pairs, [s.partial for s in scores], per_position, messages, dict(engine))


def run_one(request: LossRequest, input_spec: str, labels_spec: str) -> None:
    """Read, compute, check and print ``ce`` or ``nll`` of one input."""
    check_stdin([input_spec, labels_spec], request.target.weight)
    values = read(input_spec, request.target.key, request.target.header, values=True)
    labels = read(labels_spec, request.target.labels_key, request.target.header)
    weight = read_weight(request.target.weight)
    class_dim = request.target.class_dim
    if class_dim is None and isinstance(values.meta.get("dim"), int):
        class_dim = int(values.meta["dim"])  # type: ignore[call-overload]
    labels = labels_without_pandas_header(values, labels, class_dim)
    output = request.output
    grad_file = request.extras.grad and npy_output(output)  # streamed, not held in memory
    grad_table = request.extras.grad and grad_corners_only(output, request.extras, values)
    if request.extras.grad:
        refuse_large_json(int(values.array.size), output, "gradient")
    original_shape = tuple(values.array.shape)
    unshifted = original_shape if request.extras.shift else None
    if request.extras.shift:
        values, labels, class_dim = shifted_inputs(values, labels, class_dim)
    result, sources = compute_loss(request, values, labels, weight, class_dim)
    streamed = grad_file or grad_table
    extras = request.extras._replace(grad=False) if streamed else request.extras
    checks, messages = loss_checks(values, labels, result, extras, class_dim)
    if grad_table:
        checks.grad = grad_corners(result, values, labels, output)
    for message in messages:
        warn(message)
    trace = explained(values, labels, result, checks, output) if output.explain else None
    if grad_file:
        assert output.path is not None
        write_grad(output.path, result, values, labels, original_shape, request)
    elif output.document_wanted:
        from lossctl.io.documents import loss_document

        document = loss_document(result, sources, messages)
        from lossctl.io.fingerprint import result_fingerprint

        document["fingerprint"] = result_fingerprint(
            [
                ("input", input_spec, values.array),
                ("target", labels_spec, labels.array),
                ("weight", request.target.weight, weight),
            ]
        )
        if trace is not None:
            from lossctl.render.explain_data import steps_json

            document["steps"] = steps_json(trace, number_format(output))
        emit_document(document | checks.document(), output)
    if not output.json:
        if trace is not None:
            from lossctl.render.explain import explain_view

            emit_rich(explain_view(trace, fmt=number_format(output)))
        else:
            from lossctl.render.results import loss_view

            emit_rich(
                loss_view(
                    result,
                    fmt=number_format(output),
                    summary=summary(output),
                    sources=[(f"{name} file", str(src)) for name, src in sources.items() if src]
                    + ([("gradient written to", str(output.path))] if grad_file else []),
                    weighted=result.spec.weight is not None,
                    unshifted_shape=unshifted,
                )
            )
        emit_loss_extras(checks, result, output)
    finish_strict(request.extras.strict, messages)


def grad_corners_only(output: OutputOptions, extras: ExtraOptions, values: Loaded) -> bool:
    """``--grad`` into a large table: compute only the cells the table shows (streamed)."""
    size = int(values.array.size)
    return not (output.document_wanted or extras.shift) and corners_suffice(output, size)


def grad_corners(result: LossResult, values: Loaded, labels: Loaded, output: OutputOptions) -> Any:
    """The shown cells of ``d loss / d input``, from the gradient's blocks (none kept)."""
    from lossctl.core.grad_stream import grad_blocks
    from lossctl.render.results import Corners

    blocks = grad_blocks(result, values.array, labels.array)
    return Corners.from_blocks(tuple(values.array.shape), summary(output), blocks)


def write_grad(
    path: str,
    result: LossResult,
    values: Loaded,
    labels: Loaded,
    shape: tuple[int, ...],
    request: LossRequest,
) -> None:
    """``--grad -o FILE.npy``: the gradient, block by block, in the input's shape and layout.

    In the input's float dtype (float64 for integers) unless ``--precision float64``;
    with ``--shift``, ``shape`` is the unshifted input's and its last position stays 0.
    """
    from lossctl.core.blocked import output_dtype
    from lossctl.core.grad_stream import grad_blocks
    from lossctl.io.npy_writer import write_npy_blocks

    dtype = output_dtype(values.array.dtype, request.loss.precision)
    blocks = grad_blocks(result, values.array, labels.array, dtype)
    write_npy_blocks(path, shape, dtype, blocks)


def explained(
    values: Loaded, labels: Loaded, result: LossResult, checks: LossChecks, output: OutputOptions
) -> Any:
    """The ``--explain`` trace of the result (with the gradient as its last step)."""
    from lossctl.trace import explain_loss

    trace = explain_loss(result.op, values.array, labels.array, edges=edges(output), result=result)
    return with_gradient_step(trace, checks, result)


class LossChecks:
    """The findings, gradient and metrics that go with a ``ce`` / ``nll`` result."""

    def __init__(self, findings: list[Finding], *, shift: bool = False) -> None:
        self.findings = findings
        self.grad: Any = None
        self.metrics: Any = None
        self.shift = shift

    def document(self) -> dict[str, Any]:
        """Keys added to the ``--json`` document."""
        from lossctl.render.messages import finding_json

        document: dict[str, Any] = {"findings": [finding_json(f) for f in self.findings]}
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
    from lossctl.core.metrics import causal_shift

    x, y, axis = causal_shift(values.array, labels.array, class_dim)
    return values._replace(array=x), labels._replace(array=y), axis


def loss_checks(
    values: Loaded,
    labels: Loaded,
    result: LossResult,
    extras: ExtraOptions,
    class_dim: int | None,
) -> tuple[LossChecks, list[str]]:
    """Findings (as warnings), gradient and metrics; returns them and every warning message.

    A finding that says the same thing better replaces the core's own word (the
    ambiguous class axis, the NaN of a mean over no targets). ``class_dim`` is the axis
    the user chose (``None``: inferred, and the checks say so when it is ambiguous).
    """
    from lossctl.core.losses import axis_warnings
    from lossctl.doctor import NEG_INF_CODES, FindingCode, ReasonCode, diagnose, nonfinite_reason

    spec = result.spec
    findings = [
        finding
        for finding in diagnose(
            values.array,
            labels.array,
            op=result.op,
            class_dim=class_dim,
            weight=spec.weight,
            ignore_index=spec.ignore_index,
            label_smoothing=spec.label_smoothing,
            result=result,
            inline=True,
        )
        if finding.severity != "info"
    ]
    codes = {finding.code for finding in findings}
    kept = [] if FindingCode.AMBIGUOUS_CLASS_AXIS in codes else axis_warnings(result)
    reason = nonfinite_reason(result, values.array)
    explained_already = FindingCode.ALL_IGNORED in codes or (
        reason is not None
        and reason.code == ReasonCode.INPUT_HAS_NEGINF
        and bool(codes & NEG_INF_CODES)
    )
    if findings or reason is not None:  # the words: loaded only when there is something to say
        from lossctl.render.messages import message, reason_message

        kept += [message(finding) for finding in findings]
        if reason is not None and not explained_already:
            kept.append(reason_message(reason))
    checks = LossChecks(findings=findings, shift=extras.shift)
    if extras.grad:
        from lossctl.core.grad import grad_from_result
        from lossctl.core.metrics import unshift_grad

        grad = grad_from_result(result, values.array, labels.array)
        checks.grad = unshift_grad(grad) if extras.shift else grad
    if extras.wants_metrics:
        from lossctl.core.metrics import compute_metrics

        checks.metrics = compute_metrics(
            result.op,
            values.array,
            labels.array,
            class_dim=result.class_dim,
            ignore_index=spec.ignore_index,
            topk=extras.k,
            facts=result.facts,
        )
    return checks, kept


def with_gradient_step(trace: Any, checks: LossChecks, result: LossResult) -> Any:
    """The ``--explain`` trace with the gradient as its final step (when ``--grad``)."""
    if checks.grad is None:
        return trace
    from lossctl.trace import with_gradient

    return with_gradient(
        trace,
        checks.grad[..., :-1, :] if checks.shift else checks.grad,  # the trace is shifted
        result,
        weighted=result.spec.weight is not None,
        label_smoothing=result.spec.label_smoothing,
    )


def emit_loss_extras(checks: LossChecks, result: LossResult, output: OutputOptions) -> None:
    """The gradient grid and the metrics tables, after the result."""
    if (checks.grad is None or output.explain) and checks.metrics is None:
        return  # nothing to show: no need to import the renderers
    from rich.console import Group

    from lossctl.render.findings import grad_view, metrics_view

    parts: list[Any] = []
    if checks.grad is not None and not output.explain:
        parts.append(
            grad_view(
                checks.grad,
                class_dim=result.class_dim,
                reduction=result.reduction,
                fmt=number_format(output),
                summary=summary(output),
                shifted=checks.shift,
            )
        )
    if checks.metrics is not None:
        parts.append(metrics_view(checks.metrics, fmt=number_format(output)))
    if parts:
        emit_rich(Group(*parts))


def emit_merged(
    merged: Any,
    inputs: list[Any],
    messages: list[str],
    output: OutputOptions,
    engine: dict[str, Any] | None = None,
) -> None:
    """Print (or write) a merged result: the same schema as ce/nll, plus ``shards`` (and
    ``engine`` when a cluster computed it)."""
    from lossctl.io.documents import merged_document

    if output.document_wanted:
        document = merged_document(merged, inputs, messages)
        if engine is not None:
            document["engine"] = engine
        emit_document(document, output)
    if output.json:
        return
    from lossctl.render.results import merged_view

    emit_rich(merged_view(merged, fmt=number_format(output), summary=summary(output)))


class StrictFailure(LossctlError):
    """``--strict`` and a warning was raised (after the output)."""


def finish_strict(strict: bool, messages: list[str], noun: str = "warning") -> None:
    """``--strict``: any warning makes the exit status 1 (after the output)."""
    if strict and messages:
        count = len(messages)
        raise StrictFailure(f"--strict: {count} {noun}{'' if count == 1 else 's'} (see above)")
