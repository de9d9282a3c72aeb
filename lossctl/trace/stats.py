"""The statistics step of a large trace: min, median and max loss, and the worst positions."""

from __future__ import annotations

import math

import numpy as np

from lossctl.core.losses import FloatArray
from lossctl.trace.model import BoolArray, IntArray, LossStats
from lossctl.trace.rows import Rows

__all__ = ["STATS_MIN_POSITIONS", "loss_stats", "worst_positions"]

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
