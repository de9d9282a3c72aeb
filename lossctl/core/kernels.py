"""Blocked, multi-threaded ``-log softmax(x)[t]`` over rows of logits, in bounded memory.

For a row ``x`` (``C`` classes) with maximum ``m = x_a`` (first argmax ``a``) and target ``t``::

    S    = sum_{c != a} exp(x_c)          # exp of the inputs themselves: no x - m rounding
    tail = S · exp(-m)                    # = sum_{c != a} exp(x_c - m), in float64
    nll  = log1p(tail) + (m - x_t)        # float64

The maximum term is split off exactly (its entry is zeroed before summing), so
confident rows keep their tiny losses. Precision ``"auto"``: float32 (and float16,
upcast per block) rows take ``exp`` in float32 and are summed in float64 (for
``C >= 8192`` after three pairwise float32 folds of <= 8 terms, relative error
<= 3·2^-24); float64 stays float64. ``"float64"``: every block is upcast to
float64. Rows the direct form cannot serve to full accuracy (``m`` so large that
``exp`` overflows, or ``S`` so small that underflowed terms could matter) are
recomputed in float64 as ``exp(x - m)``, as :func:`lossctl.core.row_stats` does.
A row whose maximum is NaN or ±inf is NaN; -inf at the target gives inf.

Rows go in blocks of about 1 MiB of compute dtype, read in place when already
contiguous in that dtype, else copied into one reused buffer per thread, on a
small thread pool. A row's arithmetic does not depend on the partition, so the
results are bit-identical whatever the block size or the number of workers.
Pages of an ``np.memmap`` (not opened copy-on-write) are released with
``madvise(MADV_DONTNEED)`` after each block, so resident memory stays bounded.
"""

from __future__ import annotations

import itertools
import math
import mmap
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from lossctl.core import threads

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

Precision = Literal["auto", "float64"]
FloatArray = npt.NDArray[np.float64]

PRECISIONS: tuple[Precision, ...] = ("auto", "float64")
BLOCK_BYTES = 1 << 20  # compute-buffer bytes per block (at least one row)
_FOLDS = 3  # float32 pairwise folds before the float64 sum: relative error <= 3·2^-24
_FOLD_MIN_CLASSES = 8192  # below this, folding costs more than it saves


class _Limits(NamedTuple):
    """Where the direct form ``exp(x_c)`` is exact enough, per compute dtype."""

    max_logit: float  # m above this: exp (or the folded partial sums) could overflow
    min_sum_per_term: float  # S below (C-1)·this: underflowed terms could exceed 2^-30·S


_LIMITS = {
    np.dtype(np.float32): _Limits(85.0, 2.0**-96),  # 8·e^85 < FLT_MAX; FLT_MIN = 2^-126
    np.dtype(np.float64): _Limits(600.0, 2.0**-972),  # DBL_MIN = 2^-1022
}


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
_in_worker = threading.local()


def _pool(workers: int) -> ThreadPoolExecutor:
    from concurrent.futures import ThreadPoolExecutor  # only inputs of several blocks

    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = ThreadPoolExecutor(workers, thread_name_prefix="lossctl-kernel")
            _pools[workers] = pool
        return pool


def shared_pool(workers: int) -> ThreadPoolExecutor:
    """The process-wide pool of ``workers`` threads (created once, reused by every pass)."""
    return _pool(workers)


def _drop_pool(workers: int) -> None:
    """Forget a pool that could not start its threads (its queued work finds no blocks)."""
    with _pools_lock:
        pool = _pools.pop(workers, None)
    if pool is not None:
        pool.shutdown(wait=False)


def _compute_dtype(dtype: npt.DTypeLike, precision: Precision = "auto") -> np.dtype[np.floating]:
    """float32 for float16/float32 inputs under ``"auto"``, else float64."""
    dt = np.dtype(dtype)
    if dt.kind not in "iuf":
        raise TypeError(f"logits must hold real numbers, got dtype {dt}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto" and dt.kind == "f" and dt.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def nll_of_logits(
    rows: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    precision: Precision = "auto",
    workers: int | None = None,
    block_bytes: int = BLOCK_BYTES,
    on_rows: Callable[[int, int], None] | None = None,
    inspect: Callable[[int, npt.NDArray[np.generic]], None] | None = None,
) -> FloatArray:
    """``nll[i] = -log softmax(rows[i])[targets[i]] = log1p(tail_i) + (m_i - x_{i,t_i})``.

    ``rows`` is ``(..., C)`` with the classes last (any strides, any real dtype,
    an ``np.memmap`` included); ``targets`` holds one class index per row, of
    the leading shape or flattened. Returns a float64 array of the leading shape.
    Nothing of the input's size is allocated: at most one block per worker.
    ``on_rows(k, M)`` is called (from the worker threads) after each block of ``k`` of the
    ``M`` rows (for a progress bar); ``inspect(first_row, rows)`` sees each block of rows in
    the input dtype while it is at hand, before its pages are released (the checks' facts,
    :class:`lossctl.core.facts.FactsCollector`, in the same pass).
    """
    x = np.asarray(rows)
    if x.ndim == 0:
        raise ValueError("logits need at least one axis (the classes)")
    cdt = _compute_dtype(x.dtype, precision)
    lead = x.shape[:-1]
    count, classes = math.prod(lead), x.shape[-1]
    t = np.asarray(targets)
    if t.dtype.kind not in "iu":
        raise TypeError(f"targets must be integers, got dtype {t.dtype}")
    t = t.reshape(-1).astype(np.intp, copy=False)
    if t.shape[0] != count:
        raise ValueError(f"{t.shape[0]} targets for {count} rows")
    out = np.empty(count)
    if count == 0:
        return out.reshape(lead)
    if classes == 0:
        raise ValueError("logits have 0 classes")
    if t.min() < 0 or t.max() >= classes:
        raise ValueError(f"targets must be class indices in [0, {classes})")

    source = RowSource(x)
    step = min(count, max(1, block_bytes // (classes * cdt.itemsize)))
    blocks = [(r0, min(r0 + step, count)) for r0 in range(0, count, step)]
    workers = threads.default_workers() if workers is None else max(1, int(workers))
    workers = min(workers, len(blocks))

    def work(todo: Iterator[tuple[int, int]]) -> None:
        buffer = np.empty((step, classes), dtype=cdt)
        nested = getattr(_in_worker, "active", False)
        _in_worker.active = True
        try:
            for r0, r1 in todo:
                block = source.block(r0, r1)
                _nll_block(block, t[r0:r1], buffer[: r1 - r0], out[r0:r1])
                if inspect is not None:
                    inspect(r0, block)
                source.release(r0, r1)
                if on_rows is not None:
                    on_rows(r1 - r0, count)
        finally:
            _in_worker.active = nested

    if workers == 1 or getattr(_in_worker, "active", False):
        work(iter(blocks))
    else:
        shared = _Shared(blocks)
        futures = []
        try:
            for _ in range(workers):
                futures.append(_pool(workers).submit(work, shared))
        except RuntimeError:  # "can't start new thread" (ulimit -v, -u): fewer threads
            _drop_pool(workers)
            work(shared)  # this thread takes the blocks no worker has taken
        for future in futures:
            future.result()
    return out.reshape(lead)


class _Shared(Iterator[tuple[int, int]]):
    """A thread-safe iterator over the blocks: each is handed out exactly once."""

    def __init__(self, blocks: list[tuple[int, int]]) -> None:
        self._blocks = blocks
        self._next = itertools.count()
        self._lock = threading.Lock()

    def __next__(self) -> tuple[int, int]:
        with self._lock:
            i = next(self._next)
        if i >= len(self._blocks):
            raise StopIteration
        return self._blocks[i]


class RowSource:
    """Blocks of rows of a ``(..., C)`` array, as ``(k, C)`` arrays, without copying it whole."""

    def __init__(self, x: npt.NDArray[np.generic]) -> None:
        self.x = x
        self.lead = x.shape[:-1]
        self.flat = _flat_rows(x)  # (M, C) view, or None when the layout has none
        self._mm: mmap.mmap | None = None
        self._base = 0
        flat = self.flat
        if flat is not None and flat.strides[0] >= abs(flat.strides[1]) * flat.shape[1] > 0:
            self._mm, self._base = _shared_mapping(flat)  # rows lie one after another

    def block(self, r0: int, r1: int) -> npt.NDArray[np.generic]:
        """Rows ``r0:r1`` as a view if possible, else a gathered copy in the input dtype."""
        if self.flat is not None:
            return self.flat[r0:r1]
        index = np.unravel_index(np.arange(r0, r1), self.lead)
        return self.x[index]

    def release(self, r0: int, r1: int) -> None:
        """``madvise(MADV_DONTNEED)`` the file pages under rows ``r0:r1`` of a memmap."""
        if self._mm is None or self.flat is None:
            return
        row_bytes = self.flat.strides[0]
        address = self.flat.__array_interface__["data"][0]
        start = address - self._base + r0 * row_bytes
        end = address - self._base + r1 * row_bytes
        start -= start % mmap.PAGESIZE
        end = min(end, len(self._mm))
        if end > start:
            try:
                self._mm.madvise(mmap.MADV_DONTNEED, start, end - start)
            except (OSError, ValueError):  # pragma: no cover - best effort only
                self._mm = None


def _flat_rows(x: npt.NDArray[np.generic]) -> npt.NDArray[np.generic] | None:
    """``x`` as an (M, C) view when the leading axes merge without a copy, else None."""
    if x.ndim == 2:
        return x
    lead = [(n, s) for n, s in zip(x.shape[:-1], x.strides[:-1], strict=True) if n != 1]
    if any(n == 0 for n, _ in lead):
        return None
    for (_, outer), (inner_n, inner) in itertools.pairwise(lead):
        if outer != inner * inner_n:
            return None
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])  # a view: the axes merge


def _shared_mapping(flat: npt.NDArray[np.generic]) -> tuple[mmap.mmap | None, int]:
    """The shared ``mmap`` under an array (a memmap not opened ``"c"``) and its address."""
    base: object = flat
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap):
            mm = getattr(base, "_mmap", None)
            if isinstance(mm, mmap.mmap) and base.mode != "c" and hasattr(mm, "madvise"):
                try:
                    address = np.frombuffer(mm, np.uint8).__array_interface__["data"][0]
                except (TypeError, ValueError):  # pragma: no cover - a closed mapping
                    return None, 0
                return mm, int(address)
            return None, 0
        base = base.base
    return None, 0


def _nll_block(
    rows: npt.NDArray[np.generic],
    targets: npt.NDArray[np.intp],
    buffer: npt.NDArray[np.floating],
    out: FloatArray,
) -> None:
    """Losses of the (k, C) ``rows`` into ``out``, using ``buffer`` (k, C) as scratch."""
    k, classes = rows.shape
    every = np.arange(k)
    limits = _LIMITS[buffer.dtype]
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if rows.dtype == buffer.dtype and (rows.strides[1] == rows.itemsize or classes == 1):
            np.exp(rows, out=buffer)  # contiguous rows in the compute dtype: read in place
        else:
            np.copyto(buffer, rows, casting="unsafe")
            np.exp(buffer, out=buffer)
        # exp is increasing, so the argmax of the (cached) terms is a maximum of the row, up
        # to ties made by exp's rounding, which the formula tolerates (any reference works).
        top = np.argmax(buffer, axis=1)
        m = rows[every, top].astype(np.float64)
        picked = rows[every, targets].astype(np.float64)
        buffer[every, top] = 0.0
        total = _row_sums(buffer)
        tail = total * np.exp(-m)
        # NaN, ±inf, overflowing or underflowing rows: as core does it, in float64.
        redo = ~((m <= limits.max_logit) & (total > (classes - 1) * limits.min_sum_per_term))
        if redo.any():
            where = np.flatnonzero(redo)
            tail[where], m[where] = _shifted(rows, where, buffer.nbytes // 8)
        np.log1p(tail, out=tail)
        tail += m - picked
        tail[~np.isfinite(m)] = np.nan
    out[:] = tail


def _row_sums(terms: npt.NDArray[np.floating]) -> FloatArray:
    """Row sums in float64; float32 rows are first folded pairwise in place (<= 8 terms each)."""
    sums: FloatArray
    if terms.dtype == np.float64:
        sums = np.add.reduce(terms, axis=1)
        return sums
    width = terms.shape[1]
    for _ in range(_FOLDS if width >= _FOLD_MIN_CLASSES else 0):
        half = width // 2
        np.add(terms[:, :half], terms[:, width - half : width], out=terms[:, :half])
        width -= half
    sums = np.add.reduce(terms[:, :width], axis=1, dtype=np.float64)
    return sums


def _shifted(
    rows: npt.NDArray[np.generic], where: npt.NDArray[np.intp], budget: int
) -> tuple[FloatArray, FloatArray]:
    """``tail = sum_{c != argmax} exp(x_c - m)`` and ``m`` in float64 for the rows ``where``."""
    tails, maxima = np.empty(where.shape[0]), np.empty(where.shape[0])
    step = max(1, budget // max(1, rows.shape[1]))
    for s0 in range(0, where.shape[0], step):
        chunk = np.asarray(rows[where[s0 : s0 + step]], dtype=np.float64)
        every = np.arange(chunk.shape[0])
        top = np.argmax(chunk, axis=1)
        maxima[s0 : s0 + step] = m = chunk[every, top]
        chunk -= m[:, None]
        np.exp(chunk, out=chunk)
        chunk[every, top] = 0.0
        tails[s0 : s0 + step] = chunk.sum(axis=1)
    return tails, maxima
