"""The full class rows of the positions a trace needs, with their core statistics.

Every number comes from :mod:`lossctl.core.losses` (``row_stats``,
``log_softmax_rows``), so the trace shows the very float64 values the loss was
computed from; only the rows that are shown go through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.losses import FloatArray, RowStats, log_softmax_rows, row_stats
from lossctl.trace.model import IntArray

__all__ = ["Rows", "fetch_rows"]


@dataclass(frozen=True)
class Rows:
    """Full class rows of some positions, with their core statistics."""

    positions: IntArray  # sorted, unique flat positions
    x: FloatArray  # (k, C)
    stats: RowStats
    logp: FloatArray

    def at(self, flat: npt.NDArray[np.integer[Any]]) -> IntArray:
        return np.searchsorted(self.positions, flat).astype(np.intp)

    @property
    def maximum(self) -> FloatArray:
        if self.x.shape[1] == 0:
            return np.full(self.x.shape[0], -np.inf)
        maximum: FloatArray = np.max(self.x, axis=1)
        return maximum

    @property
    def lse(self) -> FloatArray:
        """``log Σ_c exp(x_c)`` of each row (``max + log Σ exp(x - max)``)."""
        with np.errstate(invalid="ignore"):
            lse: FloatArray = self.maximum + self.stats.log_norm
        return lse


def fetch_rows(values: npt.NDArray[Any], class_dim: int, flat: IntArray) -> Rows:
    """The class rows of ``flat`` positions as float64, and ``row_stats`` of them."""
    positions = np.unique(flat).astype(np.intp)
    moved = np.moveaxis(values, class_dim, -1)
    if moved.ndim == 1:
        x = np.broadcast_to(moved.astype(np.float64), (positions.size, moved.shape[0])).copy()
    elif positions.size:
        multi = np.unravel_index(positions, moved.shape[:-1])
        x = np.asarray(moved[multi], dtype=np.float64)
    else:
        x = np.empty((0, moved.shape[-1]))
    stats = row_stats(x)
    return Rows(positions=positions, x=x, stats=stats, logp=log_softmax_rows(x, stats))
