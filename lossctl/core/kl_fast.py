"""The per-block arithmetic of ``lossctl kl``: one log-softmax per input, shared by every statistic.

:func:`block_pieces` takes one block of (M, C) rows of both models (any real dtype, a
memory-mapped slice included) and returns the per-row KL, the top-1 / top-k agreement and,
with labels, both NLLs. Each input is max-shifted and exponentiated **once**
(:class:`Soft`); the KL, the NLLs and the reverse KL all read those terms.

KL (float64, the centred form of :func:`lossctl.core.kl._kl_rows_from_logits`)::

    t_c = exp(x_c - m),  S = 1 + sum_{c != argmax} t_c,  p_c = t_c / S
    d_c = x_c - y_c = hi_c + lo_c (exact, TwoSum);  e_c = d_c - d_k - a  (k = argmax x)
    a   = p-weighted mean of (d - d_k), taken twice, so E_p[e] is a rounding residual
    KL  = log1p(sum_c t_c phi(e_c) / S),   phi(e) = exp(-e) - 1 + e >= 0

``phi`` is a polynomial (``e**2 * sum_k (-e)**k / (k+2)!``, degree chosen from the block's
largest ``|e|``, truncation <= 2**-56 relative) for ``|e| <= 1/2`` and ``expm1(-e) + e``
beyond. Every term is >= 0, so KL >= 0 by construction, and identical rows give ``e = 0``
and exactly 0. **Error bound**: relative to the exact KL of the float64 rows,
``|err| <= (12 + log2 C) * eps + eps * max_c |x_c - m|`` (the last term is the rounding of
``x - m`` in ``p``, shared with the reference path; 0 for float32 inputs whose shifted
values are exact); the tests check it against the reference and mpmath.
Rows outside the fast form's range — any non-finite value, ``|x|`` or ``|y|`` beyond
2**500, ``x_c - m < -700`` (``t`` would be subnormal) or ``e_c < -600`` — are computed
by the reference :func:`lossctl.core.kl.kl_rows`, so their values are unchanged.

Speed: the (M, C) work arrays are per-thread buffers reused from block to block
(:func:`scratch`; a fresh temporary per operation costs more in page faults than the
arithmetic), the polynomial runs on row groups that stay in cache, and top-k ranks the
rows as stored (float32 stays float32: the order is exact). ``exp`` stays float64: a
float32 ``exp`` (2**-24 relative) could not meet the 1e-12 contract of the statistics.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.kl import kl_rows
from lossctl.core.spec import FloatArray
from lossctl.errors import InputError

_COEFFS = tuple((-1.0) ** k / math.factorial(k + 2) for k in range(16))
_POLY_LIMIT = 0.5  # |e| beyond this: expm1(-e) + e
_BIG = 2.0**500  # |logit| beyond this: reference path (differences could overflow)
_MIN_SHIFT = -700.0  # x - m below this: t would be subnormal (reference path)
_MIN_E = -600.0  # e below this: expm1(-e) could overflow (reference path)


_CACHE_VALUES = 1 << 14  # float64 values per polynomial pass (128 KiB: stays in L2)
_SCRATCH_MAX = 1 << 20  # values per reused buffer; larger arrays are allocated afresh
_local = threading.local()


def scratch(name: str, shape: tuple[int, int], dtype: npt.DTypeLike = np.float64) -> Any:
    """A per-thread reused buffer of ``shape`` (fresh when larger than a stream block):
    a fresh (M, C) temporary per operation costs page faults that dominate the pass."""
    size = shape[0] * shape[1]
    dt = np.dtype(dtype)
    if size > _SCRATCH_MAX:
        return np.empty(shape, dtype=dt)
    store: dict[tuple[str, str], npt.NDArray[Any]] | None = getattr(_local, "store", None)
    if store is None:
        store = _local.store = {}
    buffer = store.get((name, dt.str))
    if buffer is None or buffer.size < size:
        buffer = store[(name, dt.str)] = np.empty(max(size, 1), dtype=dt)
    return buffer[:size].reshape(shape)


def poly_degree(bound: float, target: float = 2.0**-56) -> int:
    """Smallest degree of the ``phi(e) / e**2`` series whose truncation is <= ``target``
    relative for |e| <= bound."""
    for n in range(len(_COEFFS)):
        if 2.0 * bound ** (n + 1) / math.factorial(n + 3) <= target:
            return n
    return len(_COEFFS) - 1


@dataclass
class Soft:
    """One input's log-softmax pieces of a block: computed once, read by every statistic."""

    rows: npt.NDArray[Any]  # the block (M, C): float64, or float32 from kl_fast32.soft32
    top: npt.NDArray[np.intp]  # first argmax (NaN counts as the maximum)
    maximum: FloatArray  # the row maxima (M,)
    terms: npt.NDArray[Any]  # exp(x - max) (M, C), 1 at the argmax; soft32: float32 p
    log_norm: FloatArray  # log1p(sum of the other terms) (M,)
    norm: FloatArray  # 1 + sum of the other terms = sum of terms (M,)
    fast: npt.NDArray[np.bool_]  # rows the fast KL form serves (finite, in range)
    plain: npt.NDArray[np.bool_] | None = None  # float32 form: no nonzero |x| < 2**-22

    @staticmethod
    def of(rows: FloatArray, name: str = "terms") -> Soft:
        """As :func:`lossctl.core.rows.row_stats` (same operations, same bits), in the
        reused buffer ``name``."""
        count = rows.shape[0]
        every = np.arange(count)
        with np.errstate(invalid="ignore", over="ignore", under="ignore"):
            top = np.argmax(rows, axis=1)
            maximum = rows[every, top]
            terms: FloatArray = scratch(name, rows.shape)
            np.subtract(rows, maximum[:, None], out=terms)
            np.exp(terms, out=terms)
            terms[every, top] = 0.0
            tail = terms.sum(axis=1)
            log_norm = np.log1p(tail)
            terms[every, top] = 1.0
            low = rows.min(axis=1)
            fast = (
                np.isfinite(maximum)
                & np.isfinite(low)
                & (np.abs(maximum) <= _BIG)
                & (np.abs(low) <= _BIG)
                & (low - maximum >= _MIN_SHIFT)
            )
        bad = ~np.isfinite(maximum)
        if bad.any():
            log_norm[bad] = np.nan
        return Soft(rows, top, maximum, terms, log_norm, 1.0 + tail, fast)

    def nll(self, labels: npt.NDArray[np.int64], keep: npt.NDArray[np.bool_]) -> FloatArray:
        """``-log softmax(x)[label]`` of the rows ``keep`` (``labels`` are theirs), as
        ``-((x - max) - log_norm)``: the reference's operations, so the same bits."""
        rows = np.flatnonzero(keep)
        with np.errstate(invalid="ignore"):
            shifted = self.rows[rows, labels] - self.maximum[rows]
            return np.asarray(-(shifted - self.log_norm[rows]), np.float64)


Entries = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]


def wide_entries(e: FloatArray, high: FloatArray, low: FloatArray) -> Entries | None:
    """The (rows, columns, values) of ``e`` beyond the polynomial's range (``|e| > 1/2``);
    ``high`` and ``low`` are the row maxima and minima."""
    wide = np.flatnonzero((high > _POLY_LIMIT) | (low < -_POLY_LIMIT))
    if not wide.size:
        return None
    sub = e[wide]
    flat = np.flatnonzero(np.abs(sub) > _POLY_LIMIT)  # 1-D: several times faster than 2-D
    r, c = np.divmod(flat, e.shape[1])
    return wide[r], c, sub[r, c]


def horner(series: npt.NDArray[Any], e: npt.NDArray[Any], degree: int, cache: int) -> None:
    """``series = sum_{k <= degree} (-e)**k / (k+2)!`` (``phi(e) / e**2``) in the dtype of
    ``series``, on row groups of about ``cache`` values (they stay in cache)."""
    coefficients = [series.dtype.type(value) for value in _COEFFS[: degree + 1]]
    step = max(1, cache // max(1, e.shape[1]))
    for start in range(0, e.shape[0], step):
        s, part = series[start : start + step], e[start : start + step]
        s.fill(coefficients[degree])
        for coefficient in coefficients[degree - 1 :: -1]:
            s *= part
            s += coefficient


def _phi_weighted_sum(e: FloatArray, terms: FloatArray) -> FloatArray:
    """``sum_c terms_c * phi(e_c)`` per row; ``e`` is overwritten (used as scratch)."""
    if e.size == 0:
        return np.zeros(e.shape[0])
    high, low = e.max(axis=1), e.min(axis=1)
    outside = wide_entries(e, high, low)
    bound = float(min(max(high.max(), -low.min()), _POLY_LIMIT))
    if outside is not None:  # the few values beyond the polynomial's range, evaluated directly
        values = outside[2]
        with np.errstate(over="ignore"):  # e < -709: the row is redone by the reference
            outside = (outside[0], outside[1], np.expm1(-values) + values)
        np.clip(e, -_POLY_LIMIT, _POLY_LIMIT, out=e)
    series: FloatArray = scratch("series", e.shape)
    horner(series, e, poly_degree(bound), _CACHE_VALUES)
    series *= e
    series *= e
    if outside is not None:
        series[outside[0], outside[1]] = outside[2]
    series *= terms
    return np.asarray(series.sum(axis=1), dtype=np.float64)


def fast_kl(sx: Soft, y: FloatArray) -> FloatArray:
    """KL(softmax(sx.rows) || softmax(y)) per row: the fast form where it applies, else the
    reference :func:`lossctl.core.kl.kl_rows` (see the module docstring)."""
    x = sx.rows
    count = x.shape[0]
    out = np.empty(count)
    if count == 0:
        return out
    with np.errstate(invalid="ignore"):
        high, low = y.max(axis=1), y.min(axis=1)
        fast = sx.fast & (high <= _BIG) & (low >= -_BIG)  # False for NaN and inf
    rows = np.flatnonzero(fast)
    if rows.size:
        every = np.arange(rows.size)
        if rows.size == count:  # the usual case: no copies
            xs, ys, terms, norm = x, y, sx.terms, sx.norm
        else:
            xs, ys, terms, norm = x[rows], y[rows], sx.terms[rows], sx.norm[rows]
        hi: FloatArray = np.subtract(xs, ys, out=scratch("hi", xs.shape))  # d = hi + lo
        lo: FloatArray = np.subtract(hi, xs, out=scratch("lo", xs.shape))  # exactly (TwoSum)
        tmp: FloatArray = np.subtract(hi, lo, out=scratch("series", xs.shape))
        np.subtract(xs, tmp, out=tmp)
        lo += ys
        np.subtract(tmp, lo, out=lo)  # (x - (hi - bb)) + (-y - bb),  bb = hi - x
        k = sx.top[rows]
        hi -= hi[every, k][:, None]
        lo -= lo[every, k][:, None]
        e = hi
        e += lo
        for _ in range(2):
            residual = np.einsum("ij,ij->i", terms, e) / norm
            e -= residual[:, None]
        ok = e.min(axis=1) >= _MIN_E
        total = _phi_weighted_sum(e, terms)
        out[rows] = np.log1p(total / norm)
        fast[rows[~ok]] = False
    slow = np.flatnonzero(~fast)
    if slow.size:
        out[slow] = kl_rows(x[slow], y[slow])
    return out


def kl_pieces64(
    ref: FloatArray, oth: FloatArray, other_soft: bool, reverse: bool, fast: bool, log_probs: bool
) -> tuple[Soft, Soft | None, FloatArray, FloatArray | None]:
    """Both inputs' float64 pieces, the KL and (with ``reverse``) the reverse KL."""
    soft_r = Soft.of(ref, "terms_ref")
    soft_o = Soft.of(oth, "terms_other") if other_soft else None
    by_fast = fast and not log_probs
    kl_all = fast_kl(soft_r, oth) if by_fast else kl_rows(ref, oth, log_probs=log_probs)
    back: FloatArray | None = None
    if reverse:
        assert soft_o is not None
        back = fast_kl(soft_o, ref) if by_fast else kl_rows(oth, ref, log_probs=log_probs)
    return soft_r, soft_o, kl_all, back


def _top_members_fast(raw: npt.NDArray[Any], k: int) -> npt.NDArray[np.bool_]:
    """(M, C) mask of the top-k classes (ties at the k-th value to lower indices); rows
    without NaN (NaN ranks highest: the caller sends those blocks to the reference)."""
    classes = raw.shape[1]
    ordered = scratch("partition", raw.shape, raw.dtype)
    np.copyto(ordered, raw)
    ordered.partition(classes - k, axis=1)
    kth = ordered[:, classes - k : classes - k + 1].copy()
    members: npt.NDArray[np.bool_] = raw >= kth
    crowded = np.flatnonzero(members.sum(axis=1) > k)  # ties at the k-th value: rare
    if crowded.size:
        above = raw[crowded] > kth[crowded]
        tied = raw[crowded] == kth[crowded]
        room = k - above.sum(axis=1, keepdims=True)
        members[crowded] = above | (tied & (np.cumsum(tied, axis=1) <= room))
    return members


_FOLDS = 6  # maxima of 2**6 = 64 values bound the k-th largest from below


def _top_columns(raw: npt.NDArray[Any], k: int) -> npt.NDArray[np.intp]:
    """(M, k) columns of the top-k classes (ties at the k-th value to lower indices), for
    rows without NaN. Folding a row in halves with ``maximum`` six times leaves maxima of
    disjoint groups of about 64 values; the k-th largest of them is a lower bound of the
    k-th largest value, so only the few values at or above it are ranked."""
    count, classes = raw.shape
    folded = scratch("folded", (count, (classes + 1) // 2), raw.dtype)
    half = classes // 2  # an odd middle column is kept (max is idempotent)
    np.maximum(raw[:, :half], raw[:, classes - half :], out=folded[:, :half])
    width = classes - half
    if width > half:
        folded[:, half] = raw[:, half]
    for _ in range(_FOLDS - 1):
        half = width // 2
        np.maximum(folded[:, :half], folded[:, width - half : width], out=folded[:, :half])
        width -= half
    floor = np.partition(folded[:, :width], width - k, axis=1)[:, width - k]
    flat = np.flatnonzero(raw >= floor[:, None])  # at least k per row
    rows, cols = np.divmod(flat, classes)
    order = np.lexsort((cols, -raw[rows, cols], rows))  # by row, value down, column up
    cols = cols[order]
    first = np.searchsorted(rows[order], np.arange(count))
    return np.asarray(cols[first[:, None] + np.arange(k)], dtype=np.intp)


def checked_labels(
    labels: npt.ArrayLike | None, count: int, classes: int, ignore_index: int
) -> tuple[npt.NDArray[np.bool_] | None, npt.NDArray[np.int64] | None]:
    """The rows to count (label != ignore_index) and their labels, checked to be in range."""
    if labels is None:
        return None, None
    raw = np.asarray(labels)
    if raw.dtype.kind not in "iu" or raw.shape != (count,):
        raise InputError(
            f"labels must be {count} integers, got dtype {raw.dtype} shape {list(raw.shape)}",
            "labels",
        )
    label_array = raw.astype(np.int64)
    keep = label_array != ignore_index
    bad = keep & ((label_array < 0) | (label_array >= classes))
    if bad.any():
        raise InputError(
            f"label {int(label_array[bad][0])} is out of bounds for {classes} classes", "labels"
        )
    return keep, label_array[keep]


def top_members(rows: FloatArray, k: int) -> npt.NDArray[np.bool_]:
    """(M, C) mask of the top-k classes; ties at the k-th value go to lower indices."""
    ranked = np.where(np.isnan(rows), np.inf, rows)
    kth = -np.partition(-ranked, k - 1, axis=1)[:, k - 1 : k]
    above = ranked > kth
    tied = ranked == kth
    room = k - above.sum(axis=1, keepdims=True)
    members: npt.NDArray[np.bool_] = above | tied
    crowded = np.flatnonzero(tied.sum(axis=1) > room[:, 0])  # ties beyond the k-th: rare
    if crowded.size:
        first = np.cumsum(tied[crowded], axis=1) <= room[crowded]
        members[crowded] = above[crowded] | (tied[crowded] & first)
    return members


def top_overlap(
    ref: npt.NDArray[Any],
    oth: npt.NDArray[Any],
    k: int,
    maxima: tuple[FloatArray | None, FloatArray | None] = (None, None),
) -> npt.NDArray[np.intp] | None:
    """|top-k ref ∩ top-k other| per row, or None when a NaN needs the reference ranking;
    ``maxima``: the rows' first-argmax values where known (NaN when a row holds one)."""
    count, classes = ref.shape
    if count == 0 or k == classes:
        return np.full(count, k, dtype=np.intp)
    with np.errstate(invalid="ignore"):
        for rows, known in zip((ref, oth), maxima, strict=True):
            if np.isnan(rows.max() if known is None else known.max()):
                return None
    if classes >= 2 ** (_FOLDS + 2) * k:  # wide rows: rank only the values above a bound
        a, b = _top_columns(ref, k), _top_columns(oth, k)
        return np.asarray((a[:, :, None] == b[:, None, :]).sum(axis=(1, 2)), dtype=np.intp)
    both = _top_members_fast(ref, k)
    both &= _top_members_fast(oth, k)
    return np.asarray(np.count_nonzero(both, axis=1), dtype=np.intp)


__all__ = ["Soft", "checked_labels", "fast_kl", "kl_pieces64", "top_members", "top_overlap"]
