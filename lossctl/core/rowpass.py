"""The blocked passes of the index-target losses that the kernel does not serve.

``nll_loss`` picks ``input[n, t_n]`` and label smoothing needs whole rows; both go block by
block of rows through :class:`~lossctl.core.kernels.RowSource`, releasing the pages of a
memory-mapped input after each block, and hand each block to ``inspect(first_row, rows)``
while it is at hand (the checks' facts in the same pass, as the kernel does).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from lossctl.core.kernels import BLOCK_BYTES, RowSource
from lossctl.core.overflow import smoothed_nll
from lossctl.core.rows import row_blocks
from lossctl.core.spec import FloatArray
from lossctl.core.targets import TargetIndex

Inspect = Callable[[int, npt.NDArray[np.generic]], None]
PICK_BYTES = 16 << 20  # input bytes per block when only the picked values are read


def picked_values(
    array: npt.NDArray[np.generic], axis: int, targets: TargetIndex, inspect: Inspect | None
) -> FloatArray:
    """``-input[n, t_n]`` per position (``nll_loss``). Without ``inspect`` only the picked
    values are read; with it, whole blocks of rows (one pass for the loss and the facts)."""
    moved = np.moveaxis(array, axis, -1)
    source = RowSource(moved)
    count, classes = len(targets.indices), int(moved.shape[-1])
    lead = moved.shape[:-1]
    budget = BLOCK_BYTES if inspect is not None else PICK_BYTES
    step = max(1, budget // max(1, classes * array.dtype.itemsize))
    out = np.empty(count)
    for start in range(0, count, step):
        stop = min(count, start + step)
        t = targets.indices[start:stop]
        if inspect is not None:
            rows = source.block(start, stop).reshape(stop - start, classes)
            out[start:stop] = rows[np.arange(stop - start), t]
            inspect(start, rows)
        else:
            where = np.unravel_index(np.arange(start, stop), lead) if lead else ()
            picks = (*where, t)
            out[start:stop] = moved[picks]
        source.release(start, stop)
    np.negative(out, out=out)
    return out


def smoothed_blocks(
    eps: float,
    weight: FloatArray | None,
    array: npt.NDArray[np.generic],
    axis: int,
    targets: TargetIndex,
    target_weight: FloatArray,
    inspect: Inspect | None = None,
) -> FloatArray:
    """:func:`~lossctl.core.overflow.smoothed_nll` block by block of rows (float64 blocks,
    memory-mapped pages released after each): no float64 copy of the input."""
    source = RowSource(np.moveaxis(array, axis, -1))
    count, classes = len(targets.indices), array.shape[axis]
    out = np.empty(count)
    for block in row_blocks(count, classes):
        start, stop, _ = block.indices(count)
        original = source.block(start, stop)
        rows = np.asarray(original, dtype=np.float64)
        out[block] = smoothed_nll(eps, weight, rows, targets.indices[block], target_weight[block])
        if inspect is not None:
            inspect(start, original)
        source.release(start, stop)
    return out
