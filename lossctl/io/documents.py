"""Strict JSON (RFC 8259) for results: non-finite floats become "nan", "inf", "-inf".

Written with ``sys.stdout.write`` by the CLI, never through rich (markup and
wrapping would corrupt it).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def _finite_or_name(value: float) -> float | str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def jsonable(value: Any) -> Any:
    """Numbers, arrays and containers as plain JSON values; non-finite floats as strings."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "iub":
            return value.tolist()
        if np.all(np.isfinite(value)):
            return value.astype(np.float64).tolist()
        return jsonable(value.astype(np.float64).tolist())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _finite_or_name(float(value))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(document: dict[str, Any]) -> str:
    """One JSON document and a newline; raises if anything non-finite slipped through."""
    return json.dumps(jsonable(document), allow_nan=False, ensure_ascii=False) + "\n"
