"""Findings about the targets: out of range, ignore_index, soft targets, the class axis."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.facts import PROB_SUM_TOL
from lossctl.core.losses import LossResult, torch_class_dim
from lossctl.core.targets import check_whole
from lossctl.doctor.context import (
    EVIDENCE_POSITIONS,
    Context,
    mean_loss,
    position_shape,
    positions,
)
from lossctl.doctor.findings import FindingCode, JsonValue


def _rows(x: npt.NDArray[Any], axis: int) -> npt.NDArray[Any]:
    """(positions, classes) view (or copy) of ``x`` with ``axis`` last."""
    moved = np.moveaxis(x, axis, -1)
    return moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1])


def check_targets(ctx: Context, y: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Index-target findings; returns targets with out-of-range ones set to ignore_index."""
    flat = y.reshape(-1)
    check_whole(flat, y.shape)
    classes, ignore = ctx.classes, ctx.ignore_index
    counted = flat != ignore
    out = counted & ((flat < 0) | (flat >= classes))
    n_out = int(np.count_nonzero(out))
    if n_out:
        first = np.flatnonzero(out)[:EVIDENCE_POSITIONS]
        bad_values = flat[out]
        ctx.add(
            FindingCode.TARGET_OUT_OF_RANGE,
            "error",
            {
                "targets": int(flat.size),
                **_out_of_range_hint(bad_values, flat[counted & ~out], classes),
            },
            count=n_out,
            classes=classes,
            ignore_index=ignore,
            min=int(np.min(bad_values)),
            max=int(np.max(bad_values)),
            positions=positions(first, y.shape),
            values=[int(v) for v in flat[first]],
        )
        y = np.where(out.reshape(y.shape), ignore, y)
        counted = counted & ~out
    n_counted = int(np.count_nonzero(counted))
    n_ignored = int(flat.size - n_counted - n_out)
    if 0 <= ignore < classes and n_ignored:
        ctx.add(
            FindingCode.IGNORE_INDEX_IS_A_CLASS,
            "warning",
            ignore_index=ignore,
            classes=classes,
            ignored=n_ignored,
        )
    if flat.size and n_counted == 0 and n_ignored == flat.size:
        ctx.add(FindingCode.ALL_IGNORED, "warning", ignored=n_ignored, ignore_index=ignore)
    return y


def _out_of_range_hint(
    bad: npt.NDArray[Any], good: npt.NDArray[Any], classes: int
) -> dict[str, JsonValue]:
    """What the out-of-range targets look like: padding, 1-based labels, or neither."""
    distinct = np.unique(bad)
    if distinct.size == 1 and distinct[0] < 0:
        return {"hint": "padding", "padding": int(distinct[0])}
    low = int(min(np.min(bad), np.min(good))) if good.size else int(np.min(bad))
    if low >= 1 and int(np.max(bad)) == classes:
        return {"hint": "one-based"}
    return {"hint": "indices"}


def check_ambiguous(
    ctx: Context, fitting: list[int], y: npt.NDArray[Any], result: LossResult
) -> None:
    """Several axes fit the target shape: the mean loss with each."""
    losses: list[JsonValue] = []
    flat = y.reshape(-1)
    counted = flat != ctx.ignore_index
    for axis in fitting:
        classes = int(ctx.values.shape[axis])
        loss: float | None
        if axis == ctx.axis:
            loss = mean_loss(result)
        elif np.any(counted & ((flat < 0) | (flat >= classes))):
            loss = None
        else:
            other = ctx._replace(axis=axis, classes=classes, findings=[])
            loss = other.loss(ctx.values, ctx.op, y)
        losses.append({"class_dim": axis, "classes": classes, "loss": loss})
    shape = [int(n) for n in ctx.values.shape]
    context: dict[str, JsonValue] = {
        "input_shape": shape,
        "target_shape": [int(n) for n in y.shape],
        "pytorch_class_dim": torch_class_dim(len(shape)),
    }
    ctx.add(
        FindingCode.AMBIGUOUS_CLASS_AXIS,
        "warning",
        context,
        axes=fitting,
        chosen=ctx.axis,
        losses=losses,
    )


def check_soft_targets(ctx: Context, y: npt.NDArray[Any]) -> None:
    """Probability targets that do not sum to 1 or hold negative values."""
    rows = _rows(np.asarray(y, dtype=np.float64), ctx.axis)
    if rows.shape[0] == 0 or ctx.classes == 0:
        return
    sums = rows.sum(axis=1)
    with np.errstate(invalid="ignore"):
        off = ~(np.abs(sums - 1.0) <= PROB_SUM_TOL)
        negative = (rows < 0).any(axis=1)
    bad = off | negative
    n_bad = int(np.count_nonzero(bad))
    if not n_bad:
        return
    where = np.flatnonzero(bad)[:EVIDENCE_POSITIONS]
    ctx.add(
        FindingCode.SOFT_TARGETS_NOT_NORMALIZED,
        "warning",
        count=n_bad,
        positions_total=int(rows.shape[0]),
        negative=int(np.count_nonzero(negative)),
        sum_min=float(np.min(sums)),
        sum_max=float(np.max(sums)),
        positions=positions(where, position_shape(y, ctx.axis)),
        sums=sums[where].tolist(),
    )
