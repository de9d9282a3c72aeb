"""The trace of ``cross_entropy`` and ``nll_loss``, composed of the step builders.

The work is O(size of the input) and mostly less: the loss is computed once over
everything (or handed in by the caller), and the per-class steps are evaluated
only on the positions that are shown, which for a large input are the first and
last few rows and columns, the terms of the reduction that are written out and
the worst positions.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lossctl.core.losses import (
    FloatArray,
    LossOp,
    LossResult,
    loss_result,
)
from lossctl.core.rowpass import picked_values
from lossctl.core.spec import LossKeywords
from lossctl.core.targets import TargetIndex
from lossctl.trace.context import LossContext, loss_context
from lossctl.trace.model import ARTICLE, Column, Edges, Remark, Step, Trace
from lossctl.trace.nll import logprob_check, nll_steps
from lossctl.trace.phrases import say
from lossctl.trace.probability import probability_steps
from lossctl.trace.rows import fetch_rows
from lossctl.trace.stats import loss_stats
from lossctl.trace.steps import (
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

if TYPE_CHECKING:
    from typing_extensions import Unpack


def cross_entropy_steps(ctx: LossContext) -> list[Step]:
    """Input logits, max-shift, exp and sum, softmax, log-softmax, then the NLL."""
    layout, rows, kept = ctx.layout, ctx.rows, ctx.kept
    probabilities = ctx.probabilities
    note = (
        "Raw scores (logits), one per class at each position: the larger, the more the model "
        "favours that class. They are not probabilities yet."
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
        softmax_step(rows, layout),
        log_softmax_step(rows, layout, columns=columns),
        *(probability_steps(ctx) if probabilities else [nll_step(ctx)]),
    ]


def raw_nll_remark(ctx: LossContext) -> tuple[Remark, ...]:
    """The article's first point, when a shown position shows it: NLL on the raw logits
    can reward the wrong class and go negative."""
    kept, rows = ctx.kept, ctx.rows
    if ctx.probabilities or not ctx.classes or ctx.result.reduction == "none":
        return ()
    at = rows.at(kept)
    targets = ctx.indices[kept]
    picked = rows.x[at, targets]
    with np.errstate(invalid="ignore"):
        wrong = ctx.counted[kept] & (picked > 0) & (np.argmax(rows.x[at], axis=1) != targets)
    if not wrong.any():
        return ()
    i = int(np.argmax(wrong))
    where = ctx.layout.position_label(int(kept[i])) or "()"
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = float(np.sum(ctx.target_weight * -picked_targets(ctx)))
        if ctx.result.reduction == "mean":
            raw /= float(ctx.result.denominator)
    return (
        Remark(
            say(
                "trace.remark.raw_nll",
                where=where,
                largest=int(np.argmax(rows.x[at[i]])),
                target=int(targets[i]),
            ),
            (("raw", raw), ("term", -float(picked[i]))),
        ),
    )


def picked_targets(ctx: LossContext) -> FloatArray:
    """The input at every position's target class (0 at ignored positions): read block by
    block with the file's pages released, as ``nll`` reads them (bounded memory)."""
    targets = TargetIndex(ctx.indices, ctx.counted, ctx.target_weight)
    negated = picked_values(ctx.values, ctx.result.class_dim, targets, None)
    return np.where(ctx.counted, -negated, 0.0)


def closing_step(ctx: LossContext, cross_entropy: LossResult | None) -> Step:
    """What the trace showed; for ``nll``, whether its input was log-probabilities."""
    if ctx.op == "nll_loss":
        return logprob_check(ctx, cross_entropy)
    result = ctx.result
    step = identity_step(
        "cross_entropy = nll(log(softmax(x)))",
        "Softmax, then log, then NLL: cross-entropy is NLL applied to log-softmax"
        + (", with the targets smoothed by ε" if ctx.smoothing else "")
        + f", as the tutorial {ARTICLE} works out by hand (the seed example is its "
        "example): CrossEntropy = Softmax + log + NLLLoss.",
        None if result.reduction == "none" else float(result.loss),
    )
    return dataclasses.replace(step, remarks=raw_nll_remark(ctx))


def explain_loss(
    op: LossOp,
    input: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    edges: Edges | None = None,
    result: LossResult | None = None,
    cross_entropy: LossResult | None = None,
    **options: Unpack[LossKeywords],
) -> Trace:
    """The trace of ``cross_entropy`` or ``nll_loss`` (the options of ``core.loss_result``).

    Pass ``result`` when the loss was already computed with the same arguments
    (the CLI does) so that the work is not done twice; its spec then gives the options.
    For ``nll_loss``, ``cross_entropy`` may likewise be the cross-entropy of the same input.
    """
    if result is None:
        result = loss_result(op, input, target, **options)
    spec = result.spec
    ctx = loss_context(
        op,
        np.asarray(input),
        np.asarray(target),
        result,
        weight=spec.weight,
        ignore_index=spec.ignore_index,
        label_smoothing=spec.label_smoothing,
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
