"""Findings: every code is triggered by its mistake and stays quiet on well-formed input;
`lossctl doctor`, the warnings of `ce` / `nll`, --strict and the examples/mistakes files."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lossctl.core.losses import log_softmax, loss_result, softmax
from lossctl.doctor import CODES, Finding, diagnose, double_softmax_floor
from lossctl.doctor.kl import kl_div_findings
from lossctl.errors import InputError
from lossctl.render.messages import finding_json, message
from tests.conftest import ROOT, SEED
from tests.helpers import run_in_process

X = np.array([[1.1741, -0.4859], [-3.718, 1.5257], [0.0222, 0.5898]])  # classes on axis 0
Y = np.array([1, 2])
LOGITS = str(SEED / "logits.json")
LABELS = str(SEED / "labels.json")
MISTAKES = ROOT / "examples" / "mistakes"


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def only(findings: list[Finding], code: str) -> Finding:
    matching = [f for f in findings if f.code == code]
    assert len(matching) == 1, findings
    return matching[0]


# ---- every code: a mistake that triggers it ---------------------------------------------------


def masked() -> np.ndarray:
    x = np.array([[2.0, 0.5, -np.inf], [0.1, 1.5, -np.inf]])
    return x


TRIGGERS: dict[str, Callable[[], list[Finding]]] = {
    "input-kind": lambda: diagnose(X, Y),
    "double-softmax": lambda: diagnose(softmax(X, 0), Y),
    "nll-on-logits": lambda: diagnose(X, Y, op="nll_loss", ignore_index=1),
    "nll-on-probabilities": lambda: diagnose(softmax(X, 0), Y, op="nll_loss"),
    "ambiguous-class-axis": lambda: diagnose(
        np.random.default_rng(0).normal(size=(2, 3, 3)), np.array([[0, 1, 2], [2, 1, 0]])
    ),
    "target-out-of-range": lambda: diagnose(X, np.array([3, -1])),
    "ignore-index-is-a-class": lambda: diagnose(X, Y, ignore_index=1),
    "all-ignored": lambda: diagnose(X, np.array([-100, -100])),
    "soft-targets-not-normalized": lambda: diagnose(
        X.T, np.array([[0.7, 0.2, 0.2], [0.0, 0.5, 0.4]])
    ),
    "neg-inf-at-target": lambda: diagnose(masked(), np.array([0, 2])),
    "neg-inf-label-smoothing": lambda: diagnose(masked(), np.array([0, 1]), label_smoothing=0.1),
    "neg-inf-zero-probability": lambda: diagnose(
        masked(), np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
    ),
    "nonfinite-input": lambda: diagnose(np.array([[np.nan, 0.0, 1.0], [0.5, 1.0, 2.0]])),
    "float16-overflow": lambda: diagnose(
        np.array([[6e4, 0, -6e4], [1, 2, 3]], dtype=np.float16), np.array([2, 0])
    ),
    "float16-precision": lambda: diagnose(np.array([[100.0, 0.0, -3.0]], dtype=np.float16)),
    "kl-reduction-mean": lambda: kl_div_findings(np.log(softmax(X, 1)), softmax(X, 1)),
    "kl-input-not-log-probs": lambda: kl_div_findings(X, softmax(X, 1), reduction="batchmean"),
    "kl-target-not-normalized": lambda: kl_div_findings(
        np.log(softmax(X, 1)), 2 * softmax(X, 1), reduction="batchmean"
    ),
}


def test_every_code_has_a_trigger() -> None:
    assert set(TRIGGERS) == set(CODES)


@pytest.mark.parametrize("code", sorted(CODES))
def test_each_code_is_triggered_by_its_mistake(code: str) -> None:
    findings = TRIGGERS[code]()
    finding = only(findings, code)
    assert finding.severity in ("info", "warning", "error")
    assert message(finding) and "\n" not in message(finding)
    json.dumps(finding_json(finding), allow_nan=True)  # evidence is plain data
    assert set(finding_json(finding)) == {"code", "severity", "message", "evidence"}


def test_input_kinds() -> None:
    def kind(values: np.ndarray, axis: int = 0) -> str:
        finding = only(diagnose(values, class_dim=axis), "input-kind")
        return str(finding.evidence["kind"])

    assert kind(X) == "logits"
    assert kind(softmax(X, 0)) == "probabilities"
    assert kind(log_softmax(X, 0)) == "log-probabilities"
    assert kind(np.array([[np.nan, np.nan]]), 1) == "unknown"


def test_input_kind_without_labels_finds_the_axis_that_sums_to_one() -> None:
    probs = softmax(np.random.default_rng(1).normal(size=(2, 4, 5)), -1)
    finding = only(diagnose(probs), "input-kind")
    assert finding.evidence["kind"] == "probabilities" and finding.evidence["class_dim"] == 2
    assert "not PyTorch's class axis 1" in message(finding)


def test_double_softmax_shows_the_floor_and_the_right_loss() -> None:
    finding = only(diagnose(softmax(X, 0), Y), "double-softmax")
    assert finding.evidence["floor"] == pytest.approx(math.log(1 + 2 / math.e))
    assert finding.evidence["floor"] == pytest.approx(0.551445, abs=1e-6)  # torch-semantics.md
    assert finding.evidence["loss_on_probabilities"] == pytest.approx(3.2654828147938195)
    assert finding.evidence["loss"] > finding.evidence["floor"]
    assert "0.5514" in message(finding) and "3.2655" in message(finding)
    assert double_softmax_floor(10) == pytest.approx(1.461150, abs=1e-6)


def test_nll_on_logits_is_the_articles_negative_loss() -> None:
    finding = only(diagnose(X, Y, op="nll_loss", ignore_index=1), "nll-on-logits")
    assert finding.evidence["loss"] == pytest.approx(-0.5898)
    assert "-0.5898" in message(finding)
    assert finding.evidence["loss_cross_entropy"] == pytest.approx(1.3585546257775527)
    prob = only(diagnose(softmax(X, 0), Y, op="nll_loss"), "nll-on-probabilities")
    assert prob.evidence["loss_on_log"] == pytest.approx(3.2654828147938195)


def test_ambiguous_axis_shows_both_results() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 3))
    y = np.array([[0, 1, 2], [2, 1, 0]])
    finding = only(diagnose(x, y), "ambiguous-class-axis")
    losses = {item["class_dim"]: item["loss"] for item in finding.evidence["losses"]}
    assert losses[1] == pytest.approx(float(loss_result("cross_entropy", x, y, class_dim=1).loss))
    assert losses[2] == pytest.approx(float(loss_result("cross_entropy", x, y, class_dim=2).loss))
    assert finding.evidence["chosen"] == 1
    assert "ambiguous-class-axis" not in codes(diagnose(x, y, class_dim=2))


def test_out_of_range_lists_every_position_and_hints() -> None:
    y = np.array([5, 0, -1, 7, 2, 9, 1, 8, 3, 6])
    finding = only(diagnose(np.zeros((10, 5)), y), "target-out-of-range")
    assert finding.severity == "error"
    assert finding.evidence["count"] == 6
    assert finding.evidence["positions"] == [[0], [2], [3], [5], [7], [9]]
    assert finding.evidence["values"] == [5, -1, 7, 9, 8, 6]
    assert "(1 more)" in message(finding)  # the message names the first 5
    many = only(diagnose(np.zeros((100, 3)), np.full(100, 3)), "target-out-of-range")
    assert many.evidence["count"] == 100 and len(many.evidence["positions"]) == 20
    assert "(95 more)" in message(many)
    padding = only(diagnose(np.zeros((3, 4)), np.array([1, -1, -1])), "target-out-of-range")
    assert "--ignore-index -1" in message(padding)
    one_based = only(diagnose(np.zeros((3, 4)), np.array([1, 4, 2])), "target-out-of-range")
    assert "1-based" in message(one_based)


def test_ignore_index_and_all_ignored() -> None:
    finding = only(diagnose(X, Y, ignore_index=1), "ignore-index-is-a-class")
    assert finding.evidence == {"ignore_index": 1, "classes": 3, "ignored": 1}
    assert "ignores targets, not classes" in message(finding)
    assert "ignore-index-is-a-class" not in codes(diagnose(X, Y, ignore_index=0))  # no 0 target
    assert "ignore-index-is-a-class" not in codes(diagnose(X, Y, ignore_index=3))  # outside [0, C)
    assert "every target (2) equals ignore_index" in message(
        only(diagnose(X, np.array([-100, -100])), "all-ignored")
    )


def test_float16_thresholds() -> None:
    quiet = np.array([[20.0, -25.0, 3.0]], dtype=np.float16)  # spacing 0.0156 at 25: < 1 %
    assert not codes(diagnose(quiet)) - {"input-kind"}
    loud = np.array([[40.0, -25.0, 3.0]], dtype=np.float16)
    assert "float16-precision" in codes(diagnose(loud))
    assert "float16-overflow" in codes(diagnose(np.array([[np.inf, 0, 1]], dtype=np.float16)))


def test_soft_targets_report_negative_values_too() -> None:
    finding = only(
        diagnose(X.T, np.array([[1.2, -0.2, 0.0], [0.2, 0.3, 0.5]])), "soft-targets-not-normalized"
    )
    assert finding.evidence["negative"] == 1


def test_neg_inf_in_an_ignored_position_is_not_a_target_problem() -> None:
    assert "neg-inf-at-target" not in codes(diagnose(masked(), np.array([0, -100])))
    assert "neg-inf-at-target" not in codes(diagnose(masked(), np.array([0, 1])))


def test_impossible_inputs_are_errors() -> None:
    with pytest.raises(InputError, match="does not fit"):
        diagnose(X, np.array([1, 2, 0, 1]))
    with pytest.raises(InputError, match="not a whole class index"):
        diagnose(X, np.array([1.5, 2.0]))
    with pytest.raises(InputError, match="does not fit"):
        diagnose(X, np.array([1, 2, 0]), class_dim=0)


# ---- no false alarms ---------------------------------------------------------------------------


def well_formed(rng: np.random.Generator) -> dict[str, Any]:
    """A random, correct call: logits ~ N(0, σ²), shapes (N, C) or (N, C, d), valid labels."""
    sigma = float(rng.uniform(0.5, 5.0))
    n, classes, d = (int(v) for v in rng.integers(1, 9, size=3))
    classes += 1
    shape = (n, classes) if rng.random() < 0.5 else (n, classes, d)
    x = rng.normal(0.0, sigma, size=shape).astype(np.float32 if rng.random() < 0.3 else np.float64)
    positions = shape[:1] + shape[2:]
    case: dict[str, Any] = {"values": x, "class_dim": 1, "op": "cross_entropy"}
    kind = rng.choice(["indices", "indices", "probabilities", "nll"])
    if kind == "probabilities":
        q = rng.gamma(1.0, size=shape)
        case["labels"] = (q / q.sum(axis=1, keepdims=True)).astype(x.dtype)
    else:
        y = rng.integers(0, classes, size=positions)
        if y.size > 1 and rng.random() < 0.5:
            y.reshape(-1)[0] = -100  # some padding, never all of it
        case["labels"] = y
    if kind == "nll":
        case["values"] = log_softmax(x, 1).astype(x.dtype)
        case["op"] = "nll_loss"
    if rng.random() < 0.3:
        case["weight"] = rng.uniform(0.1, 3.0, size=classes)
    if case["op"] == "cross_entropy" and rng.random() < 0.3:
        case["label_smoothing"] = float(rng.uniform(0.0, 0.3))
    if rng.random() < 0.5:
        case["class_dim"] = None  # inferred (the test passes 1 where the shapes are ambiguous)
    return case


def test_no_false_alarms_on_200_random_well_formed_cases() -> None:
    rng = np.random.default_rng(2024)
    for i in range(200):
        case = well_formed(rng)
        x, y = case["values"], case["labels"]
        class_dim = case["class_dim"]
        if class_dim is None and y.shape != x.shape:
            fitting = [a for a in range(x.ndim) if x.shape[:a] + x.shape[a + 1 :] == y.shape]
            class_dim = None if len(fitting) == 1 else 1
        options = {
            "op": case["op"],
            "class_dim": class_dim,
            "weight": case.get("weight"),
            "label_smoothing": case.get("label_smoothing", 0.0),
        }
        findings = diagnose(x, y, **options)
        noisy = [f for f in findings if f.severity != "info"]
        assert not noisy, (i, x.shape, x.dtype, options, noisy)
        want = "log-probabilities" if case["op"] == "nll_loss" else "logits"
        assert only(findings, "input-kind").evidence["kind"] == want, (i, findings)
        assert not diagnose(x, y, inline=True, **options)
        assert not [f for f in diagnose(x, class_dim=1) if f.severity != "info"]


# ---- the CLI: doctor ---------------------------------------------------------------------------


def test_doctor_prints_one_finding_per_line() -> None:
    proc = run_in_process("doctor", str(MISTAKES / "probs.json"), LABELS)
    assert proc.code == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert lines[0].startswith("info    input-kind: the input holds probabilities")
    assert lines[1].startswith("warning double-softmax: cross-entropy was given probabilities")
    assert lines[2] == "doctor: 1 warning"
    assert proc.stderr == b""


def test_doctor_json_schema() -> None:
    result = run_in_process(
        "doctor", LOGITS, LABELS, "--loss", "nll", "--ignore-index", "1", "--json"
    )
    assert result.code == 0
    document = json.loads(result.out)
    assert document["op"] == "doctor" and document["loss"] == "nll_loss"
    findings = document["findings"]
    assert [f["code"] for f in findings] == [
        "input-kind",
        "ignore-index-is-a-class",
        "nll-on-logits",
    ]
    for finding in findings:
        assert set(finding) == {"code", "severity", "message", "evidence"}
    assert findings[2]["evidence"]["loss"] == pytest.approx(-0.5898)


def test_doctor_exit_codes_and_strict() -> None:
    out_of_range = [str(MISTAKES / "batch-logits.json"), str(MISTAKES / "padded-labels.json")]
    plain = run_in_process("doctor", *out_of_range)
    assert plain.code == 0
    assert "3 of 6 targets are out of range" in plain.out and "doctor: 1 error" in plain.out
    strict = run_in_process("doctor", *out_of_range, "--strict")
    assert strict.code == 1
    assert strict.err == "lossctl: error: --strict: 1 problem (see above)\n"
    assert "target-out-of-range" in strict.out
    clean = run_in_process("doctor", LOGITS, LABELS, "--strict")
    assert clean.code == 0 and "doctor: no problems found" in clean.out


def test_doctor_without_labels_and_its_errors() -> None:
    result = run_in_process("doctor", LOGITS, "-d", "0")
    assert result.code == 0 and "input-kind: the input holds logits" in result.out
    smoothing = run_in_process(
        "doctor", LOGITS, LABELS, "--loss", "nll", "--label-smoothing", "0.1"
    )
    assert smoothing.code == 1 and "cross-entropy only" in smoothing.err
    bad = run_in_process("doctor", LOGITS, str(MISTAKES / "ambiguous-labels.json"))
    assert bad.code == 1
    assert bad.err.startswith("lossctl: error: ") and "does not fit" in bad.err


def test_doctor_help_has_an_example() -> None:
    result = run_in_process("doctor", "--help", COLUMNS="200")
    assert result.code == 0 and "Example: lossctl doctor" in result.out


# ---- the CLI: warnings of ce / nll -------------------------------------------------------------


def test_ce_warns_on_stderr_never_stdout_and_keeps_the_result() -> None:
    probs = str(MISTAKES / "probs.json")
    proc = run_in_process("ce", probs, LABELS, "--json")
    assert proc.code == 0
    document = json.loads(proc.stdout)  # stdout is exactly one JSON document
    x = np.array(json.loads(Path(probs).read_text()))
    assert document["loss"] == float(loss_result("cross_entropy", x, Y).loss)
    err = proc.stderr.decode().splitlines()
    assert len(err) == 1 and err[0].startswith("lossctl: warning: cross-entropy was given")
    assert document["warnings"] == [err[0].removeprefix("lossctl: warning: ")]
    assert [f["code"] for f in document["findings"]] == ["double-softmax"]
    text = run_in_process("ce", probs, LABELS)
    assert b"warning" not in text.stdout and b"double" not in text.stdout


def test_nll_on_the_articles_logits_warns() -> None:
    result = run_in_process("nll", LOGITS, LABELS, "--ignore-index", "1", "--json")
    assert json.loads(result.out)["loss"] == pytest.approx(-0.5898)
    lines = result.err.splitlines()
    assert any("ignores targets, not classes" in line for line in lines)
    assert any("nll expects log-probabilities but was given logits" in line for line in lines)


def test_clean_input_gives_no_warning_and_strict_passes() -> None:
    for op in ("ce", "nll"):
        args = [LOGITS, LABELS] if op == "ce" else [str(MISTAKES / "logprobs.json"), LABELS]
        result = run_in_process(op, *args, "--strict", "--json")
        assert result.code == 0, result.err
        assert result.err == ""
        assert json.loads(result.out)["findings"] == []


def test_strict_fails_after_printing_the_result() -> None:
    proc = run_in_process("ce", str(MISTAKES / "probs.json"), LABELS, "--strict", "--json")
    assert proc.code == 1
    assert json.loads(proc.stdout)["loss"] > 0
    err = proc.stderr.decode().splitlines()
    assert err[0].startswith("lossctl: warning: ")
    assert err[-1] == "lossctl: error: --strict: 1 warning (see above)"


def test_each_warning_is_said_once() -> None:
    ignored = run_in_process("ce", LOGITS, str(MISTAKES / "all-ignored-labels.json"))
    assert len(ignored.err.splitlines()) == 1
    assert "every target (2) equals ignore_index" in ignored.err
    ambiguous = run_in_process(
        "ce", str(MISTAKES / "ambiguous.npy"), str(MISTAKES / "ambiguous-labels.npy")
    )
    lines = ambiguous.err.splitlines()
    assert len(lines) == 1 and "the class axis is ambiguous" in lines[0]
    assert "axis 1 (used): " in lines[0] and "axis 2: " in lines[0]
    masked_run = run_in_process(
        "ce", str(MISTAKES / "masked-logits.json"), str(MISTAKES / "masked-at-target-labels.json")
    )
    assert len(masked_run.err.splitlines()) == 1


def test_out_of_range_still_fails_ce_with_the_first_position() -> None:
    result = run_in_process(
        "ce", str(MISTAKES / "batch-logits.json"), str(MISTAKES / "padded-labels.json")
    )
    assert result.code == 1
    assert "target -1 at position (3,) is out of range" in result.err


# ---- examples/mistakes: every README example does what the README says --------------------------

EXAMPLES: list[tuple[list[str], str]] = [
    (["doctor", "examples/mistakes/probs.json", "examples/seed/labels.json"], "double-softmax"),
    (["ce", "examples/mistakes/probs.json", "examples/seed/labels.json"], "double-softmax"),
    (["nll", "examples/seed/logits.json", "examples/seed/labels.json"], "nll-on-logits"),
    (
        ["nll", "examples/seed/logits.json", "examples/seed/labels.json", "--ignore-index", "1"],
        "ignore-index-is-a-class",
    ),
    (
        ["ce", "examples/mistakes/ambiguous.npy", "examples/mistakes/ambiguous-labels.npy"],
        "ambiguous-class-axis",
    ),
    (
        ["doctor", "examples/mistakes/batch-logits.json", "examples/mistakes/padded-labels.json"],
        "target-out-of-range",
    ),
    (
        ["ce", "examples/seed/logits.json", "examples/mistakes/all-ignored-labels.json"],
        "all-ignored",
    ),
    (
        ["doctor", "examples/mistakes/soft-logits.json", "examples/mistakes/soft-targets.json"],
        "soft-targets-not-normalized",
    ),
    (
        [
            "ce",
            "examples/mistakes/masked-logits.json",
            "examples/mistakes/masked-at-target-labels.json",
        ],
        "neg-inf-at-target",
    ),
    (
        [
            "ce",
            "examples/mistakes/masked-logits.json",
            "examples/mistakes/masked-labels.json",
            "--label-smoothing",
            "0.1",
        ],
        "neg-inf-label-smoothing",
    ),
    (
        ["doctor", "examples/mistakes/float16-logits.npy", "examples/mistakes/float16-labels.json"],
        "float16-overflow",
    ),
]


@pytest.mark.parametrize(("args", "code"), EXAMPLES, ids=[code for _, code in EXAMPLES])
def test_example_shows_its_mistake(args: list[str], code: str) -> None:
    result = run_in_process(*args, "--json")
    assert result.code == 0, result.err
    assert code in [f["code"] for f in json.loads(result.out)["findings"]]
