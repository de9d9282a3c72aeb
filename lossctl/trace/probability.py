"""The steps of cross-entropy with probability (soft) targets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lossctl.trace.layout import cells
from lossctl.trace.model import Column, Step
from lossctl.trace.rows import fetch_rows

if TYPE_CHECKING:
    from lossctl.trace.context import LossContext

__all__ = ["probability_steps"]


def _formula(weighted: bool, smoothed: bool) -> str:
    q = "q'" if smoothed else "q"
    return (
        f"loss_n = -Σ_c w_c·{q}[n, c]·logp[n, c]"
        if weighted
        else (f"loss_n = -Σ_c {q}[n, c]·logp[n, c]")
    )


def probability_steps(ctx: LossContext) -> list[Step]:
    """The target distributions (smoothed with ε) and each position's sum of terms."""
    layout, rows, eps, classes = ctx.layout, ctx.rows, ctx.label_smoothing, ctx.classes
    axis = layout.class_dim or 0
    q = cells(ctx.labels, layout)
    q_rows = fetch_rows(ctx.labels, axis, layout.kept_positions)
    q_sum = q_rows.x.sum(axis=1)[q_rows.at(layout.kept_positions)]
    if eps > 0.0:
        q = q * (1.0 - eps) + eps / classes
        q_sum = q_sum * (1.0 - eps) + eps
    logp = rows.logp[rows.at(layout.cell_position), layout.cell_class]
    weight = 1.0 if ctx.w is None else ctx.w[layout.cell_class]
    with np.errstate(invalid="ignore"):
        products = -(q * weight) * logp
    return [
        Step(
            key="targets",
            title="Target probabilities" + (" (smoothed)" if eps > 0 else ""),
            formula=f"q' = (1 - ε)·q + ε/C,   ε = {eps:g}, C = {classes}" if eps > 0 else "q",
            note="Probability targets: one distribution per position, the input's shape.",
            grid=q,
            grid_key="q",
            columns=(Column("q_sum", "Σ", q_sum),),
        ),
        Step(
            key="nll",
            title="Cross-entropy per position",
            formula=_formula(ctx.w is not None, eps > 0),
            note=(
                "Each cell is one term of the sum; a one-hot q picks one entry, as class "
                "indices do."
            ),
            grid=products,
            grid_key="terms",
            columns=(Column("loss", "loss", ctx.losses[ctx.kept]),),
        ),
    ]
