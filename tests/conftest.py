"""Shared fixtures: the PyTorch reference vectors, the seed example, large scratch files.

The runners (in-process and real-process) and paths live in :mod:`tests.helpers`."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import ROOT, SEED

__all__ = ["ROOT", "SEED", "as_array", "decode", "load_reference_cases"]

VECTORS = ROOT / "tests" / "data" / "reference" / "reference_cases.json"


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


@pytest.fixture
def large_tmp(tmp_path: Path) -> Iterator[Path]:
    """A directory for large files (tens of MB and more), emptied when the test ends.

    pytest keeps the last three runs' tmp_path directories; big arrays must not stay there.
    """
    directory = tmp_path / "large"
    directory.mkdir()
    yield directory
    remove_tree(directory)


def remove_tree(directory: Path) -> None:
    """Delete ``directory`` and everything in it (read-only entries too)."""
    import shutil

    for path in [directory, *directory.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def alarm() -> Iterator[None]:
    """Fail instead of hanging forever if a read blocks (a FIFO, a device)."""

    def timeout(signum: int, frame: Any) -> None:
        raise TimeoutError("blocked")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
