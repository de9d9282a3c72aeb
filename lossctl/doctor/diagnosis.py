"""``diagnose``: every check in order, on one set of facts about the input.

Thresholds are chosen so that well-formed input raises nothing (see tests/test_doctor.py);
the input kind's are in :mod:`lossctl.core.facts`. The input is read block by block, once:
the pass that computes the loss collects the facts on the way (``result.facts``; with a
result computed without them, a pass of their own), the findings are decided from them
afterwards, and a second pass runs only where a finding needs one (the rows holding -inf,
probabilities' log, the loss that would have been right).
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt

from lossctl.core.losses import (
    DEFAULT_IGNORE_INDEX,
    AmbiguousClassAxisWarning,
    LossOp,
    LossResult,
    compute,
    infer_class_dim,
    normalize_axis,
)
from lossctl.core.spec import spec_of
from lossctl.doctor.context import Context
from lossctl.doctor.findings import Finding
from lossctl.doctor.float16 import check_float16, check_float16_loss
from lossctl.doctor.kind import (
    KindReport,
    axis_without_labels,
    check_kind_for_op,
    input_kind,
    kind_report,
    report_kind,
)
from lossctl.doctor.nonfinite import check_neg_inf, check_nonfinite
from lossctl.doctor.targets import check_ambiguous, check_soft_targets, check_targets
from lossctl.errors import InputError


def _fitting_axes(input_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> list[int]:
    return [
        axis
        for axis in range(len(input_shape))
        if input_shape[:axis] + input_shape[axis + 1 :] == target_shape
    ]


def _class_axis(
    x: npt.NDArray[np.generic], y: npt.NDArray[np.generic] | None, class_dim: int | None
) -> tuple[int, list[int], int | None]:
    """The class axis, the axes that fit the target shape (when inferred), and PyTorch's
    class axis when the kind (no labels) chose another one."""
    if y is None:
        axis, pytorch_axis = axis_without_labels(x, class_dim)
        return axis, [], pytorch_axis
    if class_dim is not None:
        axis = normalize_axis(class_dim, x.ndim, "class axis")
        expected = x.shape[:axis] + x.shape[axis + 1 :]
        if y.shape not in (x.shape, expected):
            raise InputError(
                f"target shape {tuple(y.shape)} does not fit input shape {tuple(x.shape)} with "
                f"class axis {axis}: expected {tuple(expected)} (class indices) or "
                f"{tuple(x.shape)} (probabilities)"
            )
        return axis, [], None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AmbiguousClassAxisWarning)
        axis = infer_class_dim(tuple(x.shape), tuple(y.shape))
    fitting = _fitting_axes(tuple(x.shape), tuple(y.shape)) if y.shape != x.shape else []
    return axis, fitting, None


def _arrays(
    values: npt.ArrayLike, labels: npt.ArrayLike | None
) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.generic] | None]:
    """The input and the labels as arrays of numbers (or an :class:`InputError`)."""
    x = np.asarray(values)
    if x.dtype.kind not in "iuf":
        raise InputError(f"input must hold real numbers, got dtype {x.dtype}", "input")
    if x.ndim == 0:
        raise InputError("input is a scalar; it needs at least one axis of classes", "input")
    y = None if labels is None else np.asarray(labels)
    if y is not None and y.dtype.kind not in "iuf":
        raise InputError(f"target must hold numbers, got dtype {y.dtype}", "target")
    return x, y


def diagnose(
    values: npt.ArrayLike,
    labels: npt.ArrayLike | None = None,
    *,
    op: LossOp = "cross_entropy",
    class_dim: int | None = None,
    weight: npt.ArrayLike | None = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    label_smoothing: float = 0.0,
    result: LossResult | None = None,
    inline: bool = False,
) -> list[Finding]:
    """Everything noticed about ``values`` (and ``labels``) as input of ``op``.

    ``class_dim`` is the user's choice (``None``: inferred from the shapes, as
    :func:`lossctl.core.loss_result` does, and an ambiguity is a finding). ``result`` is
    the already computed loss of the same arguments, if any (saves a pass; the facts its
    pass collected, ``result.facts``, save the facts' own). ``inline``
    leaves out what ``ce``/``nll`` report otherwise: the ``input-kind`` info and
    ``nonfinite-input`` (their NaN-loss warning explains that).

    Raises :class:`InputError` for what no loss can be computed from (shapes that fit
    no class axis, non-numeric data, fractional class indices).
    """
    x, y = _arrays(values, labels)
    w = None if weight is None else np.asarray(weight, dtype=np.float64)
    axis, fitting, pytorch_axis = _class_axis(x, y, class_dim)
    ctx = Context(
        op=op,
        values=x,
        labels=y,
        axis=axis,
        classes=int(x.shape[axis]),
        weight=w,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        soft=y is not None and y.shape == x.shape,
        findings=[],
    )
    detailed = not inline
    if y is None:
        _report_input(ctx, input_kind(x, axis, detailed=detailed), pytorch_axis, inline)
        return ctx.findings
    on_targets = ctx._replace(findings=[])  # reported after the input's findings
    clean = y if ctx.soft else check_targets(on_targets, y)
    if result is None:  # the loss's pass collects the facts
        spec = spec_of(
            op,
            {
                "weight": w,
                "ignore_index": ignore_index,
                "label_smoothing": label_smoothing,
                "class_dim": axis,
            },
        )
        result = compute(spec, x, clean, facts="logsumexp" if detailed else "plain")
    report = _input_report(x, axis, result, detailed)
    _report_input(ctx, report, pytorch_axis, inline)
    ctx.findings.extend(on_targets.findings)
    if len(fitting) > 1:
        check_ambiguous(ctx, fitting, y, result)
    check_kind_for_op(ctx, report, clean, result)
    if ctx.soft:
        check_soft_targets(ctx, y)
    check_neg_inf(ctx, clean, report.facts)
    check_float16_loss(ctx, result)
    return ctx.findings


def _input_report(
    x: npt.NDArray[np.generic], axis: int, result: LossResult, detailed: bool
) -> KindReport:
    """The input kind from the facts the result's pass collected; a pass of its own only
    when that pass collected none (or not the log-sum-exp range a detailed report shows)."""
    facts = result.facts if result.class_dim == axis else None
    if facts is None or (detailed and facts.lse_min is None and facts.usable_rows):
        return input_kind(x, axis, detailed=detailed)
    return kind_report(facts if x.size else None, axis, int(x.shape[axis]), detailed=detailed)


def _report_input(ctx: Context, report: KindReport, pytorch_axis: int | None, inline: bool) -> None:
    """The findings about the input itself: its kind, NaN/+inf, float16."""
    if not inline:
        report_kind(ctx, report, pytorch_axis)
        check_nonfinite(ctx, report.facts)
    check_float16(ctx, report.facts)
