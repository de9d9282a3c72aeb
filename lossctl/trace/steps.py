"""One small builder per step of a trace: input, max-shift, exp and sum, softmax,
log-softmax, the NLL pick, mask and weight, and the reduction.

Each returns a :class:`lossctl.trace.model.Step`; :mod:`lossctl.trace.loss`
and :mod:`lossctl.trace.elementwise` compose them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lossctl.core.losses import FloatArray, LossResult
from lossctl.trace.model import (
    BoolArray,
    Column,
    Layout,
    ReductionTerms,
    Remark,
    Step,
    TermStyle,
    present,
)
from lossctl.trace.phrases import say
from lossctl.trace.rows import Rows

if TYPE_CHECKING:
    from lossctl.trace.context import LossContext


def input_step(
    title: str, x_cells: FloatArray, layout: Layout, note: str, columns: tuple[Column, ...]
) -> Step:
    """The input as given, with its shape, classes and positions."""
    shape = str(tuple(int(n) for n in layout.shape))
    if layout.class_dim is None:
        formula = say("trace.input.formula.shape", shape=shape)
    else:
        one = layout.position_count == 1
        formula = say(
            "trace.input.formula" + (".one" if one else ""),
            shape=shape,
            classes=layout.shape[layout.class_dim],
            axis=layout.class_dim,
            positions=layout.position_count,
        )
    return Step(
        key="input",
        title=title,
        formula=formula,
        note=note,
        grid=x_cells,
        grid_key="x",
        columns=columns,
    )


_NORMALISING_TEXTS: dict[str, tuple[str, str, str]] = {
    "shift": (
        "Max-shift",
        "x - max,   max = the largest x of each position",
        "Subtract each position's largest value: exp(x - max) ≤ 1 cannot overflow, and "
        "the probabilities do not change (exp(-max) cancels in the division).",
    ),
    "exp": (
        "Exponentiate and sum",
        "exp(x - max),   Σ = Σ_c exp(x_c - max),   lse = max + log Σ",
        "exp makes every value positive and Σ adds them up per position; the max's term "
        "is exactly 1, so 1 ≤ Σ ≤ classes, and lse = log Σ_c exp(x_c) without overflow.",
    ),
    "softmax": (
        "Softmax",
        "softmax = exp(x - max) / Σ",
        "Each exp divided by its position's Σ: probabilities, each in [0, 1], that sum to 1 "
        "at every position (the bars draw them).",
    ),
    "log_softmax": (
        "Log of the softmax = log-softmax",
        "log_softmax = log(softmax) = (x - max) - log Σ",
        "The log of each probability: 0 for a certain class, more negative the less likely "
        "it is. Computed as (x - max) - log Σ, not log(softmax): tiny probabilities keep "
        "exact logs.",
    ),
}
"""The title, formula and note of the steps from the logits to the log-softmax."""


def _normalising_step(
    key: str, *, grid: FloatArray, grid_key: str, columns: tuple[Column, ...]
) -> Step:
    """The step ``key`` of :data:`_NORMALISING_TEXTS` with its grid and columns."""
    title, formula, note = _NORMALISING_TEXTS[key]
    return Step(
        key=key,
        title=title,
        formula=formula,
        note=note,
        grid=grid,
        grid_key=grid_key,
        columns=columns,
    )


def shift_step(rows: Rows, layout: Layout) -> Step:
    """``x - max``: the max-shift that makes ``exp`` safe."""
    p_rows = rows.at(layout.kept_positions)
    return _normalising_step(
        "shift",
        grid=rows.stats.shifted[rows.at(layout.cell_position), layout.cell_class],
        grid_key="shifted",
        columns=(Column("max", "max", rows.maximum[p_rows]),),
    )


def exp_step(rows: Rows, layout: Layout) -> Step:
    """``exp(x - max)``, its sum ``Σ``, ``log Σ`` and ``lse``."""
    p_rows = rows.at(layout.kept_positions)
    maximum = rows.maximum[p_rows]
    log_norm = rows.stats.log_norm[p_rows]
    shifted = rows.stats.shifted[rows.at(layout.cell_position), layout.cell_class]
    with np.errstate(over="ignore", invalid="ignore"):
        exp_cells = np.exp(shifted)
        total = np.exp(log_norm)
        lse = maximum + log_norm
    return _normalising_step(
        "exp",
        grid=exp_cells,
        grid_key="exp",
        columns=(
            Column("sum", "Σ", total),
            Column("log_sum", "log Σ", log_norm),
            Column("lse", "lse", lse),
        ),
    )


def softmax_step(rows: Rows, layout: Layout) -> Step:
    """``exp(x - max) / Σ``, and each position's sum (1)."""
    cell_rows = rows.at(layout.cell_position)
    with np.errstate(over="ignore"):
        probs = np.exp(rows.logp[cell_rows, layout.cell_class])
        sums = np.exp(rows.logp[rows.at(layout.kept_positions)]).sum(axis=1)
    return _normalising_step(
        "softmax",
        grid=probs,
        grid_key="softmax",
        columns=(Column("softmax_sum", "Σ", sums),),
    )


def log_softmax_step(rows: Rows, layout: Layout, columns: tuple[Column, ...]) -> Step:
    """``(x - max) - log Σ``, computed without taking the log of the softmax."""
    cell_rows = rows.at(layout.cell_position)
    return _normalising_step(
        "log_softmax",
        grid=rows.logp[cell_rows, layout.cell_class],
        grid_key="log_softmax",
        columns=columns,
    )


def mask_weight_step(
    target_weight: FloatArray, counted: BoolArray, losses: FloatArray, weighted: bool
) -> Step:
    """Ignored positions count 0; counted ones are scaled by their class weight."""
    columns = [Column("mask", "mask", counted.astype(np.int64), "index")]
    if weighted:
        columns.append(Column("weight", "w[target]", target_weight, masked=True))
    columns.append(Column("loss", "loss", losses))
    return Step(
        key="mask_weight",
        title="Mask and weight" if weighted else "Mask",
        formula="loss_n = mask_n · w[t_n] · (-x[n, t_n]),   mask_n = 0 where t_n = ignore_index"
        if weighted
        else "loss_n = mask_n · (-x[n, t_n]),   mask_n = 0 where t_n = ignore_index",
        note="Ignored positions contribute 0 and are not counted"
        + ("; counted ones are scaled by the weight of their target class." if weighted else "."),
        columns=tuple(columns),
    )


def _smoothing_parts(ctx: LossContext, nll: FloatArray) -> tuple[list[Column], str, str]:
    """The columns, formula and note of the NLL step with label smoothing."""
    eps, classes, w, weighted = ctx.label_smoothing, ctx.classes, ctx.w, ctx.weighted
    logp = ctx.rows.logp[ctx.rows.at(ctx.kept)]
    with np.errstate(invalid="ignore"):
        uniform = -np.sum(logp if w is None else logp * w, axis=1)
        picked_part = (1.0 - eps) * ctx.target_weight[ctx.kept] * nll
        uniform_part = (eps / classes) * uniform
    columns = [
        Column("target_part", "(1-ε)·w·nll" if weighted else "(1-ε)·nll", picked_part, masked=True),
        Column("uniform", "Σ_c w_c·(-logp_c)" if weighted else "Σ_c -logp_c", uniform),
        Column("uniform_part", "ε/C·Σ", uniform_part, masked=True),
    ]
    formula = (
        "loss_n = (1 - ε)·w[t_n]·(-logp[n, t_n]) + (ε/C)·Σ_c w_c·(-logp[n, c])"
        if weighted
        else "loss_n = (1 - ε)·(-logp[n, t_n]) + (ε/C)·Σ_c -logp[n, c]"
    )
    note = say("trace.smoothing.note", eps=f"{eps:g}", classes=classes)
    return columns, formula, note


def nll_step(ctx: LossContext) -> Step:
    """Cross-entropy's NLL: each position's ``-logp`` at its target (weighted, smoothed)."""
    kept, weighted = ctx.kept, ctx.weighted
    t_kept = ctx.indices[kept]
    nll = -ctx.rows.logp[ctx.rows.at(kept), t_kept] if ctx.classes else np.zeros(kept.size)
    columns = [ctx.target_column(), Column("nll", "-logp[target]", nll, masked=True)]
    if weighted:
        columns.append(Column("weight", "w[target]", ctx.target_weight[kept], masked=True))
    columns.append(Column("mask", "mask", ctx.counted[kept].astype(np.int64), "index"))
    if ctx.smoothing:
        extra, formula, note = _smoothing_parts(ctx, nll)
        columns += extra
    else:
        formula = (
            "loss_n = w[t_n]·(-logp[n, t_n]),   0 where t_n = ignore_index"
            if weighted
            else "loss_n = -logp[n, t_n],   0 where t_n = ignore_index"
        )
        note = (
            "Pick each position's log-probability at its target class and negate it"
            + (", times the class weight" if weighted else "")
            + ": -log p is 0 when the model is sure of the right class and grows as p shrinks; "
            "ignored positions count 0."
        )
    columns.append(Column("loss", "loss", ctx.losses[kept]))
    return Step(
        key="nll",
        title="NLL: pick the target, negate",
        formula=formula,
        note=note,
        columns=tuple(columns),
        remarks=weak_positive(ctx, nll),
    )


def weak_positive(ctx: LossContext, nll: FloatArray) -> tuple[Remark, ...]:
    """The article's second point, when a shown target has a small probability."""
    kept = ctx.kept
    counted = ctx.counted[kept]
    if ctx.probabilities or not ctx.classes or not counted.any():
        return ()
    with np.errstate(invalid="ignore"):
        scores = np.where(counted & ~np.isnan(nll), nll, -np.inf)
    i = int(np.argmax(scores))
    if not np.isfinite(scores[i]) or np.exp(-scores[i]) >= 0.5:
        return ()
    where = ctx.layout.position_label(int(kept[i])) or "()"
    return (
        Remark(
            say("trace.remark.weak_positive", where=where, target=int(ctx.indices[kept[i]])),
            (("p", float(np.exp(-scores[i]))), ("nll", float(scores[i]))),
        ),
    )


def reduction_terms(ctx: LossContext) -> ReductionTerms | None:
    """The terms of the reduction that are written out (``None`` for ``reduction='none'``)."""
    result = ctx.result
    if result.reduction == "none":
        return None
    tp = present(ctx.term_positions)
    t_rows = ctx.rows.at(tp)
    if ctx.op == "nll_loss":
        picked = ctx.rows.x[t_rows, ctx.indices[tp]] if ctx.classes else np.zeros(tp.size)
    elif ctx.probabilities or not ctx.classes:
        picked = np.zeros(tp.size)
    else:
        picked = ctx.rows.logp[t_rows, ctx.indices[tp]]
    style: TermStyle = (
        "value" if ctx.probabilities or ctx.smoothing else ("weighted" if ctx.weighted else "neg")
    )
    return ReductionTerms(
        reduction=result.reduction,
        style=style,
        positions=ctx.term_positions,
        picked=picked,
        weights=ctx.target_weight[tp],
        losses=ctx.losses[tp],
        count=int(np.count_nonzero(ctx.counted)),
        total=result.total,
        denominator=result.denominator,
        denominator_kind="positions"
        if ctx.probabilities
        else ("weights" if ctx.weighted else "count"),
        loss=float(result.loss),
    )


def reduce_step(result: LossResult, terms: ReductionTerms | None, weighted: bool) -> Step:
    """The reduction: mean (over counted targets, weights or positions), sum or none."""
    reduction = result.reduction
    if result.target_kind == "probabilities":
        denominator = "the number of positions, N·d1·…·dk (probability targets)"
        formula = "mean = Σ_n loss_n / (N·d1·…·dk)"
    elif weighted:
        one = ".one" if result.count == 1 else ""
        denominator = say("trace.reduce.denominator.weights" + one, count=result.count)
        formula = "mean = Σ_n loss_n / Σ_n w[t_n]   (counted n)"
    else:
        denominator = say("trace.reduce.denominator.count", count=result.count)
        formula = "mean = Σ_n loss_n / (number of counted targets)"
    ignored: str = ""
    if result.ignored:
        one = ".one" if result.ignored == 1 else ""
        ignored = say("trace.reduce.ignored" + one, count=result.ignored)
    if reduction == "mean":
        note: str = say("trace.reduce.mean.note", denominator=denominator, ignored=ignored)
    elif reduction == "sum":
        formula = "sum = Σ_n loss_n"
        note = say("trace.reduce.sum.note", ignored=ignored)
    else:
        formula = "none: one loss per position, no reduction"
        note = "The per-position losses of the previous step are the result."
    title = {"mean": "Reduction: mean", "sum": "Reduction: sum", "none": "Reduction: none"}
    return Step(
        key="reduce",
        title=title[reduction],
        formula=formula,
        note=note,
        reduction=terms,
        equals=None if reduction == "none" else float(result.loss),
    )


def identity_step(formula: str, note: str, equals: float | None = None) -> Step:
    """The closing step: what the trace showed."""
    return Step(key="identity", title="What this showed", formula=formula, note=note, equals=equals)
