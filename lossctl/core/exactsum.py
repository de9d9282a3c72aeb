"""Exact sums of float64 arrays, so that results over shards merge to the last bit.

Every finite float64 is ``m · 2**(e - 53)`` with an integer ``|m| < 2**53`` (``np.frexp``).
Splitting ``m`` into 26-bit halves lets ``np.bincount`` add the halves per exponent in
float64 without rounding (each half is below ``2**27``, so up to ``2**26`` terms per
exponent stay exact); Python integers then combine the per-exponent sums. The result
is the exact rational sum ``mantissa · 2**exponent``; :meth:`ExactSum.to_float` rounds
it once, correctly.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from lossctl.core.frozen import Frozen

_HALF = 26
_CHUNK = 1 << 26  # terms per bincount pass that keep the float64 half-sums exact
_MIN_EXPONENT = -1074 - 53  # below every float64's lowest bit
_TEXT = re.compile(r"^(-?\d+)\*2\*\*(-?\d+)$")


class ExactSum(Frozen):
    """The exact value ``mantissa · 2**exponent`` (immutable; equal to another with the same
    mantissa and exponent)."""

    _fields = ("mantissa", "exponent")
    __slots__ = _fields
    mantissa: int
    exponent: int

    def __init__(self, mantissa: int, exponent: int) -> None:
        self._set(mantissa, exponent)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExactSum):
            return NotImplemented
        return (self.mantissa, self.exponent) == (other.mantissa, other.exponent)

    def __hash__(self) -> int:
        return hash((self.mantissa, self.exponent))

    def __add__(self, other: ExactSum) -> ExactSum:
        low = min(self.exponent, other.exponent)
        total = (self.mantissa << (self.exponent - low)) + (
            other.mantissa << (other.exponent - low)
        )
        return _normalized(total, low)

    def as_fraction(self) -> Fraction:
        if self.exponent >= 0:
            return Fraction(self.mantissa << self.exponent)
        return Fraction(self.mantissa, 1 << -self.exponent)

    def to_float(self) -> float:
        """The nearest float64 (correctly rounded; ±inf beyond the float64 range)."""
        return _to_float(self.as_fraction())

    def text(self) -> str:
        """``"M*2**E"``: exact, and readable back with :func:`parse_exact`."""
        return f"{self.mantissa}*2**{self.exponent}"


ZERO = ExactSum(0, 0)


def _to_float(value: Fraction) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def exact_mean(total: ExactSum | None, denominator: ExactSum, rounded_total: float) -> float:
    """``total / denominator`` rounded once; IEEE rules (NaN, ±inf) when either is not finite."""
    if total is None or denominator.mantissa == 0:
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(np.float64(rounded_total) / np.float64(denominator.to_float()))
    return _to_float(total.as_fraction() / denominator.as_fraction())


def reduced(
    reduction: str, total: ExactSum | None, denominator: ExactSum, rounded_total: float
) -> float:
    """The ``sum`` (``rounded_total``) or the ``mean`` (:func:`exact_mean`) of partial sums:
    one rule for a freshly computed loss and for merged shards."""
    if reduction == "sum":
        return rounded_total
    return exact_mean(total, denominator, rounded_total)


def parse_exact(text: str) -> ExactSum:
    """Inverse of :meth:`ExactSum.text`; ``ValueError`` for anything else."""
    match = _TEXT.match(text.strip())
    if not match:
        raise ValueError(f"not an exact sum of the form M*2**E: {text!r}")
    return _normalized(int(match.group(1)), int(match.group(2)))


_SMALL = 64  # values summed by _small_sum


def exact_sum(values: npt.ArrayLike) -> ExactSum | None:
    """``Σ values`` without rounding; ``None`` if any value is NaN or infinite."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(flat)):
        return None
    if flat.size <= _SMALL:
        return _small_sum(flat.tolist())
    total = ZERO
    for start in range(0, flat.size, _CHUNK):
        total = total + _chunk_sum(flat[start : start + _CHUNK])
    return total


def _small_sum(values: list[float]) -> ExactSum:
    """The exact sum of a few finite floats with Python integers (the vector form's fixed
    cost is ~100 µs: it dominates the small blocks of very wide rows)."""
    ratios = [value.as_integer_ratio() for value in values]  # denominators: powers of 2
    denominator = max((d for _, d in ratios), default=1)
    total = sum(n * (denominator // d) for n, d in ratios)
    return _normalized(total, 1 - denominator.bit_length())


def _chunk_sum(flat: npt.NDArray[np.float64]) -> ExactSum:
    fraction, exponent = np.frexp(flat)
    mantissa = np.ldexp(fraction, 53).astype(np.int64)  # exact: |fraction| in [0.5, 1)
    shift = (exponent - 53 - _MIN_EXPONENT).astype(np.int64)
    sign = np.sign(mantissa)
    magnitude = np.abs(mantissa)
    high = (sign * (magnitude >> _HALF)).astype(np.float64)
    low = (sign * (magnitude & ((1 << _HALF) - 1))).astype(np.float64)
    length = int(shift.max()) + 1 if shift.size else 0
    high_sums = np.bincount(shift, weights=high, minlength=length)
    low_sums = np.bincount(shift, weights=low, minlength=length)
    total = 0
    for position in np.flatnonzero((high_sums != 0) | (low_sums != 0)):
        part = (int(high_sums[position]) << _HALF) + int(low_sums[position])
        total += part << int(position)
    return _normalized(total, _MIN_EXPONENT)


def _normalized(mantissa: int, exponent: int) -> ExactSum:
    """The same value with an odd mantissa (or ``0·2**0``), so equal values compare equal."""
    if mantissa == 0:
        return ZERO
    zeros = (mantissa & -mantissa).bit_length() - 1
    return ExactSum(mantissa >> zeros, exponent + zeros)
