"""--grad: d loss / d input against torch.autograd (tests/data/grad_cases.json) and by finite
differences; the CLI's grid, JSON and --explain step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lossctl.core.grad import loss_grad
from lossctl.core.losses import loss_result
from tests.conftest import ROOT, SEED, decode
from tests.helpers import run_in_process

GRAD_CASES_FILE = ROOT / "tests" / "data" / "grad_cases.json"
CASES: list[dict[str, Any]] = json.loads(GRAD_CASES_FILE.read_text())["cases"]
LOGITS = str(SEED / "logits.json")
LABELS = str(SEED / "labels.json")


def arrays(case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(decode(case["input"]), dtype=np.float64).reshape(case["input_shape"])
    y = np.asarray(decode(case["target"])).reshape(case["target_shape"])
    if case["target_kind"] == "indices":
        y = y.astype(np.int64)
    return x, y


def expected(case: dict[str, Any], field: str, shape_field: str) -> np.ndarray:
    shape: tuple[int, ...] = tuple(case[shape_field])
    return np.asarray(decode(case[field]), dtype=np.float64).reshape(shape)


def test_the_torch_cases_cover_what_matters() -> None:
    assert len(CASES) >= 30
    options = [c["options"] for c in CASES]
    assert {c["op"] for c in CASES} == {"cross_entropy", "nll_loss"}
    assert {o.get("reduction", "mean") for o in options} == {"mean", "sum", "none"}
    assert {c["class_dim"] for c in CASES} >= {0, 1, 2}
    assert any(len(c["input_shape"]) == 3 for c in CASES)
    assert any(len(c["input_shape"]) == 1 for c in CASES)
    assert any(c["target_kind"] == "probabilities" for c in CASES)
    assert any("weight" in o for o in options)
    assert any("label_smoothing" in o for o in options)
    assert any(
        -100 in np.ravel(decode(c["target"])) for c in CASES if c["target_kind"] == "indices"
    )
    assert any("ignore_index" in o for o in options)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_gradient_matches_torch_autograd(case: dict[str, Any]) -> None:
    x, y = arrays(case)
    grad = loss_grad(case["op"], x, y, class_dim=case["class_dim"], **case["options"])
    want = expected(case, "grad", "input_shape")
    assert grad.shape == x.shape
    np.testing.assert_allclose(grad, want, rtol=1e-10, atol=0, equal_nan=True)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_loss_of_the_grad_cases_matches_torch(case: dict[str, Any]) -> None:
    x, y = arrays(case)
    result = loss_result(case["op"], x, y, class_dim=case["class_dim"], **case["options"])
    want = expected(case, "loss", "loss_shape")
    np.testing.assert_allclose(result.loss, want, rtol=1e-12, atol=1e-15, equal_nan=True)


def test_ignored_positions_get_zero_and_nan_only_where_torch_gives_nan() -> None:
    x = np.array([[1.0, 2.0, 0.5, 0.0], [np.nan, 0.0, 1.0, 0.0], [0.3, -1.0, 2.0, 0.0]])
    y = np.array([0, -100, -100])
    ce = loss_grad("cross_entropy", x, y)
    assert np.all(np.isnan(ce[1])), "torch: softmax(NaN row) · 0 is NaN"
    assert np.all(ce[2] == 0.0), "an ignored finite row is exactly 0"
    nll = loss_grad("nll_loss", x, y)
    assert np.all(nll[1:] == 0.0), "nll never looks at the input"
    assert nll[0, 0] == -1.0


def test_every_target_ignored_gives_zeros_although_the_mean_is_nan() -> None:
    x = np.random.default_rng(0).normal(size=(4, 5))
    y = np.full(4, -100)
    assert np.all(loss_grad("cross_entropy", x, y) == 0.0)
    assert np.all(loss_grad("nll_loss", x, y) == 0.0)
    assert np.all(loss_grad("cross_entropy", x, y, label_smoothing=0.2, weight=np.ones(5)) == 0)


def numeric_grad(f: Any, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    out = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        out[index] = (f(up) - f(down)) / (2 * h)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_gradient_equals_finite_differences(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = [(5, 4), (2, 4, 3), (3, 2, 4)][seed % 3]
    class_dim = [1, 2, 0][seed % 3]
    x = rng.normal(0, 2, size=shape)
    classes = shape[class_dim]
    positions = tuple(n for i, n in enumerate(shape) if i != class_dim)
    soft = seed >= 3
    if soft:
        q = rng.gamma(1.0, size=shape)
        y = q / q.sum(axis=class_dim, keepdims=True)
    else:
        y = rng.integers(0, classes, size=positions)
        y.reshape(-1)[0] = -100
    options: dict[str, Any] = {
        "weight": rng.uniform(0.2, 2.0, size=classes),
        "label_smoothing": 0.15,
        "reduction": ["mean", "sum", "none"][seed % 3],
        "class_dim": class_dim,
    }

    def total(values: np.ndarray) -> float:
        return float(np.sum(loss_result("cross_entropy", values, y, **options).loss))

    grad = loss_grad("cross_entropy", x, y, **options)
    np.testing.assert_allclose(grad, numeric_grad(total, x), rtol=1e-6, atol=1e-8)


def cli_json(*args: str) -> dict[str, Any]:
    return run_in_process(*args).document()


def test_cli_grad_json_matches_torch_on_the_seed() -> None:
    case = next(c for c in CASES if c["id"] == "seed-ce-mean")
    document = cli_json("ce", LOGITS, LABELS, "--grad", "--json")
    np.testing.assert_allclose(
        np.array(document["grad"]), expected(case, "grad", "input_shape"), rtol=1e-10
    )
    assert document["loss"] == pytest.approx(3.2654828147938195, rel=1e-15), "loss unchanged"


@pytest.mark.parametrize("case", [c for c in CASES if not c["id"].startswith("seed")][::5])
def test_cli_grad_through_files(case: dict[str, Any], tmp_path: Path) -> None:
    x, y = arrays(case)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    args = ["ce" if case["op"] == "cross_entropy" else "nll"]
    args += [str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "-d", str(case["class_dim"])]
    options = case["options"]
    if "weight" in options:
        args += ["--weight", ",".join(map(repr, options["weight"]))]
    for name in ("ignore_index", "reduction", "label_smoothing"):
        if name in options:
            args += ["--" + name.replace("_", "-"), str(options[name])]
    document = cli_json(*args, "--grad", "--json")
    got = np.array(decode(document["grad"]), dtype=np.float64)
    np.testing.assert_allclose(
        got, expected(case, "grad", "input_shape"), rtol=1e-10, atol=0, equal_nan=True
    )


def test_cli_grad_table_after_the_result() -> None:
    result = run_in_process("ce", LOGITS, LABELS, "--grad")
    assert result.code == 0
    out = result.out
    assert out.index("loss") < out.index("gradient d loss / d input, shape (3, 2)")
    assert "-0.4972" in out and "0.3778" in out


def test_cli_grad_of_reduction_none_is_the_gradient_of_the_sum() -> None:
    none = cli_json("ce", LOGITS, LABELS, "--grad", "-r", "none", "--json")
    total = cli_json("ce", LOGITS, LABELS, "--grad", "-r", "sum", "--json")
    assert none["grad"] == total["grad"]
    text = run_in_process("ce", LOGITS, LABELS, "--grad", "-r", "none").out
    assert "gradient of the sum" in text


def test_grad_with_shift_has_the_logits_shape_and_zeros_at_the_last_position(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 5, 7))
    ids = rng.integers(0, 7, size=(2, 5))
    np.save(tmp_path / "x.npy", logits)
    np.save(tmp_path / "y.npy", ids)
    document = cli_json(
        "ce", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--shift", "--grad", "--json"
    )
    grad = np.array(document["grad"])
    assert grad.shape == (2, 5, 7)
    assert np.all(grad[:, -1, :] == 0.0)
    direct = loss_grad("cross_entropy", logits[:, :-1, :], ids[:, 1:], class_dim=2)
    np.testing.assert_allclose(grad[:, :-1, :], direct, rtol=1e-14)


def test_explain_gets_a_final_gradient_step() -> None:
    document = cli_json("ce", LOGITS, LABELS, "--grad", "--explain", "--json")
    steps = document["steps"]
    assert steps[-1]["name"] == "gradient"
    np.testing.assert_allclose(steps[-1]["values"]["grad"]["values"], document["grad"])
    assert "grad" in document
    text = run_in_process("ce", LOGITS, LABELS, "--grad", "--explain").out
    tail = text[text.index("Gradient") :]
    assert "pushes the target logit up" in tail and "-0.4972" in tail


def test_nll_explain_gradient_step_says_only_the_target_moves() -> None:
    text = run_in_process("nll", LOGITS, LABELS, "--grad", "--explain").out
    assert "only that entry has a gradient" in text


def test_blocks_of_rows_give_the_same_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    import lossctl.core.rows as rows_module

    rng = np.random.default_rng(9)
    x = rng.normal(size=(3, 7, 5)).astype(np.float32)
    y = rng.integers(0, 5, size=(3, 7))
    q = rng.gamma(1.0, size=x.shape)
    q /= q.sum(axis=2, keepdims=True)
    options: dict[str, Any] = {"class_dim": 2, "label_smoothing": 0.1, "weight": np.arange(1, 6)}
    whole = [loss_grad("cross_entropy", x, t, **options) for t in (y, q)]
    monkeypatch.setattr(rows_module, "BLOCK_ELEMENTS", 7)
    blocked = [loss_grad("cross_entropy", x, t, **options) for t in (y, q)]
    for a, b in zip(whole, blocked, strict=True):
        np.testing.assert_array_equal(a, b)
