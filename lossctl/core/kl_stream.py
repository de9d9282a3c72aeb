"""One blocked pass over two models' outputs (and labels): KL statistics in bounded memory.

:func:`stream_kl` reads both inputs ``UNIT`` (8) blocks of ``BLOCK_BYTES`` (1 MiB) of rows
at a time, feeds :func:`~lossctl.core.kl_stats.block_stats` — which runs the kernel one
block at a time and summarises the unit once — two float32 inputs as stored, by the float32
form of :mod:`lossctl.core.kl_fast32` (``precision="auto"``), anything else converted to
float64 one block at a time, by the fast KL of :mod:`lossctl.core.kl_fast` (each within
its documented bound of ``kl_logits``) — and merges
the blocks' :class:`KLStats` exactly, in block order: the result does not depend on the
block size or on the number of threads (blocks run on the kernels' pool,
``$LOSSCTL_THREADS``, a few blocks ahead). Memory-mapped inputs (``.npy`` files) are
never copied whole: after each block the mapping's pages are released
(``madvise(MADV_DONTNEED)``), because pages of a mapped file count in the resident set
like any other memory once touched.

:func:`kl_summary` turns the statistics into plain numbers (the ``--json`` and table
values); it is pure and used for single inputs and merged shards alike.
"""

from __future__ import annotations

import itertools
import math
import mmap
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.kernels import shared_pool
from lossctl.core.kl import check_same_shape
from lossctl.core.kl_stats import (
    DELTA_PRECISION,
    LOG_PRECISION,
    PERCENTILES,
    KLStats,
    Moments,
    block_stats,
    kl_block_stats,
    merge,
)
from lossctl.core.losses import class_axis_candidates
from lossctl.core.rows import normalize_axis, positions_shape
from lossctl.core.spec import DEFAULT_IGNORE_INDEX, PRECISIONS, FloatArray, Precision
from lossctl.core.threads import default_workers
from lossctl.errors import InputError

BLOCK_BYTES = 1 << 20
UNIT = 8  # blocks per work unit: the statistics (exact sums, histograms) once per unit
BlockObserver = Callable[[npt.NDArray[Any], npt.NDArray[Any]], None]


@dataclass(frozen=True)
class KLPass:
    """The result of one pass: forward (and reverse) statistics, and what they cover."""

    stats: KLStats  # KL(P_ref || P_other) and the rest
    reverse: KLStats | None  # KL(P_other || P_ref) (only its ``kl`` moments are filled)
    shape: tuple[int, ...]
    class_dim: int
    total_positions: int  # before leaving out ignore_index labels
    per_position: FloatArray | None  # KL at every position (labels do not change it)
    axis_candidates: tuple[int, ...] = ()  # several axes fitted the labels


def resolve_class_dim(
    shape: tuple[int, ...], labels_shape: tuple[int, ...] | None, class_dim: int | None
) -> tuple[int, tuple[int, ...]]:
    """The class axis: given, else the one the labels fit (the last when several do), else
    the last axis. Returns it and, when several axes fitted, all of them."""
    ndim = len(shape)
    if ndim == 0:
        raise InputError("the inputs are scalars; KL needs an axis of classes")
    if class_dim is not None:
        axis = normalize_axis(class_dim, ndim, "--class-dim")
        if labels_shape is not None and positions_shape(shape, axis) != labels_shape:
            raise InputError(
                f"labels shape {list(labels_shape)} does not fit input shape {list(shape)} "
                f"with class axis {axis}: expected {list(positions_shape(shape, axis))}",
                "labels",
            )
        return axis, ()
    if labels_shape is None:
        return ndim - 1, ()
    fitting = class_axis_candidates(shape, labels_shape)
    if not fitting:
        raise InputError(
            f"labels shape {list(labels_shape)} does not fit input shape {list(shape)}: the "
            "labels need the input's shape without its class axis",
            "labels",
        )
    if len(fitting) == 1:
        return fitting[0], ()
    return (ndim - 1 if ndim - 1 in fitting else fitting[-1]), fitting


def _mapping_of(array: npt.NDArray[Any]) -> mmap.mmap | None:
    """The ``mmap`` behind a NumPy memory map (or a view of one), if any."""
    node: Any = array
    while node is not None:
        found = getattr(node, "_mmap", None)
        if isinstance(found, mmap.mmap):
            return found
        if isinstance(node, mmap.mmap):
            return node
        node = getattr(node, "base", None)
    return None


class _Rows:
    """(M, C) rows of an array with its class axis moved last, a block at a time."""

    def __init__(self, array: npt.NDArray[Any], axis: int, name: str) -> None:
        self.name = name
        self.moved = np.moveaxis(array, axis, -1)
        self.positions: tuple[int, ...] = tuple(self.moved.shape[:-1])
        self.count = math.prod(self.positions)
        classes = self.moved.shape[-1]
        contiguous = self.moved.flags.c_contiguous or self.moved.ndim == 1
        self.flat = self.moved.reshape(self.count, classes) if contiguous else None
        self.mapping = _mapping_of(array)

    def block(self, start: int, stop: int) -> npt.NDArray[Any]:
        """Rows ``start:stop`` as stored (a view when contiguous)."""
        if self.flat is not None:
            return self.flat[start:stop]
        # a strided view (class axis not last, or --shift): gather these rows only
        return self.moved[np.unravel_index(np.arange(start, stop), self.positions)]

    def release(self) -> None:
        """Drop the mapped pages read so far from the resident set (they stay cached)."""
        advice = getattr(mmap, "MADV_DONTNEED", None)
        if self.mapping is None or advice is None:
            return
        try:
            self.mapping.madvise(advice)
        except (OSError, ValueError):  # closed, or not supported here: only memory is lost
            self.mapping = None


def _real(array: npt.ArrayLike, what: str) -> npt.NDArray[Any]:
    out = np.asanyarray(array)
    if out.dtype.kind not in "iuf":
        raise InputError(f"the {what} must hold real numbers, got dtype {out.dtype}", what)
    return out


def _label_indices(labels: npt.ArrayLike) -> npt.NDArray[np.int64]:
    raw = np.asarray(labels)
    if raw.dtype.kind == "f":
        bad = ~np.isfinite(raw) | (raw != np.round(raw))
        if bad.any():
            value = float(raw.reshape(-1)[int(np.argmax(bad.reshape(-1)))])
            raise InputError(f"label {value} is not a whole class index", "labels")
    elif raw.dtype.kind not in "iu":
        raise InputError(f"labels must be class indices, got dtype {raw.dtype}", "labels")
    return raw.reshape(-1).astype(np.int64)


_Block = tuple[KLStats, FloatArray, FloatArray | None]
_Done = tuple[npt.NDArray[Any], npt.NDArray[Any], _Block]
_Work = Callable[[int, int], _Done]


def _in_order(work: _Work, count: int, step: int) -> Iterator[tuple[int, int, _Done]]:
    """``work(start, stop)`` for every block, on the kernels' thread pool (a few blocks
    ahead, so memory stays bounded), results handed back in block order."""
    blocks = [(start, min(count, start + step)) for start in range(0, count, step)]
    workers = min(default_workers(), len(blocks))
    if workers <= 1:
        for start, stop in blocks:
            yield start, stop, work(start, stop)
        return
    pool = shared_pool(workers)
    pending: deque[tuple[int, int, Future[_Done]]] = deque()
    todo = iter(blocks)
    try:
        for start, stop in itertools.islice(todo, 2 * workers):
            pending.append((start, stop, pool.submit(work, start, stop)))
        while pending:
            start, stop, future = pending.popleft()
            for nxt in itertools.islice(todo, 1):
                pending.append((*nxt, pool.submit(work, *nxt)))
            yield start, stop, future.result()
    finally:
        for _, _, future in pending:
            future.cancel()


def stream_kl(
    reference: npt.ArrayLike,
    other: npt.ArrayLike,
    labels: npt.ArrayLike | None = None,
    *,
    class_dim: int | None = None,
    log_probs: bool = False,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    both_directions: bool = False,
    per_position: bool = False,
    observe: BlockObserver | None = None,
    on_rows: Callable[[int], None] | None = None,
    block_bytes: int = BLOCK_BYTES,
    precision: Precision = "auto",
) -> KLPass:
    """KL(P_ref || P_other) statistics of two arrays of one shape, block by block.

    ``observe(ref_rows, other_rows)`` sees every block as stored (the doctor's checks);
    ``per_position`` also returns the KL at every position (M float64 values).
    ``precision="auto"``: two float32 inputs take ``exp`` in float32 with float64 sums
    (:mod:`lossctl.core.kl_fast32`, within its bound); ``"float64"``: float64 throughout.
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of auto, float64; got {precision!r}")
    ref = _real(reference, "reference")
    oth = _real(other, "other")
    check_same_shape(ref.shape, oth.shape, "kl")
    labels_shape = None if labels is None else tuple(np.shape(labels))
    axis, candidates = resolve_class_dim(ref.shape, labels_shape, class_dim)
    classes = int(ref.shape[axis])
    if classes == 0:
        raise InputError("the inputs have no classes (the class axis has size 0)")
    flat_labels = None if labels is None else _label_indices(labels)
    rows_r, rows_o = _Rows(ref, axis, "ref64"), _Rows(oth, axis, "other64")
    count = rows_r.count
    itemsize = max(ref.dtype.itemsize, oth.dtype.itemsize)
    step = max(1, block_bytes // (classes * itemsize))
    total: KLStats | None = None
    reverse: KLStats | None = None
    out = np.empty(count) if per_position else None

    def work(start: int, stop: int) -> _Done:
        x, y = rows_r.block(start, stop), rows_o.block(start, stop)
        lb = None if flat_labels is None else flat_labels[start:stop]
        part = block_stats(
            x,
            y,
            lb,
            ignore_index=ignore_index,
            fast=True,
            log_probs=log_probs,
            reverse=both_directions,
            precision=precision,
            chunk_bytes=block_bytes,
        )
        return x, y, part

    for start, stop, (x, y, (part, values, backward)) in _in_order(work, count, step * UNIT):
        if observe is not None:
            observe(x, y)
        total = part if total is None else merge(total, part)
        if backward is not None:
            back = KLStats(classes, int(backward.size), Moments.of(backward), 0, 0)
            reverse = back if reverse is None else merge(reverse, back)
        if out is not None:
            out[start:stop] = values
        del x, y
        rows_r.release()
        rows_o.release()
        if on_rows is not None:
            on_rows(stop - start)
    if total is None:  # no positions
        empty = np.empty((0, classes))
        no_labels = None if flat_labels is None else np.empty(0, dtype=np.int64)
        total = kl_block_stats(empty, empty, no_labels, ignore_index=ignore_index)
        if both_directions:
            reverse = KLStats(classes, 0, Moments(), 0, 0)
    positions = positions_shape(ref.shape, axis)
    return KLPass(
        stats=total,
        reverse=reverse,
        shape=tuple(int(n) for n in ref.shape),
        class_dim=axis,
        total_positions=count,
        per_position=None if out is None else out.reshape(positions),
        axis_candidates=candidates,
    )


def _extreme(value: float, moments: Moments) -> float:
    return value if moments.count - moments.nan > 0 else math.nan


def _percentiles(moments: Moments) -> dict[str, float]:
    return {f"{q:g}": moments.percentile(q) for q in PERCENTILES if q != 50.0}


def _symmetric_mean(forward: Moments, backward: Moments) -> float:
    """Mean over positions of (KL(P||Q) + KL(Q||P)) / 2, exact when every value is finite."""
    n = forward.count
    if n == 0 or n != backward.count:
        return math.nan
    if forward.finite == n and backward.finite == n:
        return float((forward.total.as_fraction() + backward.total.as_fraction()) / Fraction(2 * n))
    return 0.5 * (forward.mean() + backward.mean())


def kl_summary(stats: KLStats, reverse: KLStats | None = None) -> dict[str, Any]:
    """Every reported number of ``lossctl kl`` (plain floats, ints and dicts)."""
    kl = stats.kl
    out: dict[str, Any] = {
        "count": stats.positions,
        "classes": stats.classes,
        "kl": {
            "mean": stats.kl_mean(),
            "stderr": stats.kl_stderr(),
            "min": _extreme(kl.minimum, kl),
            "max": _extreme(kl.maximum, kl),
            "median": kl.percentile(50.0),
            "percentiles": _percentiles(kl),
            "percentile_precision": LOG_PRECISION,
            "nan": kl.nan,
            "inf": kl.posinf,
        },
        "same_top1": {"fraction": stats.same_top1_fraction(), "stderr": stats.same_top1_stderr()},
        "top5_overlap": stats.top5_overlap(),
        "top_k": stats.top_k,
    }
    if reverse is not None:
        out["reverse_kl"] = {"mean": reverse.kl_mean(), "stderr": reverse.kl_stderr()}
        out["symmetric_kl"] = {"mean": _symmetric_mean(kl, reverse.kl)}
    if stats.labelled:
        mean, err = stats.mean_log_ppl_ratio()
        delta = stats.delta_p
        out["perplexity"] = stats.perplexities()
        out["log_ppl_ratio"] = {"mean": mean, "stderr": err}
        out["nll_correlation"] = stats.nll_correlation()
        out["nll_nonfinite"] = stats.nll.nonfinite
        out["delta_p"] = {
            "mean": delta.mean(),
            "rms": delta.rms(),
            "median": delta.percentile(50.0),
            "percentiles": _percentiles(delta),
            "percentile_precision": DELTA_PRECISION,
        }
    return out


__all__ = ["BLOCK_BYTES", "KLPass", "kl_summary", "resolve_class_dim", "stream_kl"]
