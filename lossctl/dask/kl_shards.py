"""``lossctl kl`` shards on a Dask cluster: each (reference, other[, labels]) group read by
path on a worker, its mergeable :class:`~lossctl.core.kl_stats.KLStats` sent back.

One task per group (a group whose ``.npy`` reference is over ``split_bytes``: one per row
range, as for cross-entropy). A task reads its files on the worker (memory-mapped, so a
row range touches only its rows), streams them with :func:`lossctl.core.kl_run.run_kl` —
the kernel, blocks and checks of a local run — and returns a :class:`KLPiece`: the pass's
statistics (a few KB: counts, exact sums, sparse histograms), the per-position KL only
for ``per_position``, and the check that watched its blocks. The client merges row ranges
exactly in row order (:func:`~lossctl.core.kl_stats.merge_all`: every field equal to one
pass over the whole), so the statistics are the local ones to the last bit.

The check is made on the worker by ``make_check`` (a picklable callable returning an
object with ``observe(reference_rows, other_rows)``, e.g. the doctor's ``KLInputCheck``):
this layer does not know what it looks for; each piece's check comes back for the caller
to combine. Failures and retries are those of :mod:`lossctl.dask.engine`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from lossctl.core.kl_run import KLSpec, prepare, run_kl, with_class_dim
from lossctl.core.kl_stats import merge_all
from lossctl.core.kl_stream import KLPass, resolve_class_dim
from lossctl.dask.engine import EngineInfo, refuse_streams, run_tasks
from lossctl.dask.shards import SPLIT_BYTES, large_npy_shapes, row_ranges
from lossctl.errors import InputError, LossctlError

ROLES = ("reference", "other", "labels")


class BlockCheck(Protocol):
    """What watches every block of a pass (the doctor's ``KLInputCheck``)."""

    def observe(self, reference: npt.NDArray[Any], other: npt.NDArray[Any]) -> None: ...


@dataclass(frozen=True)
class KLShardOptions:
    """How every group is read and computed."""

    spec: KLSpec = field(default_factory=KLSpec)
    key: str | None = None
    labels_key: str | None = None
    split_bytes: int = SPLIT_BYTES


@dataclass(frozen=True)
class KLPiece:
    """One task's result: a group, or a row range of one."""

    result: KLPass
    sources: dict[str, str | None]  # reference, other, labels as read_array names them
    check: Any  # what make_check() made, after watching every block
    notes: tuple[str, ...]  # the readers' notes, prefixed with their source


@dataclass(frozen=True)
class KLShardScore:
    """One group's result, its row ranges merged."""

    result: KLPass
    sources: dict[str, str | None]
    checks: tuple[Any, ...]  # one per task, in row order
    notes: tuple[str, ...]
    workers: tuple[str, ...]


@dataclass(frozen=True)
class _Task:
    shard: int
    specs: tuple[str, ...]  # reference, other[, labels]
    rows: tuple[int, int] | None  # a row range of a large .npy group, else the whole group
    spec: KLSpec


@dataclass(frozen=True)
class _Whole:
    """What the client knows of a group split into row ranges (headers only)."""

    shape: tuple[int, ...]
    class_dim: int
    candidates: tuple[int, ...]


def score_kl_shards(
    groups: Sequence[tuple[str, ...]],
    make_check: Callable[[], BlockCheck],
    options: KLShardOptions | None = None,
    *,
    scheduler: str | None = None,
    on_done: Callable[[int, int], None] | None = None,
) -> tuple[list[KLShardScore], EngineInfo]:
    """The KL statistics of every (reference, other[, labels]) group on the Dask cluster
    at ``scheduler`` (see :func:`lossctl.dask.engine.run_tasks`), one score per group in
    the groups' order, and the engine's description."""
    options = options or KLShardOptions()
    if not groups:
        raise InputError("no shards to score: give REFERENCE OTHER [LABELS] files")
    refuse_streams([spec for group in groups for spec in group])
    tasks, wholes = _plan(groups, options)
    work = partial(_score, options, make_check)
    done, engine = run_tasks(tasks, work, scheduler=scheduler, on_done=on_done, name=_name)
    pieces: list[list[tuple[KLPiece, str]]] = [[] for _ in groups]
    for task, outcome in zip(tasks, done, strict=True):
        pieces[task.shard].append((outcome.value, outcome.worker))
    scores = [_assembled(parts, wholes.get(shard)) for shard, parts in enumerate(pieces)]
    return scores, engine


def _name(task: _Task) -> str:
    rows = "" if task.rows is None else f"-rows{task.rows[0]}-{task.rows[1]}"
    return f"kl-shard{task.shard}{rows}"


def _plan(
    groups: Sequence[tuple[str, ...]], options: KLShardOptions
) -> tuple[list[_Task], dict[int, _Whole]]:
    tasks: list[_Task] = []
    wholes: dict[int, _Whole] = {}
    for shard, group in enumerate(groups):
        whole = None if options.spec.shift else _split(group, options)
        if whole is None:
            tasks.append(_Task(shard, tuple(group), None, options.spec))
            continue
        wholes[shard], ranges = whole
        spec = with_class_dim(options.spec, wholes[shard].class_dim)
        tasks += [_Task(shard, tuple(group), rows, spec) for rows in ranges]
    return tasks, wholes


def _split(
    group: Sequence[str], options: KLShardOptions
) -> tuple[_Whole, list[tuple[int, int]]] | None:
    """A large ``.npy`` group's class axis (resolved on the whole, as locally) and its row
    ranges; ``None`` to compute the group in one task."""
    shapes = large_npy_shapes(group, options.split_bytes)
    if shapes is None or shapes[0] != shapes[1]:
        return None  # small, not .npy, unreadable or mismatched: the worker says why
    labels_shape = shapes[2] if len(shapes) == 3 else None
    try:
        axis, candidates = resolve_class_dim(shapes[0], labels_shape, options.spec.class_dim)
    except LossctlError:
        return None
    ranges = row_ranges(group[0], shapes[0], axis, options.split_bytes)
    return None if ranges is None else (_Whole(shapes[0], axis, candidates), ranges)


def _assembled(parts: list[tuple[KLPiece, str]], whole: _Whole | None) -> KLShardScore:
    """Row-range pieces back into one group's score (statistics merged in row order)."""
    pieces = [piece for piece, _ in parts]
    workers = tuple(dict.fromkeys(worker for _, worker in parts))
    first = pieces[0]
    result = first.result
    if whole is not None:
        reverses = [p.result.reverse for p in pieces if p.result.reverse is not None]
        per_position = [p.result.per_position for p in pieces if p.result.per_position is not None]
        result = KLPass(
            stats=merge_all(p.result.stats for p in pieces),
            reverse=merge_all(reverses) if reverses else None,
            shape=whole.shape,
            class_dim=whole.class_dim,
            total_positions=sum(p.result.total_positions for p in pieces),
            per_position=np.concatenate(per_position) if per_position else None,
            axis_candidates=whole.candidates,
        )
    notes = tuple(dict.fromkeys(note for p in pieces for note in p.notes))
    checks = tuple(p.check for p in pieces)
    return KLShardScore(result, first.sources, checks, notes, workers)


# ------------------------------------------------------------------ worker side


def _score(options: KLShardOptions, make_check: Callable[[], BlockCheck], task: _Task) -> KLPiece:
    """Read one group (or row range) on the worker and stream it, as a local run does."""
    from lossctl.io.readers import read_array

    keys = (options.key, options.key, options.labels_key)
    loaded = [read_array(spec, key=key) for spec, key in zip(task.specs, keys, strict=False)]
    sources: dict[str, str | None] = dict.fromkeys(ROLES)
    sources.update({role: item.source for role, item in zip(ROLES, loaded, strict=False)})
    arrays = [item.array for item in loaded]
    if task.rows is not None:
        start, stop = task.rows
        arrays = [array[start:stop] for array in arrays]
    labels = arrays[2] if len(arrays) == 3 else None
    stored = loaded[0].meta.get("dim")
    check = make_check()
    try:
        prepared = prepare(
            task.spec, arrays[0], arrays[1], labels, stored if isinstance(stored, int) else None
        )
        result = run_kl(task.spec, prepared, observe=check.observe)
    except InputError as error:
        raise error.located(sources) from None
    notes = tuple(f"{item.source}: {text}" for item in loaded for text in item.notes)
    return KLPiece(result, sources, check, notes)
