"""The numeric core: pure NumPy, no I/O, no printing; the public Python API.

Imports nothing of lossctl but :mod:`lossctl.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lossctl.core.lazy import lazy_loader

if TYPE_CHECKING:
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

# Loaded on first use (PEP 562): ``lossctl ce`` needs losses, not the KL modules.
_HOMES = {
    "KLBroadcastWarning": "kl",
    "KLReductionMeanWarning": "kl",
    "kl_div": "kl",
    "kl_logits": "kl",
    "KLStats": "kl_stats",
    "kl_block_stats": "kl_stats",
    "kl_statistics": "kl_stats",
    "merge_all": "kl_stats",
    "AmbiguousClassAxisWarning": "losses",
    "LossResult": "losses",
    "cross_entropy": "losses",
    "log_softmax": "losses",
    "loss_result": "losses",
    "nll_loss": "losses",
    "softmax": "losses",
}


__getattr__ = lazy_loader(__name__, _HOMES, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


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
