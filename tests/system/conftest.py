"""The Dask cluster the system tests share: a ``dask scheduler`` and two ``dask worker``
processes on 127.0.0.1, started once per session (``cluster``), and the helpers to start
and stop more workers. Dask is imported only by what uses it, so the other system tests
never need it; the Dask tests import it at their top (without the extra they fail)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
DASK = Path(sys.executable).parent / "dask"
START_TIMEOUT = 30.0
LOCAL_HTTP = "127.0.0.1:0"  # the HTTP servers (health, metrics) too listen on 127.0.0.1 only


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(*processes: subprocess.Popen[bytes]) -> None:
    """SIGTERM to all at once, then a bounded wait for each (SIGKILL after 10 s)."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def start_worker(address: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    """A worker without a nanny: killing this process kills the worker for good."""
    command = [str(DASK), "worker", address, "--nthreads", "1", "--no-nanny"]
    command += ["--no-dashboard", "--dashboard-address", LOCAL_HTTP]
    command += ["--host", "127.0.0.1", "--name", name]
    with open(log, "wb") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)


@dataclass
class Cluster:
    address: str
    workers: list[subprocess.Popen[bytes]]
    logs: Path

    def client(self) -> Any:
        """A ``distributed.Client`` of this cluster (close it, or use it in ``with``)."""
        import distributed

        return distributed.Client(self.address, timeout="10s")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One scheduler and two workers for every Dask test of the session (started once)."""
    import distributed

    logs = tmp_path_factory.mktemp("dask-logs")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    command = [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    with open(logs / "scheduler.log", "wb") as handle:
        scheduler = subprocess.Popen(
            [*command, "--no-dashboard", "--dashboard-address", LOCAL_HTTP],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert scheduler.poll() is None, (logs / "scheduler.log").read_text()
                assert time.monotonic() < deadline, "the dask scheduler did not start"
                time.sleep(0.1)
        workers = [start_worker(address, f"w{i}", logs / f"w{i}.log") for i in range(2)]
        with distributed.Client(address, timeout="10s") as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT)
        yield Cluster(address, workers, logs)
    finally:
        stop(*workers, scheduler)


def with_a_worker_killed(cluster: Cluster, run: Callable[[Callable[[int, int], None]], T]) -> T:
    """``run(on_done)`` while a third worker, started for it, is killed (SIGKILL) as soon
    as it is seen computing (checked on the client each time a task finishes); asserts
    that the kill happened mid-run with tasks on the victim, and returns ``run``'s result.
    """
    import distributed

    name = f"victim-{time.monotonic_ns()}"  # not the name of an earlier victim
    victim = start_worker(cluster.address, name, cluster.logs / f"{name}.log")
    killed: list[tuple[int, int, list[str]]] = []
    try:
        address = ""
        deadline = time.monotonic() + START_TIMEOUT
        with cluster.client() as observer:
            while not address:
                assert time.monotonic() < deadline, "the victim worker did not start"
                workers = observer.scheduler_info(n_workers=-1)["workers"]
                address = next((a for a, w in workers.items() if w["name"] == name), "")
                time.sleep(0 if address else 0.1)

        def kill_when_busy(done: int, total: int) -> None:
            """Called on the client as tasks finish: SIGKILL the victim while it computes."""
            if killed or done >= total:
                return
            client = distributed.default_client()  # the engine's own client (same loop)
            running = client.processing(workers=[address]).get(address, [])
            if running:
                os.kill(victim.pid, signal.SIGKILL)
                killed.append((done, total, list(running)))

        result = run(kill_when_busy)
    finally:
        stop(victim)
    assert killed, "the victim worker was never seen computing"
    assert victim.wait(timeout=10) == -signal.SIGKILL
    done_at_kill, total, lost = killed[0]
    assert done_at_kill < total and lost
    return result
