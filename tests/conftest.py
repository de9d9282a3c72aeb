"""Shared fixtures: the PyTorch reference vectors and the seed example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "data" / "reference" / "reference_cases.json"
SEED = ROOT / "examples" / "seed"


def load_reference_cases() -> list[dict[str, Any]]:
    """Every PyTorch reference case (tests/data/reference); a missing file fails loudly."""
    if not VECTORS.is_file():
        raise FileNotFoundError(
            f"reference vectors not found at {VECTORS}: the repository is incomplete"
        )
    cases: list[dict[str, Any]] = json.loads(VECTORS.read_text())["cases"]
    assert len(cases) > 200, "the reference file looks truncated"
    return cases


def decode(value: Any) -> Any:
    """Turn the vectors' "nan"/"inf"/"-inf" strings into floats, recursively."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, str):
        return float(value)
    return value


def as_array(case: dict[str, Any], field: str, shape_field: str) -> np.ndarray:
    return np.asarray(decode(case[field]), dtype=np.float64).reshape(case[shape_field])


@pytest.fixture(scope="session")
def reference_cases() -> list[dict[str, Any]]:
    return load_reference_cases()
