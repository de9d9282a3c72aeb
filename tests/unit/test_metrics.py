"""--metrics (perplexity, accuracy, top-k, entropy, per class) and --shift, against plain
per-position reference code."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lossctl.core.metrics as metrics_module
from lossctl.core.losses import cross_entropy, log_softmax
from lossctl.core.metrics import causal_shift, compute_metrics, unshift_grad
from lossctl.errors import InputError
from tests.conftest import ROOT, SEED
from tests.helpers import run_in_process

LOGITS = str(SEED / "logits.json")
LABELS = str(SEED / "labels.json")
MISTAKES = ROOT / "examples" / "mistakes"


def reference(x: np.ndarray, y: np.ndarray, k: int, ignore_index: int = -100) -> dict[str, Any]:
    """Metrics the slow, obvious way: one position at a time, classes last."""
    logp = log_softmax(x, -1).reshape(-1, x.shape[-1])
    rows = x.reshape(-1, x.shape[-1])
    nll, correct, topk, entropy = [], [], [], []
    per_class: dict[int, list[tuple[float, bool]]] = {}
    for n, t in enumerate(y.reshape(-1)):
        if t == ignore_index:
            continue
        order = sorted(range(rows.shape[1]), key=lambda c: (-rows[n, c], c))
        nll.append(-logp[n, t])
        correct.append(order[0] == t)
        topk.append(t in order[:k])
        p = np.exp(logp[n])
        entropy.append(-sum(pc * lc for pc, lc in zip(p, logp[n], strict=True) if pc > 0))
        per_class.setdefault(int(t), []).append((-logp[n, t], order[0] == t))
    return {
        "perplexity": math.exp(np.mean(nll)),
        "accuracy": np.mean(correct),
        "topk": np.mean(topk),
        "entropy": np.mean(entropy),
        "per_class": {
            c: (len(v), np.mean([a for a, _ in v]), np.mean([b for _, b in v]))
            for c, v in per_class.items()
        },
    }


@pytest.mark.parametrize("seed", range(12))
def test_metrics_match_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes = int(rng.integers(2, 12))
    shape = (
        (int(rng.integers(1, 20)), classes) if seed % 2 else (3, int(rng.integers(1, 6)), classes)
    )
    x = rng.normal(0, rng.uniform(0.5, 5), size=shape)
    if seed % 3 == 0:
        x = np.round(x)  # ties
    y = rng.integers(0, classes, size=shape[:-1])
    y.reshape(-1)[::4] = -100
    k = int(rng.integers(1, 6))
    got = compute_metrics("cross_entropy", x, y, class_dim=-1, topk=k)
    want = reference(x, y, k)
    assert got.perplexity == pytest.approx(want["perplexity"], rel=1e-12)
    assert got.accuracy == pytest.approx(want["accuracy"])
    assert got.topk_accuracy == pytest.approx(want["topk"])
    assert got.entropy == pytest.approx(want["entropy"], rel=1e-12)
    assert {s.cls for s in got.per_class} == set(want["per_class"])
    for stats in got.per_class:
        count, mean_loss, accuracy = want["per_class"][stats.cls]
        assert stats.count == count
        assert stats.mean_loss == pytest.approx(mean_loss, rel=1e-12)
        assert stats.accuracy == pytest.approx(accuracy)
    counts = [s.count for s in got.per_class]
    assert counts == sorted(counts, reverse=True), "most frequent first"
    assert got.count == int(np.count_nonzero(y != -100))


def test_perplexity_is_exp_of_the_unweighted_mean_cross_entropy() -> None:
    x = np.array([[1.1741, -0.4859], [-3.718, 1.5257], [0.0222, 0.5898]])
    m = compute_metrics("cross_entropy", x, np.array([1, 2]), class_dim=0, topk=2)
    assert m.perplexity == pytest.approx(math.exp(3.2654828147938195), rel=1e-14)
    assert m.accuracy == 0.0
    assert m.topk_accuracy == 0.5  # position 1: target 2 is the second largest


def test_top1_is_accuracy_with_ties_broken_like_argmax() -> None:
    x = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 3.0, 3.0]])
    y = np.array([1, 1, 0])
    m = compute_metrics("cross_entropy", x, y, class_dim=1, topk=1)
    assert m.accuracy == m.topk_accuracy == pytest.approx(2 / 3)  # argmax picks the first
    assert compute_metrics("cross_entropy", x, y, class_dim=1, topk=2).topk_accuracy == 1.0


def test_nan_positions_are_never_right() -> None:
    x = np.array([[np.nan, 0.0], [1.0, 0.0]])
    m = compute_metrics("cross_entropy", x, np.array([0, 0]), class_dim=1, topk=2)
    assert m.accuracy == 0.5 and m.topk_accuracy == 0.5


def test_nll_perplexity_only_for_log_probabilities() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4))
    y = rng.integers(0, 4, size=6)
    on_logits = compute_metrics("nll_loss", x, y, class_dim=1)
    assert on_logits.perplexity is None and on_logits.entropy is None
    assert "not log-probabilities" in str(on_logits.perplexity_note)
    ce = compute_metrics("cross_entropy", x, y, class_dim=1)
    nll = compute_metrics("nll_loss", log_softmax(x, 1), y, class_dim=1)
    assert nll.perplexity == pytest.approx(ce.perplexity, rel=1e-12)
    assert nll.entropy == pytest.approx(ce.entropy, rel=1e-12)
    assert nll.accuracy == ce.accuracy == on_logits.accuracy


def test_probability_targets_use_the_most_probable_class() -> None:
    x = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    q = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    m = compute_metrics("cross_entropy", x, q, class_dim=1)
    assert m.accuracy == 0.5
    assert [s.cls for s in m.per_class] == [0, 1]
    assert m.perplexity == pytest.approx(math.exp(cross_entropy(x, q)), rel=1e-12)


def test_blocks_give_the_same_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 9)).astype(np.float32)
    y = rng.integers(0, 9, size=50)
    whole = compute_metrics("cross_entropy", x, y, class_dim=1, topk=3)
    monkeypatch.setattr(metrics_module, "CHUNK_ELEMENTS", 20)
    blocked = compute_metrics("cross_entropy", x, y, class_dim=1, topk=3)
    assert blocked == whole


def test_all_ignored_gives_nan_and_no_classes() -> None:
    m = compute_metrics("cross_entropy", np.zeros((2, 3)), np.array([-100, -100]), class_dim=1)
    assert m.count == 0 and math.isnan(m.accuracy) and m.per_class == ()


def test_per_class_json_is_limited_and_says_so() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 60))
    y = rng.integers(0, 60, size=200)
    m = compute_metrics("cross_entropy", x, y, class_dim=1)
    document = m.as_json(limit=10)
    assert len(document["per_class"]) == 10
    assert document["per_class_truncated"] is True
    assert document["classes_present"] == len(m.per_class) > 10
    assert set(document["per_class"][0]) == {"class", "count", "mean_loss", "accuracy"}
    assert set(document) >= {"perplexity", "accuracy", "topk", "entropy", "per_class"}


def test_topk_must_be_positive() -> None:
    with pytest.raises(InputError):
        compute_metrics("cross_entropy", np.zeros((1, 2)), np.array([0]), class_dim=1, topk=0)


# ---- --shift ----------------------------------------------------------------------------------


def test_shift_is_the_hugging_face_convention() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2, 6, 11))
    ids = rng.integers(0, 11, size=(2, 6))
    ids[1, 4:] = -100
    x, y, axis = causal_shift(logits, ids, None)
    assert axis == 2 and x.shape == (2, 5, 11) and y.shape == (2, 5)
    # transformers: shift_logits = logits[..., :-1, :]; shift_labels = labels[..., 1:];
    # CrossEntropyLoss()(shift_logits.view(-1, V), shift_labels.view(-1))
    hf = cross_entropy(logits[..., :-1, :].reshape(-1, 11), ids[..., 1:].reshape(-1), class_dim=1)
    assert cross_entropy(x, y, class_dim=axis) == pytest.approx(hf, rel=1e-14)
    one = causal_shift(logits[0], ids[0], -1)
    assert one[0].shape == (5, 11) and one[1].tolist() == ids[0, 1:].tolist()


@pytest.mark.parametrize(
    ("logits_shape", "labels_shape", "class_dim", "message"),
    [
        ((2, 3, 4), (2, 3), 1, "classes on the last axis"),
        ((2, 3, 4), (2, 4), None, "token ids of shape (2, 3)"),
        ((2, 1, 4), (2, 1), None, "at least 2 positions"),
        ((4,), (), None, "(N, L, C) or (L, C)"),
    ],
)
def test_shift_refuses_what_it_cannot_align(
    logits_shape: tuple[int, ...],
    labels_shape: tuple[int, ...],
    class_dim: int | None,
    message: str,
) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        causal_shift(np.zeros(logits_shape), np.zeros(labels_shape, dtype=int), class_dim)


def test_unshift_grad_pads_the_last_position() -> None:
    g = np.ones((2, 3, 4))
    out = unshift_grad(g)
    assert out.shape == (2, 4, 4) and np.all(out[:, -1] == 0) and np.all(out[:, :-1] == 1)


# ---- the CLI ----------------------------------------------------------------------------------


def test_cli_metrics_json() -> None:
    result = run_in_process("ce", LOGITS, LABELS, "--metrics", "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    metrics = document["metrics"]
    assert metrics["perplexity"] == pytest.approx(math.exp(document["loss"]), rel=1e-14)
    assert metrics["topk"] == {"k": 5, "accuracy": 1.0}
    assert [c["class"] for c in metrics["per_class"]] == [1, 2]


def test_cli_topk_implies_metrics_and_must_be_positive() -> None:
    document = json.loads(run_in_process("ce", LOGITS, LABELS, "--topk", "2", "--json").out)
    assert document["metrics"]["topk"] == {"k": 2, "accuracy": 0.5}
    assert run_in_process("ce", LOGITS, LABELS, "--topk", "0").code == 2


def test_cli_metrics_tables_follow_the_result() -> None:
    result = run_in_process("ce", LOGITS, LABELS, "--metrics")
    out = result.out
    assert result.code == 0
    assert out.index("cross-entropy") < out.index("perplexity") < out.index("per target class")
    assert "26.1928" in out  # exp(3.2655)


def test_cli_nll_metrics_say_perplexity_is_not_available_on_logits() -> None:
    out = run_in_process("nll", LOGITS, LABELS, "--metrics").out
    assert "n/a (the input is not log-probabilities" in out


def test_cli_shift_metrics_give_the_perplexity_of_a_text() -> None:
    logits = str(MISTAKES / "lm-logits.npy")
    ids = str(MISTAKES / "lm-ids.npy")
    result = run_in_process("ce", logits, ids, "--shift", "--metrics", "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    x = np.load(logits)
    y = np.load(ids)
    hf = cross_entropy(x[..., :-1, :].reshape(-1, x.shape[-1]), y[..., 1:].reshape(-1), class_dim=1)
    assert document["loss"] == pytest.approx(hf, rel=1e-6)
    assert document["metrics"]["perplexity"] == pytest.approx(math.exp(hf), rel=1e-6)
    assert document["shift"] is True and document["shape"] == [2, 5, 10]


def test_cli_shift_errors_are_one_line_exit_1(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 4)))
    np.save(tmp_path / "y.npy", np.zeros((2, 4), dtype=int))
    result = run_in_process("ce", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--shift")
    assert result.code == 1
    assert result.err.startswith("lossctl: error: --shift needs token ids of shape (2, 3)")
    assert result.out == ""
