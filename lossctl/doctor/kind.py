"""What the input holds (logits, probabilities, log-probabilities) and whether the op wants it."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from lossctl.core.facts import InputFacts, InputKind, facts_of_array, kind_of
from lossctl.core.losses import LossResult, normalize_axis, torch_class_dim
from lossctl.doctor.context import Context, mean_loss
from lossctl.doctor.findings import FindingCode, JsonValue


class KindReport(NamedTuple):
    """The input kind along one class axis, with the statistics it was decided from."""

    kind: InputKind
    evidence: dict[str, JsonValue]
    facts: InputFacts | None = None  # None for an empty input


def double_softmax_floor(classes: int) -> float:
    """The lowest cross-entropy a model whose outputs are probabilities can reach.

    softmax of a one-hot probability vector puts ``e / (e + C - 1)`` on the target, so the
    loss is at least ``log(1 + (C - 1)/e)``.
    """
    return math.log1p((classes - 1) / math.e)


def input_kind(values: npt.NDArray[Any], axis: int, *, detailed: bool = True) -> KindReport:
    """Logits, probabilities or log-probabilities along ``axis`` (see :mod:`lossctl.core.facts`).

    ``detailed`` adds the log-sum-exp range of logits (work that the decision itself does
    not need). One blocked pass over the input.
    """
    x = np.asarray(values)
    if x.size == 0:
        return kind_report(None, axis, int(x.shape[axis]), detailed=detailed)
    facts = facts_of_array(x, axis, logsumexp=detailed)
    return kind_report(facts, axis, int(x.shape[axis]), detailed=detailed)


def kind_report(
    facts: InputFacts | None, axis: int, classes: int, *, detailed: bool = True
) -> KindReport:
    """The input kind decided from facts already collected (``None``: an empty input), with
    the evidence; no pass over the input."""
    evidence: dict[str, JsonValue] = {"class_dim": axis, "classes": classes}
    if facts is None:
        return KindReport("unknown", {**evidence, "positions": 0})
    evidence["positions"] = facts.rows
    if facts.nonfinite:
        evidence["evaluated_positions"] = facts.usable_rows
        if facts.usable_rows == 0:
            return KindReport("unknown", evidence, facts)
    evidence["min"] = facts.value_min
    evidence["max"] = facts.value_max
    kind = kind_of(facts)
    if kind == "probabilities":
        return KindReport(
            kind, {**evidence, "sum_min": facts.sum_min, "sum_max": facts.sum_max}, facts
        )
    if (facts.all_nonpositive or detailed) and facts.lse_min is not None:
        evidence["logsumexp_min"] = facts.lse_min
        evidence["logsumexp_max"] = facts.lse_max
    return KindReport(kind, evidence, facts)


def axis_without_labels(x: npt.NDArray[Any], class_dim: int | None) -> tuple[int, int | None]:
    """The class axis to judge an input by when there are no labels, and PyTorch's class
    axis when that is another one (found by the kind)."""
    if class_dim is not None:
        return normalize_axis(class_dim, x.ndim, "class axis"), None
    default = torch_class_dim(x.ndim)
    if x.ndim == 1 or x.size == 0:
        return default, None
    if input_kind(x, default, detailed=False).kind != "logits":
        return default, None  # already probabilities or log-probabilities (or unjudgeable)
    for axis in range(x.ndim):
        if axis != default:
            kind = input_kind(x, axis, detailed=False).kind
            if kind in ("probabilities", "log-probabilities"):
                return axis, default
    return default, None


def report_kind(ctx: Context, report: KindReport, pytorch_axis: int | None) -> None:
    """The ``input-kind`` info."""
    context = {} if pytorch_axis is None else {"pytorch_class_dim": pytorch_axis}
    ctx.add(FindingCode.INPUT_KIND, "info", context, kind=report.kind, **report.evidence)


def check_kind_for_op(
    ctx: Context, report: KindReport, labels: npt.NDArray[Any], result: LossResult
) -> None:
    """Double softmax, nll on logits, nll on probabilities."""
    given = mean_loss(result)
    if ctx.op == "cross_entropy" and report.kind == "probabilities":
        right = ctx.loss(_log(ctx.values), "cross_entropy", labels)
        ctx.add(
            FindingCode.DOUBLE_SOFTMAX,
            "warning",
            classes=ctx.classes,
            loss=given,
            floor=double_softmax_floor(ctx.classes),
            loss_on_probabilities=right,
        )
    elif ctx.op == "nll_loss" and report.kind == "logits":
        right = ctx.loss(ctx.values, "cross_entropy", labels)
        ctx.add(
            FindingCode.NLL_ON_LOGITS,
            "warning",
            {"max": report.evidence["max"]},
            loss=given,
            loss_cross_entropy=right,
            **{k: v for k, v in report.evidence.items() if k.startswith("logsumexp")},
        )
    elif ctx.op == "nll_loss" and report.kind == "probabilities":
        right = ctx.loss(_log(ctx.values), "nll_loss", labels)
        ctx.add(FindingCode.NLL_ON_PROBABILITIES, "warning", loss=given, loss_on_log=right)


def _log(values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """The log of probabilities, in float64 (a second pass, only for these findings)."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(values, dtype=np.float64))
