"""The ``--explain`` trace: every intermediate step of a loss or a softmax, as data.

Pure NumPy: no rich, no typer, no JSON, no I/O; it imports only
:mod:`lossctl.core`. :mod:`lossctl.render.explain` draws the steps as tables and
:mod:`lossctl.render.explain_data` turns them into the ``steps`` of ``--json``.

The package exports the builders and the trace's top types; the parts of a trace
(``Step``'s columns, layouts, remarks) are in :mod:`~lossctl.trace.model`.

Modules: :mod:`~lossctl.trace.model` (the trace as frozen dataclasses),
:mod:`~lossctl.trace.layout` (which cells and positions are shown),
:mod:`~lossctl.trace.rows` (the class rows of those positions),
:mod:`~lossctl.trace.steps` (one builder per step), :mod:`~lossctl.trace.loss`,
:mod:`~lossctl.trace.nll`, :mod:`~lossctl.trace.probability`,
:mod:`~lossctl.trace.stats`, :mod:`~lossctl.trace.elementwise` and
:mod:`~lossctl.trace.gradient`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lossctl.core.lazy import lazy_loader

if TYPE_CHECKING:
    from lossctl.trace.elementwise import explain_elementwise
    from lossctl.trace.gradient import gradient_step, with_gradient
    from lossctl.trace.layout import kept_indices, make_layout
    from lossctl.trace.loss import explain_loss
    from lossctl.trace.model import Edges, Step, Trace

# Loaded on first use (PEP 562): the catalogues import trace.phrases, which must not pull in
# every builder (and NumPy) when ``lossctl --help`` or a plain result only needs the words.
_HOMES = {
    "explain_elementwise": "elementwise",
    "gradient_step": "gradient",
    "with_gradient": "gradient",
    "kept_indices": "layout",
    "make_layout": "layout",
    "explain_loss": "loss",
    "Edges": "model",
    "Step": "model",
    "Trace": "model",
}


__getattr__ = lazy_loader(__name__, _HOMES, globals())


__all__ = [
    "Edges",
    "Step",
    "Trace",
    "explain_elementwise",
    "explain_loss",
    "gradient_step",
    "kept_indices",
    "make_layout",
    "with_gradient",
]
