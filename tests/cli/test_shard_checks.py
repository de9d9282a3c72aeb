"""Sharded runs check every shard as a single input is checked (issue "One pass")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from lossctl.cli.app import app

runner = CliRunner()


def test_every_shard_gets_the_checks_of_one_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for i in range(2):
        x = rng.normal(size=(20, 5))
        probabilities = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
        np.save(tmp_path / f"p-{i}.npy", probabilities if i == 0 else x)
        np.save(tmp_path / f"y-{i}.npy", rng.integers(0, 5, 20))
    files = [str(tmp_path / f"p-{i}.npy") for i in range(2)]
    files += [str(tmp_path / f"y-{i}.npy") for i in range(2)]
    result = runner.invoke(app, ["ce", *files, "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    (warning,) = document["warnings"]  # the probabilities shard, not the logits one
    assert warning.startswith(f"{files[0]}: cross-entropy was given probabilities")
    assert result.stderr == f"lossctl: warning: {warning}\n"
    strict = runner.invoke(app, ["ce", *files, "--strict"])
    assert strict.exit_code == 1
