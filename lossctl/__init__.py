"""lossctl: softmax, log-softmax, NLL and cross-entropy with PyTorch's semantics.

The public Python API is the pure-NumPy core::

    from lossctl import cross_entropy
    cross_entropy([[1.1741, -0.4859], [-3.718, 1.5257], [0.0222, 0.5898]], [1, 2])  # 3.2655

and ``lossctl.explain(logits, labels)`` is the ``--explain`` trace as an object that prints
in a terminal and renders in a Jupyter notebook.

Names are imported lazily so that ``lossctl --help`` and ``--version`` start without NumPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lossctl import core

__version__ = "1.0.0"

_ELSEWHERE = {
    "explain": "lossctl.render.notebook",
    "InputError": "lossctl.errors",
    "LossctlError": "lossctl.errors",
    "ReadError": "lossctl.errors",
}
"""The public names that are not the numeric core's; the rest are :mod:`lossctl.core`'s."""

if TYPE_CHECKING:
    from lossctl.core import *  # noqa: F403  (the public API is the core's)
    from lossctl.errors import InputError as InputError
    from lossctl.errors import LossctlError as LossctlError
    from lossctl.errors import ReadError as ReadError
    from lossctl.render.notebook import explain as explain

__all__ = [*core.__all__, *_ELSEWHERE, "__version__"]


def __getattr__(name: str) -> Any:
    if name in core.__all__:
        return getattr(core, name)
    module = _ELSEWHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lossctl' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
