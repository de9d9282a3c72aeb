"""Integers that float64 cannot hold exactly.

The readers return NPY/NPZ integer arrays as they are (int64/uint64 included).  Logits
are computed in float64, where integers beyond ±2**53 may round, which changes the
loss silently (``[2**60, 2**60 + 1]``).  :func:`exact_float64` is the gate: the CLI (or
any caller of :mod:`lossctl.core`) calls it on the *logits* (and weights) after
:func:`~lossctl.io.readers.read_array`; labels stay integers and are compared exactly
by the core.  Values that are exactly representable (``2**60``) pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.errors import ReadError

__all__ = ["exact_float64"]

_LIMIT = 2**53


def exact_float64(array: npt.NDArray[Any], source: str) -> npt.NDArray[Any]:
    """``array`` as float64; refuse integers that the conversion would round, with position."""
    if array.dtype.kind not in "iu":
        return array
    flat = array.reshape(-1)
    candidates = np.flatnonzero((flat > _LIMIT) | (flat < -_LIMIT))
    if candidates.size:
        values = flat[candidates]
        floats = values.astype(np.float64)
        bound = 2.0**64 if array.dtype.kind == "u" else 2.0**63
        fits = (floats < bound) & (floats >= -bound)
        back = np.where(fits, floats, 0).astype(array.dtype)
        inexact = ~fits | (back != values)
        if inexact.any():
            first = int(candidates[int(np.argmax(inexact))])
            where = "".join(f"[{i}]" for i in np.unravel_index(first, array.shape))
            raise ReadError(
                source,
                f"integer {int(flat[first])} at {where} cannot be represented exactly as a "
                "float (beyond ±2**53), and losses are computed in float64; convert the "
                "logits to floating point yourself if rounding is acceptable",
            )
    return np.asarray(array, dtype=np.float64)
