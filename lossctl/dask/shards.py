"""Score (input, labels) shards on a Dask cluster; only the partial sums come back.

One task per shard (a large ``.npy`` shard: one per row range), submitted to a
``dask.distributed`` scheduler. Each task reads its files by path on the worker
(:func:`lossctl.io.readers.read_array`: ``.npy`` files are memory-mapped, so a row range
touches only its own rows), computes :func:`lossctl.core.losses.loss_result` exactly as a
local run does, and returns a :class:`ShardScore`: the shard's :class:`Partial` (exact
sums and counts), its warnings, and the per-position losses only for ``reduction='none'``.
The client combines the pieces in shard order, so the merged loss is, to the last bit,
the one ``lossctl ce SHARDS…`` computes on one machine.

A shard that cannot be read (or whose values are refused) fails the run with that
shard's one-line error, as the same :class:`~lossctl.errors.LossctlError` type; the other
tasks are cancelled, and no partial loss is returned. Tasks are pure functions of their
files, so Dask reruns them elsewhere (``retries=2``) when a worker dies
(:mod:`lossctl.dask.engine`, shared with :mod:`lossctl.dask.kl_shards`).

Dask is imported only when :func:`score_shards` runs (``pip install 'lossctl[dask]'``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from lossctl.core.losses import (
    FloatArray,
    axis_warnings,
    compute,
    infer_class_dim,
    normalize_axis,
)
from lossctl.core.merge import Partial, partial_from_result
from lossctl.core.spec import LossSpec
from lossctl.dask._combine import combine_partials
from lossctl.dask.engine import EngineInfo, refuse_streams, run_tasks
from lossctl.errors import InputError, LossctlError

SPLIT_BYTES = 256 << 20  # .npy inputs larger than this are scored in row ranges of this size


@dataclass(frozen=True)
class ShardOptions:
    """How every shard is computed and read: the core's spec (its ``weight`` read by the
    client and sent with every task), the keys, and ``weight_source``, which names the
    weight in error messages."""

    spec: LossSpec = field(default_factory=LossSpec)
    weight_source: str | None = None
    key: str | None = None
    labels_key: str | None = None
    split_bytes: int = SPLIT_BYTES


@dataclass(frozen=True)
class ShardScore:
    """One shard's result: what the local sharded run keeps of each ``loss_result``."""

    source: str  # the input file, as read_array names it
    partial: Partial
    per_position: FloatArray | None  # only for reduction 'none'
    messages: tuple[str, ...]  # the shard's warnings, not yet prefixed with its source
    workers: tuple[str, ...]  # the worker(s) that computed it


@dataclass(frozen=True)
class _Task:
    shard: int
    input_spec: str
    labels_spec: str
    rows: tuple[int, int] | None  # a row range of a large .npy shard, else the whole shard
    class_dim: int | None


def score_shards(
    pairs: Sequence[tuple[str, str]],
    options: ShardOptions | None = None,
    *,
    scheduler: str | None = None,
    on_done: Callable[[int, int], None] | None = None,
) -> tuple[list[ShardScore], EngineInfo]:
    """Score every (input, labels) pair on the Dask cluster at ``scheduler``.

    ``scheduler``: ``tcp://HOST:PORT`` (else ``$DASK_SCHEDULER_ADDRESS``), or ``local:N`` for
    a :class:`distributed.LocalCluster` of ``N`` single-threaded worker processes on
    127.0.0.1, closed afterwards. ``on_done(k, n)`` is called on the client as each of the
    ``n`` tasks finishes (``k`` done so far). Returns one :class:`ShardScore` per pair, in
    the pairs' order, and the engine's description.
    """
    options = options or ShardOptions()
    if not pairs:
        raise InputError("no shards to score: give one or more INPUT LABELS pairs")
    refuse_streams([spec for pair in pairs for spec in pair])
    tasks, planning_messages = _plan(pairs, options)
    done, engine = run_tasks(
        tasks, partial(_score, options), scheduler=scheduler, on_done=on_done, name=_name
    )
    outcomes = [dataclasses.replace(d.value, workers=(d.worker,)) for d in done]
    scores = _assemble(tasks, outcomes, planning_messages, options.spec.reduction, len(pairs))
    return scores, engine


def _name(task: _Task) -> str:
    rows = "" if task.rows is None else f"-rows{task.rows[0]}-{task.rows[1]}"
    return f"shard{task.shard}{rows}"


def _assemble(
    tasks: list[_Task],
    outcomes: list[ShardScore],
    planning_messages: dict[int, list[str]],
    reduction: str,
    shards: int,
) -> list[ShardScore]:
    """Row-range pieces back into one score per shard, in row order."""
    pieces: list[list[ShardScore]] = [[] for _ in range(shards)]
    for task, outcome in zip(tasks, outcomes, strict=True):
        pieces[task.shard].append(outcome)
    scores = []
    for shard, parts in enumerate(pieces):
        if len(parts) == 1 and not planning_messages.get(shard):
            scores.append(parts[0])
            continue
        source = parts[0].source
        per_position = None
        if reduction == "none":
            per_position = np.concatenate(
                [p.per_position for p in parts if p.per_position is not None]
            )
        messages = planning_messages.get(shard, []) + [m for p in parts for m in p.messages]
        scores.append(
            ShardScore(
                source=source,
                partial=combine_partials([p.partial for p in parts], source),
                per_position=per_position,
                messages=tuple(dict.fromkeys(messages)),
                workers=tuple(dict.fromkeys(w for p in parts for w in p.workers)),
            )
        )
    return scores


def _plan(
    pairs: Sequence[tuple[str, str]], options: ShardOptions
) -> tuple[list[_Task], dict[int, list[str]]]:
    """One task per shard; row ranges for ``.npy`` inputs over ``options.split_bytes``."""
    tasks: list[_Task] = []
    messages: dict[int, list[str]] = {}
    for shard, (input_spec, labels_spec) in enumerate(pairs):
        split = _row_ranges(input_spec, labels_spec, options)
        if split is None:
            tasks.append(_Task(shard, input_spec, labels_spec, None, options.spec.class_dim))
            continue
        ranges, class_dim, warned = split
        messages[shard] = warned
        tasks += [_Task(shard, input_spec, labels_spec, rows, class_dim) for rows in ranges]
    return tasks, messages


def _row_ranges(
    input_spec: str, labels_spec: str, options: ShardOptions
) -> tuple[list[tuple[int, int]], int, list[str]] | None:
    """Row ranges of a large ``.npy`` shard (read here as memory maps: headers only), its
    class axis resolved on the whole shard, and the warnings that raised; ``None`` to score
    the shard in one task (small, not ``.npy``, not readable here, or split along classes).
    """
    shapes = large_npy_shapes([input_spec, labels_spec], options.split_bytes)
    if shapes is None:
        return None
    shape, labels_shape = shapes
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if options.spec.class_dim is None:
                class_dim = infer_class_dim(shape, labels_shape)
            else:
                class_dim = normalize_axis(options.spec.class_dim, len(shape), "class axis")
    except LossctlError:
        return None  # the worker reads it and reports the problem
    ranges = row_ranges(input_spec, shape, class_dim, options.split_bytes)
    return None if ranges is None else (ranges, class_dim, [str(w.message) for w in caught])


def large_npy_shapes(specs: Sequence[str], split_bytes: int) -> list[tuple[int, ...]] | None:
    """The shapes of a shard's ``.npy`` files (headers only) when its first file is over
    ``split_bytes``; ``None`` when it is small, not all ``.npy``, or not readable here
    (the worker reads it and reports the problem)."""
    if not all(spec.endswith(".npy") for spec in specs):
        return None
    try:
        if os.path.getsize(specs[0]) <= split_bytes:
            return None
        from lossctl.io.readers import read_array

        return [tuple(int(n) for n in read_array(spec).array.shape) for spec in specs]
    except (OSError, LossctlError):
        return None


def row_ranges(
    path: str, shape: tuple[int, ...], class_dim: int, split_bytes: int
) -> list[tuple[int, int]] | None:
    """Ranges of rows (axis 0) of about ``split_bytes`` of the file each; ``None`` when the
    rows cannot be split (the classes on axis 0, or fewer than 2 rows)."""
    if class_dim == 0 or len(shape) < 2 or shape[0] < 2:
        return None
    row_bytes = max(1, os.path.getsize(path) // shape[0])
    step = max(1, split_bytes // row_bytes)
    count = math.ceil(shape[0] / step)
    return [(i * step, min((i + 1) * step, shape[0])) for i in range(count)]


# ------------------------------------------------------------------ worker side


def _score(options: ShardOptions, task: _Task) -> ShardScore:
    """Read one shard (or row range) on the worker and compute its partial result."""
    from lossctl.io.readers import read_array

    values = read_array(task.input_spec, key=options.key)
    labels = read_array(task.labels_spec, key=options.labels_key)
    array, target = values.array, labels.array
    if task.rows is not None:
        start, stop = task.rows
        array, target = array[start:stop], target[start:stop]
    sources = {"input": values.source, "target": labels.source, "weight": options.weight_source}
    spec = options.spec.with_class_dim(task.class_dim)
    try:
        result = compute(spec, array, target)
    except InputError as error:
        raise error.located(sources) from None
    from lossctl.io.fingerprint import result_fingerprint

    digest = result_fingerprint(
        [("input", task.input_spec, values.array), ("target", task.labels_spec, labels.array)]
    )["digest"]
    partial = dataclasses.replace(
        partial_from_result(result, values.source), fingerprints=(digest,)
    )
    return ShardScore(
        source=values.source,
        partial=partial,
        per_position=result.per_position if spec.reduction == "none" else None,
        messages=tuple(axis_warnings(result)),
        workers=(),  # filled in on the client, from the engine
    )
