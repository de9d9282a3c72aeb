"""``lossctl kl`` and the KL functions on the real Dask cluster of ``conftest.cluster``
(a scheduler and two worker processes on 127.0.0.1, shared with ``test_dask.py``).

Every result is compared with the local computation bit for bit: the CLI's ``--json``
with the local run's, the Python API with the in-memory core. Dask is imported at the
top on purpose: without the ``dask`` extra these tests fail (CI installs it).
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest

import lossctl
import lossctl.dask
from lossctl.core.kl_run import KLSpec
from lossctl.core.kl_stats import merge_all
from lossctl.core.kl_stream import stream_kl
from lossctl.dask import KLShardOptions, score_kl_shards
from lossctl.doctor.kl import KLInputCheck
from lossctl.errors import InputError, ReadError
from lossctl.io.readers import read_array
from tests.helpers import ROOT, Run, clean_env, run_in_process, run_lossctl
from tests.system.conftest import Cluster, with_a_worker_killed

CLASSES = 48
Groups = list[tuple[str, str, str]]


def save(path: Path, array: np.ndarray[Any, Any]) -> str:
    np.save(path, array)
    return str(path)


@pytest.fixture(scope="module")
def groups(tmp_path_factory: pytest.TempPathFactory) -> Groups:
    """Four shards of two models' float32 logits (uneven sizes, one of a single row) and
    labels with ignored positions; the other model is the reference plus noise."""
    folder = tmp_path_factory.mktemp("kl-shards")
    rng = np.random.default_rng(20)
    out = []
    for i, rows in enumerate((900, 1, 1700, 431)):
        reference = (rng.normal(size=(rows, CLASSES)) * 3).astype(np.float32)
        other = (reference + rng.normal(size=reference.shape)).astype(np.float32)
        labels = rng.integers(0, CLASSES, rows)
        labels[rng.random(rows) < 0.1] = -100
        out.append(
            (
                save(folder / f"ref-{i}.npy", reference),
                save(folder / f"other-{i}.npy", other),
                save(folder / f"labels-{i}.npy", labels),
            )
        )
    return out


def arguments(groups: Groups, with_labels: bool = True) -> list[str]:
    """REF… OTHER… [LABELS…], as a user lists them."""
    columns = 3 if with_labels else 2
    return [group[column] for column in range(columns) for group in groups]


def kl(*args: str, **env: str) -> Run:
    return run_lossctl("kl", *args, env=clean_env(**env), timeout=120)


@pytest.mark.parametrize(
    "options",
    [
        ["--both-directions"],
        ["--reduction", "none"],
    ],
)
def test_cli_kl_on_the_cluster_equals_the_local_run(
    cluster: Cluster, groups: Groups, options: list[str]
) -> None:
    """Statistics, percentiles, perplexities (LABELS), reverse KL, per-position KL: the
    document is the local one bit for bit, apart from ``engine``."""
    files = arguments(groups)
    here = kl(*files, *options, "--json").document()
    there = kl(*files, *options, "--json", "--scheduler", cluster.address).document()
    engine = there.pop("engine")
    assert engine["name"] == "dask" and engine["scheduler"] == cluster.address
    assert engine["tasks"] == len(groups) and 1 <= engine["workers"] <= 2
    assert there == here
    assert here["perplexity"] and here["kl"]["percentiles"] and here["shards"] == len(groups)
    if "none" in options:
        assert len(here["per_position"]) == here["positions"]


def test_cli_kl_without_labels_one_group_and_the_environment(
    cluster: Cluster, groups: Groups
) -> None:
    """REF… OTHER… without labels, and one group (its full single-input document); the
    address from ``$DASK_SCHEDULER_ADDRESS``."""
    two = arguments(groups, with_labels=False)
    here = kl(*two, "--json").document()
    there = kl(*two, "--json", DASK_SCHEDULER_ADDRESS=cluster.address).document()
    assert there.pop("engine")["tasks"] == len(groups)
    assert there == here and "perplexity" not in here
    one = groups[2]
    single = kl(*one, "--json").document()
    remote = kl(*one, "--json", "--scheduler", cluster.address).document()
    assert remote.pop("engine")["tasks"] == 1
    assert remote == single and single["shape"] == [1700, CLASSES]


def test_a_shard_that_fails_to_read_fails_the_run_with_its_error(
    cluster: Cluster, groups: Groups, tmp_path: Path
) -> None:
    for path in (Path(p) for group in groups for p in group):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    truncated = tmp_path / "other-2.npy"
    truncated.write_bytes(truncated.read_bytes()[:4000])
    files = [str(tmp_path / f"{name}-*.npy") for name in ("ref", "other", "labels")]
    local = kl(*files, "--json")
    remote = kl(*files, "--json", "--scheduler", cluster.address)
    assert remote.code == local.code != 0
    assert remote.error_line() == local.error_line()
    assert str(truncated) in remote.error_line()


def test_row_ranges_merge_to_the_whole_shard(cluster: Cluster, groups: Groups) -> None:
    """A group over ``split_bytes`` is scored in row ranges; statistics, per-position KL
    and the doctor's check (log-probabilities that are not normalised) are the
    whole-shard ones, exactly."""
    for log_probs in (False, True):
        options = KLShardOptions(
            KLSpec(log_probs=log_probs, per_position=True, both_directions=True),
            split_bytes=30_000,
        )
        make_check = partial(KLInputCheck, log_probs)
        scores, engine = score_kl_shards(groups, make_check, options, scheduler=cluster.address)
        assert engine["tasks"] > len(groups) == len(scores)
        for group, score in zip(groups, scores, strict=True):
            arrays = [read_array(path).array for path in group]
            check = KLInputCheck(log_probs)
            whole = stream_kl(
                *arrays,
                log_probs=log_probs,
                both_directions=True,
                per_position=True,
                observe=check.observe,
            )
            got = score.result
            assert (got.stats, got.reverse, got.shape) == (whole.stats, whole.reverse, whole.shape)
            assert got.per_position is not None and whole.per_position is not None
            assert got.per_position.tobytes() == whole.per_position.tobytes()
            sources = {"reference": group[0], "other": group[1]}
            combined = KLInputCheck.combined(score.checks)
            assert combined.findings(sources) == check.findings(sources)
            assert combined.tallies == check.tallies
        if log_probs:  # raw logits given as log-probabilities: every row flagged
            assert combined.findings(sources), "the check found nothing to compare"


def test_errors_come_back_as_the_same_type(cluster: Cluster, groups: Groups) -> None:
    missing = str(Path(groups[0][0]).with_name("nowhere.npy"))
    with pytest.raises(ReadError) as error:
        score_kl_shards(
            [groups[0], (missing, groups[0][1])],
            partial(KLInputCheck, False),
            scheduler=cluster.address,
        )
    with pytest.raises(ReadError) as local:
        read_array(missing)
    assert str(error.value) == str(local.value) and error.value.source == missing
    mismatched = (groups[0][0], groups[3][1], groups[0][2])  # 900 rows against 431
    with pytest.raises(InputError, match=r"reference shape \[900, 48\] and other shape \[431"):
        score_kl_shards([mismatched], partial(KLInputCheck, False), scheduler=cluster.address)


def test_kl_functions_on_dask_arrays_equal_the_core(cluster: Cluster) -> None:
    rng = np.random.default_rng(11)
    reference = (rng.normal(size=(1203, CLASSES)) * 2).astype(np.float32)
    other = reference + rng.normal(size=reference.shape)
    labels = rng.integers(0, CLASSES, 1203)
    labels[::9] = -100
    log_q = lossctl.log_softmax(other, dim=1)
    p = np.exp(lossctl.log_softmax(reference.astype(np.float64), dim=1))
    x = da.from_array(log_q, chunks=(250, 20))  # kl_div is elementwise: any chunks
    with cluster.client(), warnings.catch_warnings():
        warnings.simplefilter("ignore", lossctl.KLReductionMeanWarning)
        for reduction in ("none", "sum", "mean", "batchmean"):
            for log_target in (False, True):
                target = np.log(p) if log_target else p
                t = da.from_array(target, chunks=(400, CLASSES))
                got = lossctl.dask.kl_div(x, t, reduction=reduction, log_target=log_target)
                want = lossctl.kl_div(log_q, target, reduction=reduction, log_target=log_target)
                assert np.asarray(got).tobytes() == np.asarray(want).tobytes(), reduction
        ref = da.from_array(reference, chunks=(300, CLASSES))
        oth = da.from_array(other, chunks=(500, CLASSES))
        lab = da.from_array(labels, chunks=700)
        stats = lossctl.dask.kl_statistics(ref, oth, lab)
        assert stats == lossctl.kl_statistics(reference, other, labels)
        assert stats.labelled and stats.positions == int((labels != -100).sum())
        per_position = lossctl.dask.kl_logits(ref, oth)
        assert per_position.tobytes() == lossctl.kl_logits(reference, other).tobytes()
    with pytest.warns(lossctl.KLReductionMeanWarning):
        lossctl.dask.kl_div(x, p)  # torch's default reduction, and its warning
    with pytest.warns(lossctl.KLBroadcastWarning):
        row = lossctl.dask.kl_div(x, p[0], reduction="batchmean")
    with pytest.warns(lossctl.KLBroadcastWarning):
        assert row == lossctl.kl_div(log_q, p[0], reduction="batchmean")
    split = da.from_array(reference.T, chunks=(16, 400))  # classes on axis 0, in 3 chunks
    with pytest.warns(lossctl.dask.ClassAxisRechunkWarning, match="class axis"):
        moved = lossctl.dask.kl_statistics(split, other.T, class_dim=0)
    assert moved == lossctl.kl_statistics(reference.T, other.T, class_dim=0)


def test_a_worker_killed_during_a_kl_run(cluster: Cluster, tmp_path: Path) -> None:
    """The victim's kl tasks rerun on the other workers; the statistics stay exact."""
    rng = np.random.default_rng(4)
    reference = rng.normal(size=(8000, 128)).astype(np.float32)
    group = (
        save(tmp_path / "ref.npy", reference),
        save(tmp_path / "other.npy", reference + rng.normal(size=(8000, 128)).astype(np.float32)),
    )
    many = [group] * 16  # 16 tasks of the same shard, of about 0.05 s each
    make_check = partial(KLInputCheck, False)
    scores, engine = with_a_worker_killed(
        cluster,
        lambda on_done: score_kl_shards(
            many, make_check, scheduler=cluster.address, on_done=on_done
        ),
    )
    assert engine["tasks"] == len(many) == len(scores)
    one = stream_kl(*(read_array(path).array for path in group))
    assert merge_all(s.result.stats for s in scores) == merge_all([one.stats] * len(many))


def test_without_the_extra_one_line_says_how_to_install(groups: Groups, tmp_path: Path) -> None:
    """``distributed`` made unimportable: the run stops at once with the install command."""
    blocker = tmp_path / "no-dask" / "distributed"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('distributed is not installed')\n")
    env = clean_env(PYTHONPATH=f"{blocker.parent}:{ROOT}")
    run = run_lossctl("kl", *groups[0], "--scheduler", "local:1", env=env)
    line = run.error_line()
    assert line.endswith("needs the dask extra: pip install 'lossctl[dask]'"), line
    explained = run_in_process("kl", *groups[0], "--scheduler", "tcp://127.0.0.1:9", "--explain")
    assert explained.error_line().startswith("lossctl: error: --explain works on one input")
