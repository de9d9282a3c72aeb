"""The gradient step of a loss trace: ``d loss / d input`` at the shown cells, explained.

The numbers come from :mod:`lossctl.core.grad`; the words are here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from lossctl.core.losses import FloatArray, LossResult
from lossctl.trace.model import Step, Trace
from lossctl.trace.phrases import say

__all__ = ["gradient_step", "with_gradient"]


def _formula_and_note(result: LossResult, weighted: bool, smoothing: bool) -> tuple[str, str]:
    w = "w[t]·" if weighted else ""
    if result.op == "nll_loss":
        return (
            f"d loss / d x[n, c] = -s·{w}1[c = t_n]: nonzero only at the target",
            "NLL only picks the input at the target, so only that entry has a gradient: "
            "a step of gradient descent (x - lr·grad) raises the target's log-probability, "
            "and nothing else moves.",
        )
    if result.target_kind == "probabilities":
        return (
            "d loss / d x = s·Σ_c w_c·q'_c·(softmax(x) - onehot(c))",
            "Each class is pulled towards its target probability: the gradient is "
            "softmax(x) minus the (weighted) targets, negative where the model gives a "
            "class less than its target share, so gradient descent (x - lr·grad) raises "
            "those logits and lowers the others.",
        )
    return (
        f"d loss / d x = s·{w}(softmax(x) - onehot(target))"
        + (" (1-ε) + s·(ε/C)·(Σw·softmax(x) - w)" if smoothing else ""),
        "softmax - onehot is p_t - 1 < 0 at the target and p_c > 0 at every other class, "
        "so gradient descent (x - lr·grad) pushes the target logit up and every other "
        "logit down, each in proportion to the probability it wrongly holds; a confident "
        "right answer (p_t ≈ 1) gets almost no push.",
    )


def _lines(result: LossResult, weighted: bool) -> tuple[str, ...]:
    """The scale ``s`` of the reduction, and what 'none' and ignored positions get."""
    one = ".one" if result.count == 1 else ""
    if result.target_kind == "probabilities":
        scale: str = (
            say("trace.gradient.scale.positions", count=result.count)
            if result.reduction == "mean"
            else "s = 1"
        )
    elif result.reduction == "mean":
        key = "trace.gradient.scale.weights" if weighted else "trace.gradient.scale.count" + one
        scale = say(key, denominator=f"{result.denominator:g}", count=result.count)
    else:
        scale = "s = 1"
    lines = [scale]
    if result.reduction == "none":
        lines.append("reduction 'none': the gradient of the sum of the per-position losses")
    if result.target_kind == "indices" and result.ignored:
        suffix = ".one" if result.ignored == 1 else ""
        lines.append(say("trace.gradient.ignored" + suffix, count=result.ignored))
    return tuple(lines)


def gradient_step(
    grad: FloatArray,
    result: LossResult,
    cell_index: tuple[npt.NDArray[np.intp], ...],
    *,
    weighted: bool,
    label_smoothing: float = 0.0,
) -> Step:
    """The final ``--explain`` step: the gradient ``grad`` (of ``result``) at ``cell_index``.

    ``cell_index`` picks the cells the trace shows (``Layout.cell_index``).
    """
    smoothing = result.op == "cross_entropy" and label_smoothing > 0.0
    formula, note = _formula_and_note(result, weighted, smoothing)
    return Step(
        key="gradient",
        title="Gradient",
        formula=formula,
        note=note,
        grid=np.asarray(grad[cell_index], dtype=np.float64),
        grid_key="grad",
        lines=_lines(result, weighted),
    )


def with_gradient(
    trace: Trace,
    grad: FloatArray,
    result: LossResult,
    *,
    weighted: bool,
    label_smoothing: float = 0.0,
) -> Trace:
    """``trace`` with the gradient as its final step."""
    step = gradient_step(
        grad, result, trace.layout.cell_index, weighted=weighted, label_smoothing=label_smoothing
    )
    return dataclasses.replace(trace, steps=(*trace.steps, step))
