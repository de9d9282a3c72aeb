"""The progress bar: on a terminal's stderr only, after a second, never with --quiet."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT


def run_with_terminal_stderr(args: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run lossctl with stderr on a pseudo-terminal; return (code, stdout, terminal bytes)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lossctl", *args],
        stdout=subprocess.PIPE,
        stderr=terminal,
        cwd=ROOT,
        env=env,
    )
    os.close(terminal)
    out, _ = proc.communicate(timeout=120)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    return proc.returncode, out, seen


@pytest.fixture
def big_enough(tmp_path: Path) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(4000, 300)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, 300, 4000))
    return str(tmp_path / "x.npy"), str(tmp_path / "y.npy")


def test_bar_on_a_terminal_and_not_with_quiet(big_enough: tuple[str, str]) -> None:
    env = dict(os.environ, LOSSCTL_PROGRESS_AFTER="0", LOSSCTL_THREADS="1")
    code, out, seen = run_with_terminal_stderr(["ce", *big_enough, "--json"], env)
    assert code == 0 and out.startswith(b"{")
    assert b"positions" in seen
    code, _, seen = run_with_terminal_stderr(["ce", *big_enough, "--json", "--quiet"], env)
    assert code == 0 and seen == b""


def test_no_bar_when_stderr_is_not_a_terminal(big_enough: tuple[str, str]) -> None:
    env = dict(os.environ, LOSSCTL_PROGRESS_AFTER="0")
    proc = subprocess.run(
        [sys.executable, "-m", "lossctl", "ce", *big_enough, "--json"],
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0
    assert proc.stderr == b""


def test_no_bar_for_quick_work_by_default(big_enough: tuple[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LOSSCTL_PROGRESS_AFTER"}
    code, _, seen = run_with_terminal_stderr(["ce", *big_enough, "--json"], env)
    assert code == 0 and b"positions" not in seen
