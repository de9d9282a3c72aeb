"""The Dask cluster the system tests share: a ``dask scheduler`` and two ``dask worker``
processes on 127.0.0.1, started once per session (``cluster``), and the helpers to start
and stop more workers. Dask is imported only by what uses it, so the other system tests
never need it; the Dask tests import it at their top (without the extra they fail)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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
