"""KL divergence: ``torch.nn.functional.kl_div`` exactly, and per-position KL from logits.

Pure NumPy, float64 throughout; no I/O. Measured on torch 2.13 (CPU, float64):

* ``kl_div`` pointwise is ``xlogy(t, t) - t * x`` (``log_target=False``) or
  ``exp(t) * (t - x)`` (``log_target=True``). So a zero target gives 0 for finite
  input but **NaN for input ±inf or NaN** (``0 - 0 * inf``); a negative target is NaN;
  a positive target with input ``-inf`` is ``inf``.
* ``mean`` divides by the number of elements and warns (:class:`KLReductionMeanWarning`,
  torch's text); ``batchmean`` is ``sum / input.shape[0]`` (the *input's* first axis,
  even when broadcasting enlarged the result), and plain ``sum`` for a 0-d input.
  Empty: mean → nan, sum → 0, batchmean → ``0 / shape[0]`` (nan when ``shape[0] == 0``).
* Shapes broadcast as in torch; lossctl also warns (:class:`KLBroadcastWarning`), since a
  ``(N,)`` target against an ``(N, 1)`` input silently becomes ``(N, N)``.
* Integer inputs are converted to float64 (torch refuses them: a deliberate difference).

``kl_logits`` computes ``KL(P_ref || P_other)`` per position by a formula that cannot go
negative (see :func:`kl_logits`).
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
import numpy.typing as npt

from lossctl.core.exactsum import ExactSum, exact_mean, exact_sum
from lossctl.core.losses import FloatArray, log_softmax_rows, normalize_axis, row_stats
from lossctl.errors import InputError

KLReduction = Literal["none", "sum", "mean", "batchmean"]
KL_REDUCTIONS: tuple[KLReduction, ...] = ("none", "sum", "mean", "batchmean")
EPS = float(np.finfo(np.float64).eps)  # 2**-52

MEAN_WARNING = (
    "reduction: 'mean' divides the total loss by both the batch size and the support size."
    "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
    "'mean' will be changed to behave the same as 'batchmean' in the next major release."
)

# log_probs=True: a negative KL is set to 0 when |value| <= LOG_PROBS_CLAMP * eps * scale,
# scale = sum_c (p_c |x_c| + q_c |y_c| + |p_c (x_c - y_c)|) (rounding of the given
# log-probabilities and of the sum); larger negatives are left as they are.
LOG_PROBS_CLAMP = 4.0


class KLReductionMeanWarning(UserWarning):
    """``reduction='mean'`` divides by the element count, not the batch size (torch's text)."""


class KLBroadcastWarning(UserWarning):
    """``input`` and ``target`` differ in shape and were broadcast (torch does so silently)."""


def _float64(x: npt.ArrayLike, what: str) -> FloatArray:
    array = np.asarray(x)
    if array.dtype.kind not in "iuf":
        raise InputError(f"{what} must hold real numbers, got dtype {array.dtype}", what)
    return np.asarray(array, dtype=np.float64)


def kl_div_pointwise(input: FloatArray, target: FloatArray, log_target: bool) -> FloatArray:
    """torch's elementwise term on already broadcast float64 arrays."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if log_target:
            return np.asarray(np.exp(target) * (target - input), dtype=np.float64)
        # xlogy(t, t): 0 where t == 0 (NaN stays NaN); t * log(t) elsewhere.
        xlogy = np.where(target == 0, 0.0, target * np.log(target))
        return np.asarray(xlogy - target * input, dtype=np.float64)


def broadcast_shape(input_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape two different shapes broadcast to, as in torch, with a
    :class:`KLBroadcastWarning` for the caller of the caller (``kl_div``'s caller)."""
    try:
        shape = np.broadcast_shapes(input_shape, target_shape)
    except ValueError:
        raise InputError(
            f"input shape {list(input_shape)} and target shape {list(target_shape)} do not "
            "broadcast (torch: 'The size of tensor a must match the size of tensor b')"
        ) from None
    warnings.warn(
        f"input shape {list(input_shape)} and target shape {list(target_shape)} differ; both "
        f"were broadcast to {list(shape)} as torch does",
        KLBroadcastWarning,
        stacklevel=3,
    )
    return shape


def _total(values: FloatArray) -> float:
    exact = exact_sum(values)
    if exact is None:
        with np.errstate(invalid="ignore", over="ignore"):
            return float(np.sum(values))
    return exact.to_float()


def kl_div(
    input: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    reduction: str = "mean",
    log_target: bool = False,
) -> float | FloatArray:
    """``torch.nn.functional.kl_div(input, target, reduction=..., log_target=...)`` in float64.

    ``input`` holds log-probabilities, ``target`` probabilities (or log-probabilities with
    ``log_target=True``). Sums are exact and rounded once (torch rounds along the way:
    agreement is to ~1e-15 relative). Returns an array for ``reduction='none'``.
    """
    if reduction not in KL_REDUCTIONS:
        raise InputError(
            f"{reduction} is not a valid value for reduction (choose from "
            f"{', '.join(KL_REDUCTIONS)})"
        )
    x = _float64(input, "input")
    t = _float64(target, "target")
    if x.shape != t.shape:
        shape = broadcast_shape(x.shape, t.shape)
        xb, tb = np.broadcast_to(x, shape), np.broadcast_to(t, shape)
    else:
        xb, tb = x, t
    pointwise = kl_div_pointwise(xb, tb, log_target)
    if reduction == "none":
        return pointwise
    total = _total(pointwise)
    if reduction == "sum":
        return total
    if reduction == "mean":
        warnings.warn(MEAN_WARNING, KLReductionMeanWarning, stacklevel=2)
        denominator = float(pointwise.size)
    else:  # batchmean
        if x.ndim == 0:
            return total
        denominator = float(x.shape[0])
    return exact_mean(exact_sum(pointwise), ExactSum(int(denominator), 0), total)


# --------------------------------------------------------------------------- kl_logits

_SERIES = tuple((-1.0) ** k / math.factorial(k + 2) for k in range(20))


def _series(es: FloatArray) -> FloatArray:
    """``sum_k (-e)^k / (k+2)! = phi(e) / e**2`` for ``|e| <= 1`` (in (0.36, 0.72))."""
    series = np.full_like(es, _SERIES[-1])
    for coefficient in _SERIES[-2::-1]:
        series = series * es + coefficient
    return series


def _log_phi(e: FloatArray) -> FloatArray:
    """``log(exp(-e) - 1 + e)`` (>= -inf), accurate to a few ulp for every finite ``e``."""
    out = np.empty_like(e)
    small = np.abs(e) <= 1.0
    es = e[small]
    with np.errstate(divide="ignore"):
        out[small] = 2.0 * np.log(np.abs(es)) + np.log(_series(es))
    big = e > 1.0
    out[big] = np.log(e[big] - 1.0 + np.exp(-e[big]))
    neg = e < -1.0
    en = e[neg]
    out[neg] = -en + np.log1p((en - 1.0) * np.exp(en))
    return out


def _phi(e: FloatArray) -> FloatArray:
    """``exp(-e) - 1 + e`` for ``e >= -600`` (no overflow), a few ulp relative."""
    out = np.empty_like(e)
    small = np.abs(e) <= 1.0
    es = e[small]
    out[small] = es * es * _series(es)
    big = e > 1.0
    out[big] = e[big] - 1.0 + np.exp(-e[big])
    neg = e < -1.0
    out[neg] = np.expm1(-e[neg]) + e[neg]
    return out


def two_difference(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``a - b = hi + lo`` exactly (Knuth's TwoSum), for finite inputs."""
    hi = a - b
    bb = hi - a
    lo = (a - (hi - bb)) + (-b - bb)
    return hi, lo


def _kl_rows_from_logits(x: FloatArray, y: FloatArray) -> FloatArray:
    """Per-row KL(softmax(x) || softmax(y)) for (M, C) float64 logits.

    On the support S of p (``x_c > -inf``), with ``d_c = x_c - y_c`` (exact, as hi + lo),
    a centre ``a`` and ``e_c = d_c - a``::

        KL = E_p[e] + log E_p[exp(-e)] - log Q_S = log1p(Phi) - log Q_S  when  E_p[e] = 0,
        Phi = sum_c p_c * phi(e_c),   phi(e) = exp(-e) - 1 + e >= 0,   Q_S = sum_{c in S} q_c.

    ``a`` is ``d`` at the most probable class plus the p-weighted mean of the differences
    (taken twice), so ``E_p[e]`` is a rounding residual whose effect is second order.
    Every term is >= 0 (``-log Q_S >= 0`` too), so the result is >= 0 by construction (no
    clamping); identical rows give ``e = 0`` and exactly 0.
    For ``e_c < -1`` the term is evaluated as
    ``exp(log p_c - e_c) * (1 + (e_c - 1) exp(e_c))`` with ``log p_c - e_c`` formed as
    ``(y_c - max x) - lse0(x) + a`` (no cancellation of two large logs). Classes with
    ``p_c = 0`` contribute only through ``Q_S``; ``p_c > 0 = q_c`` gives inf; a row that
    log-softmax makes NaN gives NaN.
    """
    count, classes = x.shape
    result = np.zeros(count)
    if count == 0 or classes == 0:
        return result if classes else np.full(count, np.nan)
    stats = row_stats(x)
    logp = log_softmax_rows(x, stats)
    logq = log_softmax_rows(y)
    nan_row = np.isnan(logp).any(axis=1) | np.isnan(logq).any(axis=1)
    support = logp > -np.inf  # p_c > 0, or p_c underflowed from a finite logit
    inf_row = (support & (logq == -np.inf)).any(axis=1) & ~nan_row
    good = ~nan_row & ~inf_row
    result[nan_row] = np.nan
    result[inf_row] = np.inf
    if not good.any():
        return result
    xs, ys, lp, sup, lq = x[good], y[good], logp[good], support[good], logq[good]
    top_x = np.max(xs, axis=1, keepdims=True)
    log_norm = stats.log_norm[good][:, None]
    p = np.where(sup, np.exp(lp), 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        hi, lo = two_difference(np.where(sup, xs, 0.0), np.where(sup, ys, 0.0))
        weight = p.sum(axis=1, keepdims=True)
        # Centre on d at the most probable class k (exact differences, Sterbenz), then on
        # the p-weighted mean twice, so the residual E_p[e] is ~eps**2 * |e|, not eps * |d|.
        k = np.argmax(p, axis=1)[:, None]
        hi_k = np.take_along_axis(hi, k, axis=1)
        lo_k = np.take_along_axis(lo, k, axis=1)
        e = (hi - hi_k) + (lo - lo_k)
        centre = hi_k + lo_k
        for _ in range(2):
            residual = (p * e).sum(axis=1, keepdims=True) / weight
            e = e - residual
            centre = centre + residual
        e = np.where(sup, e, 0.0)
        # log p_c - e_c = y_c - max(x) - lse0(x) + centre, without cancellation
        log_pe = np.where(sup, (ys - top_x) - log_norm + centre, -np.inf)
    near = sup & (e >= -1.0)
    far = sup & (e < -1.0)
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        terms = np.where(near, p * _phi(np.where(near, e, 0.0)), 0.0)
        ef = e[far]
        terms[far] = np.exp(log_pe[far]) * -np.expm1(np.log1p(-ef) + ef)
        phi_total = terms.sum(axis=1)
        kl = np.log1p(phi_total)
    overflow = ~np.isfinite(phi_total)
    if overflow.any():  # Phi > 1e308: KL = log(Phi) + log1p(1/Phi), from log-space terms
        rows = np.flatnonzero(overflow)
        log_terms = np.full((rows.size, classes), -np.inf)
        near_r, far_r = near[rows], far[rows]
        with np.errstate(divide="ignore"):
            log_terms[near_r] = lp[rows][near_r] + _log_phi(e[rows][near_r])
            ef = e[rows][far_r]
            log_terms[far_r] = log_pe[rows][far_r] + np.log1p((ef - 1.0) * np.exp(ef))
        top = log_terms.max(axis=1)
        kl[rows] = top + np.log(np.exp(log_terms - top[:, None]).sum(axis=1))
    outside = ~sup & (lq > -np.inf)  # q's mass where p = 0: KL += -log Q_S
    rows = np.flatnonzero(outside.any(axis=1))
    if rows.size:
        with np.errstate(under="ignore", divide="ignore"):
            q_out = np.where(outside[rows], np.exp(lq[rows]), 0.0).sum(axis=1)
            in_s = np.where(sup[rows], lq[rows], -np.inf)
            top_s = in_s.max(axis=1)
            log_q_s = top_s + np.log(np.exp(in_s - top_s[:, None]).sum(axis=1))
            penalty = np.where(q_out <= 0.5, -np.log1p(-q_out), -log_q_s)
        kl[rows] += np.maximum(penalty, 0.0)
    result[good] = kl
    return result


def _kl_rows_from_log_probs(x: FloatArray, y: FloatArray) -> FloatArray:
    """``sum_c exp(x_c) (x_c - y_c)`` with ``0 * anything = 0`` where ``x_c = -inf``.

    Tiny negatives (within the documented bound, see ``LOG_PROBS_CLAMP``) become 0.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.exp(x)
        q = np.exp(y)
        terms = np.where(x == -np.inf, 0.0, p * (x - y))
        total = terms.sum(axis=1)
        scale = np.where(x == -np.inf, 0.0, p * np.abs(x)).sum(axis=1)
        scale += np.where(y == -np.inf, 0.0, q * np.abs(y)).sum(axis=1)
        scale += np.abs(terms).sum(axis=1)
    tiny = (total < 0) & (-total <= LOG_PROBS_CLAMP * EPS * scale)
    total[tiny] = 0.0
    return np.asarray(total, dtype=np.float64)


def rows_last(x: FloatArray, axis: int) -> tuple[FloatArray, tuple[int, ...]]:
    """``x`` with ``axis`` moved last and the rest flattened: (M, C), and the positions' shape."""
    moved = np.moveaxis(x, axis, -1)
    return moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1]), moved.shape[:-1]


def check_same_shape(ref: tuple[int, ...], oth: tuple[int, ...], who: str) -> None:
    """Refuse two inputs of different shapes (KL compares the same positions and classes)."""
    if ref != oth:
        raise InputError(
            f"reference shape {list(ref)} and other shape {list(oth)} differ: {who} compares "
            "two models' outputs for the same positions and classes"
        )


def paired_rows(
    reference: npt.ArrayLike, other: npt.ArrayLike, class_dim: int
) -> tuple[FloatArray, FloatArray, tuple[int, ...]]:
    """Both arrays as (M, C) float64 rows; their shapes must be equal (no broadcasting)."""
    ref = _float64(reference, "reference")
    oth = _float64(other, "other")
    check_same_shape(ref.shape, oth.shape, "kl_logits")
    axis = normalize_axis(class_dim, ref.ndim, "class axis")
    ref_rows, positions = rows_last(ref, axis)
    oth_rows, _ = rows_last(oth, axis)
    return ref_rows, oth_rows, positions


def kl_rows(ref_rows: FloatArray, oth_rows: FloatArray, *, log_probs: bool = False) -> FloatArray:
    """Per-row KL(P_ref || P_other) of (M, C) float64 rows (see :func:`kl_logits`)."""
    if log_probs:
        return _kl_rows_from_log_probs(ref_rows, oth_rows)
    return _kl_rows_from_logits(ref_rows, oth_rows)


def kl_logits(
    reference: npt.ArrayLike,
    other: npt.ArrayLike,
    *,
    class_dim: int = -1,
    log_probs: bool = False,
) -> FloatArray:
    """Per-position ``KL(P_ref || P_other) = sum_c p_c (log p_c - log q_c)`` along ``class_dim``.

    Logits (default): both are normalised with the log1p-exact float64 log-softmax and the
    sum is evaluated as ``log1p(sum_c p_c phi(e_c))`` (see ``_kl_rows_from_logits``), which is
    >= 0 by construction, exactly 0 for identical rows, and accurate to a relative ~1e-13
    or better even when the KL is 1e-30. Conventions: ``p_c = 0`` terms are 0 (torch's
    ``kl_div(..., log_target=True)`` gives NaN there); ``p_c > 0 = q_c`` → inf; NaN, +inf or an
    all ``-inf`` row in either input → NaN (log-softmax's own rule).

    ``log_probs=True``: the inputs are log-probabilities, used as given (not renormalised):
    ``sum_c exp(x_c) (x_c - y_c)``, i.e. torch's ``kl_div(y, x, log_target=True).sum(class_dim)``
    but with ``p_c = 0`` terms 0; negatives within ``4 eps * scale`` (``LOG_PROBS_CLAMP``) are
    set to 0, larger ones (unnormalised inputs) are left.

    Returns the positions' shape (the input shape without ``class_dim``); shapes must match.
    """
    ref_rows, oth_rows, positions = paired_rows(reference, other, class_dim)
    return kl_rows(ref_rows, oth_rows, log_probs=log_probs).reshape(positions)


__all__ = [
    "KL_REDUCTIONS",
    "MEAN_WARNING",
    "KLBroadcastWarning",
    "KLReductionMeanWarning",
    "broadcast_shape",
    "check_same_shape",
    "kl_div",
    "kl_logits",
    "kl_rows",
    "paired_rows",
]
