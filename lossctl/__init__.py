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

__version__ = "1.0.0"

_EXPORTS = {
    "AmbiguousClassAxisWarning": "lossctl.core.losses",
    "LossResult": "lossctl.core.losses",
    "cross_entropy": "lossctl.core.losses",
    "explain": "lossctl.render.notebook",
    "KLBroadcastWarning": "lossctl.core.kl",
    "KLReductionMeanWarning": "lossctl.core.kl",
    "kl_div": "lossctl.core.kl",
    "kl_logits": "lossctl.core.kl",
    "KLStats": "lossctl.core.kl_stats",
    "kl_block_stats": "lossctl.core.kl_stats",
    "kl_statistics": "lossctl.core.kl_stats",
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
    "KLBroadcastWarning",
    "KLReductionMeanWarning",
    "KLStats",
    "LossResult",
    "LossctlError",
    "ReadError",
    "__version__",
    "cross_entropy",
    "explain",
    "kl_block_stats",
    "kl_div",
    "kl_logits",
    "kl_statistics",
    "log_softmax",
    "loss_result",
    "nll_loss",
    "softmax",
]

if TYPE_CHECKING:
    from lossctl.core.kl import KLBroadcastWarning, KLReductionMeanWarning, kl_div, kl_logits
    from lossctl.core.kl_stats import KLStats, kl_block_stats, kl_statistics
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
