"""Streaming statistics of per-position KL between two models, mergeable exactly.

:func:`kl_block_stats` summarises one block of (M, C) rows; :func:`merge` / :func:`merge_all`
combine blocks with integer counts and :class:`ExactSum` sums, so any split of the rows
gives the same :class:`KLStats` (every field equal) as the whole. :func:`kl_statistics`
does whole arrays. Pure NumPy; no I/O.

Definitions (n = counted positions; positions whose label is ``ignore_index`` are
left out of *every* statistic):

* ``kl_mean`` = exact Σkl / n; ``kl_stderr`` = sqrt(s²/n), s² the sample variance
  (n - 1) from exact Σkl and Σfl(kl²). NaN KL → mean NaN; +inf → inf.
* ``same_top1`` = #(argmax ref == argmax other), first index on ties (``torch.argmax``;
  NaN counts as the maximum); fraction f and stderr sqrt(f(1-f)/(n-1)) (the same sample
  formula applied to 0/1 values).
* ``top5_overlap`` = mean |top-k ref ∩ top-k other| / k, k = min(5, C); ties at the k-th
  value go to the lower class index; NaN ranks highest.
* percentiles: KL values are counted in fixed bins ``[2**(j/64), 2**((j+1)/64))`` over
  the whole float64 range (stored sparsely), plus exact 0 / ±inf counts. A percentile
  (numpy's ``linear`` method) is read from the bins holding the two order statistics it
  interpolates, each replaced by its bin's geometric centre clamped to the exact
  [min, max]. **Precision: within 2**(1/128) - 1 = 0.543% relative of
  ``np.percentile`` on the raw values; exact when it lands on 0 or ±inf.**
* labels: nll = -log softmax(x)[label] for both models; positions where either NLL is
  not finite are counted in ``nll_nonfinite`` and left out of the NLL sums (derived
  values are then NaN). PPL = exp(Σnll/n); ``mean_log_ppl_ratio`` = (Σnll_o - Σnll_r)/n
  (exact) with stderr from Σd, Σd², d = fl(nll_o - nll_r); Pearson r from exact
  Σx, Σy, Σx², Σy², Σxy (products rounded once each).
* ``delta_p`` = p_other(label) - p_ref(label): exact Σ, Σ² → mean, RMS; linear bins of
  width 2**-10 over [-1, 1]: percentiles **within 2**-11 ≈ 4.9e-4 absolute**.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.exactsum import ZERO, ExactSum, exact_sum
from lossctl.core.kl import paired_rows
from lossctl.core.kl_block import CHUNK_BYTES, TOP_K, kernel_options, row_values
from lossctl.core.kl_fast import checked_labels
from lossctl.core.losses import DEFAULT_IGNORE_INDEX, FloatArray
from lossctl.core.spec import Precision
from lossctl.errors import InputError

PERCENTILES = (0.1, 1.0, 5.0, 10.0, 50.0, 90.0, 95.0, 99.0, 99.9)
LOG_BINS_PER_OCTAVE = 64
LOG_PRECISION = 2.0 ** (1 / (2 * LOG_BINS_PER_OCTAVE)) - 1.0  # 0.00543
DELTA_BINS = 2048  # width 2**-10 over [-1, 1]
DELTA_PRECISION = 2.0**-11
FORMAT = "lossctl.kl_stats/1"
_EDGES = 2.0 ** (np.arange(LOG_BINS_PER_OCTAVE) / LOG_BINS_PER_OCTAVE)  # in [1, 2)
_KEY_MIN = -1075 * LOG_BINS_PER_OCTAVE
_KEY_MAX = 1024 * LOG_BINS_PER_OCTAVE
Bins = tuple[tuple[int, int], ...]


def _exact(values: FloatArray) -> ExactSum:
    total = exact_sum(values)
    assert total is not None  # callers pass finite values only
    return total


def _add_bins(a: Bins, b: Bins) -> Bins:
    counts = dict(a)
    for key, count in b:
        counts[key] = counts.get(key, 0) + count
    return tuple(sorted(counts.items()))


def _bins_of(keys: npt.NDArray[np.int64]) -> Bins:
    unique, counts = np.unique(keys, return_counts=True)
    return tuple((int(k), int(c)) for k, c in zip(unique, counts, strict=True))


def _log_keys(magnitudes: FloatArray) -> npt.NDArray[np.int64]:
    """Bin j of each positive finite value: 2**(j/64) <= v < 2**((j+1)/64) (stored edges)."""
    mantissa, exponent = np.frexp(magnitudes)  # v = mantissa * 2**exponent, mantissa in [0.5, 1)
    fine = np.searchsorted(_EDGES, 2.0 * mantissa, side="right") - 1
    return ((exponent.astype(np.int64) - 1) * LOG_BINS_PER_OCTAVE + fine).astype(np.int64)


@dataclass(frozen=True)
class Moments:
    """Count, exact Σ and Σ², extremes and a histogram of a stream of values."""

    finite: int = 0
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    zero: int = 0
    total: ExactSum = ZERO
    squares: ExactSum = ZERO
    minimum: float = math.inf
    maximum: float = -math.inf
    positive: Bins = ()  # log bins (sparse, sorted) of v > 0; or linear bins when linear
    negative: Bins = ()  # log bins of |v| for v < 0 (log histograms only)
    linear: bool = False

    @staticmethod
    def of(values: FloatArray, *, linear: bool = False) -> Moments:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        finite = values[np.isfinite(values)]
        ordered = values[~np.isnan(values)]
        positive: Bins
        negative: Bins
        if linear:
            keys = np.floor((finite + 1.0) * (DELTA_BINS / 2)).astype(np.int64)
            positive, negative, zero = _bins_of(np.clip(keys, 0, DELTA_BINS - 1)), (), 0
        else:
            positive = _bins_of(_log_keys(finite[finite > 0]))
            negative = _bins_of(_log_keys(-finite[finite < 0]))
            zero = int(np.count_nonzero(finite == 0))
        with np.errstate(over="ignore"):
            squares = finite * finite
        if not np.all(np.isfinite(squares)):
            raise InputError("values beyond 1e154 in magnitude cannot be summarised (x² overflows)")
        return Moments(
            finite=int(finite.size),
            nan=int(np.count_nonzero(np.isnan(values))),
            posinf=int(np.count_nonzero(values == np.inf)),
            neginf=int(np.count_nonzero(values == -np.inf)),
            zero=zero,
            total=_exact(finite),
            squares=_exact(squares),
            minimum=float(ordered.min()) if ordered.size else math.inf,
            maximum=float(ordered.max()) if ordered.size else -math.inf,
            positive=positive,
            negative=negative,
            linear=linear,
        )

    def __add__(self, other: Moments) -> Moments:
        if self.linear != other.linear:
            raise InputError("cannot merge a linear histogram with a logarithmic one")
        merged = {
            f.name: _COMBINE.get(f.name, operator.add)(
                getattr(self, f.name), getattr(other, f.name)
            )
            for f in fields(Moments)
            if f.name != "linear"
        }
        return Moments(**merged, linear=self.linear)

    @property
    def count(self) -> int:
        return self.finite + self.nan + self.posinf + self.neginf

    def _special(self) -> float | None:
        if self.count == 0 or self.nan or (self.posinf and self.neginf):
            return math.nan
        if self.posinf:
            return math.inf
        if self.neginf:
            return -math.inf
        return None

    def mean(self) -> float:
        special = self._special()
        if special is not None:
            return special
        return _to_float(self.total.as_fraction() / self.finite)

    def rms(self) -> float:
        special = self._special()
        if special is not None:
            return abs(special)
        return math.sqrt(_to_float(self.squares.as_fraction() / self.finite))

    def stderr(self) -> float:
        """sqrt(s² / n) with the sample variance s² (n - 1); NaN for n < 2 or non-finite data."""
        if self._special() is not None or self.finite < 2:
            return math.nan
        return _stderr(self.total.as_fraction(), self.squares.as_fraction(), self.finite)

    def percentile(self, q: float) -> float:
        """numpy's ``linear`` percentile of the non-NaN values, from the histogram."""
        n = self.count - self.nan
        if n == 0:
            return math.nan
        rank = (n - 1) * (q / 100.0)
        low = min(math.floor(rank), n - 1)
        frac = rank - low
        a = self._order_statistic(low)
        if frac == 0 or low + 1 >= n:
            return a
        b = self._order_statistic(low + 1)
        if a == b:
            return a
        return a + frac * (b - a)

    def _order_statistic(self, index: int) -> float:
        """An estimate of the ``index``-th smallest non-NaN value."""
        groups: list[tuple[float, int]] = [(-math.inf, self.neginf)]
        if self.linear:
            width = 2.0 / DELTA_BINS
            groups += [(-1.0 + (k + 0.5) * width, c) for k, c in self.positive]
        else:
            groups += [(-_centre(k), c) for k, c in reversed(self.negative)]
            groups.append((0.0, self.zero))
            groups += [(_centre(k), c) for k, c in self.positive]
        groups.append((math.inf, self.posinf))
        seen = 0
        for value, count in groups:
            seen += count
            if index < seen:
                return min(max(value, self.minimum), self.maximum)
        return self.maximum


_COMBINE: dict[str, Callable[[Any, Any], Any]] = {
    "minimum": min,
    "maximum": max,
    "positive": _add_bins,
    "negative": _add_bins,
}  # the Moments fields not merged by +


def _centre(key: int) -> float:
    return float(2.0 ** ((key + 0.5) / LOG_BINS_PER_OCTAVE))


def _to_float(value: Fraction) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _stderr(total: Fraction, squares: Fraction, n: int) -> float:
    variance = (squares - total * total / n) / (n - 1)
    return math.sqrt(max(_to_float(variance / n), 0.0))


@dataclass(frozen=True)
class LabelSums:
    """Exact sums over labelled positions whose two NLLs are both finite."""

    count: int = 0
    nonfinite: int = 0
    ref: ExactSum = ZERO
    other: ExactSum = ZERO
    ref_sq: ExactSum = ZERO
    other_sq: ExactSum = ZERO
    cross: ExactSum = ZERO
    diff: ExactSum = ZERO
    diff_sq: ExactSum = ZERO

    def __add__(self, b: LabelSums) -> LabelSums:
        return LabelSums(*(getattr(self, f.name) + getattr(b, f.name) for f in fields(self)))


@dataclass(frozen=True)
class KLStats:
    """Mergeable summary of per-position KL(P_ref || P_other) (see the module docstring)."""

    classes: int
    positions: int
    kl: Moments
    same_top1: int
    top_overlap: int  # Σ |top-k ref ∩ top-k other|
    labelled: bool = False
    nll: LabelSums = field(default_factory=LabelSums)
    delta_p: Moments = field(default_factory=lambda: Moments(linear=True))

    @property
    def top_k(self) -> int:
        return min(TOP_K, self.classes)

    def kl_mean(self) -> float:
        return self.kl.mean()

    def kl_stderr(self) -> float:
        return self.kl.stderr()

    def kl_percentiles(self) -> dict[float, float]:
        return {q: self.kl.percentile(q) for q in PERCENTILES}

    def same_top1_fraction(self) -> float:
        return self.same_top1 / self.positions if self.positions else math.nan

    def same_top1_stderr(self) -> float:
        n = self.positions
        if n < 2:
            return math.nan
        f = Fraction(self.same_top1, n)
        return math.sqrt(float(f * (1 - f) / (n - 1)))

    def top5_overlap(self) -> float:
        return self.top_overlap / (self.top_k * self.positions) if self.positions else math.nan

    def _nll_ok(self) -> bool:
        return self.labelled and self.nll.count > 0 and self.nll.nonfinite == 0

    def perplexities(self) -> dict[str, float]:
        """{reference, other, ratio}: exp(mean NLL) of each, and PPL_other / PPL_ref."""
        if not self._nll_ok():
            return {"reference": math.nan, "other": math.nan, "ratio": math.nan}
        n, s = self.nll.count, self.nll
        mean_r = _to_float(s.ref.as_fraction() / n)
        mean_o = _to_float(s.other.as_fraction() / n)
        log_ratio = _to_float((s.other.as_fraction() - s.ref.as_fraction()) / n)
        return {"reference": _exp(mean_r), "other": _exp(mean_o), "ratio": _exp(log_ratio)}

    def mean_log_ppl_ratio(self) -> tuple[float, float]:
        """Mean of nll_other - nll_ref per position (= ln(PPL_o/PPL_r)) and its stderr."""
        if not self._nll_ok():
            return math.nan, math.nan
        s, n = self.nll, self.nll.count
        mean = _to_float((s.other.as_fraction() - s.ref.as_fraction()) / n)
        err = _stderr(s.diff.as_fraction(), s.diff_sq.as_fraction(), n) if n > 1 else math.nan
        return mean, err

    def nll_correlation(self) -> float:
        """Pearson r of the per-position NLLs of the two models."""
        if not self._nll_ok() or self.nll.count < 2:
            return math.nan
        s, n = self.nll, self.nll.count
        x, y = s.ref.as_fraction(), s.other.as_fraction()
        cov = n * s.cross.as_fraction() - x * y
        var_x = n * s.ref_sq.as_fraction() - x * x
        var_y = n * s.other_sq.as_fraction() - y * y
        if var_x <= 0 or var_y <= 0:
            return math.nan
        return max(-1.0, min(1.0, float(cov / (var_x * var_y) ** 0.5)))

    def delta_p_summary(self) -> dict[str, float]:
        out = {"mean": self.delta_p.mean(), "rms": self.delta_p.rms()}
        out.update({f"p{q:g}": self.delta_p.percentile(q) for q in PERCENTILES})
        return out


def _exp(value: float) -> float:
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


def kl_block_stats(
    ref_rows: npt.ArrayLike,
    other_rows: npt.ArrayLike,
    labels: npt.ArrayLike | None = None,
    *,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    log_probs: bool = False,
) -> KLStats:
    """:class:`KLStats` of one block of (M, C) logit rows (classes last), labels (M,).

    ``log_probs``: the rows are log-probabilities and the KL is taken as given (see
    :func:`~lossctl.core.kl.kl_logits`); the other statistics are the same either way.
    """
    return block_stats(
        ref_rows, other_rows, labels, ignore_index=ignore_index, log_probs=log_probs
    )[0]


def block_stats(
    ref_rows: npt.ArrayLike,
    other_rows: npt.ArrayLike,
    labels: npt.ArrayLike | None = None,
    *,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    log_probs: bool = False,
    reverse: bool = False,
    fast: bool = False,
    precision: Precision = "float64",
    chunk_bytes: int = CHUNK_BYTES,
) -> tuple[KLStats, FloatArray, FloatArray | None]:
    """:func:`kl_block_stats`, the KL of every row (ignored labels too) and, with
    ``reverse``, KL(P_other || P_ref) of the counted rows; one log-softmax per input.

    ``fast``: the KL by :func:`~lossctl.core.kl_fast.fast_kl` (within its bound of the
    reference ``kl_rows``), with ``precision="auto"`` and float32 rows by the float32 form of
    :mod:`lossctl.core.kl_fast32` (its bound; the NLLs as ``lossctl ce`` computes them).
    The rows are taken as stored and computed ``chunk_bytes`` at a time
    (:func:`~lossctl.core.kl_block.row_values`); the statistics once for the block.
    """
    ref, oth = np.asarray(ref_rows), np.asarray(other_rows)
    if ref.ndim != 2 or ref.shape != oth.shape:
        raise InputError(
            f"a block needs two (positions, classes) arrays of one shape, got "
            f"{list(ref.shape)} and {list(oth.shape)}"
        )
    classes = ref.shape[1]
    if classes == 0:
        raise InputError("the logits have no classes")
    if ref.dtype.kind not in "iuf" or oth.dtype.kind not in "iuf":
        ref, oth = np.asarray(ref, dtype=np.float64), np.asarray(oth, dtype=np.float64)
    keep, label_array = checked_labels(labels, ref.shape[0], classes, ignore_index)
    options = kernel_options(ref, oth, precision, fast=fast, log_probs=log_probs, reverse=reverse)
    counted = None if keep is None or label_array is None else (keep, label_array)
    rows = row_values(ref, oth, counted, options, chunk_bytes)
    kl_all, kl, overlaps, same_rows, back = rows.kl, rows.kl, rows.overlaps, rows.same, rows.back
    if keep is not None:
        kl, overlaps, same_rows = kl[keep], overlaps[keep], same_rows[keep]
        back = None if back is None else back[keep]
    stats = KLStats(
        classes, int(kl.size), Moments.of(kl), int(np.count_nonzero(same_rows)), int(overlaps.sum())
    )
    nll_r, nll_o = rows.nll_r, rows.nll_o
    if label_array is None or keep is None or nll_r is None or nll_o is None:
        return stats, kl_all, back
    with np.errstate(over="ignore", invalid="ignore"):
        delta = np.exp(-nll_o) - np.exp(-nll_r)
    ok = np.isfinite(nll_r) & np.isfinite(nll_o)
    r, o = nll_r[ok], nll_o[ok]
    d = o - r
    with np.errstate(over="ignore"):
        if not (np.all(np.isfinite(r * r)) and np.all(np.isfinite(o * o))):
            raise InputError("NLLs beyond 1e154 cannot be summarised (x² overflows)")
    sums = LabelSums(
        count=int(ok.sum()),
        nonfinite=int((~ok).sum()),
        ref=_exact(r),
        other=_exact(o),
        ref_sq=_exact(r * r),
        other_sq=_exact(o * o),
        cross=_exact(r * o),
        diff=_exact(d),
        diff_sq=_exact(d * d),
    )
    delta_p = Moments.of(delta, linear=True)
    return replace(stats, labelled=True, nll=sums, delta_p=delta_p), kl_all, back


def merge(a: KLStats, b: KLStats) -> KLStats:
    """The statistics of the two blocks' rows together (exact)."""
    if a.classes != b.classes:
        raise InputError(f"cannot merge statistics over {a.classes} and {b.classes} classes")
    if a.labelled != b.labelled:
        raise InputError("cannot merge statistics with labels and statistics without")
    sums = {f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(KLStats)[1:]}
    sums["labelled"] = a.labelled
    return KLStats(classes=a.classes, **sums)


def merge_all(parts: Iterable[KLStats]) -> KLStats:
    items: Sequence[KLStats] = list(parts)
    if not items:
        raise InputError("nothing to merge: no KL statistics given")
    total = items[0]
    for part in items[1:]:
        total = merge(total, part)
    return total


def kl_statistics(
    reference: npt.ArrayLike,
    other: npt.ArrayLike,
    labels: npt.ArrayLike | None = None,
    *,
    class_dim: int = -1,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
) -> KLStats:
    """:class:`KLStats` of whole arrays; ``labels`` has the positions' shape."""
    ref_rows, oth_rows, positions = paired_rows(reference, other, class_dim)
    flat: npt.NDArray[np.generic] | None = None
    if labels is not None:
        raw = np.asarray(labels)
        if raw.shape != positions:
            raise InputError(
                f"labels shape {list(raw.shape)} does not match the positions' shape "
                f"{list(positions)}",
                "labels",
            )
        flat = raw.reshape(-1)
    return kl_block_stats(ref_rows, oth_rows, flat, ignore_index=ignore_index)
