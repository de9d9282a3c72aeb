"""The ``--explain`` trace at fixed widths (60, 80, 120), without and with colour, and as a
notebook object; the layering of the explain package.

Golden files live in tests/golden/explain_*.txt and are compared exactly. After a
deliberate change of the output, rewrite them with ``LOSSCTL_UPDATE_GOLDEN=1 pytest
tests/unit/test_explain_golden.py`` and check the diff by eye before committing.
"""

from __future__ import annotations

import io
import os
import re

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

import lossctl
from lossctl.cli.app import app
from lossctl.render.explain import bar, explain_view
from lossctl.render.notebook import ExplainedTrace
from lossctl.render.results import NumberFormat
from lossctl.trace import Trace, explain_loss
from tests.conftest import ROOT
from tests.helpers import html_text

GOLDEN = ROOT / "tests" / "golden"
LOGITS = np.array([[1.1741, -0.4859], [-3.718, 1.5257], [0.0222, 0.5898]])
LABELS = np.array([1, 2])
FMT = NumberFormat()
NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]\d+)?|-?\d+(?:e[-+]\d+)?")


def render(trace: Trace, width: int, colour: bool = False) -> str:
    buffer = io.StringIO()
    console = (
        Console(width=width, file=buffer, force_terminal=True, color_system="truecolor")
        if colour
        else Console(width=width, file=buffer, color_system=None)
    )
    console.print(explain_view(trace, fmt=FMT))
    return buffer.getvalue()


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("LOSSCTL_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


def wide_input() -> tuple[np.ndarray, np.ndarray]:
    """(N, L, C) logits with tiny and huge values: the numbers that wrapped at 60 columns."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 6, 12)) * 4
    x[0, 0, :3] = [2.5608e-05, -1234567.0, 3.1e-9]
    return x, rng.integers(0, 12, (2, 6))


@pytest.mark.parametrize("width", [60, 80, 120])
def test_seed_trace_at_a_fixed_width(width: int) -> None:
    text = render(explain_loss("cross_entropy", LOGITS, LABELS), width)
    assert all(len(line) <= width for line in text.splitlines())
    check_golden(f"explain_seed_ce_{width}.txt", text)


@pytest.mark.parametrize("width", [60, 80, 120])
def test_wide_trace_elides_columns_instead_of_breaking_numbers(width: int) -> None:
    x, t = wide_input()
    trace = explain_loss("cross_entropy", x, t, class_dim=2)
    text = render(trace, width)
    assert all(len(line) <= width for line in text.splitlines()), width
    # Every number of the narrow rendering is a whole number of the unbounded one.
    whole = set(NUMBER.findall(render(trace, 1000)))
    assert set(NUMBER.findall(text)) <= whole
    assert not re.search(r"\d…|…\d", text)
    check_golden(f"explain_wide_ce_{width}.txt", text)


@pytest.mark.parametrize("width", [60, 80, 120])
def test_seed_trace_in_colour(width: int) -> None:
    trace = explain_loss("cross_entropy", LOGITS, LABELS)
    coloured = render(trace, width, colour=True)
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == render(trace, width)
    check_golden(f"explain_seed_ce_{width}_colour.txt", coloured)


def test_seed_trace_teaches_the_articles_points() -> None:
    text = render(explain_loss("cross_entropy", LOGITS, LABELS), 1000)
    assert "class ↓  position →" in text
    assert "(5.1724 + 1.3586) / 2 = 3.2655" in text and "-(-" not in text
    assert text.count("NLLLoss vs CrossEntropy: code + principle + why it works") == 1
    assert "article's step" not in text
    assert "punishes weak positives" in text and "p = 0.0057" in text
    assert "nll on the raw logits gives 1.5641" in text and "-0.5898 is negative" in text
    assert "0.7555  ██████ " in text  # a bar per probability


def test_summarised_trace_keeps_blank_lines_and_rules() -> None:
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(300, 40)), rng.integers(0, 40, 300)
    text = render(explain_loss("cross_entropy", x, t), 100)
    blocks = text.split("\n\n")
    assert len(blocks) >= 9, "one block per step"
    assert text.count("───") >= 6, "a rule under every table header"


def test_bar() -> None:
    assert bar(0.0) == " " * 8 and bar(1.0) == "█" * 8
    assert bar(0.5) == "████    " and bar(0.7555) == "██████  " and bar(1 / 64) == "▏       "
    assert bar(float("nan")) == " " * 8 and bar(-1.0) == " " * 8 and bar(2.0) == "█" * 8


def test_one_counted_target_is_singular() -> None:
    seed = [str(ROOT / "examples" / "seed" / n) for n in ("logits.json", "labels.json")]
    result = CliRunner().invoke(app, ["ce", *seed, "--ignore-index", "1"])
    assert result.exit_code == 0, result.output
    assert "= 1 counted target " in result.output or result.output.count("1 counted target\n")
    assert "1 counted targets" not in result.output


# ------------------------------------------------------------------ the notebook object


def test_lossctl_explain_renders_html_with_the_numbers() -> None:
    explained = lossctl.explain(LOGITS, LABELS, class_dim=0)
    assert isinstance(explained, ExplainedTrace)
    text = html_text(explained._repr_html_())
    assert "3.2655" in text and "1.5641" in text and "5.1724" in text and "0.7555" in text
    assert "█" in text


def test_lossctl_explain_prints_and_keeps_its_steps_as_data() -> None:
    explained = lossctl.explain(LOGITS, LABELS, op="ce", class_dim=0)
    assert str(explained) == render(explained.trace, 100)
    buffer = io.StringIO()
    Console(file=buffer, width=100, color_system=None).print(explained)
    assert buffer.getvalue() == str(explained)
    steps = explained.steps
    assert [s["name"] for s in steps][-1] == "identity"
    assert steps[-1]["values"]["equals"] == pytest.approx(3.2654828, rel=1e-6)
    nll = lossctl.explain(LOGITS, LABELS, op="nll_loss", class_dim=0, grad=True)
    assert nll.steps[-1]["name"] == "gradient"
    softmax = lossctl.explain(LOGITS, op="softmax", dim=0)
    assert "0.7555" in str(softmax)
    with pytest.raises(ValueError, match="op must be one of"):
        lossctl.explain(LOGITS, LABELS, op="mse")


def test_lossctl_explain_is_the_function_beside_the_trace_package() -> None:
    import lossctl.trace.model  # the trace model lives in lossctl.trace, not lossctl.explain

    assert callable(lossctl.explain)
    assert lossctl.trace.Edges is lossctl.trace.model.Edges
    assert isinstance(lossctl.explain(LOGITS, LABELS, class_dim=0), ExplainedTrace)
