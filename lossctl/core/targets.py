"""Class-index targets, validated once: indices, the counted mask and each target's weight.

:class:`TargetIndex` is computed by :func:`lossctl.core.losses.compute` and carried on
the :class:`~lossctl.core.losses.LossResult`, so the gradient, the metrics and the
trace use the same validated targets instead of deriving them again::

    counted_n = t_n != ignore_index
    w_n       = weight[t_n] if counted_n else 0      (1 without a weight)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from lossctl.core.spec import FloatArray, fmt_shape
from lossctl.errors import InputError


class TargetIndex(NamedTuple):
    """Validated class indices of the M positions (flattened, ignored ones set to 0)."""

    indices: npt.NDArray[np.intp]  # (M,) class of each position; 0 where ignored
    counted: npt.NDArray[np.bool_]  # (M,) target != ignore_index
    weight: FloatArray  # (M,) weight[target] where counted, else 0

    def counted_and_ignored(self) -> tuple[int, int]:
        """How many targets are counted, and how many equal ``ignore_index``."""
        counted = int(np.count_nonzero(self.counted))
        return counted, int(self.counted.size - counted)


def position_text(flat_index: int, shape: tuple[int, ...]) -> str:
    """``position (1, 0)`` of a flat index into ``shape``."""
    if not shape:
        return "the only position"
    return "position " + fmt_shape(tuple(int(i) for i in np.unravel_index(flat_index, shape)))


def check_whole(flat: npt.NDArray[Any], shape: tuple[int, ...]) -> None:
    """Float class-index targets must be finite whole numbers; names the first that is not."""
    if flat.dtype.kind != "f":
        return
    bad = ~np.isfinite(flat) | (flat != np.round(flat))
    if bad.any():
        where = int(np.argmax(bad))
        raise InputError(
            f"target {float(flat[where])} at {position_text(where, shape)} is not a whole "
            "class index",
            "target",
        )


def target_index(
    target: npt.NDArray[Any],
    classes: int,
    ignore_index: int,
    weight: FloatArray | None,
) -> TargetIndex:
    """Validate class-index targets against ``classes`` and ``ignore_index``.

    Integer targets are compared with ``ignore_index`` exactly (as integers); float
    targets must be whole numbers. Raises :class:`InputError` naming the first bad
    position.
    """
    flat = target.reshape(-1)
    check_whole(flat, target.shape)
    counted = _not_equal(flat, ignore_index)
    out_of_range = counted & ((flat < 0) | (flat >= classes))
    if out_of_range.any():
        where = int(np.argmax(out_of_range))
        value = flat[where]
        shown = int(value) if abs(float(value)) < 2**63 else float(value)
        raise InputError(
            f"target {shown} at {position_text(where, target.shape)} is out of range: there are "
            f"{classes} classes, so targets must be in [0, {classes}) or equal "
            f"ignore_index ({ignore_index})",
            "target",
        )
    indices = np.where(counted, flat, 0).astype(np.intp)
    per_target = np.ones(indices.shape) if weight is None else weight[indices]
    return TargetIndex(indices=indices, counted=counted, weight=np.where(counted, per_target, 0.0))


def _not_equal(flat: npt.NDArray[Any], ignore_index: int) -> npt.NDArray[np.bool_]:
    """``flat != ignore_index``, exact for integer targets of any size."""
    if flat.dtype.kind in "iu":
        info = np.iinfo(flat.dtype)
        if not info.min <= ignore_index <= info.max:  # no target can equal it
            return np.ones(flat.shape, dtype=bool)
        return np.asarray(flat != flat.dtype.type(ignore_index))
    if float(ignore_index) != ignore_index:  # no float equals an integer it cannot hold
        return np.ones(flat.shape, dtype=bool)
    return np.asarray(flat != ignore_index)
