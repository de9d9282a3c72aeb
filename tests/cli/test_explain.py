"""``--explain``: the trace's numbers, its layout and marks, golden renderings and the CLI.

Golden files live in tests/golden/ and are compared exactly. After a deliberate
change of the output, rewrite them with ``LOSSCTL_UPDATE_GOLDEN=1 pytest
tests/cli/test_explain.py`` and check the diff by eye before committing.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from lossctl.core.losses import cross_entropy, log_softmax, loss_result, softmax
from lossctl.io.documents import dumps
from lossctl.render.explain import explain_view
from lossctl.render.explain_data import equation, steps_json
from lossctl.render.results import NumberFormat
from lossctl.trace import (
    Edges,
    Step,
    Trace,
    explain_elementwise,
    explain_loss,
    kept_indices,
)
from tests.conftest import SEED
from tests.helpers import Run, clean_env, run_in_process, run_lossctl

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
LOGITS = np.array([[1.1741, -0.4859], [-3.718, 1.5257], [0.0222, 0.5898]])
LABELS = np.array([1, 2])
FMT = NumberFormat()
ESCAPE = re.compile(r"\x1b\[")


def render(trace: Trace, width: int = 100, fmt: NumberFormat = FMT) -> str:
    """The trace as plain text at a fixed width, as a pipe would get it."""
    buffer = io.StringIO()
    Console(width=width, file=buffer, color_system=None).print(explain_view(trace, fmt=fmt))
    return buffer.getvalue()


def step(trace: Trace, key: str) -> Step:
    matches = [s for s in trace.steps if s.key == key]
    assert len(matches) == 1, [s.key for s in trace.steps]
    return matches[0]


def column(s: Step, key: str) -> np.ndarray:
    matches = [c.values for c in s.columns if c.key == key]
    assert len(matches) == 1, [c.key for c in s.columns]
    return np.asarray(matches[0])


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("LOSSCTL_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from the golden file (see the module docstring)"


# ------------------------------------------------------------------ the seed example


def test_seed_cross_entropy_trace_has_the_articles_numbers() -> None:
    trace = explain_loss("cross_entropy", LOGITS, LABELS)
    assert [s.key for s in trace.steps] == [
        "input",
        "shift",
        "exp",
        "softmax",
        "log_softmax",
        "nll",
        "reduce",
        "identity",
    ]
    layout = trace.layout
    assert (layout.class_dim, layout.orientation, layout.shape) == (0, "across", (3, 2))
    # Laid out as given: rows are the 3 classes, columns the 2 positions.
    np.testing.assert_array_equal(step(trace, "input").grid, LOGITS)
    np.testing.assert_array_equal(
        trace.target_cells, [[False, False], [True, False], [False, True]]
    )
    assert not trace.ignored_cells.any()
    probs = step(trace, "softmax").grid
    assert probs is not None
    np.testing.assert_allclose(probs[:, 0], [0.7555, 0.0057, 0.2388], atol=5e-5)
    np.testing.assert_allclose(probs, softmax(LOGITS, 0), rtol=1e-15)
    np.testing.assert_allclose(column(step(trace, "softmax"), "softmax_sum"), 1.0, rtol=1e-15)
    np.testing.assert_allclose(step(trace, "log_softmax").grid, log_softmax(LOGITS, 0), rtol=1e-15)
    np.testing.assert_allclose(
        column(step(trace, "log_softmax"), "picked"), [-5.1724, -1.3586], atol=5e-5
    )
    np.testing.assert_array_equal(column(step(trace, "shift"), "max"), [1.1741, 1.5257])
    np.testing.assert_allclose(
        column(step(trace, "exp"), "lse"), np.log(np.exp(LOGITS).sum(axis=0)), rtol=1e-15
    )
    reduce = step(trace, "reduce")
    assert reduce.reduction is not None
    assert equation(reduce.reduction, FMT) == "(5.1724 + 1.3586) / 2 = 3.2655"
    assert step(trace, "identity").equals == cross_entropy(LOGITS, LABELS)


def test_seed_cross_entropy_golden() -> None:
    text = render(explain_loss("cross_entropy", LOGITS, LABELS))
    assert "(5.1724 + 1.3586) / 2 = 3.2655" in text
    assert "cross_entropy = nll(log(softmax(x))) = 3.2655" in text
    assert not ESCAPE.search(text)
    check_golden("seed_ce_explain.txt", text)


def test_seed_nll_on_raw_logits_says_so_and_shows_ce() -> None:
    trace = explain_loss("nll_loss", LOGITS, LABELS)
    assert [s.key for s in trace.steps] == [
        "input",
        "pick",
        "negate",
        "mask_weight",
        "reduce",
        "check",
    ]
    np.testing.assert_array_equal(column(step(trace, "pick"), "picked"), [-3.718, 0.5898])
    np.testing.assert_array_equal(column(step(trace, "negate"), "negated"), [3.718, -0.5898])
    reduce = step(trace, "reduce")
    assert reduce.reduction is not None
    assert equation(reduce.reduction, FMT) == "(3.7180 - 0.5898) / 2 = 1.5641"
    check = step(trace, "check")
    assert check.warning
    assert check.equals == pytest.approx(3.2654828147938195, rel=1e-12)
    assert "negative loss" in check.note and "above 0" in check.note
    text = render(trace)
    assert "The input is not log-probabilities" in text
    assert "cross_entropy(x, t) = nll_loss(log_softmax(x), t) = 3.2655" in text
    check_golden("seed_nll_explain.txt", text)


def test_nll_on_log_probabilities_states_the_identity() -> None:
    logp = log_softmax(LOGITS, 0)
    trace = explain_loss("nll_loss", logp, LABELS)
    assert trace.steps[-1].key == "identity"
    assert not any(s.warning for s in trace.steps)
    assert trace.steps[-1].equals == pytest.approx(3.2654828147938195, rel=1e-12)
    np.testing.assert_allclose(column(step(trace, "input"), "lse"), 0.0, atol=1e-15)


def test_seed_softmax_and_log_softmax_traces() -> None:
    trace = explain_elementwise("softmax", LOGITS, dim=0)
    assert [s.key for s in trace.steps] == ["input", "shift", "exp", "softmax", "identity"]
    np.testing.assert_allclose(step(trace, "softmax").grid, softmax(LOGITS, 0), rtol=1e-15)
    check_golden("seed_softmax_explain.txt", render(trace))
    trace = explain_elementwise("log_softmax", LOGITS, dim=0)
    np.testing.assert_allclose(step(trace, "log_softmax").grid, log_softmax(LOGITS, 0), rtol=1e-15)
    np.testing.assert_allclose(
        column(step(trace, "exp"), "log_sum"), [0.280311, 0.4226546], atol=1e-6
    )


def test_log_trace_shows_minus_inf_and_nan() -> None:
    probs = np.array([[0.5, 0.0], [0.5, 1.0], [0.0, -1.0]])
    trace = explain_elementwise("log", probs, dim=0)
    logs = step(trace, "log").grid
    assert logs is not None
    assert logs[0, 1] == -np.inf and np.isnan(logs[2, 1])
    np.testing.assert_allclose(column(step(trace, "input"), "sum"), [1.0, 0.0])
    text = render(trace)
    assert "-inf" in text and "nan" in text
    values = json.loads(dumps({"steps": steps_json(trace, FMT)}))["steps"][1]["values"]["log"]
    assert values["values"][0][1] == "-inf" and values["values"][2][1] == "nan"
    assert explain_elementwise("log", probs, dim=None).layout.orientation == "none"


# ------------------------------------------------------------------ options


def test_ignore_index_marks_and_reduction() -> None:
    labels = np.array([1, -100])
    trace = explain_loss("cross_entropy", LOGITS, labels)
    np.testing.assert_array_equal(trace.ignored_cells, [[False, True]] * 3)
    np.testing.assert_array_equal(trace.target_cells[:, 1], False)
    np.testing.assert_array_equal(trace.ignored_positions, [False, True])
    nll = step(trace, "nll")
    np.testing.assert_array_equal(column(nll, "mask"), [1, 0])
    np.testing.assert_array_equal(column(nll, "loss"), [pytest.approx(5.172411), 0.0])
    reduce = step(trace, "reduce")
    assert reduce.reduction is not None
    assert equation(reduce.reduction, FMT) == "5.1724 / 1 = 5.1724"
    assert "1 ignored position" in reduce.note
    text = render(trace)
    # Plain text keeps the marks: the ignored column is in parentheses, the target starred.
    assert "(-0.4859)" in text and "-3.7180*" in text and "(-100)" in text
    assert "( ) = ignored position" in text
    check_golden("seed_ce_ignore_explain.txt", text)


def test_every_target_ignored_gives_nan_without_crashing() -> None:
    trace = explain_loss("cross_entropy", LOGITS, np.array([-100, -100]))
    reduce = step(trace, "reduce")
    assert reduce.reduction is not None
    assert equation(reduce.reduction, FMT) == "0 / 0 = nan"
    assert "nan" in render(trace)


def test_class_weights_in_the_terms_and_the_denominator() -> None:
    weight = np.array([1.0, 2.0, 0.5])
    trace = explain_loss("cross_entropy", LOGITS, LABELS, weight=weight)
    nll = step(trace, "nll")
    np.testing.assert_array_equal(column(nll, "weight"), [2.0, 0.5])
    expected = cross_entropy(LOGITS, LABELS, weight=weight)
    reduce = step(trace, "reduce")
    assert reduce.reduction is not None
    text = equation(reduce.reduction, FMT)
    assert text == f"(2.0000·5.1724 + 0.5000·1.3586) / 2.5000 = {FMT(float(expected))}"
    assert "sum of the class weights" in reduce.note
    nll_trace = explain_loss("nll_loss", LOGITS, LABELS, weight=weight)
    assert step(nll_trace, "mask_weight").title == "Mask and weight"


def test_label_smoothing_shows_the_uniform_part() -> None:
    eps = 0.1
    trace = explain_loss("cross_entropy", LOGITS, LABELS, label_smoothing=eps)
    nll = step(trace, "nll")
    target_part = column(nll, "target_part")
    uniform = column(nll, "uniform")
    uniform_part = column(nll, "uniform_part")
    logp = log_softmax(LOGITS, 0)
    np.testing.assert_allclose(uniform, -logp.sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(uniform_part, eps / 3 * uniform, rtol=1e-14)
    np.testing.assert_allclose(target_part, (1 - eps) * -logp[LABELS, [0, 1]], rtol=1e-14)
    core = loss_result("cross_entropy", LOGITS, LABELS, label_smoothing=eps)
    np.testing.assert_allclose(column(nll, "loss"), core.per_position, rtol=1e-15)
    np.testing.assert_allclose(target_part + uniform_part, core.per_position, rtol=1e-14)
    assert "ε = 0.1, C = 3" in nll.note
    reduce = step(trace, "reduce")
    assert reduce.reduction is not None
    assert equation(reduce.reduction, FMT) == f"(4.8847 + 1.3632) / 2 = {FMT(float(core.loss))}"


def test_probability_targets() -> None:
    q = np.array([[0.7, 0.1], [0.2, 0.3], [0.1, 0.6]])
    trace = explain_loss("cross_entropy", LOGITS, q, class_dim=0)
    assert trace.targets == "probabilities"
    assert "targets" in [s.key for s in trace.steps]
    assert not trace.target_cells.any()
    terms = step(trace, "nll").grid
    assert terms is not None
    expected = loss_result("cross_entropy", LOGITS, q, class_dim=0)
    np.testing.assert_allclose(terms.sum(axis=0), expected.per_position, rtol=1e-14)
    reduce = step(trace, "reduce")
    assert reduce.reduction is not None
    assert reduce.reduction.denominator_kind == "positions"
    assert equation(reduce.reduction, FMT) == f"(1.3739 + 1.1854) / 2 = {FMT(float(expected.loss))}"
    assert "N·d1·…·dk" in reduce.note
    smoothed = explain_loss("cross_entropy", LOGITS, q, class_dim=0, label_smoothing=0.3)
    np.testing.assert_allclose(step(smoothed, "targets").grid, 0.7 * q + 0.1, rtol=1e-15)


def test_three_dimensional_input_keeps_its_layout() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 4))
    t = np.array([[0, 1, 2, -100], [2, 2, 1, 0]])
    trace = explain_loss("cross_entropy", x, t)
    layout = trace.layout
    assert (layout.class_dim, layout.orientation) == (1, "list")
    # Grid rows are (axis 0, class) pairs and columns axis 2, as numpy prints the array.
    np.testing.assert_array_equal(step(trace, "input").grid, x.reshape(6, 4))
    logp = log_softmax(x, 1)
    np.testing.assert_allclose(step(trace, "log_softmax").grid, logp.reshape(6, 4), rtol=1e-15)
    n, c, d = np.unravel_index(np.arange(24), (2, 3, 4))
    expected_targets = (t[n, d] == c).reshape(6, 4)
    np.testing.assert_array_equal(trace.target_cells, expected_targets)
    np.testing.assert_array_equal(trace.ignored_cells, (t[n, d] == -100).reshape(6, 4))
    core = loss_result("cross_entropy", x, t)
    np.testing.assert_allclose(column(step(trace, "nll"), "loss"), core.per_position.reshape(-1))
    text = render(trace)
    assert "rows: axis 0, class (axis 1); columns: axis 2" in text
    assert "axis 0, axis 2" in text  # the per-position table names its axes


def test_one_dimensional_input_is_one_position() -> None:
    trace = explain_loss("cross_entropy", np.array([1.0, 2.0, 3.0]), np.array(2))
    assert trace.layout.positions_shape == ()
    assert trace.layout.orientation == "down"
    assert step(trace, "identity").equals == pytest.approx(0.40760596444437)
    assert "3.0000*" in render(trace)


def test_explain_reuses_a_given_result() -> None:
    result = loss_result("cross_entropy", LOGITS, LABELS)
    given = explain_loss("cross_entropy", LOGITS, LABELS, result=result)
    assert render(given) == render(explain_loss("cross_entropy", LOGITS, LABELS))


def test_digits_and_scientific_notation() -> None:
    trace = explain_loss("cross_entropy", LOGITS, LABELS)
    text = render(trace, fmt=NumberFormat(digits=2))
    assert "(5.17 + 1.36) / 2 = 3.27" in text
    tiny = explain_loss("cross_entropy", np.array([[30.0, 0.0]]), np.array([0]))
    assert "e-14" in render(tiny)  # 9.4e-14 would print as 0.0000


# ------------------------------------------------------------------ large inputs


def big_input(positions: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(positions, classes)).astype(np.float32)
    t = rng.integers(0, classes, positions)
    t[5] = -100
    return x, t


def test_large_input_is_summarised_with_statistics() -> None:
    x, t = big_input(300, 40)
    trace = explain_loss("cross_entropy", x, t)
    layout = trace.layout
    assert layout.rows == (0, 1, None, 298, 299)
    assert layout.cols == (0, 1, 2, None, 37, 38, 39)
    assert layout.positions == layout.rows
    core = loss_result("cross_entropy", x, t)
    stats = step(trace, "stats").stats
    assert stats is not None
    counted = np.delete(core.per_position, 5)
    assert stats.counted == 299
    assert (stats.minimum, stats.median, stats.maximum) == (
        counted.min(),
        np.median(counted),
        counted.max(),
    )
    order = np.argsort(np.where(t == -100, -np.inf, core.per_position))[::-1][:5]
    np.testing.assert_array_equal(stats.worst, order)
    np.testing.assert_array_equal(stats.worst_target, t[order])
    np.testing.assert_array_equal(stats.worst_predicted, np.argmax(x[order], axis=1))
    np.testing.assert_allclose(
        stats.worst_picked, softmax(x[order], 1)[np.arange(5), t[order]], rtol=1e-6
    )
    reduce = step(trace, "reduce")
    assert reduce.reduction is not None
    written = equation(reduce.reduction, FMT)
    assert (
        written.count(" + ") + written.count(" - ") == 4
        and "… + " in written
        and written.endswith(FMT(core.loss))
    )
    text = render(trace)
    assert len(text.splitlines()) < 100  # blank lines and header rules kept (issue 14)
    assert "… = elided (--full shows all)" in text
    assert not re.search(r"\d…|…\d", text), "a number was cut short"


def test_full_lifts_the_summary() -> None:
    x, t = big_input(12, 11)
    trace = explain_loss("cross_entropy", x, t, edges=Edges.full())
    assert None not in trace.layout.rows and None not in trace.layout.cols
    reduce = step(trace, "reduce")
    assert reduce.reduction is not None
    written = equation(reduce.reduction, FMT)
    assert written.count(" + ") + written.count(" - ") == 10
    assert no_ellipsis(render(trace, width=200))


def no_ellipsis(text: str) -> bool:
    return "…" not in text


def test_narrow_terminal_drops_columns_instead_of_cutting_numbers() -> None:
    x, t = big_input(30, 40)
    trace = explain_loss("cross_entropy", x, t)
    for width in (60, 80, 100):
        text = render(trace, width=width)
        assert not re.search(r"\d…|…\d", text), width
        assert all(len(line) <= width for line in text.splitlines())


def test_class_axis_first_summarises_positions_across() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 50))
    t = rng.integers(0, 5, 50)
    trace = explain_loss("cross_entropy", x, t, class_dim=0)
    assert trace.layout.orientation == "across"
    assert trace.layout.positions == (0, 1, 2, None, 47, 48, 49)
    picked = column(step(trace, "log_softmax"), "picked")
    kept = np.array([0, 1, 2, 47, 48, 49])
    np.testing.assert_allclose(picked, log_softmax(x, 0)[t[kept], kept], rtol=1e-15)


def test_explain_work_is_bounded_by_the_shown_positions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond the loss itself, only the shown rows go through row_stats."""
    import lossctl.trace.rows as explain

    seen: list[tuple[int, ...]] = []
    original = explain.row_stats

    def spy(rows: np.ndarray) -> Any:
        seen.append(rows.shape)
        return original(rows)

    monkeypatch.setattr(explain, "row_stats", spy)
    x, t = big_input(2000, 30)
    explain_loss("cross_entropy", x, t, result=loss_result("cross_entropy", x, t))
    assert seen and all(shape[0] <= 20 for shape in seen), seen


# ------------------------------------------------------------------ JSON


def test_steps_json_records_kept_indices_and_round_trips() -> None:
    x, t = big_input(300, 40)
    document = json.loads(dumps({"steps": steps_json(explain_loss("cross_entropy", x, t), FMT)}))
    steps = {s["name"]: s for s in document["steps"]}
    assert set(steps) >= {"input", "shift", "exp", "softmax", "log_softmax", "nll", "reduce"}
    for s in document["steps"]:
        assert set(s) == {"name", "title", "formula", "note", "values"}
    grid = steps["input"]["values"]["x"]
    assert grid["summarised"] is True
    assert grid["rows"] == [0, 1, 298, 299] and grid["cols"] == [0, 1, 2, 37, 38, 39]
    assert np.asarray(grid["values"]).shape == (4, 6)
    target = steps["input"]["values"]["target"]
    assert target["positions"] == [[0], [1], [298], [299]]
    reduction = steps["reduce"]["values"]["reduction"]
    assert reduction["summarised"] is True and len(reduction["terms"]) == 4
    assert reduction["equation"].startswith("(") and "-(" not in reduction["equation"]
    assert len(steps["stats"]["values"]["stats"]["worst"]) == 5


def test_steps_json_of_the_seed_is_complete_and_nested_like_the_input() -> None:
    document = json.loads(
        dumps({"steps": steps_json(explain_loss("cross_entropy", LOGITS, LABELS), FMT)})
    )
    steps = {s["name"]: s for s in document["steps"]}
    x = steps["input"]["values"]["x"]
    assert x["summarised"] is False and x["values"] == LOGITS.tolist()
    assert x["axes"] == ["class", "position"]
    assert steps["input"]["values"]["target_cells"] == [
        [False, False],
        [True, False],
        [False, True],
    ]
    assert steps["softmax"]["formula"] == "softmax = exp(x - max) / Σ"
    assert steps["reduce"]["values"]["reduction"]["equation"] == ("(5.1724 + 1.3586) / 2 = 3.2655")
    assert steps["identity"]["values"]["equals"] == pytest.approx(3.2654828147938195)


# ------------------------------------------------------------------ colour


def test_terminal_output_is_coloured_and_marks_survive_without_colour() -> None:
    trace = explain_loss("cross_entropy", LOGITS, np.array([1, -100]))
    buffer = io.StringIO()
    console = Console(width=100, file=buffer, force_terminal=True, color_system="truecolor")
    console.print(explain_view(trace, fmt=FMT))
    coloured = buffer.getvalue()
    assert ESCAPE.search(coloured)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", coloured)
    assert plain == render(trace)


def test_kept_indices_matches_render() -> None:
    from lossctl.render.results import kept_indices as render_kept

    for length in (0, 3, 10, 11, 50):
        assert list(kept_indices(length, 4, small=0)) == render_kept(length, 4)


# ------------------------------------------------------------------ the command line

SEED_ARGS = [str(SEED / "logits.json"), str(SEED / "labels.json")]


def test_cli_ce_explain() -> None:
    result = run_in_process("ce", *SEED_ARGS, "--explain")
    assert result.code == 0, result.out
    assert "(5.1724 + 1.3586) / 2 = 3.2655" in result.out
    assert "cross_entropy = nll(log(softmax(x))) = 3.2655" in result.out
    assert not ESCAPE.search(result.out)


def test_cli_nll_explain_warns_about_raw_logits() -> None:
    result = run_in_process("nll", *SEED_ARGS, "--explain")
    assert result.code == 0, result.out
    assert "The input is not log-probabilities" in result.out
    assert "nll_loss(log_softmax(x), t) = 3.2655" in result.out
    assert "= 1.5641" in result.out


def test_cli_explain_json_adds_steps() -> None:
    result = run_in_process("ce", *SEED_ARGS, "--explain", "--json")
    assert result.code == 0, result.out
    document = json.loads(result.out)
    assert document["loss"] == pytest.approx(3.2654828147938195)
    assert [s["name"] for s in document["steps"]][:3] == ["input", "shift", "exp"]
    plain = json.loads(run_in_process("ce", *SEED_ARGS, "--json").out)
    assert "steps" not in plain


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["softmax", str(SEED / "logits.json"), "-d", "0"], "0.7555"),
        (["log-softmax", str(SEED / "logits.json"), "-d", "0"], "-5.1724"),
    ],
)
def test_cli_elementwise_explain(command: list[str], expected: str) -> None:
    result = run_in_process(*command, "--explain")
    assert result.code == 0, result.out
    assert expected in result.out and "What this showed" in result.out
    document = json.loads(run_in_process(*command, "--explain", "--json").out)
    assert document["steps"][-1]["name"] == "identity"


def test_cli_log_explain(tmp_path: Path) -> None:
    probs = tmp_path / "probs.json"
    probs.write_text(json.dumps(softmax(LOGITS, 0).tolist()))
    result = run_in_process("log", str(probs), "--explain", "--digits", "2")
    assert result.code == 0, result.out
    assert "-5.17" in result.out and "log(p), elementwise" in result.out


def test_cli_explain_digits_and_full() -> None:
    result = run_in_process("ce", *SEED_ARGS, "--explain", "--digits", "2", "--full")
    assert result.code == 0, result.out
    assert "(5.17 + 1.36) / 2 = 3.27" in result.out


def lossctl(*args: str, **env: str) -> Run:
    """A real process, its stdout a pipe, on a 100-column console unless ``env`` says otherwise."""
    return run_lossctl(*args, env=clean_env(**{"COLUMNS": "100", **env}))


def test_subprocess_pipe_is_plain_text_and_matches_the_golden_trace() -> None:
    proc = lossctl("ce", "examples/seed/logits.json", "examples/seed/labels.json", "--explain")
    assert proc.code == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert not ESCAPE.search(out)
    golden = (GOLDEN / "seed_ce_explain.txt").read_text(encoding="utf-8")
    # the rendering, without the spaces rich pads lines with (a pipe gets none)
    assert out == "".join(line.rstrip() + "\n" for line in golden.splitlines())


def test_subprocess_respects_no_color() -> None:
    args = ("ce", "examples/seed/logits.json", "examples/seed/labels.json", "--explain")
    forced = lossctl(*args, FORCE_COLOR="1").stdout.decode()
    assert re.search(r"\x1b\[[0-9;]*3[0-7]m", forced), "FORCE_COLOR should colour the trace"
    no_color = lossctl(*args, FORCE_COLOR="1", NO_COLOR="1").stdout.decode()
    assert not re.search(r"\x1b\[[0-9;]*3[0-7]m", no_color)
    assert "-3.7180*" in re.sub(r"\x1b\[[0-9;]*m", "", no_color)


@pytest.mark.parametrize("columns", ["80", "100"])
def test_subprocess_large_input_fits_the_terminal(tmp_path: Path, columns: str) -> None:
    x, t = big_input(300, 40)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    proc = lossctl(
        "ce", str(tmp_path / "x.npy"), str(tmp_path / "t.npy"), "--explain", COLUMNS=columns
    )
    assert proc.code == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert max(len(line) for line in lines) <= int(columns)
    assert len(lines) <= (100 if columns == "100" else 110)
    assert not re.search(r"\d…|…\d", proc.stdout.decode()), "a number was cut short"
