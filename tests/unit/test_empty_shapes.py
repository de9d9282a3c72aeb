"""Every empty shape through the Python API and every command and output mode: PyTorch's
values, never an internal error, and no hang on tiny inputs with huge empty shapes.

The huge shapes are 128-byte files; their runs are traced (``tracemalloc`` sees NumPy's
allocations too) and must stay far below what enumerating their rows would take.
"""

from __future__ import annotations

import io
import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from lossctl.cli.process import run_cli
from lossctl.cli.streams import Environment
from lossctl.core.grad import loss_grad
from lossctl.core.losses import cross_entropy, log_softmax, nll_loss, softmax
from lossctl.errors import InputError

# (input shape, target shape, target dtype): probabilities when the shapes are equal
SHAPES = {
    "prob-5x0": ((5, 0), (5, 0), "f"),
    "prob-0x5": ((0, 5), (0, 5), "f"),
    "prob-0": ((0,), (0,), "f"),
    "prob-2x3x0": ((2, 3, 0), (2, 3, 0), "f"),
    "index-0x5": ((0, 5), (0,), "i"),
    "index-0x5x3": ((0, 5, 3), (0, 3), "i"),
    "index-2x5x0": ((2, 5, 0), (2, 0), "i"),
    "index-5x0": ((5, 0), (5,), "i"),  # 0 classes: refused (nothing to pick)
    "huge-index": ((10**9, 5, 0), (10**9, 0), "i"),
    "huge-prob": ((10**12, 0), (10**12, 0), "f"),
    "huge-prob-3d": ((10**9, 5, 0), (10**9, 5, 0), "f"),
}
HUGE = {"huge-index", "huge-prob", "huge-prob-3d"}
#: what a run on a 128-byte file may allocate at its peak (10**9 rows would be gigabytes)
HUGE_PEAK_BYTES = 64 << 20


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_probability_targets_with_no_classes_match_pytorch(reduction: str) -> None:
    """torch: mean over an empty input is NaN; sum 0; none one (-0) per position."""
    loss = cross_entropy(np.zeros((5, 0)), np.zeros((5, 0)), reduction=reduction)  # type: ignore[arg-type]
    if reduction == "mean":
        assert math.isnan(float(loss))  # type: ignore[arg-type]
    elif reduction == "sum":
        assert float(loss) == 0.0  # type: ignore[arg-type]
    else:
        assert np.asarray(loss).shape == (5,) and not np.any(np.asarray(loss))


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_every_empty_shape_through_the_api(name: str, reduction: str, eps: float) -> None:
    xs, ts, kind = SHAPES[name]
    x = np.zeros(xs)
    t = np.zeros(ts, dtype=np.int64 if kind == "i" else np.float64)
    try:
        loss = cross_entropy(x, t, reduction=reduction, label_smoothing=eps)  # type: ignore[arg-type]
    except InputError as error:
        assert name == "index-5x0" and "0 classes" in str(error)
        return
    if reduction == "mean":
        assert math.isnan(float(loss))  # type: ignore[arg-type]
    elif reduction == "sum":
        assert float(loss) == 0.0  # type: ignore[arg-type]
    else:
        values = np.asarray(loss)
        assert values.shape == tuple(n for i, n in enumerate(xs) if i != min(1, len(xs) - 1))
        flat = values.reshape(-1)
        assert not np.any(flat[:3]) and not np.any(flat[-3:])  # (10**12,): not all of it
    grad = loss_grad("cross_entropy", x, t, reduction=reduction, label_smoothing=eps)  # type: ignore[arg-type]
    assert grad.shape == xs
    if kind == "i":
        nll = nll_loss(x, t, reduction=reduction)  # type: ignore[arg-type]
        assert np.asarray(nll).shape == (() if reduction != "none" else ts)
    for op in (softmax, log_softmax):
        assert op(x, dim=-1).shape == xs


def _run(args: list[str], huge: bool = False) -> tuple[int, str, str]:
    """The app in-process; for a huge shape, its peak allocation is bounded."""
    out, err = io.StringIO(), io.StringIO()
    if huge:
        tracemalloc.start()
    try:
        code = run_cli(args, Environment(stdin=io.BytesIO(b""), stdout=out, stderr=err))
        peak = tracemalloc.get_traced_memory()[1] if huge else 0
    finally:
        tracemalloc.stop()
    assert peak < HUGE_PEAK_BYTES, f"{args}: peak allocation {peak} bytes"
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("empty")
    for name, (xs, ts, kind) in SHAPES.items():
        np.save(directory / f"{name}.x.npy", np.zeros(xs))
        np.save(directory / f"{name}.y.npy", np.zeros(ts, dtype=np.int64 if kind == "i" else float))
    return directory


MODES = {
    "table": [],
    "json": ["--json"],
    "none": ["-r", "none"],
    "none-json": ["-r", "none", "--json"],
    "sum": ["-r", "sum"],
    "grad": ["--grad"],
    "grad-json": ["--grad", "--json"],
    "smoothing": ["--label-smoothing", "0.1"],
    "full": ["--full"],
    "explain": ["--explain"],
    "explain-json": ["--explain", "--json"],
    "explain-full": ["--explain", "--full"],
    "explain-full-json": ["--explain", "--full", "--json"],
    "explain-none-json": ["--explain", "-r", "none", "--json"],
    "explain-grad": ["--explain", "--grad"],
}


def _check(code: int, out: str, err: str, json_mode: bool) -> None:
    assert code in (0, 1), err
    assert "internal error" not in err
    assert "MemoryError" not in err  # a 128-byte file: memory is never the reason
    if code == 1:
        assert out == "" and err.splitlines()[-1].startswith("lossctl: error:"), err
    elif json_mode:
        json.loads(out)


LOSS_CASES = [
    (name, command, mode)
    for name in sorted(SHAPES)
    for command in ("ce", "nll")
    for mode in sorted(MODES)
    # nll takes neither label smoothing nor probability targets: those pairs are not cases
    if not (command == "nll" and (mode == "smoothing" or SHAPES[name][2] == "f"))
]


@pytest.mark.parametrize(("name", "command", "mode"), LOSS_CASES)
def test_every_loss_command_and_mode_on_every_empty_shape(
    files: Path, name: str, command: str, mode: str
) -> None:
    args = [command, str(files / f"{name}.x.npy"), str(files / f"{name}.y.npy"), *MODES[mode]]
    _check(*_run(args, name in HUGE), json_mode="json" in mode)


@pytest.mark.parametrize(
    "mode", ["table", "json", "full", "explain", "explain-json", "explain-full-json"]
)
@pytest.mark.parametrize("command", ["softmax", "log-softmax", "log"])
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_elementwise_command_and_mode_on_every_empty_shape(
    files: Path, name: str, command: str, mode: str
) -> None:
    args = [command, str(files / f"{name}.x.npy"), *MODES[mode]]
    _check(*_run(args, name in HUGE), json_mode="json" in mode)


@pytest.mark.parametrize("loss", ["ce", "nll"])
@pytest.mark.parametrize("json_mode", [False, True])
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_doctor_on_every_empty_shape(files: Path, name: str, json_mode: bool, loss: str) -> None:
    args = ["doctor", str(files / f"{name}.x.npy"), str(files / f"{name}.y.npy"), "--loss", loss]
    _check(*_run([*args, *(["--json"] if json_mode else [])], name in HUGE), json_mode)


KL_CASES = [
    (name, mode, labels)
    for name in sorted(SHAPES)
    for mode in ["table", "json", "explain", "explain-json", "none-json"]
    for labels in (False, True)
    if not (labels and SHAPES[name][2] == "f")  # kl's labels are class indices
]


@pytest.mark.parametrize(("name", "mode", "labels"), KL_CASES)
def test_kl_on_every_empty_shape(files: Path, name: str, mode: str, labels: bool) -> None:
    """kl of an input with itself (and its labels, for index targets)."""
    x = str(files / f"{name}.x.npy")
    args = ["kl", x, x, *([str(files / f"{name}.y.npy")] if labels else []), *MODES[mode]]
    _check(*_run(args, name in HUGE), json_mode="json" in mode)


MERGE_CASES = [
    (name, command, reduction)
    for name in sorted(SHAPES)
    for command in ("ce", "nll")
    for reduction in ("mean", "sum")
    if not (command == "nll" and SHAPES[name][2] == "f")
]


@pytest.mark.parametrize(("name", "command", "reduction"), MERGE_CASES)
def test_merge_of_empty_shape_results(
    files: Path, tmp_path: Path, name: str, command: str, reduction: str
) -> None:
    """The --json result of an empty shape merged with itself: the same loss (NaN stays NaN)."""
    x, y = str(files / f"{name}.x.npy"), str(files / f"{name}.y.npy")
    code, out, err = _run([command, x, y, "-r", reduction, "--json"], name in HUGE)
    if code != 0:
        assert name == "index-5x0" and "0 classes" in err, err  # nothing to pick
        return
    (tmp_path / "empty.json").write_text(out)
    twice = ["merge", str(tmp_path / "empty.json"), "-", "--allow-duplicates"]
    code, merged, err = _run_stdin([*twice, "--json"], out)
    assert code == 0, err
    assert json.loads(merged)["loss"] == json.loads(out)["loss"]  # "nan", or 0.0 for sum
    _check(*_run_stdin(twice, out), json_mode=False)


def _run_stdin(args: list[str], text: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_cli(args, Environment(stdin=io.BytesIO(text.encode()), stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()
