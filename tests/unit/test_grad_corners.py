"""``--grad`` into a large table computes only the cells it shows, from the streamed
gradient's blocks: the same cells as the whole gradient, the same table, bounded memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lossctl.core.grad import grad_from_result
from lossctl.core.grad_stream import grad_blocks
from lossctl.core.losses import loss_result
from lossctl.render.results import Corners, Summary
from tests.helpers import run_in_process


@pytest.mark.parametrize(
    ("shape", "class_dim", "edges"),
    [((41, 9), 1, (4, 3)), ((5, 13, 7), 1, (3, 2)), ((6, 4, 11), 2, (2, 4)), ((30,), 0, (3, 5))],
)
def test_streamed_corners_are_the_whole_gradients(
    shape: tuple[int, ...], class_dim: int, edges: tuple[int, int]
) -> None:
    rng = np.random.default_rng(len(shape) * 10 + class_dim)
    x = rng.normal(size=shape) * 3
    labels_shape = shape[:class_dim] + shape[class_dim + 1 :]
    y = rng.integers(0, shape[class_dim], labels_shape)
    if y.size > 1:
        y.reshape(-1)[1] = -100  # an ignored position
    result = loss_result("cross_entropy", x, y, class_dim=class_dim, label_smoothing=0.1)
    summary = Summary(edge_rows=edges[0], edge_cols=edges[1])
    whole = Corners.of(grad_from_result(result, x, y), summary)
    for budget in (1, 7, 10**6):  # one line per block, a few, one block
        streamed = Corners.from_blocks(shape, summary, grad_blocks(result, x, y, budget=budget))
        assert (streamed.rows, streamed.cols) == (whole.rows, whole.cols)
        assert streamed.cells.tobytes() == whole.cells.tobytes(), budget


def test_the_grad_table_is_the_same_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    np.save(tmp_path / "x.npy", rng.normal(size=(40, 30, 12)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, 12, (40, 30)))
    args = ("ce", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "-d", "2", "--grad", "-q")
    whole = run_in_process(*args, COLUMNS="100")
    monkeypatch.setattr(
        "lossctl.cli.elementwise.CORNERS_FROM", 0
    )  # every table streams its corners
    streamed = run_in_process(*args, COLUMNS="100")
    assert whole.code == streamed.code == 0, streamed.err
    assert "gradient d loss / d input" in streamed.out
    assert streamed.out == whole.out
