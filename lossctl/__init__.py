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
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "1.0.0"

_EXPORTS = {
    "AmbiguousClassAxisWarning": "lossctl.core.losses",
    "LossResult": "lossctl.core.losses",
    "cross_entropy": "lossctl.core.losses",
    "explain": "lossctl.render.notebook",
    "log_softmax": "lossctl.core.losses",
    "loss_result": "lossctl.core.losses",
    "nll_loss": "lossctl.core.losses",
    "softmax": "lossctl.core.losses",
    "InputError": "lossctl.errors",
    "LossctlError": "lossctl.errors",
    "ReadError": "lossctl.errors",
}

__all__ = [
    "AmbiguousClassAxisWarning",
    "InputError",
    "LossResult",
    "LossctlError",
    "ReadError",
    "__version__",
    "cross_entropy",
    "explain",
    "log_softmax",
    "loss_result",
    "nll_loss",
    "softmax",
]

if TYPE_CHECKING:
    from lossctl.core.losses import (
        AmbiguousClassAxisWarning,
        LossResult,
        cross_entropy,
        log_softmax,
        loss_result,
        nll_loss,
        softmax,
    )
    from lossctl.errors import InputError, LossctlError, ReadError
    from lossctl.render.notebook import explain


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lossctl' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


class _Explain:
    """``lossctl.explain``: the function of :mod:`lossctl.render.notebook`, which also
    stands for the subpackage ``lossctl.explain`` (its attributes are the package's),
    since importing that subpackage sets the attribute of the same name."""

    __name__ = "lossctl.explain"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return importlib.import_module(_EXPORTS["explain"]).explain(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("lossctl.explain"), name)

    def __repr__(self) -> str:
        return "<function lossctl.explain>"


class _Package(types.ModuleType):
    """The ``lossctl`` module, whose ``explain`` stays the function when the subpackage loads."""

    @property
    def explain(self) -> Any:
        return _EXPLAIN

    @explain.setter
    def explain(self, module: Any) -> None:
        pass  # the import system recording the subpackage; it stays in sys.modules


_EXPLAIN = _Explain()
sys.modules[__name__].__class__ = _Package
