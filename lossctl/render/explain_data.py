"""An ``--explain`` trace as plain data: the ``steps`` of ``--json`` and the reduction's equation.

Dicts, lists, floats and formatted text, ready for :func:`lossctl.io.documents.dumps`
(non-finite numbers are left to ``jsonable`` there).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.render.i18n import tr
from lossctl.trace.model import (
    ELLIPSIS,
    Column,
    Layout,
    LossStats,
    ReductionTerms,
    Remark,
    Step,
    Trace,
    present,
)

__all__ = ["equation", "remark_text", "step_data", "steps_json"]

Formatter = Callable[[float], str]


def remark_text(remark: Remark, fmt: Formatter) -> str:
    """The remark's sentence with its numbers formatted."""
    return tr(remark.template).format(**{name: fmt(value) for name, value in remark.numbers})


def _join(terms: list[str]) -> str:
    """``a + b - c``: a term that is written with a minus is subtracted, not added."""
    out = ""
    for i, term in enumerate(terms):
        if i == 0:
            out = term
        elif term.startswith("-"):
            out += f" - {term[1:]}"
        else:
            out += f" + {term}"
    return out


def equation(terms: ReductionTerms, fmt: Formatter) -> str:
    """The reduction with its numbers, e.g. ``(5.1724 + 1.3586) / 2 = 3.2655``.

    Each term is a position's loss as the step before shows it (``-logp`` at the
    target, times its weight), so nothing is negated twice.
    """
    written: list[str] = []
    i = 0
    for position in terms.positions:
        if position is None:
            written.append(ELLIPSIS)
            continue
        if terms.style == "weighted":
            written.append(f"{fmt(float(terms.weights[i]))}·{fmt(-float(terms.picked[i]))}")
        elif terms.style == "neg":
            written.append(fmt(-float(terms.picked[i])))
        else:
            written.append(fmt(float(terms.losses[i])))
        i += 1
    body = _join(written) if written else "0"
    if terms.reduction == "sum":
        return f"{body} = {fmt(terms.total)}"
    if terms.denominator_kind == "weights":
        denominator = fmt(terms.denominator)
    else:
        denominator = str(int(terms.denominator))
    loss = math.nan if terms.loss is None else terms.loss
    grouped = f"({body})" if len(written) > 1 else body
    return f"{grouped} / {denominator} = {fmt(loss)}"


def _grid_json(grid: npt.NDArray[Any], layout: Layout) -> dict[str, Any]:
    doc: dict[str, Any] = {"shape": list(layout.shape), "axes": list(layout.axis_names)}
    if layout.summarised:
        doc.update(
            summarised=True,
            rows=[int(r) for r in layout.kept_rows],
            row_index=[
                [int(i) for i in np.unravel_index(r, layout.shape[:-1])]
                if len(layout.shape) >= 2
                else []
                for r in layout.kept_rows
            ],
            cols=[int(c) for c in layout.kept_cols],
            values=grid,
        )
    else:
        doc.update(summarised=False, values=grid.reshape(layout.shape))
    return doc


def _column_json(column: Column, trace: Trace) -> dict[str, Any]:
    layout = trace.layout
    values: list[Any] = []
    for value, ignored in zip(
        column.values.tolist(), trace.ignored_positions.tolist(), strict=True
    ):
        values.append(None if column.masked and ignored else value)
    doc: dict[str, Any] = {"name": column.name, "shape": list(layout.positions_shape)}
    if layout.positions_summarised:
        doc.update(
            summarised=True,
            positions=[layout.position_index(int(p)) for p in layout.kept_positions],
            values=values,
        )
    else:
        doc.update(
            summarised=False,
            values=np.asarray(values, dtype=object).reshape(layout.positions_shape).tolist(),
        )
    return doc


def _reduction_json(terms: ReductionTerms, layout: Layout, fmt: Formatter) -> dict[str, Any]:
    return {
        "reduction": terms.reduction,
        "equation": equation(terms, fmt),
        "count": terms.count,
        "sum": terms.total,
        "denominator": terms.denominator,
        "denominator_kind": terms.denominator_kind,
        "loss": terms.loss,
        "terms": [
            {
                "position": layout.position_index(p),
                "picked": float(terms.picked[i]),
                "weight": float(terms.weights[i]),
                "loss": float(terms.losses[i]),
            }
            for i, p in enumerate(present(terms.positions).tolist())
        ],
        "summarised": None in terms.positions,
    }


def _stats_json(stats: LossStats, layout: Layout) -> dict[str, Any]:
    return {
        "counted": stats.counted,
        "nan": stats.nan,
        "min": stats.minimum,
        "median": stats.median,
        "max": stats.maximum,
        "worst": [
            {
                "position": layout.position_index(int(p)),
                stats.target_name.replace(" ", "_"): int(stats.worst_target[i]),
                "predicted": int(stats.worst_predicted[i]),
                stats.picked_name: float(stats.worst_picked[i]),
                "loss": float(stats.worst_loss[i]),
            }
            for i, p in enumerate(stats.worst.tolist())
        ],
    }


def step_data(trace: Trace, step: Step, fmt: Formatter) -> dict[str, Any]:
    """One step as ``{name, title, formula, note, values}``."""
    layout = trace.layout
    values: dict[str, Any] = {}
    if step.grid is not None:
        values[step.grid_key] = _grid_json(step.grid, layout)
        if step.key == "input" and trace.targets == "indices":
            values["target_cells"] = _grid_json(trace.target_cells, layout)["values"]
    for column in step.columns:
        values[column.key] = _column_json(column, trace)
    if step.reduction is not None:
        values["reduction"] = _reduction_json(step.reduction, layout, fmt)
    if step.stats is not None:
        values["stats"] = _stats_json(step.stats, layout)
    if step.lines:
        values["lines"] = list(step.lines)
    if step.remarks:
        values["remarks"] = [remark_text(remark, fmt) for remark in step.remarks]
    if step.equals is not None:
        values["equals"] = step.equals
    if step.result:
        values["result"] = step.result
    return {
        "name": step.key,
        "title": tr(step.title),
        "formula": tr(step.formula),
        "note": tr(step.note),
        "values": values,
    }


def steps_json(trace: Trace, fmt: Formatter) -> list[dict[str, Any]]:
    """The ``steps`` array of ``--explain --json`` (non-finite numbers left to ``jsonable``)."""
    return [step_data(trace, step, fmt) for step in trace.steps]
