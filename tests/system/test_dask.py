"""lossctl on a real Dask cluster: a ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1.

Every result is compared with the local computation bit for bit. Dask is imported at the
top on purpose: without the ``dask`` extra these tests fail (CI installs it), never skip.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest

import lossctl
import lossctl.dask
from lossctl.core.losses import compute
from lossctl.core.merge import Merged, merge_partials, partial_from_result
from lossctl.core.spec import LossSpec
from lossctl.dask import ShardOptions, score_shards
from lossctl.errors import InputError, ReadError
from lossctl.io.readers import read_array
from tests.system.conftest import Cluster, with_a_worker_killed

CLASSES = 64


def save(path: Path, array: np.ndarray[Any, Any]) -> str:
    np.save(path, array)
    return str(path)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    """Five shards of float32 logits (uneven sizes) and labels with ignored positions."""
    folder = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(15)
    pairs = []
    for i, rows in enumerate((700, 1500, 1, 999, 2048)):
        logits = (rng.normal(size=(rows, CLASSES)) * 3).astype(np.float32)
        labels = rng.integers(0, CLASSES, rows)
        labels[rng.random(rows) < 0.1] = -100
        pairs.append(
            (save(folder / f"logits-{i}.npy", logits), save(folder / f"labels-{i}.npy", labels))
        )
    return pairs


def local(pairs: list[tuple[str, str]], options: ShardOptions) -> tuple[Merged, Any]:
    """The local sharded run (as ``lossctl ce SHARDS…`` computes it)."""
    partials, per_position = [], []
    for input_spec, labels_spec in pairs:
        values = read_array(input_spec)
        result = compute(options.spec, values.array, read_array(labels_spec).array)
        partials.append(partial_from_result(result, values.source))
        per_position.append(result.per_position)
    return merge_partials(partials), np.concatenate(per_position)


def check_exact(scores: list[Any], expected: Merged, per_position: Any, reduction: str) -> None:
    merged = merge_partials([score.partial for score in scores])
    assert merged.fingerprints and len(merged.fingerprints) == len(scores)  # one per shard
    # loss, exact sums, counts, settings: all equal (the local helper keeps no fingerprints)
    assert dataclasses.replace(merged, fingerprints=()) == expected
    if reduction == "none":
        got = np.concatenate([score.per_position for score in scores])
        assert got.tobytes() == per_position.tobytes()
    else:
        assert all(score.per_position is None for score in scores)  # only partial sums move


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cluster_equals_the_local_merge(
    cluster: Cluster, shards: list[tuple[str, str]], reduction: str
) -> None:
    options = ShardOptions(LossSpec(reduction=reduction))  # type: ignore[arg-type]
    scores, engine = score_shards(shards, options, scheduler=cluster.address)
    check_exact(scores, *local(shards, options), reduction)
    assert engine["name"] == "dask" and engine["scheduler"] == cluster.address
    assert engine["tasks"] == len(shards) and 1 <= engine["workers"] <= 2


def test_row_ranges_weights_and_smoothing_are_exact(
    cluster: Cluster, shards: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shards over ``split_bytes`` go in row ranges; the address comes from the environment."""
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.address)
    weight = np.random.default_rng(1).random(CLASSES) + 0.5
    for options in [
        ShardOptions(LossSpec(weight=weight, label_smoothing=0.1), split_bytes=100_000),
        ShardOptions(LossSpec("nll_loss", reduction="none"), split_bytes=100_000),
    ]:
        seen: list[tuple[int, int]] = []

        def record(done: int, total: int, seen: list[tuple[int, int]] = seen) -> None:
            seen.append((done, total))

        scores, engine = score_shards(shards, options, on_done=record)
        assert engine["tasks"] > len(shards) == len(scores)
        assert seen[-1] == (engine["tasks"], engine["tasks"])
        check_exact(scores, *local(shards, options), options.spec.reduction)


def test_local_cluster(shards: list[tuple[str, str]]) -> None:
    options = ShardOptions()
    scores, engine = score_shards(shards, options, scheduler="local:2")
    check_exact(scores, *local(shards, options), "mean")
    assert engine["scheduler"].startswith("tcp://127.0.0.1:") and engine["workers"] in (1, 2)


def test_dask_arrays_equal_the_core(cluster: Cluster) -> None:
    rng = np.random.default_rng(7)
    logits = (rng.normal(size=(3001, CLASSES)) * 4).astype(np.float32)
    labels = rng.integers(0, CLASSES, 3001)
    labels[::5] = -100
    x, t = da.from_array(logits, chunks=(400, CLASSES)), da.from_array(labels, chunks=1000)
    with cluster.client():  # the blocks run on the cluster's workers
        for reduction in ("mean", "sum", "none"):
            got = lossctl.dask.loss_result("cross_entropy", x, t, reduction=reduction)
            want = lossctl.loss_result("cross_entropy", logits, labels, reduction=reduction)
            assert got.exact_total == want.exact_total and got.total == want.total
            assert got.per_position.tobytes() == want.per_position.tobytes()
            assert np.asarray(got.loss).tobytes() == np.asarray(want.loss).tobytes()
            assert (got.count, got.ignored, got.denominator) == (
                want.count,
                want.ignored,
                want.denominator,
            )
        smoothed = lossctl.dask.cross_entropy(x, t, label_smoothing=0.2)
        assert smoothed == lossctl.cross_entropy(logits, labels, label_smoothing=0.2)
        logp = lossctl.log_softmax(logits.astype(np.float64), dim=1)
        assert lossctl.dask.nll_loss(da.from_array(logp, chunks=(700, CLASSES)), t) == (
            lossctl.nll_loss(logp, labels)
        )
    with pytest.warns(lossctl.dask.ClassAxisRechunkWarning, match="class axis"):
        split = lossctl.dask.cross_entropy(da.from_array(logits, chunks=(1000, 16)), t)
    assert split == lossctl.cross_entropy(logits, labels)


def test_a_bad_shard_fails_the_run_with_its_own_error(
    cluster: Cluster, shards: list[tuple[str, str]], tmp_path: Path
) -> None:
    truncated = tmp_path / "logits-truncated.npy"
    truncated.write_bytes(Path(shards[1][0]).read_bytes()[:5000])
    with pytest.raises(ReadError) as local_error:
        read_array(str(truncated))
    pairs = [*shards[:2], (str(truncated), shards[1][1]), *shards[3:]]
    with pytest.raises(ReadError) as error:
        score_shards(pairs, scheduler=cluster.address)
    assert str(error.value) == str(local_error.value)
    assert "\n" not in str(error.value) and error.value.source == str(truncated)

    out_of_range = save(tmp_path / "labels-bad.npy", np.full(700, CLASSES))
    with pytest.raises(InputError, match=rf"^{out_of_range}: target {CLASSES} at position"):
        score_shards([shards[0], (shards[0][0], out_of_range)], scheduler=cluster.address)


def test_a_worker_killed_during_the_run(cluster: Cluster, tmp_path: Path) -> None:
    """A third worker is killed (SIGKILL) while it computes; its tasks rerun on the others."""
    rng = np.random.default_rng(3)
    logits = save(tmp_path / "big.npy", rng.normal(size=(12_000, 128)).astype(np.float32))
    labels = save(tmp_path / "big-labels.npy", rng.integers(0, 128, 12_000))
    pairs = [(logits, labels)] * 24  # 24 tasks of about 0.06 s each
    options = ShardOptions(LossSpec(reduction="sum"))
    scores, engine = with_a_worker_killed(
        cluster,
        lambda on_done: score_shards(pairs, options, scheduler=cluster.address, on_done=on_done),
    )
    assert engine["tasks"] == len(pairs) == len(scores)
    values = read_array(logits)
    one = lossctl.loss_result(
        "cross_entropy", values.array, read_array(labels).array, reduction="sum"
    )
    expected = merge_partials(
        [partial_from_result(one, values.source)] * len(pairs), allow_duplicates=True
    )
    got = merge_partials([score.partial for score in scores], allow_duplicates=True)
    assert dataclasses.replace(got, fingerprints=()) == expected  # the same file 24 times


def lossctl_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``python -m lossctl … --json`` as a real process."""
    proc = subprocess.run(
        [sys.executable, "-m", "lossctl", *args, "--json"],
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr.decode()
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


def test_the_cli_on_the_cluster_equals_the_local_run(
    cluster: Cluster, shards: list[tuple[str, str]]
) -> None:
    """``lossctl ce SHARDS… --scheduler ADDRESS`` (and ``$DASK_SCHEDULER_ADDRESS``)."""
    files = [pair[0] for pair in shards] + [pair[1] for pair in shards]
    here = lossctl_json("ce", *files)
    there = lossctl_json("ce", *files, "--scheduler", cluster.address)
    assert there["engine"]["name"] == "dask" and there["engine"]["tasks"] == len(shards)
    assert 1 <= there["engine"]["workers"] <= 2
    del there["engine"]
    assert there == here  # the loss, the exact sums, counts and inputs: bit for bit
    from_env = lossctl_json("ce", *files, env={"DASK_SCHEDULER_ADDRESS": cluster.address})
    assert from_env["exact"] == here["exact"] and "engine" in from_env
    refused = subprocess.run(
        [sys.executable, "-m", "lossctl", "ce", *files, "--scheduler", cluster.address, "--grad"],
        capture_output=True,
        timeout=120,
    )
    assert refused.returncode == 1
    assert refused.stderr.decode().startswith("lossctl: error: --explain, --grad")
