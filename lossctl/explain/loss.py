"""The trace of ``cross_entropy`` and ``nll_loss``, composed of the step builders.

The work is O(size of the input) and mostly less: the loss is computed once over
everything (or handed in by the caller), and the per-class steps are evaluated
only on the positions that are shown, which for a large input are the first and
last few rows and columns, the terms of the reduction that are written out and
the worst positions.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lossctl.core.losses import DEFAULT_IGNORE_INDEX, LossOp, LossResult, Reduction, loss_result
from lossctl.explain.context import LossContext, loss_context
from lossctl.explain.model import Column, Edges, Step, Trace
from lossctl.explain.nll import logprob_check, nll_steps
from lossctl.explain.probability import probability_steps
from lossctl.explain.stats import stats_step
from lossctl.explain.steps import (
    exp_step,
    identity_step,
    input_step,
    log_softmax_step,
    nll_step,
    reduce_step,
    reduction_terms,
    shift_step,
    softmax_step,
)

__all__ = ["explain_loss"]


def cross_entropy_steps(ctx: LossContext) -> list[Step]:
    """Input logits, max-shift, exp and sum, softmax, log-softmax, then the NLL."""
    layout, rows, kept = ctx.layout, ctx.rows, ctx.kept
    probabilities = ctx.probabilities
    note = (
        "As given." if probabilities else "As given; the target class of each position is marked."
    )
    picked = rows.logp[rows.at(kept), ctx.indices[kept]] if ctx.classes else np.zeros(kept.size)
    columns = () if probabilities else (Column("picked", "logp[target]", picked, masked=True),)
    return [
        input_step(
            "Input logits",
            ctx.x_cells,
            layout,
            note,
            () if probabilities else (ctx.target_column(),),
        ),
        shift_step(rows, layout),
        exp_step(rows, layout),
        softmax_step(rows, layout, article=True),
        log_softmax_step(rows, layout, article=True, columns=columns),
        *(probability_steps(ctx) if probabilities else [nll_step(ctx)]),
    ]


def closing_step(ctx: LossContext, cross_entropy: LossResult | None) -> Step:
    """What the trace showed; for ``nll``, whether its input was log-probabilities."""
    if ctx.op == "nll_loss":
        return logprob_check(ctx, cross_entropy)
    result = ctx.result
    return identity_step(
        "cross_entropy = nll(log(softmax(x)))",
        "Softmax, then log, then NLL: cross-entropy is NLL applied to log-softmax"
        + (", with the targets smoothed by ε" if ctx.smoothing else "")
        + ".",
        None if result.reduction == "none" else float(result.loss),
    )


def explain_loss(
    op: LossOp,
    input: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    weight: npt.ArrayLike | None = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    class_dim: int | None = None,
    edges: Edges | None = None,
    result: LossResult | None = None,
    cross_entropy: LossResult | None = None,
) -> Trace:
    """The trace of ``cross_entropy`` or ``nll_loss`` (same arguments as ``core.loss_result``).

    Pass ``result`` when the loss was already computed with the same arguments
    (the CLI does) so that the work is not done twice; for ``nll_loss``,
    ``cross_entropy`` may likewise be the cross-entropy of the same input.
    """
    if result is None:
        result = loss_result(
            op,
            input,
            target,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
            class_dim=class_dim,
        )
    ctx = loss_context(
        op,
        np.asarray(input),
        np.asarray(target),
        result,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        edges=Edges() if edges is None else edges,
    )
    steps = nll_steps(ctx) if op == "nll_loss" else cross_entropy_steps(ctx)
    steps.append(reduce_step(result, reduction_terms(ctx), ctx.weighted))
    if ctx.with_stats:
        steps.append(stats_step(ctx))
    steps.append(closing_step(ctx, cross_entropy))
    target_cells, ignored_cells, ignored_positions = ctx.marks()
    return Trace(
        op=op,
        layout=ctx.layout,
        steps=tuple(steps),
        target_cells=target_cells,
        ignored_cells=ignored_cells,
        ignored_positions=ignored_positions,
        targets="probabilities" if ctx.probabilities else "indices",
    )
