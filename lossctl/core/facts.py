"""Facts about an input's rows, computed block by block in bounded memory (pure NumPy).

A *row* is one position's values along the class axis. :func:`facts_of_block` computes the
:class:`InputFacts` of a ``(k, C)`` block of rows; :meth:`InputFacts.merge` combines the
facts of consecutive blocks (or of shards) into the facts of them all, so a pass that
already reads the rows block by block (a loss kernel) can fill them on the way.
:func:`facts_of_array` is that pass on its own: blocks of about ``BLOCK_BYTES`` of the
input, the file pages of a memory-mapped input released after each block, and extra memory
of a few blocks (no full-size float64 or boolean copy of the input).

Rows holding NaN or ``+inf`` are *bad*: they are counted and located but left out of the
value range, the row sums and the log-sum-exp, which describe the *usable* rows.

:func:`kind_of` reads the facts as logits, probabilities or log-probabilities:

* **probabilities**: every value of every usable row is finite and in [0, 1] and each
  row's sum is within ``PROB_SUM_TOL`` of 1;
* **log-probabilities**: every value is ≤ ``LOGPROB_MAX`` and each row's log-sum-exp is
  within ``LSE_TOL`` of 0;
* anything else is **logits** (``unknown`` when no row is usable).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from lossctl.core.kernels import BLOCK_BYTES, RowSource

InputKind = Literal["logits", "probabilities", "log-probabilities", "unknown"]
FactsMode = Literal["none", "plain", "logsumexp"]  # what a loss pass collects on the way

PROB_SUM_TOL = 1e-3
LOGPROB_MAX = 1e-6
LSE_TOL = 1e-3
FLOAT16_MAX = 65504.0
FIRST_ROWS = 20  # flagged rows listed (the first ones, by row index)


def _lower(a: float | None, b: float | None) -> float | None:
    """The smaller of two (NaN wins, as ``np.min`` lets it); ``None`` if either is missing."""
    return None if a is None or b is None else float(np.minimum(a, b))


def _upper(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else float(np.maximum(a, b))


def _first(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(a + b)[:FIRST_ROWS])


def _joined(
    a: npt.NDArray[np.intp] | None, b: npt.NDArray[np.intp] | None
) -> npt.NDArray[np.intp] | None:
    """Both row lists in order (``None`` when either is untracked)."""
    return None if a is None or b is None else np.union1d(a, b).astype(np.intp)


class InputFacts(NamedTuple):
    """What the checks need to know about rows of an input, mergeable block by block.

    ``low``/``high`` are the smallest/largest finite values of the usable rows (``+inf`` /
    ``-inf`` when there is none); ``sum_*`` the range of the usable rows' float64 sums and
    ``lse_*`` of their log-sum-exp (NaN for a row of only ``-inf``), ``None`` where a block
    skipped them (sums: a value outside [0, 1] or a ``-inf``; log-sum-exp: not asked for
    and a value above ``LOGPROB_MAX``, so the kind cannot depend on them). The float16
    fields are 0 for other dtypes.
    """

    classes: int
    rows: int = 0
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    bad_rows: int = 0  # rows holding NaN or +inf
    bad_first: tuple[int, ...] = ()
    neginf_rows: int = 0  # rows holding -inf (bad or not)
    neginf_first: tuple[int, ...] = ()
    usable_neginf_rows: int = 0  # usable rows holding -inf
    low: float = math.inf
    high: float = -math.inf
    row_max_min: float = math.inf  # per-row maximum of the usable rows, its range
    row_max_max: float = -math.inf
    abs_max: float = 0.0  # the largest finite |x| of every row
    sum_min: float | None = math.inf
    sum_max: float | None = -math.inf
    lse_min: float | None = math.inf
    lse_max: float | None = -math.inf
    float16_saturated: int = 0  # values at ±65504
    float16_wide_rows: int = 0  # rows whose finite values span more than 65504
    # every row holding -inf, in order (``None``: not tracked; then a check that needs them
    # reads every row again). Filled by :class:`FactsCollector`, not by merging blocks.
    neginf_index: npt.NDArray[np.intp] | None = None

    def merge(self, other: InputFacts) -> InputFacts:
        """The facts of the rows of ``self`` and of ``other`` together."""
        if other.classes != self.classes:
            raise ValueError(f"facts of {self.classes} and {other.classes} classes do not merge")
        return InputFacts(
            classes=self.classes,
            rows=self.rows + other.rows,
            nan=self.nan + other.nan,
            posinf=self.posinf + other.posinf,
            neginf=self.neginf + other.neginf,
            bad_rows=self.bad_rows + other.bad_rows,
            bad_first=_first(self.bad_first, other.bad_first),
            neginf_rows=self.neginf_rows + other.neginf_rows,
            neginf_first=_first(self.neginf_first, other.neginf_first),
            usable_neginf_rows=self.usable_neginf_rows + other.usable_neginf_rows,
            low=min(self.low, other.low),
            high=max(self.high, other.high),
            row_max_min=min(self.row_max_min, other.row_max_min),
            row_max_max=max(self.row_max_max, other.row_max_max),
            abs_max=max(self.abs_max, other.abs_max),
            sum_min=_lower(self.sum_min, other.sum_min),
            sum_max=_upper(self.sum_max, other.sum_max),
            lse_min=_lower(self.lse_min, other.lse_min),
            lse_max=_upper(self.lse_max, other.lse_max),
            float16_saturated=self.float16_saturated + other.float16_saturated,
            float16_wide_rows=self.float16_wide_rows + other.float16_wide_rows,
            neginf_index=_joined(self.neginf_index, other.neginf_index),
        )

    @property
    def nonfinite(self) -> int:
        return self.nan + self.posinf + self.neginf

    @property
    def usable_rows(self) -> int:
        return self.rows - self.bad_rows

    @property
    def value_min(self) -> float:
        """The smallest finite value of the usable rows (``-inf``: none is finite)."""
        return -math.inf if self.low > self.high else self.low

    @property
    def value_max(self) -> float:
        return self.high

    @property
    def all_nonpositive(self) -> bool:
        """Every value of the usable rows ≤ ``LOGPROB_MAX`` (log-probabilities' range)."""
        return self.value_max <= LOGPROB_MAX

    @property
    def all_in_unit_interval(self) -> bool:
        """Every value of the usable rows finite and in [0, 1]."""
        return self.usable_neginf_rows == 0 and self.value_min >= 0.0 and self.value_max <= 1.0

    @property
    def rows_sum_to_one(self) -> bool:
        """Every usable row is in [0, 1] and sums to 1 within ``PROB_SUM_TOL``."""
        if not self.all_in_unit_interval or self.sum_min is None or self.sum_max is None:
            return False
        return abs(self.sum_min - 1.0) <= PROB_SUM_TOL and abs(self.sum_max - 1.0) <= PROB_SUM_TOL

    @property
    def lse_near_zero(self) -> bool:
        if self.lse_min is None or self.lse_max is None:
            return False
        return abs(self.lse_min) <= LSE_TOL and abs(self.lse_max) <= LSE_TOL


def kind_of(facts: InputFacts) -> InputKind:
    """What the rows hold (thresholds: module doc)."""
    if facts.rows == 0 or facts.classes == 0 or facts.usable_rows == 0:
        return "unknown"
    if facts.rows_sum_to_one:
        return "probabilities"
    if facts.all_nonpositive and facts.lse_near_zero:
        return "log-probabilities"
    return "logits"


def facts_of_block(
    rows: npt.NDArray[Any], first_row: int = 0, *, logsumexp: bool = False
) -> InputFacts:
    """The facts of a ``(k, C)`` block of rows, the first of which is row ``first_row``.

    ``logsumexp`` asks for the log-sum-exp range even where the kind does not need it.
    Extra memory: a few arrays of the block's size.
    """
    return _block_facts(rows, first_row, logsumexp)[0]


def _block_facts(
    rows: npt.NDArray[Any], first_row: int, logsumexp: bool
) -> tuple[InputFacts, npt.NDArray[np.bool_] | None]:
    """:func:`facts_of_block` and, when the block holds -inf, which of its rows do."""
    count, classes = rows.shape
    if count == 0 or classes == 0:
        return InputFacts(classes=classes, rows=count), None
    maxima = rows.max(axis=1)
    low, high = float(rows.min()), float(maxima.max())
    neginf_rows = None
    if math.isfinite(low) and math.isfinite(high):
        usable, facts = rows, InputFacts(classes=classes, rows=count, low=low, high=high)
        facts = _with(facts, abs_max=max(-low, high, 0.0))
    else:
        usable, maxima, facts, neginf_rows = _nonfinite_block(rows, first_row)
    if maxima.size:
        facts = _with(facts, row_max_min=float(maxima.min()), row_max_max=float(maxima.max()))
    if not (facts.usable_neginf_rows == 0 and facts.low >= 0.0 and facts.high <= 1.0):
        facts = _with(facts, sum_min=None, sum_max=None)
    elif usable.shape[0]:
        sums = usable.sum(axis=1, dtype=np.float64)
        facts = _with(facts, sum_min=float(np.min(sums)), sum_max=float(np.max(sums)))
    if not (logsumexp or facts.high <= LOGPROB_MAX):
        facts = _with(facts, lse_min=None, lse_max=None)
    elif usable.shape[0]:
        lse = _logsumexp(usable)
        facts = _with(facts, lse_min=float(np.min(lse)), lse_max=float(np.max(lse)))
    if rows.dtype == np.float16:
        facts = _with(facts, **_float16_facts(rows))
    return facts, (neginf_rows if facts.neginf else None)


def _with(facts: InputFacts, **changes: Any) -> InputFacts:
    return facts._replace(**changes)


def _nonfinite_block(
    rows: npt.NDArray[Any], first_row: int
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], InputFacts, npt.NDArray[np.bool_]]:
    """Facts of a block holding NaN or ±inf: its usable rows, their maxima, the counts and
    which rows hold -inf."""
    nan, posinf, neginf = np.isnan(rows), np.isposinf(rows), np.isneginf(rows)
    bad = nan.any(axis=1) | posinf.any(axis=1)
    has_neginf: npt.NDArray[np.bool_] = np.asarray(neginf.any(axis=1))
    usable = rows[~bad]
    finite_usable = usable[np.isfinite(usable)]
    finite_all = rows[np.isfinite(rows)]
    facts = InputFacts(
        classes=int(rows.shape[1]),
        rows=int(rows.shape[0]),
        nan=int(np.count_nonzero(nan)),
        posinf=int(np.count_nonzero(posinf)),
        neginf=int(np.count_nonzero(neginf)),
        bad_rows=int(np.count_nonzero(bad)),
        bad_first=tuple(int(i) + first_row for i in np.flatnonzero(bad)[:FIRST_ROWS]),
        neginf_rows=int(np.count_nonzero(has_neginf)),
        neginf_first=tuple(int(i) + first_row for i in np.flatnonzero(has_neginf)[:FIRST_ROWS]),
        usable_neginf_rows=int(np.count_nonzero(has_neginf & ~bad)),
        low=float(np.min(finite_usable)) if finite_usable.size else math.inf,
        high=float(np.max(finite_usable)) if finite_usable.size else -math.inf,
        abs_max=float(np.max(np.abs(finite_all))) if finite_all.size else 0.0,
    )
    return usable, usable.max(axis=1), facts, has_neginf


def _logsumexp(rows: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """log Σ exp of each row in float64: ``m + log Σ exp(x - m)``, NaN if ``m`` is ±inf."""
    block = np.array(rows, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        maximum = block.max(axis=1)
        block -= maximum[:, None]
        np.exp(block, out=block)
        return maximum + np.log(block.sum(axis=1))  # type: ignore[no-any-return]


def _float16_facts(rows: npt.NDArray[Any]) -> dict[str, int]:
    """Values at ±65504 and rows whose finite values span more than 65504."""
    saturated = int(np.count_nonzero(np.abs(rows) == np.float16(FLOAT16_MAX)))
    finite = np.isfinite(rows)
    wide64 = rows.astype(np.float64)
    high = np.where(finite, wide64, -np.inf).max(axis=1)
    low = np.where(finite, wide64, np.inf).min(axis=1)
    with np.errstate(invalid="ignore"):
        wide = int(np.count_nonzero(high - low > FLOAT16_MAX))
    return {"float16_saturated": saturated, "float16_wide_rows": wide}


def row_blocks(
    x: npt.NDArray[Any], axis: int, block_bytes: int = BLOCK_BYTES
) -> Iterator[tuple[int, npt.NDArray[Any]]]:
    """``(first_row, rows)`` of ``x`` with ``axis`` last, in blocks of about ``block_bytes``.

    The rows are views where the layout allows (gathered copies otherwise); the pages of a
    memory-mapped ``x`` are released after each block is used.
    """
    moved = np.moveaxis(x, axis, -1)
    count, classes = math.prod(moved.shape[:-1]), int(moved.shape[-1])
    if count == 0:
        return
    source = RowSource(moved)
    step = max(1, block_bytes // max(1, classes * x.dtype.itemsize))
    for start in range(0, count, step):
        stop = min(count, start + step)
        yield start, source.block(start, stop).reshape(stop - start, classes)
        source.release(start, stop)


def named_rows(
    x: npt.NDArray[Any], axis: int, named: npt.NDArray[np.intp], block_bytes: int = BLOCK_BYTES
) -> Iterator[tuple[npt.NDArray[np.intp], npt.NDArray[Any]]]:
    """``(indices, rows)`` of only the rows ``named`` (ascending row indices) of ``x`` with
    ``axis`` last, gathered in blocks of about ``block_bytes``; the pages of a memory-mapped
    ``x`` under each block are released after it is used."""
    moved = np.moveaxis(x, axis, -1)
    classes = int(moved.shape[-1])
    source = RowSource(moved)
    step = max(1, block_bytes // max(1, classes * x.dtype.itemsize))
    for start in range(0, named.shape[0], step):
        index = named[start : start + step]
        if source.flat is not None:
            rows = source.flat[index]
        else:
            rows = moved[np.unravel_index(index, moved.shape[:-1])]
        yield index, rows.reshape(index.shape[0], classes)
        source.release(int(index[0]), int(index[-1]) + 1)


def facts_of_array(
    x: npt.NDArray[Any], axis: int, *, logsumexp: bool = False, block_bytes: int = BLOCK_BYTES
) -> InputFacts:
    """The facts of every row of ``x`` along ``axis``, block by block (module doc)."""
    if x.size == 0:  # no value to read: (10**12, 0) has 10**12 empty rows
        rows = math.prod(n for i, n in enumerate(x.shape) if i != axis % x.ndim)
        none = np.zeros(0, dtype=np.intp)
        return InputFacts(classes=int(x.shape[axis]), rows=rows, neginf_index=none)
    collector = FactsCollector(int(x.shape[axis]), logsumexp=logsumexp)
    for start, rows in row_blocks(x, axis, block_bytes):
        collector.add(start, rows)
    return collector.facts()


class FactsCollector:
    """The facts of the blocks one pass reads, in whatever order (and from whatever threads)
    they come: ``add(first_row, rows)`` per block while it is at hand, :meth:`facts` at the
    end. Also records which rows hold -inf (one byte per row, only once one does), so a
    check that needs those rows reads only them again."""

    def __init__(self, classes: int, *, logsumexp: bool = False) -> None:
        self.logsumexp = logsumexp
        self._facts = InputFacts(classes=classes)
        self._neginf: dict[int, npt.NDArray[np.intp]] = {}
        self._lock = threading.Lock()
        self.blocks = 0  # blocks seen (the tests count them)

    def add(self, first_row: int, rows: npt.NDArray[Any]) -> None:
        """Fold the facts of ``rows`` (the rows from ``first_row`` on) into the pass's."""
        facts, neginf = _block_facts(rows, first_row, self.logsumexp)
        index = None if neginf is None else np.flatnonzero(neginf) + first_row
        with self._lock:
            self._facts = self._facts.merge(facts)
            self.blocks += 1
            if index is not None:
                self._neginf[first_row] = index

    def facts(self) -> InputFacts:
        """The facts of every block added, with the rows holding -inf in order."""
        with self._lock:
            parts = [self._neginf[start] for start in sorted(self._neginf)]
            index = np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)
            return self._facts._replace(neginf_index=index.astype(np.intp, copy=False))
