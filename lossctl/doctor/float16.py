"""float16 inputs: overflow (inf, saturated values, logits spanning more than 65504), precision."""

from __future__ import annotations

import math

import numpy as np

from lossctl.core.facts import FLOAT16_MAX, InputFacts
from lossctl.core.losses import LossResult
from lossctl.doctor.context import Context
from lossctl.doctor.findings import FindingCode

FLOAT16_PROB_ERROR = 0.01  # relative error of a probability from rounding a float16 logit


def check_float16(ctx: Context, facts: InputFacts | None) -> None:
    """From the facts: inf, ±65504 and wide rows; the spacing at the largest magnitude."""
    if ctx.values.dtype != np.float16 or facts is None or ctx.values.size == 0:
        return
    infinite = facts.posinf + facts.neginf
    saturated, wide = facts.float16_saturated, facts.float16_wide_rows
    if infinite or saturated or wide:
        ctx.add(
            FindingCode.FLOAT16_OVERFLOW,
            "warning",
            infinite=infinite,
            saturated=saturated,
            positions_spanning_over_max=wide,
        )
    largest = facts.abs_max
    spacing = float(np.spacing(np.float16(min(largest, FLOAT16_MAX))))
    error = math.expm1(spacing / 2)
    if error > FLOAT16_PROB_ERROR:
        ctx.add(
            FindingCode.FLOAT16_PRECISION,
            "warning",
            max_abs=largest,
            spacing=spacing,
            relative_probability_error=error,
        )


def check_float16_loss(ctx: Context, result: LossResult) -> None:
    """With labels: per-position losses beyond float16's range (PyTorch returns inf)."""
    if ctx.values.dtype != np.float16:
        return
    with np.errstate(invalid="ignore"):
        over = int(np.count_nonzero(np.abs(result.per_position) > FLOAT16_MAX))
    if over and not ctx.has(FindingCode.FLOAT16_OVERFLOW):
        ctx.add(FindingCode.FLOAT16_OVERFLOW, "warning", losses_over_max=over)
