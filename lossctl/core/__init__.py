"""The numeric core: pure NumPy, no I/O, no printing; the public Python API.

Imports nothing of lossctl but :mod:`lossctl.errors`.
"""

from lossctl.core.losses import (
    AmbiguousClassAxisWarning,
    LossResult,
    cross_entropy,
    log_softmax,
    loss_result,
    nll_loss,
    softmax,
)

__all__ = [
    "AmbiguousClassAxisWarning",
    "LossResult",
    "cross_entropy",
    "log_softmax",
    "loss_result",
    "nll_loss",
    "softmax",
]
