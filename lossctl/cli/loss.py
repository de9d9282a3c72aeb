"""``ce`` and ``nll``: read, compute, check and print the loss of one input or of many shards."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lossctl.cli.emit import edges, emit_document, emit_rich, number_format, summary
from lossctl.cli.inputs import check_stdin, located, loss_inputs, read, read_weight
from lossctl.cli.options import ExtraOptions, LossOptions, OutputOptions, TargetOptions
from lossctl.cli.streams import warn
from lossctl.errors import InputError, LossctlError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from lossctl.core.losses import LossResult, LossSpec
    from lossctl.core.spec import LossOp
    from lossctl.doctor.checks import Finding
    from lossctl.io.readers import Loaded

NEG_INF_CODES = {"neg-inf-at-target", "neg-inf-label-smoothing", "neg-inf-zero-probability"}


@dataclass(frozen=True)
class LossRequest:
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
            reduction=self.loss.reduction.value,
            label_smoothing=self.label_smoothing,
            class_dim=class_dim,
            precision=self.loss.precision.value,
        )


def run(request: LossRequest, files: list[str] | None) -> None:
    """One input: the full report; several: each shard in turn, merged exactly."""
    pairs = loss_inputs(files, request.loss.manifest)
    if len(pairs) == 1:
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
        result = compute(spec, values.array, labels.array, on_rows=progress.advance)
    except InputError as error:
        raise located(error, sources) from None
    finally:
        progress.close()
    return result, sources


def axis_messages(result: LossResult) -> list[str]:
    """The core's word on an ambiguous class axis (replaced by the doctor's when it has one)."""
    from lossctl.core.losses import ambiguous_axis_text

    if not result.axis_candidates:
        return []
    positions = tuple(n for i, n in enumerate(result.input_shape) if i != result.class_dim)
    return [ambiguous_axis_text(result.input_shape, positions, result.axis_candidates)]


def run_shards(request: LossRequest, pairs: list[tuple[str, str]]) -> None:
    """The loss of many (input, labels) shards: each read and computed alone (bounded memory),
    then combined through their exact partial sums, so it equals the loss of the concatenation.
    """
    import numpy as np

    from lossctl.cli.progress import Progress
    from lossctl.core.merge import merge_partials, partial_from_result

    extras, output = request.extras, request.output
    if output.explain or extras.grad or extras.wants_metrics or extras.shift:
        raise InputError(
            "--explain, --grad, --metrics and --shift work on one input at a time; run them "
            "per shard"
        )
    check_stdin([spec for pair in pairs for spec in pair])
    from lossctl.io.fingerprint import result_fingerprint, same_files

    repeated = same_files([i for i, _ in pairs]) + same_files([t for _, t in pairs])
    if repeated:
        raise InputError(
            f"{repeated[0]} is named twice in the shard list: its data would be counted twice"
        )
    weight = read_weight(request.target.weight)
    progress = Progress(len(pairs), "shards", enabled=not request.loss.quiet)
    partials, per_position, messages = [], [], []
    for input_spec, labels_spec in pairs:
        values = read(input_spec, request.target.key)
        labels = read(labels_spec, request.target.labels_key)
        result, _ = compute_loss(request, values, labels, weight, request.target.class_dim)
        digest = result_fingerprint(
            [("input", input_spec, values.array), ("target", labels_spec, labels.array)]
        )["digest"]
        partial = partial_from_result(result, values.source)
        partials.append(dataclasses.replace(partial, fingerprints=(digest,)))
        per_position.append(result.per_position)
        messages += [f"{values.source}: {message}" for message in axis_messages(result)]
        progress.advance()
    progress.close()
    merged = merge_partials(partials)
    if request.loss.reduction.value == "none":
        try:
            merged = dataclasses.replace(merged, loss=np.concatenate(per_position))
        except ValueError:
            raise InputError(
                "--reduction none over shards concatenates the per-position losses along the "
                "first axis; these shards' shapes do not line up"
            ) from None
    for message in messages:
        warn(message)
    emit_merged(merged, [{"input": i, "target": t} for i, t in pairs], messages, output)
    finish_strict(extras.strict, messages)


def run_one(request: LossRequest, input_spec: str, labels_spec: str) -> None:
    """Read, compute, check and print ``ce`` or ``nll`` of one input."""
    check_stdin([input_spec, labels_spec])
    values = read(input_spec, request.target.key)
    labels = read(labels_spec, request.target.labels_key)
    weight = read_weight(request.target.weight)
    class_dim = request.target.class_dim
    if class_dim is None and isinstance(values.meta.get("dim"), int):
        class_dim = int(values.meta["dim"])  # type: ignore[call-overload]
    if request.extras.shift:
        values, labels, class_dim = shifted_inputs(values, labels, class_dim)
    result, sources = compute_loss(request, values, labels, weight, class_dim)
    checks, messages = loss_checks(values, labels, result, request.extras, class_dim)
    for message in messages:
        warn(message)
    output = request.output
    trace = explained(values, labels, result, checks, output) if output.explain else None
    if output.document_wanted:
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
            from lossctl.explain.trace import steps_json

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
                    sources=[(f"{name} file", str(src)) for name, src in sources.items() if src],
                    weighted=result.spec.weight is not None,
                )
            )
        emit_loss_extras(checks, result, output)
    finish_strict(request.extras.strict, messages)


def explained(
    values: Loaded, labels: Loaded, result: LossResult, checks: LossChecks, output: OutputOptions
) -> Any:
    """The ``--explain`` trace of the result (with the gradient as its last step)."""
    from lossctl.explain.trace import explain_loss

    spec = result.spec
    trace = explain_loss(
        result.op,
        values.array,
        labels.array,
        weight=spec.weight,
        ignore_index=spec.ignore_index,
        reduction=spec.reduction,
        label_smoothing=spec.label_smoothing,
        class_dim=result.class_dim,
        edges=edges(output),
        result=result,
    )
    return with_gradient_step(trace, checks, result)


@dataclass
class LossChecks:
    """The findings, gradient and metrics that go with a ``ce`` / ``nll`` result."""

    findings: list[Finding]
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
    from lossctl.core.metrics import causal_shift

    x, y, axis = causal_shift(values.array, labels.array, class_dim)
    return dataclasses.replace(values, array=x), dataclasses.replace(labels, array=y), axis


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
    from lossctl.doctor.checks import diagnose
    from lossctl.doctor.reasons import nonfinite_reason

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
    kept = [] if "ambiguous-class-axis" in codes else axis_messages(result)
    kept += [finding.message for finding in findings]
    reason = nonfinite_reason(result, values.array)
    explained_already = "all-ignored" in codes or (
        reason is not None and "-inf" in reason and bool(codes & NEG_INF_CODES)
    )
    if reason and not explained_already:
        kept.append(reason)
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
        )
    return checks, kept


def with_gradient_step(trace: Any, checks: LossChecks, result: LossResult) -> Any:
    """The ``--explain`` trace with the gradient as its final step (when ``--grad``)."""
    if checks.grad is None:
        return trace
    from lossctl.core.grad import explain_step
    from lossctl.explain.trace import Step

    fields = explain_step(
        checks.grad[..., :-1, :] if checks.shift else checks.grad,  # the trace is shifted
        result,
        trace.layout.cell_index,
        weighted=result.spec.weight is not None,
        label_smoothing=result.spec.label_smoothing,
    )
    return dataclasses.replace(trace, steps=(*trace.steps, Step(**fields)))


def emit_loss_extras(checks: LossChecks, result: LossResult, output: OutputOptions) -> None:
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
                fmt=number_format(output),
                summary=summary(output),
                shifted=checks.shift,
            )
        )
    if checks.metrics is not None:
        parts.append(metrics_view(checks.metrics, fmt=number_format(output)))
    if parts:
        emit_rich(Group(*parts))


def emit_merged(merged: Any, inputs: list[Any], messages: list[str], output: OutputOptions) -> None:
    """Print (or write) a merged result: the same schema as ce/nll, plus ``shards``."""
    from lossctl.io.documents import merged_document

    if output.document_wanted:
        emit_document(merged_document(merged, inputs, messages), output)
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
