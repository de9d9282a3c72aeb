"""Exact partial sums: shards merge to exactly the loss of the concatenated data."""

from __future__ import annotations

import json
import pickle
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lossctl import loss_result
from lossctl.core.exactsum import ZERO, ExactSum, exact_sum, parse_exact
from lossctl.core.merge import merge_partials
from lossctl.errors import InputError
from lossctl.io.documents import dumps, loss_document, partial_from_document
from tests.conftest import ROOT
from tests.helpers import BIN


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=60))
def test_exact_sum_is_the_rational_sum(values: list[float]) -> None:
    exact = exact_sum(np.array(values, dtype=np.float64))
    assert exact is not None
    assert exact.as_fraction() == sum(map(Fraction, values), Fraction(0))
    assert parse_exact(exact.text()) == exact


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=64))
def test_exact_sum_of_few_values_equals_the_vector_form(values: list[float]) -> None:
    few = np.array(values, dtype=np.float64)  # <= 64 values: summed with Python integers
    padded = np.concatenate([few, np.zeros(100)])  # > 64: the vectorised form
    assert exact_sum(few) == exact_sum(padded)


def test_exact_sum_rounds_once_and_overflows_to_inf() -> None:
    exact = exact_sum(np.array([0.1, 0.2, 0.3]))
    assert exact is not None
    assert exact.to_float() == float(Fraction(0.1) + Fraction(0.2) + Fraction(0.3))
    huge = exact_sum(np.array([1e308, 1e308]))
    assert huge is not None and huge.to_float() == float("inf")


def test_exact_sum_refuses_non_finite_values() -> None:
    assert exact_sum(np.array([1.0, np.nan])) is None
    assert exact_sum(np.array([np.inf])) is None


def test_an_exact_sum_is_an_immutable_value() -> None:
    a, b = exact_sum(np.array([0.1, 0.2])), exact_sum(np.array([0.2, 0.1]))
    assert a is not None and b is not None
    assert a == b and hash(a) == hash(b) and a != ExactSum(a.mantissa, a.exponent + 1)
    assert pickle.loads(pickle.dumps(a)) == a  # as Dask sends it to and from workers
    assert a + ZERO == a and (a + a).as_fraction() == 2 * a.as_fraction()
    with pytest.raises(AttributeError):
        a.mantissa = 0  # type: ignore[misc]


def shard_documents(
    x: np.ndarray, y: np.ndarray, cuts: list[int], **options: Any
) -> list[dict[str, Any]]:
    """The JSON documents `lossctl ce --json` writes, one per shard, by the same function."""
    documents = []
    for part_x, part_y in zip(np.split(x, cuts), np.split(y, cuts), strict=True):
        r = loss_result("cross_entropy", part_x, part_y, class_dim=1, **options)
        documents.append(json.loads(dumps(loss_document(r, {"input": "shard"}, []))))
    return documents


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 80), st.integers(2, 9), st.data())
def test_merged_shards_equal_the_whole_to_the_last_bit(
    rows: int, classes: int, data: st.DataObject
) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(scale=data.draw(st.sampled_from([0.1, 1.0, 30.0])), size=(rows, classes))
    y = rng.integers(0, classes, rows)
    y[rng.random(rows) < 0.2] = -100
    cuts = sorted(data.draw(st.lists(st.integers(0, rows), max_size=5)))
    options = {
        "reduction": data.draw(st.sampled_from(["mean", "sum"])),
        "label_smoothing": data.draw(st.sampled_from([0.0, 0.1])),
    }
    whole = loss_result("cross_entropy", x, y, class_dim=1, **options)  # type: ignore[arg-type]
    parts = [
        partial_from_document(d, f"shard{i}")
        for i, d in enumerate(shard_documents(x, y, cuts, **options))
    ]
    merged = merge_partials(parts)
    assert merged.loss == whole.loss or (np.isnan(merged.loss) and np.isnan(whole.loss))
    assert merged.exact_total == whole.exact_total
    assert (merged.count, merged.ignored) == (whole.count, whole.ignored)


def test_merge_refuses_mismatched_settings_and_per_position_results() -> None:
    x = np.random.default_rng(0).normal(size=(6, 3))
    y = np.array([0, 1, 2, 0, 1, 2])
    a, b = shard_documents(x, y, [3])
    b["label_smoothing"] = 0.1
    with pytest.raises(InputError, match=r"label_smoothing is 0\.1 but a has 0\.0"):
        merge_partials([partial_from_document(a, "a"), partial_from_document(b, "b")])
    with pytest.raises(InputError, match="reduction 'none' cannot be merged"):
        partial_from_document(a | {"reduction": "none"}, "a")
    with pytest.raises(InputError, match="only ce and nll results"):
        partial_from_document({"op": "softmax", "result": [1.0]}, "s")
    with pytest.raises(InputError, match="nothing to merge"):
        merge_partials([])


def test_parallel_shards_through_xargs_merge_exactly(tmp_path: Path) -> None:
    """The README recipe: score shards in parallel processes, then merge the JSON results."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1200, 40)).astype(np.float32)
    y = rng.integers(0, 40, 1200)
    y[::17] = -100
    for i, (part_x, part_y) in enumerate(
        zip(np.array_split(x, 6), np.array_split(y, 6), strict=True)
    ):
        np.save(tmp_path / f"logits-{i}.npy", part_x)
        np.save(tmp_path / f"labels-{i}.npy", part_y)
    np.save(tmp_path / "all-logits.npy", x)
    np.save(tmp_path / "all-labels.npy", y)
    script = (
        "ls logits-*.npy | xargs -P 2 -I{} sh -c "
        "'lossctl ce {} $(echo {} | sed s/logits/labels/) --json > {}.json' && "
        "lossctl merge logits-*.npy.json --json"
    )
    env = {"PATH": f"{BIN}:/usr/bin:/bin"}
    merged = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script], capture_output=True, cwd=tmp_path, env=env
    )
    assert merged.returncode == 0, merged.stderr.decode()
    whole = subprocess.run(
        [BIN / "lossctl", "ce", "all-logits.npy", "all-labels.npy", "--json"],
        capture_output=True,
        cwd=tmp_path,
    )
    merged_doc, whole_doc = json.loads(merged.stdout), json.loads(whole.stdout)
    assert merged_doc["shards"] == 6
    assert merged_doc["loss"] == whole_doc["loss"]
    assert merged_doc["exact"] == whole_doc["exact"]
    assert merged_doc["count"] == whole_doc["count"] == 1200 - len(y[::17])
    # merging merged results is a merge too
    (tmp_path / "m.json").write_bytes(merged.stdout)
    again = subprocess.run(
        [BIN / "lossctl", "merge", "m.json", "--json"], capture_output=True, cwd=tmp_path
    )
    assert json.loads(again.stdout)["loss"] == whole_doc["loss"]


def test_merge_reports_bad_files_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("[1, 2]")
    proc = subprocess.run(
        [BIN / "lossctl", "merge", str(tmp_path / "bad.json")], capture_output=True, cwd=ROOT
    )
    assert proc.returncode == 1
    assert proc.stderr.decode().count("\n") == 1
    assert "expected a JSON object" in proc.stderr.decode()
