"""The per-row values of one block of ``lossctl kl``, computed in cache-sized chunks.

:func:`row_values` runs the kernels (:mod:`lossctl.core.kl_fast32` for two float32
inputs under ``precision="auto"``, else :mod:`lossctl.core.kl_fast` or the reference) on
chunks of about ``chunk_bytes`` of rows and returns every row's KL, top-k overlap and
top-1 agreement, and the NLLs of the counted rows: :func:`lossctl.core.kl_stats.block_stats`
turns them into statistics once per block. A row's values depend only on that row and
on the chunk boundaries the caller fixes (the float64 polynomial's degree is chosen per
chunk), so a stream whose blocks are whole numbers of chunks gives the same bits as one
whose blocks are the chunks: only the per-block statistics (exact, mergeable) are
computed fewer times.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from lossctl.core.kl_fast import kl_pieces64, scratch, top_members, top_overlap
from lossctl.core.kl_fast32 import eligible, kl_pieces32
from lossctl.core.spec import FloatArray

TOP_K = 5
CHUNK_BYTES = 1 << 20  # input bytes per kernel chunk (at least one row)


class RowValues(NamedTuple):
    """Per-row results of a block: ``kl``, ``overlaps``, ``same`` and ``back`` for every
    row (``back`` with ``reverse`` only), the NLLs for the counted rows (with labels)."""

    kl: FloatArray
    overlaps: npt.NDArray[np.intp]
    same: npt.NDArray[np.bool_]
    back: FloatArray | None
    nll_r: FloatArray | None
    nll_o: FloatArray | None

    @staticmethod
    def joined(parts: list[RowValues]) -> RowValues:
        """The values of consecutive chunks, in order."""
        if len(parts) == 1:
            return parts[0]

        def cat(name: str) -> Any:
            pieces = [getattr(part, name) for part in parts]
            return None if pieces[0] is None else np.concatenate(pieces)

        return RowValues(*(cat(name) for name in RowValues._fields))


class KernelOptions(NamedTuple):
    """How a block is computed: ``single`` (the float32 form, :func:`kernel_options`),
    ``fast`` (the fast float64 KL, else the reference), ``log_probs``, ``reverse``."""

    single: bool
    fast: bool
    log_probs: bool
    reverse: bool


def kernel_options(
    ref: npt.NDArray[Any],
    oth: npt.NDArray[Any],
    precision: str,
    *,
    fast: bool,
    log_probs: bool = False,
    reverse: bool = False,
) -> KernelOptions:
    """The options of a block; ``single`` when ``fast``, not ``log_probs``,
    ``precision="auto"`` and both inputs are float32."""
    single = fast and not log_probs and precision == "auto" and eligible(ref, oth)
    return KernelOptions(single, fast, log_probs, reverse)


Counted = tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]  # rows kept, their labels


def _wide(rows: npt.NDArray[Any], name: str) -> FloatArray:
    """``rows`` as float64: itself, or a copy in the reused buffer ``name``."""
    if rows.dtype == np.float64:
        return rows
    out: FloatArray = scratch(name, rows.shape)
    np.copyto(out, rows, casting="unsafe")
    return out


def _chunk(ref: Any, oth: Any, counted: Counted | None, options: KernelOptions) -> RowValues:
    """The values of one chunk (``counted``: its kept rows and their labels)."""
    other_soft = counted is not None or options.reverse
    if options.single:
        x, y = ref, oth
        soft_r, soft_o, kl_all, back = kl_pieces32(x, y, other_soft, options.reverse)
    else:
        x, y = _wide(ref, "ref64"), _wide(oth, "other64")
        soft_r, soft_o, kl_all, back = kl_pieces64(
            x, y, other_soft, options.reverse, options.fast, options.log_probs
        )
    k = min(TOP_K, ref.shape[1])
    rank_r, rank_o = (ref, oth) if ref.dtype.kind == "f" else (x, y)  # the same order
    known = (soft_r.maximum, None if soft_o is None else soft_o.maximum)  # NaN: NaN max
    overlaps = top_overlap(rank_r, rank_o, k, known)
    if overlaps is None:  # NaN in the chunk: the reference ranking
        overlaps = (top_members(x, k) & top_members(y, k)).sum(axis=1)
    top_o = np.argmax(rank_o, axis=1) if soft_o is None else soft_o.top  # same first argmax
    same = soft_r.top == top_o
    nll_r = nll_o = None
    if counted is not None and soft_o is not None:
        nll_r, nll_o = soft_r.nll(counted[1], counted[0]), soft_o.nll(counted[1], counted[0])
    return RowValues(kl_all, np.asarray(overlaps, np.intp), same, back, nll_r, nll_o)


def row_values(
    ref: npt.NDArray[Any],
    oth: npt.NDArray[Any],
    counted: Counted | None,
    options: KernelOptions,
    chunk_bytes: int = CHUNK_BYTES,
) -> RowValues:
    """:class:`RowValues` of (M, C) rows ``ref``, ``oth`` (as stored), ``chunk_bytes`` at a
    time; ``counted``: the rows kept (label != ignore_index) and their labels."""
    count, classes = ref.shape
    itemsize = max(ref.dtype.itemsize, oth.dtype.itemsize)
    step = max(1, chunk_bytes // max(1, classes * itemsize))
    if count <= step:
        return _chunk(ref, oth, counted, options)
    before = None if counted is None else np.concatenate(([0], np.cumsum(counted[0])))
    parts = []
    for start in range(0, count, step):
        stop = min(count, start + step)
        part = None
        if counted is not None and before is not None:
            part = (counted[0][start:stop], counted[1][before[start] : before[stop]])
        parts.append(_chunk(ref[start:stop], oth[start:stop], part, options))
    return RowValues.joined(parts)


__all__ = ["CHUNK_BYTES", "TOP_K", "KernelOptions", "RowValues", "kernel_options", "row_values"]
