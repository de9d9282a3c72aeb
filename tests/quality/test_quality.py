"""The code-quality bar as tests: ruff and mypy --strict, so CI enforces them."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_ruff_is_clean() -> None:
    proc = run_tool("ruff", "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_clean() -> None:
    proc = run_tool("ruff", "format", "--check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_is_clean() -> None:
    proc = run_tool("mypy", "--strict", "lossctl")
    assert proc.returncode == 0, proc.stdout + proc.stderr
