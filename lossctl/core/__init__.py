"""The numeric core: pure NumPy, no I/O, no printing; the public Python API.

Imports nothing of lossctl but :mod:`lossctl.errors`.
"""

from lossctl.core.kl import KLBroadcastWarning, KLReductionMeanWarning, kl_div, kl_logits
from lossctl.core.kl_stats import KLStats, kl_block_stats, kl_statistics, merge_all
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
    "KLBroadcastWarning",
    "KLReductionMeanWarning",
    "KLStats",
    "LossResult",
    "cross_entropy",
    "kl_block_stats",
    "kl_div",
    "kl_logits",
    "kl_statistics",
    "log_softmax",
    "loss_result",
    "merge_all",
    "nll_loss",
    "softmax",
]
