"""NaN, +inf and -inf: in the input, at the targets, and why a loss is not finite."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.facts import InputFacts, facts_of_array, named_rows, row_blocks
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
    ctx: Context, labels: npt.NDArray[Any], facts: InputFacts
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The rows with -inf at a target, with -inf where the probability target is 0, with any
    -inf (counted rows only: not ignored, no NaN or +inf), in order. Reads only the rows the
    facts name as holding -inf (every row when the facts do not name them)."""
    flat = None if ctx.soft else labels.reshape(-1)
    q = None
    if ctx.soft:
        moved = np.moveaxis(np.asarray(labels, dtype=np.float64), ctx.axis, -1)
        q = moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1])
    at_target, at_zero, any_neginf = [], [], []
    for index, rows in _rows_named(ctx.values, ctx.axis, facts.neginf_index):
        neginf = np.isneginf(rows)
        counted = ~(np.isnan(rows).any(axis=1) | np.isposinf(rows).any(axis=1))
        if q is not None:
            qs = q[index]
            target = (neginf & (qs != 0)).any(axis=1) & counted
            zero = (neginf & (qs == 0)).any(axis=1) & counted & ~target
        else:
            assert flat is not None
            block_labels = flat[index]
            counted &= block_labels != ctx.ignore_index
            picked = np.where(counted, block_labels, 0).astype(np.intp)
            target = np.take_along_axis(neginf, picked[:, None], axis=1)[:, 0] & counted
            zero = np.zeros_like(target)
        at_target.append(index[target])
        at_zero.append(index[zero])
        any_neginf.append(index[neginf.any(axis=1) & counted])
    return _joined(at_target), _joined(at_zero), _joined(any_neginf)


def _joined(parts: list[npt.NDArray[np.intp]]) -> npt.NDArray[np.intp]:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)


def _rows_named(
    x: npt.NDArray[Any], axis: int, named: npt.NDArray[np.intp] | None
) -> Iterator[tuple[npt.NDArray[np.intp], npt.NDArray[Any]]]:
    """``(row indices, rows)`` of the rows ``named`` (all rows when ``None``), in blocks."""
    if named is None:
        for start, rows in row_blocks(x, axis):
            yield np.arange(start, start + rows.shape[0]), rows
    else:
        yield from named_rows(x, axis, named)


def check_neg_inf(ctx: Context, labels: npt.NDArray[Any], facts: InputFacts | None) -> None:
    """-inf at a target, under label smoothing, or where a probability target is 0."""
    x = ctx.values
    if x.dtype.kind != "f" or x.size == 0 or facts is None or facts.neginf == 0:
        return
    at_target, at_zero, any_neginf = _neg_inf_rows(ctx, labels, facts)
    shape = position_shape(x, ctx.axis)
    if at_target.size:
        n, where = flagged(at_target, shape)
        ctx.add(FindingCode.NEG_INF_AT_TARGET, "warning", {"op": ctx.op}, count=n, positions=where)
    if ctx.op == "cross_entropy" and ctx.label_smoothing > 0.0:
        hit = np.setdiff1d(any_neginf, at_target, assume_unique=True)
        if hit.size:
            n, where = flagged(hit, shape)
            ctx.add(
                FindingCode.NEG_INF_LABEL_SMOOTHING,
                "warning",
                count=n,
                label_smoothing=ctx.label_smoothing,
                positions=where,
            )
    elif at_zero.size:
        n, where = flagged(at_zero, shape)
        ctx.add(FindingCode.NEG_INF_ZERO_PROBABILITY, "warning", count=n, positions=where)


def nonfinite_reason(result: LossResult, values: npt.NDArray[Any]) -> NonfiniteReason | None:
    """Why a result is NaN or infinite, or ``None`` when it is finite (from the result's
    facts when its pass collected them, else a pass over ``values``)."""
    if result.reduction == "none":
        if np.asarray(values).size == 0:  # no value, no NaN: each loss is -0 (or there is none)
            return None
        bad = int(np.count_nonzero(~np.isfinite(result.per_position)))
        if bad == 0:
            return None
        evidence = {"nonfinite_positions": bad, "positions": int(result.per_position.size)}
        return NonfiniteReason(_input_cause(values, result.facts), evidence)
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
    return NonfiniteReason(_input_cause(values, result.facts), {"loss": loss})


def _input_cause(values: npt.NDArray[Any], facts: InputFacts | None) -> ReasonCode:
    """NaN, else +inf, else -inf in the input (the facts, else one blocked pass), else
    unexplained."""
    x = np.asarray(values)
    if x.size == 0:
        return ReasonCode.UNEXPLAINED
    if facts is None or facts.rows * facts.classes != x.size:
        facts = facts_of_array(x.reshape(1, -1) if x.ndim == 0 else x, -1)
    if facts.nan:
        return ReasonCode.INPUT_HAS_NAN
    if facts.posinf:
        return ReasonCode.INPUT_HAS_POSINF
    if facts.neginf:
        return ReasonCode.INPUT_HAS_NEGINF
    return ReasonCode.UNEXPLAINED
