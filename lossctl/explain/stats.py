"""The statistics step of a large trace: min, median and max loss, and the worst positions."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from lossctl.core.losses import FloatArray
from lossctl.explain.model import BoolArray, IntArray, LossStats, Step
from lossctl.explain.rows import Rows, fetch_rows

if TYPE_CHECKING:
    from lossctl.explain.context import LossContext

__all__ = ["STATS_MIN_POSITIONS", "loss_stats", "stats_step", "worst_positions"]

#: The statistics step appears from this many positions on.
STATS_MIN_POSITIONS = 10


def worst_positions(losses: FloatArray, counted: BoolArray, k: int) -> IntArray:
    """Flat positions of the ``k`` largest counted losses, largest (and NaN) first."""
    k = min(k, int(np.count_nonzero(counted)))
    if k == 0:
        return np.empty(0, dtype=np.intp)
    masked = np.where(counted, losses, -np.inf)
    top = np.argpartition(masked, masked.size - k)[masked.size - k :]
    order = np.argsort(masked[top], kind="stable")[::-1]
    return top[order].astype(np.intp)


def _summary(values: FloatArray) -> tuple[float, float, float]:
    finite = values[~np.isnan(values)]
    if not finite.size:
        return math.nan, math.nan, math.nan
    return float(np.min(finite)), float(np.median(finite)), float(np.max(finite))


def loss_stats(
    losses: FloatArray,
    counted: BoolArray,
    worst: IntArray,
    rows: Rows,
    targets: IntArray,
    picked_name: str,
    target_name: str,
    picked_as_probability: bool,
) -> LossStats:
    """The statistics of the counted ``losses`` and the rows of the ``worst`` positions."""
    values = losses[counted]
    minimum, median, maximum = _summary(values)
    at = rows.at(worst)
    if not rows.x.shape[1]:
        picked = np.full(worst.size, np.nan)
    elif picked_as_probability:
        with np.errstate(over="ignore"):
            picked = np.exp(rows.logp[at, targets])
    else:
        picked = rows.x[at, targets]
    with np.errstate(invalid="ignore"):
        predicted = (
            np.argmax(rows.x[at], axis=1) if rows.x.shape[1] else np.zeros(worst.size, np.intp)
        )
    return LossStats(
        counted=int(values.size),
        nan=int(np.count_nonzero(np.isnan(values))),
        minimum=minimum,
        median=median,
        maximum=maximum,
        worst=worst,
        worst_target=targets.astype(np.intp),
        worst_predicted=np.asarray(predicted, dtype=np.intp),
        worst_picked=np.asarray(picked, dtype=np.float64),
        worst_loss=losses[worst],
        picked_name=picked_name,
        target_name=target_name,
    )


def stats_step(ctx: LossContext) -> Step:
    """Per-position losses: their spread and the worst positions."""
    worst = ctx.worst
    if ctx.probabilities:
        q_rows = fetch_rows(ctx.labels, ctx.result.class_dim, worst)
        q_worst = q_rows.x[q_rows.at(worst)]
        targets = np.argmax(q_worst, axis=1) if q_worst.size else np.zeros(worst.size, np.intp)
        note = (
            "predicted = the class with the largest input; target = the class "
            "with the largest target probability."
        )
    else:
        targets = ctx.indices[worst]
        note = (
            "predicted = the class with the largest input value; "
            + ("p(target)" if ctx.op == "cross_entropy" else "x[target]")
            + " at the target class."
        )
    return Step(
        key="stats",
        title="Per-position losses",
        formula="min, median, max over the counted positions; the worst positions",
        note=note,
        stats=loss_stats(
            ctx.losses,
            ctx.counted,
            worst,
            ctx.rows,
            np.asarray(targets, dtype=np.intp),
            "p(target)" if ctx.op == "cross_entropy" else "x[target]",
            "top target" if ctx.probabilities else "target",
            picked_as_probability=ctx.op == "cross_entropy",
        ),
    )
