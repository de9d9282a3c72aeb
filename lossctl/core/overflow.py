"""Per-row losses and gradient scales computed in a scaled order where the plain one overflows.

The plain formulas (``w·(log1p(tail) + m - x_t)``, ``(eps/C)·Σ w_c·(-logp_c)``,
``w[t]/Σw``) overflow for finite inputs whose result is finite: logits ``±1e308`` (the
difference ``m - x_t`` is ``2e308``), weights ``1e308`` (``Σ w`` is ``inf``). Every loss
of a row is ``Σ_c k_c·nll_c`` with ``nll_c = log1p(tail) + (m - x_c) ≥ 0`` and finite
coefficients ``k``; :func:`scaled_row_losses` evaluates it with the logits scaled by
``2**-(2 + bits(C))`` and the coefficients by a power of two below their maximum (both
exact), then scales back once with :func:`numpy.ldexp` (``inf`` only when the result
is). It is used only for the rows where the plain result is not finite, so every other
row keeps its bits. Gradients use weights divided by the power of two of the largest
weight (:func:`weight_scale`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from lossctl.core.exactsum import ExactSum, exact_sum
from lossctl.core.rows import log_softmax_rows, row_stats
from lossctl.core.spec import FloatArray


def _exponent(values: FloatArray) -> npt.NDArray[np.int64]:
    """Per row, ``e`` with ``max |values| < 2**e`` (0 for an all-zero row)."""
    top = np.max(np.abs(values), axis=1) if values.shape[1] else np.zeros(values.shape[0])
    return np.asarray(np.frexp(top)[1], dtype=np.int64)


def scaled_row_losses(rows: FloatArray, coefficients: FloatArray) -> FloatArray:
    """``Σ_c k_c·(-log softmax(x)_c)`` per row of finite (k, C) ``rows`` and ``coefficients``.

    No intermediate overflows: the result is ``inf`` only when the exact value is beyond
    float64. Rows must be finite (a NaN or infinite logit has its own, PyTorch, rules).
    """
    count, classes = rows.shape
    if count == 0 or classes == 0:
        return np.zeros(count)
    shift = 2 + int(classes).bit_length()
    x = np.ldexp(rows, -shift)  # exact unless a logit is far below the others' scale
    top = np.max(x, axis=1, keepdims=True)
    log_norm = row_stats(rows).log_norm  # log1p(tail) ≤ log C (x - m may be -inf: exp is 0)
    nll = (top - x) + np.ldexp(log_norm, -shift)[:, None]  # nll_c · 2**-shift, finite
    exponents = _exponent(coefficients)
    k = np.ldexp(coefficients, -exponents[:, None])  # |k| < 1
    partial = np.sum(k * nll, axis=1)  # |.| < C · 2**(1025 - shift): finite
    with np.errstate(over="ignore"):
        return np.asarray(np.ldexp(partial, exponents + shift), dtype=np.float64)


def weight_scale(weight: FloatArray | None) -> int:
    """``e`` such that ``weight · 2**-e`` has its largest magnitude in [0.5, 1) (0: no weight)."""
    if weight is None or weight.size == 0:
        return 0
    top = float(np.max(np.abs(weight)))
    if top == 0.0 or not math.isfinite(top):
        return 0
    return int(np.frexp(top)[1])


def gather_rows(
    array: npt.NDArray[np.generic], axis: int, flat: npt.NDArray[np.intp]
) -> FloatArray:
    """The (k, C) float64 rows of positions ``flat`` of ``array`` (classes on ``axis``),
    without copying the whole array."""
    moved = np.moveaxis(array, axis, -1)
    index = np.unravel_index(flat, moved.shape[:-1]) if moved.ndim > 1 else ()
    return np.asarray(moved[index], dtype=np.float64).reshape(flat.size, moved.shape[-1])


def repair_rows(
    per_row: FloatArray,
    candidates: npt.NDArray[np.bool_],
    rows_of: Callable[[npt.NDArray[np.intp]], FloatArray],
    coefficients_of: Callable[[npt.NDArray[np.intp]], FloatArray],
) -> None:
    """Recompute in place, with :func:`scaled_row_losses`, the ``candidates`` rows whose
    ``per_row`` loss is not finite although their logits and coefficients are."""
    with np.errstate(invalid="ignore"):
        flat = np.flatnonzero(candidates & ~np.isfinite(per_row))
    if flat.size == 0:
        return
    rows, coefficients = rows_of(flat), coefficients_of(flat)
    finite = np.all(np.isfinite(rows), axis=1) & np.all(np.isfinite(coefficients), axis=1)
    if finite.any():
        per_row[flat[finite]] = scaled_row_losses(rows[finite], coefficients[finite])


def index_coefficients(
    indices: npt.NDArray[np.intp],
    target_weight: FloatArray,
    weight: FloatArray | None,
    classes: int,
    eps: float,
) -> FloatArray:
    """``k_c = (1-eps)·w[t]·1[c = t] + (eps/C)·w_c`` for class-index targets."""
    base = np.ones(classes) if weight is None else np.asarray(weight, dtype=np.float64)
    k = np.repeat((eps / classes) * base[None, :], indices.size, axis=0)
    k[np.arange(indices.size), indices] += (1.0 - eps) * target_weight
    return k


def scaled_total(
    per_row: FloatArray, weight: FloatArray | None, losses: Callable[[int], FloatArray]
) -> ExactSum | None:
    """The exact sum of per-row losses that overflow only through large weights (the mean
    ``Σ w·l / Σ w`` can be finite): computed in units of ``2**e``; ``None`` otherwise."""
    e = weight_scale(weight)
    if e <= 0 or np.all(np.isfinite(per_row)):
        return None
    scaled = exact_sum(losses(e))
    return None if scaled is None else ExactSum(scaled.mantissa, scaled.exponent + e)


def smoothed_nll(
    eps: float,
    weight: FloatArray | None,
    rows: FloatArray,
    indices: npt.NDArray[np.intp],
    target_weight: FloatArray,
) -> FloatArray:
    """``(1-eps)·w[t]·(-logp[t]) + (eps/C)·sum_c w_c·(-logp_c)`` per row."""
    classes = rows.shape[1]
    stats = row_stats(rows)
    shifted_target = np.take_along_axis(stats.shifted, indices[:, None], axis=1)[:, 0]
    logp = log_softmax_rows(rows, stats)
    with np.errstate(invalid="ignore", over="ignore"):
        nll = stats.log_norm - shifted_target
        smooth = -np.sum(logp if weight is None else logp * weight, axis=1)
        return np.asarray(
            (1.0 - eps) * (target_weight * nll) + (eps / classes) * smooth, dtype=np.float64
        )
