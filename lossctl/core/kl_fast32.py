"""The KL of float32 blocks with ``exp`` in float32 and float64 accumulation (``precision="auto"``).

For float32 inputs the stream's cost is dominated by ``exp``, which NumPy evaluates about
four times faster in float32 (vectorised) than in float64. This module keeps the centred
form of :mod:`lossctl.core.kl_fast` — it is what makes nearly identical inputs accurate —
and moves only the probabilities and ``phi`` to float32::

    t_c = exp32(x_c),  S = sum_c t_c (float64),  p_c = fl32(t_c / S)
    d_c = x_c - y_c (float64, exact: see the range below);  e = d - d_k - a  (float64)
    KL  = log1p(sum_c p_c g(e_c) e_c**2)   (float64 sum),   g(e) = phi(e) / e**2

``g`` is a float32 polynomial for ``|e| <= 1/2`` (truncation <= 2**-26 relative) and
``(expm1(-e) + e) / e**2`` in float64 beyond. Every term is >= 0, so KL >= 0 by
construction (no clamping), identical rows give ``e = 0`` and exactly 0, and rows that
differ by a constant give 0 too (``d - d_k`` is exact).

**Error bound** (u = 2**-24, relative to the exact KL of the float32 rows, first order):
a relative error ``delta`` of every ``p_c`` (used consistently for the centre and the
weights) changes the KL by at most ``2 delta (2 + E_p|e|) KL`` (the derivative of
``E_p[d] + log E_p[exp(-d)]`` along a perturbation of p is ``sum dp_c h_c`` with
``|h_c| <= (phi(e_c) + Phi (1 + |e_c|)) / (1 + Phi)``, and ``Phi / (1 + Phi) <= KL``);
NumPy's float32 ``exp`` is within 2.47 ulp = 4.9u (measured on every 7th float32 in
[-80, 64]), so with the rounding of ``1/S`` and of ``t/S``, ``delta <= 7u``; ``g``, the
float32 products and the rounding of ``e`` to float32 add at most ``16u`` relative (all
terms are >= 0: relative errors do not grow in the sum). In all::

    |err| <= (44 + 14 E_p|e|) * u * KL          (u = 2**-24 = 6.0e-8)

The tests check it against mpmath and the float64 path; docs/kl.md has the measured
errors. The NLLs of the same pass (``S`` with the top term split off, as ``lossctl ce``
does: ``log1p(tail) + m - x_t``) are within ``5u`` relative (``exp``'s 2.5 ulp in ``tail``).

Rows outside the range where these steps are exact enough go to the float64 path of
:mod:`lossctl.core.kl_fast` (their values are the float64 ones): any non-finite value,
``max > 64``, ``min < -80``, ``max - min > 64`` (``p`` and ``t`` stay normal floats) or
``e_c < -60``; and blocks of more than 2**22 classes. ``x_c - y_c`` is exact in float64
when no nonzero ``|x_c|`` or ``|y_c|`` is below 2**-22; rows with one get the rounding
error back by TwoSum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.kl import two_difference
from lossctl.core.kl_fast import Soft, fast_kl, horner, poly_degree, scratch, wide_entries
from lossctl.core.spec import FloatArray

MAX_CLASSES = 1 << 22
_MAX_LOGIT = 64.0  # S <= C e**64: 1/S stays a normal float32
_MIN_LOGIT = -80.0  # exp32(x) stays normal (>= 2**-126)
_MAX_SPREAD = 64.0  # p_c >= e**-64 / C stays normal
_TINY_BITS = int(np.float32(2.0**-22).view(np.uint32))  # smaller nonzero |x|: d inexact
_ABS_MASK = 0x7FFFFFFF
_MIN_E = -60.0  # g(e) <= e**60 / 3600: no float32 overflow in p g
_POLY_LIMIT = 0.5
_DEGREE = poly_degree(_POLY_LIMIT, 2.0**-26)  # 7: truncation <= 2**-26 for |e| <= 1/2
_CACHE_VALUES = 1 << 18  # float32 values per polynomial pass: a whole 1 MiB chunk (fewer calls)


def in_range(
    raw: npt.NDArray[np.float32], maximum: FloatArray
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Rows of float32 ``raw`` (row maxima ``maximum``) that the float32 form serves, and
    those without a nonzero ``|x_c| < 2**-22`` (their differences are exact in float64)."""
    with np.errstate(invalid="ignore"):
        low = raw.min(axis=1).astype(np.float64)
        magnitude = scratch("magnitude", raw.shape, np.uint32)
        np.bitwise_and(raw.view(np.uint32), _ABS_MASK, out=magnitude)
        magnitude -= np.uint32(1)  # 0 wraps to the largest value: only nonzero |x| count
        smallest = magnitude.min(axis=1)
        ok: npt.NDArray[np.bool_] = (
            (maximum <= _MAX_LOGIT) & (low >= _MIN_LOGIT) & (maximum - low <= _MAX_SPREAD)
        )
    return ok, smallest >= _TINY_BITS - 1


def soft32(raw: npt.NDArray[np.float32], name: str) -> Soft:
    """The :class:`Soft` pieces of a float32 block; ``terms`` holds the normalised float32
    probabilities (``norm`` is 1). Rows out of range get the float64 ``log_norm``."""
    count = raw.shape[0]
    every = np.arange(count)
    top = np.argmax(raw, axis=1)
    maximum = raw[every, top].astype(np.float64)
    fast, plain = in_range(raw, maximum)
    probs: npt.NDArray[np.float32] = scratch(name, raw.shape, np.float32)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        np.exp(raw, out=probs)
        probs[every, top] = 0.0
        tail_sum = probs.sum(axis=1, dtype=np.float64)  # the top term split off, as ce does
        top_term = np.exp(maximum)
        tail = tail_sum / top_term
        log_norm = np.log1p(tail)
        scale = (1.0 / (top_term + tail_sum)).astype(np.float32)
        probs *= scale[:, None]
        probs[every, top] = 1.0 / (1.0 + tail)
    slow = np.flatnonzero(~fast)
    if slow.size:  # NaN, inf or out of range: the float64 pieces (same bits as that path)
        reference = Soft.of(np.asarray(raw[slow], dtype=np.float64), "slow_terms")
        log_norm[slow] = reference.log_norm
    return Soft(raw, top, maximum, probs, log_norm, np.ones(count), fast, plain)


def _g32(e: FloatArray, high: FloatArray, low: FloatArray) -> npt.NDArray[np.float32]:
    """``phi(e) / e**2`` in float32 (``e`` float64, ``high``/``low`` its row extremes)."""
    part: npt.NDArray[np.float32] = scratch("e32", e.shape, np.float32)
    np.copyto(part, e, casting="unsafe")
    outside = wide_entries(e, high, low)
    if outside is not None:  # the values beyond the polynomial's range, in float64
        np.clip(part, -_POLY_LIMIT, _POLY_LIMIT, out=part)
    series: npt.NDArray[np.float32] = scratch("g32", e.shape, np.float32)
    horner(series, part, _DEGREE, _CACHE_VALUES)  # one degree: a row's bits never depend on
    # the other rows of its block, so the stream's result does not depend on the blocks
    if outside is not None:
        rows, cols, values = outside
        with np.errstate(over="ignore", invalid="ignore"):  # e < -60: the row is redone
            series[rows, cols] = (np.expm1(-values) + values) / (values * values)
    return series


def _differences(xs: npt.NDArray[Any], ys: npt.NDArray[Any], top: Any, exact: Any) -> FloatArray:
    """``e = d - d_k`` in float64 (``d = x - y``, ``k = top``): ``d`` is exact in the
    rows ``exact``; elsewhere its rounding error (TwoSum) is added back."""
    e: FloatArray = scratch("d64", xs.shape)
    np.subtract(xs, ys, out=e, dtype=np.float64)
    every = np.arange(xs.shape[0])
    inexact = np.flatnonzero(~exact)
    lo = None
    if inexact.size:  # a nonzero |x_c| < 2**-22: d_c may have been rounded
        x64, y64 = np.asarray(xs[inexact], np.float64), np.asarray(ys[inexact], np.float64)
        lo = two_difference(x64, y64)[1]
        lo -= lo[np.arange(inexact.size), top[inexact]][:, None]
    e -= e[every, top][:, None]  # one rounding, relative to e
    if lo is not None:
        e[inexact] += lo
    return e


def fast_kl32(
    sx: Soft, y: npt.NDArray[np.float32], y_fast: npt.NDArray[np.bool_], y_plain: Any
) -> FloatArray:
    """KL(softmax(sx.rows) || softmax(y)) per row of float32 rows (``sx`` from :func:`soft32`,
    ``y_fast, y_plain`` = :func:`in_range` of ``y``); rows out of range by the float64 path."""
    x = sx.rows
    count = x.shape[0]
    out = np.empty(count)
    fast = sx.fast & y_fast
    exact = sx.plain & y_plain
    rows = np.flatnonzero(fast)
    if rows.size:
        if rows.size == count:  # the usual case: no copies
            xs, ys, probs, top, exact = x, y, sx.terms, sx.top, exact
        else:
            xs, ys, probs = x[rows], y[rows], sx.terms[rows]
            top, exact = sx.top[rows], exact[rows]
        e = _differences(xs, ys, top, exact)
        for _ in range(2):  # centre: E_p[e] = 0 up to a rounding residual (second order)
            e -= np.einsum("ij,ij->i", probs, e)[:, None]
        high, low = e.max(axis=1), e.min(axis=1)
        weights = _g32(e, high, low)
        with np.errstate(over="ignore", invalid="ignore"):
            weights *= probs
            out[rows] = np.log1p(np.einsum("ij,ij,ij->i", weights, e, e))
        fast[rows[low < _MIN_E]] = False
    slow = np.flatnonzero(~fast)
    if slow.size:
        xs64 = np.asarray(x[slow], dtype=np.float64)
        out[slow] = fast_kl(Soft.of(xs64, "slow_terms"), np.asarray(y[slow], dtype=np.float64))
    return out


def kl_pieces32(
    ref: npt.NDArray[np.float32], oth: npt.NDArray[np.float32], other_soft: bool, reverse: bool
) -> tuple[Soft, Soft | None, FloatArray, FloatArray | None]:
    """Both inputs' pieces (the other's only when ``other_soft``), KL and reverse KL."""
    soft_r = soft32(ref, "probs_ref")
    soft_o = soft32(oth, "probs_other") if other_soft else None
    if soft_o is not None:
        oth_fast, oth_plain = soft_o.fast, soft_o.plain
    else:
        oth_fast, oth_plain = in_range(oth, np.max(oth, axis=1).astype(np.float64))
    forward = fast_kl32(soft_r, oth, oth_fast, oth_plain)
    back = None
    if soft_o is not None and reverse:
        back = fast_kl32(soft_o, ref, soft_r.fast, soft_r.plain)
    return soft_r, soft_o, forward, back


def eligible(ref: npt.NDArray[Any], oth: npt.NDArray[Any]) -> bool:
    """Whether a block goes by the float32 form: float32 inputs of at most 2**22 classes."""
    return (
        ref.dtype == np.float32
        and oth.dtype == np.float32
        and ref.ndim == 2
        and 0 < ref.shape[1] <= MAX_CLASSES
    )


__all__ = ["MAX_CLASSES", "eligible", "fast_kl32", "in_range", "kl_pieces32", "soft32"]
