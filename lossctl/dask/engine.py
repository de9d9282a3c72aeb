"""The Dask engine shared by every sharded op: connect, submit, follow, fail as data.

:func:`run_tasks` submits ``work(task)`` for every task to a ``dask.distributed``
scheduler (``tcp://HOST:PORT``, ``$DASK_SCHEDULER_ADDRESS``, or ``local:N`` for a
:class:`distributed.LocalCluster` of ``N`` single-threaded worker processes on 127.0.0.1),
calls ``on_done(k, n)`` on the client as each task finishes, and returns the results in
the tasks' order with the engine's description. ``work`` runs on a worker: it must be a
picklable module-level function of a picklable task. A
:class:`~lossctl.errors.LossctlError` it raises comes back as data (not retried) and is
raised again on the client as the same type with the same one-line message; the other
tasks are cancelled. Tasks are pure functions of their files, so Dask reruns them
elsewhere (``retries=2``) when a worker dies.

Dask is imported only when :func:`run_tasks` runs (``pip install 'lossctl[dask]'``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar

from lossctl.errors import InputError, LossctlError, ReadError

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
RETRIES = 2
CONNECT_TIMEOUT = "10s"
INSTALL_HINT = "pip install 'lossctl[dask]'"

T = TypeVar("T")
R = TypeVar("R")


class EngineInfo(TypedDict):
    """The ``"engine"`` member of the ``--json`` document."""

    name: str
    scheduler: str
    workers: int
    tasks: int


@dataclass(frozen=True)
class Done(Generic[R]):
    """A task's result and the worker that computed it."""

    value: R
    worker: str


@dataclass(frozen=True)
class Failure:
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


def refuse_streams(specs: Sequence[str]) -> None:
    """Workers open the shards by path: standard input and FIFOs cannot be among them."""
    from lossctl.io.sources import fifo_identity, is_stdin_spec

    for spec in specs:
        if is_stdin_spec(spec) or fifo_identity(spec) is not None:
            what = "standard input" if is_stdin_spec(spec) else "a FIFO"
            raise InputError(
                f"{spec}: --scheduler sends file paths to the Dask workers, which cannot read "
                f"{what}; save the data to a file first"
            )


def run_tasks(
    tasks: Sequence[T],
    work: Callable[[T], R],
    *,
    scheduler: str | None = None,
    on_done: Callable[[int, int], None] | None = None,
    name: Callable[[T], str] = lambda task: "task",
) -> tuple[list[Done[R]], EngineInfo]:
    """``work(task)`` for every task on the cluster at ``scheduler``, results in order;
    ``name(task)`` starts each task's key (seen in the dashboard and in errors)."""
    with _client(_address(scheduler)) as (client, address):
        futures = [
            client.submit(
                _on_worker,
                work,
                task,
                retries=RETRIES,
                pure=False,
                key=f"lossctl-{name(task)}-{os.urandom(4).hex()}",
            )
            for task in tasks
        ]
        index = {future.key: i for i, future in enumerate(futures)}
        results: list[Done[R]] = _gather(futures, index, on_done)
    engine: EngineInfo = {
        "name": "dask",
        "scheduler": address,
        "workers": len({done.worker for done in results}),
        "tasks": len(tasks),
    }
    return results, engine


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


def _require_distributed() -> Any:
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
    workers = _local_workers(address)
    distributed = _require_distributed()
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


def _gather(
    futures: list[Any], index: dict[str, int], on_done: Callable[[int, int], None] | None
) -> list[Any]:
    """The tasks' results by position; the first failure cancels the rest and is raised."""
    from distributed import as_completed

    outcomes: list[Any] = [None] * len(futures)
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
            if isinstance(outcome, Failure):
                raise outcome.error()
            outcomes[index[future.key]] = outcome
            if on_done is not None:
                on_done(done, len(futures))
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return outcomes


# ------------------------------------------------------------------ worker side


def _on_worker(work: Callable[[T], R], task: T) -> Done[R] | Failure:
    """``work(task)`` on a worker; a :class:`LossctlError` comes back as a :class:`Failure`."""
    try:
        return Done(work(task), _worker_address())
    except ReadError as error:
        return Failure("read", str(error), error.source, error.detail)
    except InputError as error:
        return Failure("input", str(error))
    except LossctlError as error:
        return Failure("other", str(error))


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "<client>"
