"""Files made the way pandas users make them give the loss of the same data as .npy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from lossctl.cli.app import app
from tests.conftest import ROOT

CSV = ROOT / "tests" / "data" / "csv"
runner = CliRunner()


def loss(*args: str) -> tuple[float, str]:
    result = runner.invoke(app, ["ce", *args, "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["loss"], result.stderr


def test_pandas_csvs_with_and_without_the_index_equal_the_npy() -> None:
    expected, _ = loss(str(CSV / "logits.npy"), str(CSV / "labels.npy"))
    for logits, labels in [
        ("logits_index.csv", "labels_index.csv"),
        ("logits_noindex.csv", "labels.npy"),
    ]:
        got, notes = loss(str(CSV / logits), str(CSV / labels))
        assert got == expected, (logits, labels)
        assert "lossctl: note:" in notes  # a header is never skipped silently


def test_a_series_header_0_over_integer_labels_is_dropped_when_only_that_fits(
    tmp_path: Path,
) -> None:
    """``pd.Series(labels).to_csv(index=False)`` writes ``0`` then the labels: line 1 reads as
    data first (it could be a label), and is taken as the header only because without it the
    labels fit the logits' positions on PyTorch's class axis."""
    x = np.random.default_rng(0).normal(size=(4, 5))
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "y.csv").write_text("0\n1\n0\n4\n2\n")
    np.save(tmp_path / "y.npy", np.array([1, 0, 4, 2]))
    expected, _ = loss(str(tmp_path / "x.npy"), str(tmp_path / "y.npy"))
    got, notes = loss(str(tmp_path / "x.npy"), str(tmp_path / "y.csv"))
    assert got == expected
    assert "y.csv: line 1 taken as a header after all" in notes
    # four labels for four rows: line 1 is a label, and stays one
    (tmp_path / "z.csv").write_text("0\n1\n0\n4\n")
    _, notes = loss(str(tmp_path / "x.npy"), str(tmp_path / "z.csv"))
    assert "after all" not in notes
