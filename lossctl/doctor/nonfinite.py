"""NaN, +inf and -inf: in the input, at the targets, and why a loss is not finite."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.facts import InputFacts, facts_of_array, row_blocks
from lossctl.core.losses import LossResult
from lossctl.doctor.context import Context, flagged, position_shape
from lossctl.doctor.findings import FindingCode, NonfiniteReason, ReasonCode


def check_nonfinite(ctx: Context, facts: InputFacts | None) -> None:
    """NaN or +inf values in the input (from the facts: no pass of its own)."""
    if facts is None or ctx.values.size == 0 or ctx.values.dtype.kind != "f":
        return
    if facts.nan == 0 and facts.posinf == 0:
        return
    ctx.add(
        FindingCode.NONFINITE_INPUT,
        "warning",
        nan=facts.nan,
        posinf=facts.posinf,
        positions=facts.bad_rows,
        total_positions=facts.rows,
    )


def _neg_inf_rows(
    ctx: Context, labels: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Per row: -inf at a target, -inf where the probability target is 0, any -inf (counted
    rows only: not ignored, no NaN or +inf). One blocked pass over the input."""
    flat = None if ctx.soft else labels.reshape(-1)
    q = None
    if ctx.soft:
        moved = np.moveaxis(np.asarray(labels, dtype=np.float64), ctx.axis, -1)
        q = moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1])
    at_target, at_zero, any_neginf = [], [], []
    for start, rows in row_blocks(ctx.values, ctx.axis):
        stop = start + rows.shape[0]
        neginf = np.isneginf(rows)
        counted = ~(np.isnan(rows).any(axis=1) | np.isposinf(rows).any(axis=1))
        if q is not None:
            qs = q[start:stop]
            target = (neginf & (qs != 0)).any(axis=1) & counted
            zero = (neginf & (qs == 0)).any(axis=1) & counted & ~target
        else:
            assert flat is not None
            block_labels = flat[start:stop]
            counted &= block_labels != ctx.ignore_index
            index = np.where(counted, block_labels, 0).astype(np.intp)
            target = np.take_along_axis(neginf, index[:, None], axis=1)[:, 0] & counted
            zero = np.zeros_like(target)
        at_target.append(target)
        at_zero.append(zero)
        any_neginf.append(neginf.any(axis=1) & counted)
    return np.concatenate(at_target), np.concatenate(at_zero), np.concatenate(any_neginf)


def check_neg_inf(ctx: Context, labels: npt.NDArray[Any], facts: InputFacts | None) -> None:
    """-inf at a target, under label smoothing, or where a probability target is 0."""
    x = ctx.values
    if x.dtype.kind != "f" or x.size == 0 or facts is None or facts.neginf == 0:
        return
    at_target, at_zero, any_neginf = _neg_inf_rows(ctx, labels)
    shape = position_shape(x, ctx.axis)
    if at_target.any():
        n, where = flagged(at_target, shape)
        ctx.add(FindingCode.NEG_INF_AT_TARGET, "warning", {"op": ctx.op}, count=n, positions=where)
    if ctx.op == "cross_entropy" and ctx.label_smoothing > 0.0:
        hit = any_neginf & ~at_target
        if hit.any():
            n, where = flagged(hit, shape)
            ctx.add(
                FindingCode.NEG_INF_LABEL_SMOOTHING,
                "warning",
                count=n,
                label_smoothing=ctx.label_smoothing,
                positions=where,
            )
    elif at_zero.any():
        n, where = flagged(at_zero, shape)
        ctx.add(FindingCode.NEG_INF_ZERO_PROBABILITY, "warning", count=n, positions=where)


def nonfinite_reason(result: LossResult, values: npt.NDArray[Any]) -> NonfiniteReason | None:
    """Why a result is NaN or infinite, or ``None`` when it is finite."""
    if result.reduction == "none":
        if np.asarray(values).size == 0:  # no value, no NaN: each loss is -0 (or there is none)
            return None
        bad = int(np.count_nonzero(~np.isfinite(result.per_position)))
        if bad == 0:
            return None
        evidence = {"nonfinite_positions": bad, "positions": int(result.per_position.size)}
        return NonfiniteReason(_input_cause(values), evidence)
    loss = float(result.loss)
    if math.isfinite(loss):
        return None
    if result.reduction == "mean" and result.count == 0:
        if result.ignored:
            return NonfiniteReason(
                ReasonCode.ALL_IGNORED, {"loss": loss, "ignored": result.ignored}
            )
        return NonfiniteReason(ReasonCode.EMPTY, {"loss": loss})
    if result.reduction == "mean" and result.denominator == 0:
        if result.target_kind == "probabilities" and result.input_shape[result.class_dim] == 0:
            return NonfiniteReason(ReasonCode.NO_CLASSES, {"loss": loss, "positions": result.count})
        return NonfiniteReason(ReasonCode.ZERO_WEIGHT_SUM, {"loss": loss})
    return NonfiniteReason(_input_cause(values), {"loss": loss})


def _input_cause(values: npt.NDArray[Any]) -> ReasonCode:
    """NaN, else +inf, else -inf in the input (one blocked pass), else unexplained."""
    x = np.asarray(values)
    if x.size == 0:
        return ReasonCode.UNEXPLAINED
    facts = facts_of_array(x.reshape(1, -1) if x.ndim == 0 else x, -1)
    if facts.nan:
        return ReasonCode.INPUT_HAS_NAN
    if facts.posinf:
        return ReasonCode.INPUT_HAS_POSINF
    if facts.neginf:
        return ReasonCode.INPUT_HAS_NEGINF
    return ReasonCode.UNEXPLAINED
