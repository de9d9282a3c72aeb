"""One pass: the blocked pass that computes a loss collects the doctor's facts on the way.

The facts a loss pass collects (the kernel, nll's picked values, label smoothing, soft
targets) equal the facts of the whole array computed in memory, on random and adversarial
inputs (NaN, ±inf, a row of only -inf, probabilities, log-probabilities, float16), with one
or two kernel threads; the findings decided from them are those of the separate pass; and
a spy on the row source shows that ``ce``, ``nll`` and ``doctor`` ask for every row of the
input exactly once (plus, where a finding needs one, only the rows it names).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lossctl.core import facts as facts_module
from lossctl.core import threads
from lossctl.core.facts import FactsMode, facts_of_block
from lossctl.core.kernels import RowSource
from lossctl.core.losses import LossResult, compute, loss_result
from lossctl.core.spec import spec_of
from lossctl.doctor import diagnose
from lossctl.render.messages import finding_json
from tests.helpers import run_in_process
from tests.unit.test_facts import hostile, same

ROWS, CLASSES = 600, 700  # 1.7 MB of float32: several kernel blocks of 1 MiB


def _probabilities(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(CLASSES), size=ROWS)


INPUTS: dict[str, Callable[[], np.ndarray]] = {
    "logits float32": lambda: np.random.default_rng(1).normal(size=(ROWS, CLASSES)).astype("f4"),
    "hostile float32": lambda: hostile(2, ROWS, CLASSES),
    "hostile float64": lambda: hostile(3, ROWS, CLASSES, np.float64),
    "hostile float16": lambda: hostile(4, ROWS, CLASSES, np.float16) * np.float16(3000),
    "probabilities": lambda: _probabilities(5).astype(np.float32),
    "log-probabilities": lambda: np.log(_probabilities(6)),
    "confident": lambda: np.where(np.eye(ROWS, CLASSES) > 0, 90.0, -90.0).astype("f4"),
}
LOSSES = {
    "ce": ("cross_entropy", 0.0),
    "ce smoothing": ("cross_entropy", 0.1),
    "nll": ("nll_loss", 0.0),
}


def passed(op: Any, x: np.ndarray, y: np.ndarray, facts: FactsMode, eps: float = 0.0) -> LossResult:
    """The loss of ``x`` against ``y``, its pass collecting the facts as ``facts`` says."""
    return compute(spec_of(op, {"label_smoothing": eps}), x, y, facts=facts)


def _labels(seed: int) -> np.ndarray:
    y = np.random.default_rng(seed).integers(0, CLASSES, ROWS)
    y[::37] = -100  # ignored positions
    return y


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def workers(request: pytest.FixtureRequest) -> Iterator[int]:
    threads.set_workers(request.param)
    yield request.param
    threads.set_workers(None)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many blocks for the passes that have their own block size."""
    monkeypatch.setattr("lossctl.core.rows.BLOCK_ELEMENTS", 30_000)  # label smoothing
    monkeypatch.setattr("lossctl.core.rowpass.BLOCK_BYTES", 50_000)  # nll's picked values


@pytest.mark.parametrize("mode", ["plain", "logsumexp"])
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("name", list(INPUTS))
def test_the_loss_pass_collects_the_facts_of_the_whole(
    name: str, loss: str, mode: FactsMode, workers: int, small_blocks: None
) -> None:
    x = INPUTS[name]()
    op, eps = LOSSES[loss]
    y = _labels(len(name))
    result = passed(op, x, y, mode, eps)
    assert result.facts is not None
    whole = facts_of_block(x, 0, logsumexp=mode == "logsumexp")  # in memory, at once
    assert same(result.facts, whole), (result.facts, whole)
    expected_rows = np.flatnonzero(np.isneginf(x).any(axis=1))
    assert result.facts.neginf_index is not None
    np.testing.assert_array_equal(result.facts.neginf_index, expected_rows)
    plain = loss_result(op, x, y, label_smoothing=eps)  # collecting changes no number
    np.testing.assert_array_equal(result.per_position, plain.per_position)
    assert plain.facts is None


def test_soft_targets_and_other_layouts_carry_facts_too() -> None:
    x = hostile(7, 40, 9)
    q = np.random.default_rng(8).dirichlet(np.ones(9), size=40)
    soft = passed("cross_entropy", x, q, "plain")
    assert soft.facts is not None and same(soft.facts, facts_of_block(x, 0))
    cube = hostile(9, 6 * 5, 4).reshape(6, 5, 4).transpose(0, 2, 1)  # (N, C, L): C on axis 1
    y = np.random.default_rng(10).integers(0, 4, (6, 5))
    result = passed("cross_entropy", cube, y, "plain")
    rows = np.moveaxis(cube, 1, -1).reshape(-1, 4)
    assert result.facts is not None and same(result.facts, facts_of_block(rows, 0))


def _findings(
    x: np.ndarray, y: np.ndarray, op: Any, eps: float, facts: FactsMode, inline: bool
) -> str:
    result = passed(op, x, y, facts, eps)
    found = diagnose(x, y, op=op, label_smoothing=eps, result=result, inline=inline)
    return json.dumps([finding_json(f) for f in found])  # NaN compares equal as text


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("name", list(INPUTS))
def test_findings_from_the_pass_are_those_of_a_separate_pass(name: str, loss: str) -> None:
    x = INPUTS[name]()
    op, eps = LOSSES[loss]
    y = _labels(len(name) + 1)
    if name.startswith("hostile"):
        x[3, y[3]] = -np.inf  # -inf at a target too
    for inline, mode in ((True, "plain"), (False, "logsumexp")):
        separate = _findings(x, y, op, eps, "none", inline)  # the facts' own pass
        assert _findings(x, y, op, eps, mode, inline) == separate  # type: ignore[arg-type]
    computed_inside = diagnose(x, y, op=op, label_smoothing=eps)  # type: ignore[arg-type]
    assert json.dumps([finding_json(f) for f in computed_inside]) == separate


class Spy:
    """Every block of rows asked from a :class:`RowSource`, and every row gathered by name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.blocks: list[tuple[int, int]] = []
        self.named: list[int] = []
        block, named_rows = RowSource.block, facts_module.named_rows

        def spy_block(source: RowSource, r0: int, r1: int) -> Any:
            self.blocks.append((r0, r1))
            return block(source, r0, r1)

        def spy_named(x: Any, axis: int, named: Any, *args: Any) -> Iterator[Any]:
            self.named += [int(i) for i in named]
            return named_rows(x, axis, named, *args)

        monkeypatch.setattr(RowSource, "block", spy_block)
        monkeypatch.setattr("lossctl.doctor.nonfinite.named_rows", spy_named)

    def times_each_row_read(self, rows: int) -> np.ndarray:
        counts = np.zeros(rows, dtype=int)
        for r0, r1 in self.blocks:
            counts[r0:r1] += 1
        return counts


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A float32 logits file of several blocks with -inf in rows 5 (at the target) and 77,
    its labels, and the log-softmax of the clean logits (log-probabilities)."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(ROWS, 2 * CLASSES)).astype(np.float32)
    y = rng.integers(0, x.shape[1], ROWS)
    np.save(tmp_path / "logp.npy", x - np.log(np.exp(x.astype(np.float64)).sum(1, keepdims=True)))
    x[5, y[5]] = x[77, 0] = -np.inf
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "logp.npy"


@pytest.mark.parametrize(
    "args",
    [
        ("ce", "X", "Y", "--json"),
        ("ce", "X", "Y", "--json", "--label-smoothing", "0.1"),
        ("doctor", "X", "Y", "--json"),
        ("nll", "LOGP", "Y", "--json"),
        ("doctor", "LOGP", "Y", "--json", "--loss", "nll"),
    ],
    ids=lambda a: " ".join(a),
)
def test_the_input_is_read_once(
    files: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    small_blocks: None,
    args: tuple[str, ...],
) -> None:
    x, y, logp = files
    paths = {"X": str(x), "Y": str(y), "LOGP": str(logp)}
    spy = Spy(monkeypatch)
    run = run_in_process(*[paths.get(a, a) for a in args])
    document = run.document()
    assert len(spy.blocks) > 1  # several blocks, each asked for once
    np.testing.assert_array_equal(spy.times_each_row_read(ROWS), np.ones(ROWS, dtype=int))
    codes = {f["code"]: f for f in document["findings"]}
    if "X" in args:  # -inf: the second look reads only the rows holding it
        assert spy.named == [5, 77]
        smoothing = "--label-smoothing" in args
        assert codes["neg-inf-at-target"]["evidence"]["positions"] == [[5]]
        if smoothing:
            assert codes["neg-inf-label-smoothing"]["evidence"]["positions"] == [[77]]
    else:
        assert spy.named == [] and "nll-on-logits" not in codes
