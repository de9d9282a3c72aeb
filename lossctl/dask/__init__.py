"""lossctl on Dask: shards scored on a cluster, and losses of ``dask.array`` inputs.

Both combine exact partial sums, so results equal the in-memory ones to the last bit::

    from lossctl.dask import cross_entropy, kl_div, score_shards
    cross_entropy(logits, targets)            # logits: a dask.array, classes in one chunk
    kl_div(log_q, p, reduction="batchmean")   # torch's F.kl_div, any chunks
    score_shards(pairs, ShardOptions(), scheduler="tcp://10.0.0.5:8786")

Needs the ``dask`` extra (``pip install 'lossctl[dask]'``); importing this package does
not import Dask, the functions do.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ClassAxisRechunkWarning": "lossctl.dask.arrays",
    "cross_entropy": "lossctl.dask.arrays",
    "loss_result": "lossctl.dask.arrays",
    "nll_loss": "lossctl.dask.arrays",
    "kl_div": "lossctl.dask.kl_arrays",
    "kl_logits": "lossctl.dask.kl_arrays",
    "kl_statistics": "lossctl.dask.kl_arrays",
    "KLShardOptions": "lossctl.dask.kl_shards",
    "KLShardScore": "lossctl.dask.kl_shards",
    "score_kl_shards": "lossctl.dask.kl_shards",
    "EngineInfo": "lossctl.dask.engine",
    "ShardOptions": "lossctl.dask.shards",
    "ShardScore": "lossctl.dask.shards",
    "score_shards": "lossctl.dask.shards",
}

__all__ = [
    "ClassAxisRechunkWarning",
    "EngineInfo",
    "KLShardOptions",
    "KLShardScore",
    "ShardOptions",
    "ShardScore",
    "cross_entropy",
    "kl_div",
    "kl_logits",
    "kl_statistics",
    "loss_result",
    "nll_loss",
    "score_kl_shards",
    "score_shards",
]

if TYPE_CHECKING:
    from lossctl.dask.arrays import ClassAxisRechunkWarning, cross_entropy, loss_result, nll_loss
    from lossctl.dask.engine import EngineInfo
    from lossctl.dask.kl_arrays import kl_div, kl_logits, kl_statistics
    from lossctl.dask.kl_shards import KLShardOptions, KLShardScore, score_kl_shards
    from lossctl.dask.shards import ShardOptions, ShardScore, score_shards


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lossctl.dask' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
