"""The ``--explain`` trace: every intermediate step of a loss or a softmax, as data.

Pure NumPy: no rich, no typer, no JSON, no I/O; it imports only
:mod:`lossctl.core`. :mod:`lossctl.render.explain` draws the steps as tables and
:mod:`lossctl.render.explain_data` turns them into the ``steps`` of ``--json``.

Modules: :mod:`~lossctl.explain.model` (the trace as frozen dataclasses),
:mod:`~lossctl.explain.layout` (which cells and positions are shown),
:mod:`~lossctl.explain.rows` (the class rows of those positions),
:mod:`~lossctl.explain.steps` (one builder per step), :mod:`~lossctl.explain.loss`,
:mod:`~lossctl.explain.nll`, :mod:`~lossctl.explain.probability`,
:mod:`~lossctl.explain.stats`, :mod:`~lossctl.explain.elementwise` and
:mod:`~lossctl.explain.gradient`.
"""

from __future__ import annotations

from lossctl.explain.elementwise import explain_elementwise
from lossctl.explain.gradient import gradient_step, with_gradient
from lossctl.explain.layout import kept_indices, make_layout
from lossctl.explain.loss import explain_loss
from lossctl.explain.model import (
    ELLIPSIS,
    Column,
    Edges,
    Layout,
    LossStats,
    ReductionTerms,
    Remark,
    Step,
    Trace,
)

__all__ = [
    "ELLIPSIS",
    "Column",
    "Edges",
    "Layout",
    "LossStats",
    "ReductionTerms",
    "Remark",
    "Step",
    "Trace",
    "explain_elementwise",
    "explain_loss",
    "gradient_step",
    "kept_indices",
    "make_layout",
    "with_gradient",
]
