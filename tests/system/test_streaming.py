"""Streamed outputs (issue 11): ``-o FILE.npy`` of softmax / log-softmax / log / --grad /
--reduction none equals the in-memory result, tables compute only their corners, large
--json is refused, and a large run's peak memory stays well below the file size.

Small inputs go through the streamed path with a tiny block budget (monkeypatched), so
that every block layout (contiguous runs and the memory-mapped strided writes) is used.
Nothing here is timed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import lossctl.cli.elementwise as elementwise
from lossctl.cli.app import app
from lossctl.core import blocked
from lossctl.core.grad import loss_grad
from lossctl.core.losses import log_softmax, loss_result, softmax
from lossctl.core.metrics import causal_shift, unshift_grad
from tests.conftest import ROOT

runner = CliRunner()
RNG = np.random.default_rng(11)
SHAPE = (4, 5, 6)


@pytest.fixture(autouse=True)
def tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 7 numbers: many blocks, strided ones included, on small inputs."""
    monkeypatch.setattr(blocked, "BLOCK_VALUES", 7)


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    return result


def saved(tmp_path: Path, array: np.ndarray, name: str = "x.npy") -> str:
    path = tmp_path / name
    np.save(path, array)
    return str(path)


def in_memory(op: str, x: np.ndarray, axis: int | None) -> np.ndarray:
    if op == "softmax":
        return softmax(x, axis)  # type: ignore[arg-type]
    if op == "log-softmax":
        return log_softmax(x, axis)  # type: ignore[arg-type]
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(x, dtype=np.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("precision", ["auto", "float64"])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("op", ["softmax", "log-softmax"])
@pytest.mark.parametrize("fortran", [False, True])
def test_streamed_softmax_equals_in_memory(
    tmp_path: Path, op: str, axis: int, precision: str, dtype: type, fortran: bool
) -> None:
    x: np.ndarray = (RNG.standard_normal(SHAPE) * 4).astype(dtype)
    x = np.asfortranarray(x) if fortran else x
    out = tmp_path / "out.npy"
    result = invoke(
        op, saved(tmp_path, x), "-d", str(axis), "-o", str(out), "--precision", precision
    )
    assert result.exit_code == 0, result.output
    got = np.load(out)
    expected_dtype = np.float64 if precision == "float64" else dtype
    assert got.dtype == expected_dtype and got.shape == SHAPE
    assert not np.isfortran(got)
    expected = in_memory(op, x, axis).astype(expected_dtype)
    if expected_dtype == np.float64:  # the very arithmetic of lossctl.core.softmax
        np.testing.assert_array_equal(got, expected)
    else:  # float32 exp with float64 sums: within a few float32 ulps
        np.testing.assert_array_max_ulp(got, expected, maxulp=8)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int64])
def test_streamed_log_keeps_the_float_dtype(tmp_path: Path, dtype: type) -> None:
    p = RNG.random(SHAPE)
    p[0, 0, 0] = 0.0
    x: np.ndarray = (p * 10).astype(dtype)
    out = tmp_path / "out.npy"
    result = invoke("log", saved(tmp_path, x), "-o", str(out))
    assert result.exit_code == 0, result.output
    got = np.load(out)
    assert got.dtype == (np.float64 if dtype == np.int64 else dtype)
    expected = in_memory("log", x, None).astype(got.dtype)
    np.testing.assert_array_max_ulp(got, expected, maxulp=0 if got.dtype == np.float64 else 4)


def test_streamed_log_warns_about_negative_numbers(tmp_path: Path) -> None:
    x = RNG.random(SHAPE)
    x[3, 4, 5] = -0.5
    result = invoke("log", saved(tmp_path, x), "-o", str(tmp_path / "out.npy"))
    assert result.exit_code == 0
    assert "log of negative numbers" in result.output


def test_float16_softmax_stays_float16(tmp_path: Path) -> None:
    x = RNG.standard_normal(SHAPE).astype(np.float16)
    out = tmp_path / "out.npy"
    assert invoke("softmax", saved(tmp_path, x), "-d", "1", "-o", str(out)).exit_code == 0
    got = np.load(out)
    assert got.dtype == np.float16
    np.testing.assert_array_max_ulp(got, softmax(x, 1).astype(np.float16), maxulp=1)


@pytest.mark.parametrize("op", ["softmax", "log-softmax", "log"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_table_corners_equal_the_whole_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, op: str, axis: int
) -> None:
    """The grid computed from its corners only shows the same numbers as the whole array.

    On a console wide enough for every kept column: the two runs' facts tables differ in
    width, and a grid gives way to a narrower console by eliding columns."""
    monkeypatch.setenv("COLUMNS", "200")
    x = RNG.random((3, 11, 12)) + 0.01
    path = saved(tmp_path, x)
    args = [op, path] if op == "log" else [op, path, "-d", str(axis)]
    whole = invoke(*args)
    monkeypatch.setattr(elementwise, "CORNERS_FROM", 0)
    corners = invoke(*args)
    assert whole.exit_code == corners.exit_code == 0
    assert "computed" in corners.output and "computed" not in whole.output
    grid = whole.output[whole.output.index(" along axis " if op != "log" else ", elementwise") :]
    assert grid in corners.output


@pytest.mark.parametrize("class_dim", [0, 1, 2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("op", ["ce", "nll"])
def test_grad_file_equals_loss_grad(
    tmp_path: Path, op: str, reduction: str, class_dim: int
) -> None:
    x = (RNG.standard_normal(SHAPE) * 3).astype(np.float32)
    positions = tuple(n for i, n in enumerate(SHAPE) if i != class_dim)
    y = RNG.integers(0, SHAPE[class_dim], positions)
    y.flat[1] = -100
    weight = ",".join(str(w) for w in np.linspace(0.5, 2.0, SHAPE[class_dim]))
    extra = ["--label-smoothing", "0.1"] if op == "ce" else []
    out = tmp_path / "g.npy"
    args = [
        op,
        saved(tmp_path, x),
        saved(tmp_path, y, "y.npy"),
        "-d",
        str(class_dim),
        "-r",
        reduction,
        "-w",
        weight,
        "--grad",
        "-o",
        str(out),
        "-q",
        *extra,
    ]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    expected = loss_grad(
        "cross_entropy" if op == "ce" else "nll_loss",
        x,
        y,
        weight=np.linspace(0.5, 2.0, SHAPE[class_dim]),
        reduction=reduction,  # type: ignore[arg-type]
        label_smoothing=0.1 if op == "ce" else 0.0,
        class_dim=class_dim,
    )
    got = np.load(out)
    assert got.shape == SHAPE and got.dtype == np.float32  # the input's shape and dtype
    np.testing.assert_array_equal(got, expected.astype(np.float32))
    out.unlink()
    assert invoke(*args, "--precision", "float64").exit_code == 0
    got64 = np.load(out)
    assert got64.dtype == np.float64
    np.testing.assert_allclose(got64, expected, rtol=1e-6, atol=1e-9)  # float64 kernel loss


def test_grad_file_with_probability_targets(tmp_path: Path) -> None:
    x = RNG.standard_normal(SHAPE)
    q = RNG.random(SHAPE)
    q /= q.sum(axis=1, keepdims=True)
    out = tmp_path / "g.npy"
    result = invoke(
        "ce",
        saved(tmp_path, x),
        saved(tmp_path, q, "q.npy"),
        "-d",
        "1",
        "--grad",
        "-o",
        str(out),
        "-q",
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(out), loss_grad("cross_entropy", x, q, class_dim=1))


def test_grad_file_with_shift(tmp_path: Path) -> None:
    x = RNG.standard_normal((2, 7, 9)).astype(np.float32)
    y = RNG.integers(0, 9, (2, 7))
    out = tmp_path / "g.npy"
    result = invoke(
        "ce",
        saved(tmp_path, x),
        saved(tmp_path, y, "y.npy"),
        "--shift",
        "--grad",
        "-o",
        str(out),
        "-q",
    )
    assert result.exit_code == 0, result.output
    xs, ys, axis = causal_shift(x, y, None)
    expected = unshift_grad(loss_grad("cross_entropy", xs, ys, class_dim=axis))
    got = np.load(out)
    assert got.shape == x.shape
    np.testing.assert_array_equal(got, expected.astype(np.float32))
    assert not got[:, -1, :].any()


def test_reduction_none_writes_the_per_position_losses(tmp_path: Path) -> None:
    x = RNG.standard_normal((6, 10)).astype(np.float32)
    y = RNG.integers(0, 10, 6)
    out = tmp_path / "l.npy"
    result = invoke(
        "ce", saved(tmp_path, x), saved(tmp_path, y, "y.npy"), "-r", "none", "-o", str(out), "-q"
    )
    assert result.exit_code == 0, result.output
    expected = loss_result("cross_entropy", x, y, reduction="none").per_position
    np.testing.assert_array_equal(np.load(out), expected)


def test_large_json_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(elementwise, "JSON_LIMIT", 100)
    x = RNG.standard_normal((11, 10))
    y = RNG.integers(0, 10, 11)
    path, labels = saved(tmp_path, x), saved(tmp_path, y, "y.npy")

    def no_work(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("computed before refusing")

    monkeypatch.setattr("lossctl.cli.loss.compute_loss", no_work)
    monkeypatch.setattr("lossctl.cli.elementwise._in_memory", no_work)
    for args in (
        ["softmax", path, "--json"],
        ["log-softmax", path, "-o", str(tmp_path / "doc.json")],
        ["log", path, "--json"],
        ["ce", path, labels, "--grad", "--json"],
    ):
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "too many for a JSON document" in result.output
        assert "-o FILE.npy" in result.output
    assert not (tmp_path / "doc.json").exists()
    out = tmp_path / "s.npy"
    assert invoke("softmax", path, "--json", "-o", str(out)).exit_code == 0  # .npy: fine
    assert np.load(out).shape == (11, 10)


LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def _child_peak_rss_mb(command: list[str]) -> tuple[float, int, str]:
    """Run ``command``; its own peak RSS in MB, its exit status and its stderr.

    Measured by ``wait4`` in a small launcher process: a child forked straight from
    pytest would count pytest's own resident memory (inherited at fork) in its peak.
    """
    launcher = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    kilobytes, status = launcher.stdout.split()
    return int(kilobytes) / 1024, int(status), launcher.stderr  # Linux: kilobytes


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss units and madvise: Linux")
def test_softmax_of_a_large_memmap_stays_in_bounded_memory(tmp_path: Path) -> None:
    """A ~200 MB float32 file: the child's peak RSS stays far below it; the file is right."""
    rows, classes = 1600, 32000  # 204.8 MB
    source, target = tmp_path / "x.npy", tmp_path / "s.npy"
    try:
        x = np.lib.format.open_memmap(source, mode="w+", dtype=np.float32, shape=(rows, classes))
        rng = np.random.default_rng(0)
        for r0 in range(0, rows, 100):
            x[r0 : r0 + 100] = rng.standard_normal((100, classes), dtype=np.float32) * 3
        x.flush()
        del x
        peak, status, errors = _child_peak_rss_mb(
            [sys.executable, "-m", "lossctl", "softmax", str(source), "-d", "1", "-o", str(target)]
        )
        assert status == 0, errors
        assert peak < 150, f"peak RSS {peak:.0f} MB for a 205 MB input"
        x = np.load(source, mmap_mode="r")
        got = np.load(target, mmap_mode="r")
        assert got.dtype == np.float32 and got.shape == (rows, classes)
        for r0 in range(0, rows, 64):
            expected = softmax(x[r0 : r0 + 64], 1).astype(np.float32)
            np.testing.assert_array_max_ulp(got[r0 : r0 + 64], expected, maxulp=8)
        del x, got
    finally:
        for path in (source, target):
            path.unlink(missing_ok=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["softmax", "log-softmax"])
def test_streamed_rows_with_nan_and_infinities_are_as_in_memory(
    tmp_path: Path, op: str, dtype: type
) -> None:
    x = RNG.standard_normal((6, 9)).astype(dtype)
    x[1, 2], x[2, 3], x[3, 4] = np.nan, np.inf, -np.inf
    x[4, :] = -np.inf
    out = tmp_path / "out.npy"
    assert invoke(op, saved(tmp_path, x), "-d", "1", "-o", str(out)).exit_code == 0
    got, expected = np.load(out), in_memory(op, x, 1).astype(dtype)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_max_ulp(got, expected, maxulp=8)
