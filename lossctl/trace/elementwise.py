"""The traces of ``softmax`` and ``log_softmax`` along an axis, and of the elementwise ``log``."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.losses import FloatArray, normalize_axis
from lossctl.trace.layout import cells, make_layout
from lossctl.trace.model import Column, Edges, ElementwiseOp, Layout, Step, Trace
from lossctl.trace.phrases import say
from lossctl.trace.rows import fetch_rows
from lossctl.trace.steps import (
    exp_step,
    identity_step,
    input_step,
    log_softmax_step,
    shift_step,
    softmax_step,
)

__all__ = ["explain_elementwise"]


def log_steps(
    values: npt.NDArray[Any], x_cells: FloatArray, layout: Layout, axis: int | None
) -> list[Step]:
    """Input probabilities (with their sums along ``axis``), their log, and what it showed."""
    columns: tuple[Column, ...] = ()
    if axis is not None:
        rows = fetch_rows(values, axis, layout.kept_positions)
        columns = (Column("sum", "Σ", rows.x.sum(axis=1)[rows.at(layout.kept_positions)]),)
    note = "As given; probabilities are in [0, 1]" + (
        " and sum to 1 along the axis." if axis is not None else "."
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(x_cells)
    return [
        input_step("Input probabilities p", x_cells, layout, note, columns),
        Step(
            key="log",
            title="Log",
            formula="log(p), elementwise",
            note="log 1 = 0, log 0 = -inf, and the log of a negative number is nan.",
            grid=logs,
            grid_key="log",
        ),
        identity_step(
            "log(softmax(x)) = log_softmax(x)",
            "The middle step of softmax → log → NLL; log_softmax does both at once, "
            "more accurately for tiny probabilities.",
        ),
    ]


def softmax_steps(
    op: ElementwiseOp, values: npt.NDArray[Any], x_cells: FloatArray, layout: Layout, axis: int
) -> list[Step]:
    """Input, max-shift, exp and sum, then divide (softmax) or subtract (log-softmax)."""
    rows = fetch_rows(
        values, axis, np.concatenate([layout.kept_positions, layout.cell_position.reshape(-1)])
    )
    if op == "softmax":
        last = dataclasses.replace(softmax_step(rows, layout), title="Divide: softmax")
        identity = "softmax(x) = exp(x - max) / Σ_c exp(x_c - max) = exp(x) / Σ_c exp(x_c)"
    else:
        last = dataclasses.replace(
            log_softmax_step(rows, layout, columns=()),
            title="Subtract: log-softmax",
        )
        identity = "log_softmax(x) = x - lse = log(softmax(x))"
    return [
        input_step("Input x", x_cells, layout, "As given.", ()),
        shift_step(rows, layout),
        exp_step(rows, layout),
        last,
        identity_step(identity, say("trace.elementwise.identity", axis=axis)),
    ]


def explain_elementwise(
    op: ElementwiseOp,
    input: npt.ArrayLike,
    *,
    dim: int | None,
    edges: Edges | None = None,
) -> Trace:
    """The trace of ``softmax`` / ``log_softmax`` along ``dim``, or of the elementwise ``log``.

    ``log`` takes ``dim`` as the axis its input was normalised along (``None``
    when unknown); it is used only to show each position's sum.
    """
    edges = Edges() if edges is None else edges
    values = np.asarray(input)
    if values.dtype.kind not in "iuf":
        values = np.asarray(values, dtype=np.float64)
    axis = None if dim is None else normalize_axis(dim, values.ndim, "softmax axis")
    layout = make_layout(tuple(values.shape), axis, edges)
    x_cells = cells(values, layout)
    if op == "log":
        steps = log_steps(values, x_cells, layout, axis)
    else:
        assert axis is not None
        steps = softmax_steps(op, values, x_cells, layout, axis)
    nothing = np.zeros(layout.cell_class.shape, dtype=np.bool_)
    return Trace(
        op=op,
        layout=layout,
        steps=tuple(steps),
        target_cells=nothing,
        ignored_cells=nothing,
        ignored_positions=np.zeros(layout.kept_positions.size, dtype=np.bool_),
    )
