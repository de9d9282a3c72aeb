"""Number cells shared by JSON, CSV and inline lists.

Besides numbers, the strings ``nan``, ``inf`` and ``infinity``, each with an optional
``+``/``-`` sign and in any case, are accepted (lossctl's own JSON output writes
non-finite values as ``"nan"``, ``"inf"``, ``"-inf"``).  Numbers use Python's ``float``
syntax, ASCII only, without ``_`` separators; literals beyond float64 (``1e999``) raise
:class:`OutOfRange` so that the caller can name their position.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from lossctl.errors import ReadError
from lossctl.io.text import show

__all__ = ["SPECIAL", "OutOfRange", "cell_value", "parse_number_list", "safe_value"]

SPECIAL: dict[str, float] = {
    "nan": math.nan,
    "+nan": math.nan,
    "-nan": math.nan,
    "inf": math.inf,
    "+inf": math.inf,
    "-inf": -math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-infinity": -math.inf,
}


class OutOfRange(Exception):
    """A numeric literal that overflows float64."""


def cell_value(cell: str) -> float | None:
    """A number or a nan/inf name; None when not a number; raises OutOfRange."""
    if not cell or not cell.isascii() or "_" in cell:
        return None
    special = SPECIAL.get(cell.lower())
    if special is not None:
        return special
    try:
        value = float(cell)
    except ValueError:
        return None
    if math.isfinite(value):
        return value
    if math.isinf(value):
        raise OutOfRange(cell)
    return None


def parse_number_list(text: str, *, what: str) -> npt.NDArray[np.float64]:
    """Parse an inline list such as ``1,2,0.5`` or ``[1, 2, 0.5]`` into a 1-D float64 array.

    Items are separated by commas (or by whitespace when there is no comma); every
    item must be a finite number.  Raises ``ReadError(what, message)``.
    """
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1].strip()
    elif body.startswith("[") or body.endswith("]"):
        raise ReadError(what, f"unbalanced brackets in {show(text)}; write e.g. 1,2,0.5")
    if not body:
        raise ReadError(what, "empty list; give numbers separated by commas, e.g. 1,2,0.5")
    items = body.split(",") if "," in body else body.split()
    values: list[float] = []
    for index, raw in enumerate(items, 1):
        item = raw.strip()
        if not item:
            raise ReadError(what, f"item {index} is empty in {show(text)}; remove the extra comma")
        try:
            value = cell_value(item)
        except OutOfRange:
            raise ReadError(what, f"item {index} ({show(item)}) is out of float64 range") from None
        if value is None:
            raise ReadError(what, f"item {index} ({show(item)}) is not a number")
        if not math.isfinite(value):
            raise ReadError(what, f"item {index} is {item}; every value must be a finite number")
        values.append(value)
    return np.array(values, dtype=np.float64)


def safe_value(cell: str) -> float | None:
    try:
        return cell_value(cell)
    except OutOfRange:
        return math.inf
