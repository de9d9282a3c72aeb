"""The steps of ``nll_loss``: pick, negate, mask; and whether its input was log-probabilities."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from lossctl.core.kernels import RowSource
from lossctl.core.losses import LossResult, loss_result
from lossctl.core.rows import row_blocks
from lossctl.trace.model import Column, Step
from lossctl.trace.phrases import Joined, Phrase, say
from lossctl.trace.steps import identity_step, input_step, mask_weight_step

if TYPE_CHECKING:
    from lossctl.trace.context import LossContext

__all__ = ["LOGPROB_TOLERANCE", "logprob_check", "nll_steps"]

#: A row of log-probabilities has log Σ exp = 0; farther than this, it is not one.
LOGPROB_TOLERANCE = 1e-3


def nll_steps(ctx: LossContext) -> list[Step]:
    """Input log-probabilities, pick at the target, negate, mask (and weight)."""
    kept, rows = ctx.kept, ctx.rows
    p_rows = rows.at(kept)
    picked_x = rows.x[p_rows, ctx.indices[kept]] if ctx.classes else np.zeros(kept.size)
    target_column = ctx.target_column()
    return [
        input_step(
            "Input log-probabilities",
            ctx.x_cells,
            ctx.layout,
            "NLL expects log-probabilities: each position's log Σ exp is then 0.",
            (target_column, Column("lse", "log Σ exp", rows.lse[p_rows])),
        ),
        Step(
            key="pick",
            title="Pick",
            formula="x[n, t_n]: each position's value at its target class",
            note="NLL only picks: it does not normalise, and never looks at the other classes.",
            columns=(target_column, Column("picked", "x[target]", picked_x, masked=True)),
        ),
        Step(
            key="negate",
            title="Negate",
            formula="-x[n, t_n]",
            note="A log-probability is ≤ 0, so its negation is a loss ≥ 0.",
            columns=(Column("negated", "-x[target]", -picked_x, masked=True),),
        ),
        mask_weight_step(
            ctx.target_weight[kept], ctx.counted[kept], ctx.losses[kept], ctx.weighted
        ),
    ]


def _count_above(values: npt.NDArray[Any], class_dim: int, bound: float) -> int:
    """How many values exceed ``bound``: block by block of rows, the file's pages released
    after each (a memory-mapped input is never resident whole)."""
    if not values.size:
        return 0
    source = RowSource(np.moveaxis(values, class_dim, -1) if values.ndim else values.reshape(1))
    count, classes = math.prod(source.lead), int(source.x.shape[-1])
    above = 0
    for block in row_blocks(count, classes):
        start, stop, _ = block.indices(count)
        rows: npt.NDArray[Any] = source.block(start, stop)
        above += int(np.count_nonzero(rows > bound))
        source.release(start, stop)
    return above


def _reasons(ctx: LossContext) -> list[Phrase]:
    """Why the input of ``nll`` is not log-probabilities (empty if it looks like them)."""
    rows, values, layout = ctx.rows, ctx.values, ctx.layout
    reasons: list[Phrase] = []
    with np.errstate(invalid="ignore"):
        positive = _count_above(values, ctx.result.class_dim, LOGPROB_TOLERANCE)
        lse = rows.lse
        far = np.abs(lse) > LOGPROB_TOLERANCE
        negative = int(np.count_nonzero(ctx.counted & (ctx.losses < 0)))
    if positive:
        reasons.append(say("trace.check.positive" + _one(positive), count=positive))
    if far.any():
        where = int(rows.positions[int(np.argmax(np.where(far, np.abs(lse), -1)))])
        reasons.append(
            say(
                "trace.check.far",
                count=int(np.count_nonzero(far)),
                checked=rows.positions.size,
                where=layout.position_label(where) or "()",
            )
        )
    if negative:
        first = int(np.argmax(ctx.counted & (ctx.losses < 0)))
        first_label = layout.position_label(first) or "()"
        key = "trace.check.negative" + _one(negative)
        reasons.append(say(key, count=negative, where=first_label))
    return reasons


def _one(n: int) -> str:
    """The id suffix of a phrase's variant for a count of 1."""
    return ".one" if n == 1 else ""


def cross_entropy_of(ctx: LossContext) -> LossResult:
    """``cross_entropy`` of the ``nll`` input: the one full pass the check needs."""
    return loss_result(
        "cross_entropy",
        ctx.values,
        ctx.labels,
        weight=ctx.weight,
        ignore_index=ctx.ignore_index,
        reduction=ctx.result.reduction,
        class_dim=ctx.result.class_dim,
    )


def logprob_check(ctx: LossContext, cross_entropy: LossResult | None = None) -> Step:
    """Is the input of ``nll`` log-probabilities? If not, say so and show what ``ce`` gives.

    ``cross_entropy``: the caller's ``cross_entropy`` of the same input and targets,
    if it has one; otherwise it is computed here, once, and only when needed.
    """
    result = ctx.result
    reasons = _reasons(ctx)
    if not reasons:
        return identity_step(
            "nll_loss(log_softmax(x), t) = cross_entropy(x, t)",
            "The input looks like log-probabilities (log Σ exp = 0 at every checked position), "
            "so this is the cross-entropy of the logits it came from.",
            None if result.reduction == "none" else float(result.loss),
        )
    ce = cross_entropy_of(ctx) if cross_entropy is None else cross_entropy
    lines = (
        "nll only picks and negates. On raw logits it rewards a large value at the target "
        "whatever the other classes hold, so it can favour the wrong class and go negative. "
        "Take log_softmax first, or use ce, which does.",
    )
    return Step(
        key="check",
        title="The input is not log-probabilities",
        formula="every value ≤ 0 and log Σ exp = 0 at each position",
        note=say("trace.check.note", reasons=Joined(tuple(reasons))),
        lines=lines,
        result="ce gives: cross_entropy(x, t) = nll_loss(log_softmax(x), t)",
        equals=None if ce.reduction == "none" else float(ce.loss),
        warning=True,
    )
