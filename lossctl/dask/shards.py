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
files, so Dask reruns them elsewhere (``retries=2``) when a worker dies.

Dask is imported only when :func:`score_shards` runs (``pip install 'lossctl[dask]'``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypedDict

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
from lossctl.errors import InputError, LossctlError, ReadError

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
SPLIT_BYTES = 256 << 20  # .npy inputs larger than this are scored in row ranges of this size
RETRIES = 2
CONNECT_TIMEOUT = "10s"
INSTALL_HINT = "pip install 'lossctl[dask]'"


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


class EngineInfo(TypedDict):
    """The ``"engine"`` member of the ``--json`` document."""

    name: str
    scheduler: str
    workers: int
    tasks: int


@dataclass(frozen=True)
class _Task:
    shard: int
    input_spec: str
    labels_spec: str
    rows: tuple[int, int] | None  # a row range of a large .npy shard, else the whole shard
    class_dim: int | None


@dataclass(frozen=True)
class _Failure:
    """A :class:`LossctlError` raised on a worker, carried back as data (not retried)."""

    kind: str  # "read", "input" or "other"
    message: str
    source: str | None = None
    detail: str | None = None

    def error(self) -> LossctlError:
        if self.kind == "read" and self.source is not None and self.detail is not None:
            return ReadError(self.source, self.detail)
        if self.kind == "input":
            return InputError(self.message)
        return LossctlError(self.message)


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
    for spec in (spec for pair in pairs for spec in pair):
        if spec == "-":
            raise InputError(
                "'-' (standard input) cannot be read by Dask workers; give files by path"
            )
    tasks, planning_messages = _plan(pairs, options)
    with _client(_address(scheduler)) as (client, address):
        futures = [
            client.submit(_score_task, task, options, retries=RETRIES, pure=False, key=_key(task))
            for task in tasks
        ]
        index = {future.key: i for i, future in enumerate(futures)}
        outcomes = _gather(futures, index, on_done)
    scores = _assemble(tasks, outcomes, planning_messages, options.spec.reduction, len(pairs))
    workers = {worker for score in scores for worker in score.workers}
    engine: EngineInfo = {
        "name": "dask",
        "scheduler": address,
        "workers": len(workers),
        "tasks": len(tasks),
    }
    return scores, engine


# ------------------------------------------------------------------ client side


def _address(scheduler: str | None) -> str:
    address = scheduler or os.environ.get(SCHEDULER_ENV, "")
    if not address:
        raise InputError(
            f"no Dask scheduler: give its address (tcp://HOST:PORT, or local:N) or set "
            f"${SCHEDULER_ENV}"
        )
    return address


def _local_workers(address: str) -> int | None:
    if not address.startswith("local:"):
        return None
    text = address.removeprefix("local:")
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"scheduler {address!r}: local:N takes a number of workers N >= 1")
    return int(text)


def _require_dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise LossctlError(
            f"scoring shards on a Dask cluster needs the dask extra: {INSTALL_HINT}"
        ) from None
    return distributed


@contextmanager
def _client(address: str) -> Iterator[tuple[Any, str]]:
    """A connected ``distributed.Client`` (and the scheduler's address), closed afterwards."""
    distributed = _require_dask()
    workers = _local_workers(address)
    cluster = None
    try:
        if workers is not None:
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,  # no dashboard; its HTTP server on a free local port:
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                worker_dashboard_address="127.0.0.1:0",
            )
            client = distributed.Client(cluster, timeout=CONNECT_TIMEOUT)
        else:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as error:
        if cluster is not None:
            cluster.close()
        raise LossctlError(f"cannot reach the Dask scheduler at {address}: {error}") from None
    try:
        yield client, str(client.scheduler.address)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _key(task: _Task) -> str:
    rows = "" if task.rows is None else f"-rows{task.rows[0]}-{task.rows[1]}"
    return f"lossctl-shard{task.shard}{rows}-{os.urandom(4).hex()}"


def _gather(
    futures: list[Any], index: dict[str, int], on_done: Callable[[int, int], None] | None
) -> list[ShardScore | None]:
    """The tasks' results by position; the first failure cancels the rest and is raised."""
    from distributed import as_completed

    outcomes: list[ShardScore | None] = [None] * len(futures)
    try:
        completed = as_completed(futures)  # type: ignore[no-untyped-call]
        for done, future in enumerate(completed, start=1):
            try:
                outcome = future.result()
            except Exception as error:
                if type(error).__name__ == "KilledWorker":
                    raise LossctlError(
                        f"the Dask workers scoring {future.key} kept dying; see the "
                        f"workers' logs ({error})"
                    ) from None
                raise
            if isinstance(outcome, _Failure):
                raise outcome.error()
            outcomes[index[future.key]] = outcome
            if on_done is not None:
                on_done(done, len(futures))
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return outcomes


def _assemble(
    tasks: list[_Task],
    outcomes: list[ShardScore | None],
    planning_messages: dict[int, list[str]],
    reduction: str,
    shards: int,
) -> list[ShardScore]:
    """Row-range pieces back into one score per shard, in row order."""
    pieces: list[list[ShardScore]] = [[] for _ in range(shards)]
    for task, outcome in zip(tasks, outcomes, strict=True):
        assert outcome is not None, "every task either finished or raised"
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
    if not (input_spec.endswith(".npy") and labels_spec.endswith(".npy")):
        return None
    try:
        if os.path.getsize(input_spec) <= options.split_bytes:
            return None
        from lossctl.io.readers import read_array

        shape = read_array(input_spec).array.shape
        labels_shape = read_array(labels_spec).array.shape
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if options.spec.class_dim is None:
                class_dim = infer_class_dim(shape, labels_shape)
            else:
                class_dim = normalize_axis(options.spec.class_dim, len(shape), "class axis")
    except (OSError, LossctlError):
        return None  # the worker reads it and reports the problem
    if class_dim == 0 or len(shape) < 2 or shape[0] < 2:
        return None
    row_bytes = max(1, os.path.getsize(input_spec) // shape[0])
    step = max(1, options.split_bytes // row_bytes)
    count = math.ceil(shape[0] / step)
    ranges = [(i * step, min((i + 1) * step, shape[0])) for i in range(count)]
    return ranges, class_dim, [str(w.message) for w in caught]


# ------------------------------------------------------------------ worker side


def _score_task(task: _Task, options: ShardOptions) -> ShardScore | _Failure:
    """Read one shard (or row range) on the worker and compute its partial result."""
    try:
        return _score(task, options)
    except ReadError as error:
        return _Failure("read", str(error), error.source, error.detail)
    except InputError as error:
        return _Failure("input", str(error))
    except LossctlError as error:
        return _Failure("other", str(error))


def _score(task: _Task, options: ShardOptions) -> ShardScore:
    from lossctl.io.readers import read_array

    values = read_array(task.input_spec, key=options.key)
    labels = read_array(task.labels_spec, key=options.labels_key)
    array, target = values.array, labels.array
    if task.rows is not None:
        start, stop = task.rows
        array, target = array[start:stop], target[start:stop]
    sources = {"input": values.source, "target": labels.source, "weight": options.weight_source}
    spec = dataclasses.replace(options.spec, class_dim=task.class_dim)
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
        workers=(_worker_address(),),
    )


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "<client>"
