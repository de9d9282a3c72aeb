"""Plain-words reasons for results that need a warning (pure NumPy, no I/O)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from lossctl.core.losses import LossResult


def nonfinite_reason(result: LossResult, values: npt.NDArray[np.floating]) -> str | None:
    """Why a reduced loss is NaN or infinite, or ``None`` when it is finite."""
    if result.reduction == "none":
        bad = int(np.count_nonzero(~np.isfinite(result.per_position)))
        if bad == 0:
            return None
        text = f"{bad} of {result.per_position.size} per-position losses are NaN or infinite"
        reason = _input_reason(values)
        return f"{text}: {reason}" if reason else text
    loss = float(result.loss)
    if math.isfinite(loss):
        return None
    if result.reduction == "mean" and result.count == 0:
        if result.ignored:
            return (
                f"the loss is {loss} because every target ({result.ignored}) equals ignore_index: "
                "the mean of no targets is undefined (PyTorch returns nan too)"
            )
        return f"the loss is {loss} because the input is empty: the mean of no targets is undefined"
    if result.reduction == "mean" and result.denominator == 0:
        return (
            f"the loss is {loss} because the class weights of the counted targets sum to 0 "
            "(the mean divides by that sum)"
        )
    reason = _input_reason(values)
    return f"the loss is {loss}" + (f" because {reason}" if reason else "")


def _input_reason(values: npt.NDArray[np.floating]) -> str | None:
    if values.size == 0:
        return None
    if np.isnan(values).any():
        return "the input holds NaN values"
    if np.isposinf(values).any():
        return "the input holds +inf values (a whole row then becomes NaN)"
    if np.isneginf(values).any():
        return "the input holds -inf values (at a target class, the loss is infinite)"
    return None
