"""The process around the result, with real subprocesses, pipes and signals (bounded timeouts):
a dead or full stderr never costs the result, a non-blocking stdout gets all of it, every
catchable terminating signal removes --output's temporary file, one-line usage errors."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT

PYTHON = [sys.executable, "-m", "lossctl"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("proc")
    # logits given to nll: a warning on stderr, and a result on stdout
    (directory / "L.json").write_text(json.dumps([[-1e307, -1e307]] * 100))
    (directory / "Y.json").write_text(json.dumps([0] * 100))
    rng = np.random.default_rng(0)
    np.save(directory / "big.npy", rng.normal(size=(400_000, 4)))
    np.save(directory / "big_y.npy", rng.integers(0, 4, size=400_000))
    return directory


def test_a_dead_stderr_never_loses_the_result(data: Path, tmp_path: Path) -> None:
    """``lossctl nll L Y --json 2>&1 >out | true``: out is written, exit 0."""
    out = tmp_path / "out"
    read, write = os.pipe()
    os.close(read)  # stderr's reader is gone before lossctl writes a warning
    with open(out, "wb") as stdout:
        proc = subprocess.run(
            [*PYTHON, "nll", str(data / "L.json"), str(data / "Y.json"), "--json"],
            stdout=stdout,
            stderr=write,
            env=ENV,
            timeout=60,
        )
    os.close(write)
    assert proc.returncode == 0
    assert json.loads(out.read_text())["op"] == "nll_loss"


def test_a_shell_pipeline_with_a_dead_stderr(data: Path, tmp_path: Path) -> None:
    out, written = tmp_path / "out", tmp_path / "o.json"
    command = (
        f"{sys.executable} -m lossctl nll {data}/L.json {data}/Y.json --json -o {written} "
        f"2>&1 >{out} | true; echo $? > {tmp_path}/rc"
    )
    subprocess.run(["bash", "-c", "set -o pipefail; " + command], env=ENV, timeout=60)
    assert (tmp_path / "rc").read_text().strip() in ("0", "")
    assert json.loads(written.read_text())["op"] == "nll_loss"


def test_a_full_stderr_does_not_blame_stdout(data: Path) -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [*PYTHON, "nll", str(data / "L.json"), str(data / "Y.json"), "--json"],
            stdout=subprocess.PIPE,
            stderr=full,
            env=ENV,
            timeout=60,
        )
    assert proc.returncode == 0 and json.loads(proc.stdout)["op"] == "nll_loss"


def test_warnings_come_after_the_result(data: Path) -> None:
    proc = subprocess.run(
        [*PYTHON, "nll", str(data / "L.json"), str(data / "Y.json"), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=ENV,
        timeout=60,
    )
    first, _, rest = proc.stdout.partition(b"\n")
    assert json.loads(first)["op"] == "nll_loss" and rest.startswith(b"lossctl: warning:")


def test_a_non_blocking_stdout_pipe_gets_the_whole_json(data: Path) -> None:
    read, write = os.pipe()
    flags = fcntl.fcntl(write, fcntl.F_GETFL)
    fcntl.fcntl(write, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    proc = subprocess.Popen(
        [*PYTHON, "ce", str(data / "big.npy"), str(data / "big_y.npy"), "-r", "none", "--json"],
        stdout=write,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    os.close(write)
    time.sleep(1.0)  # let it fill the 64 KiB pipe and meet EAGAIN
    chunks = []
    with os.fdopen(read, "rb") as reader:
        while chunk := reader.read(1 << 16):
            chunks.append(chunk)
    assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    document = json.loads(b"".join(chunks))
    assert len(document["loss"]) == 400_000


@pytest.mark.parametrize("name", ["SIGHUP", "SIGQUIT", "SIGUSR1", "SIGALRM", "SIGTERM"])
def test_every_catchable_signal_during_output_leaves_no_temporary_file(
    data: Path, tmp_path: Path, name: str
) -> None:
    signum = getattr(signal, name)
    target = tmp_path / "result.json"
    for _attempt in range(3):
        proc = subprocess.Popen(
            [
                *PYTHON,
                "ce",
                str(data / "big.npy"),
                str(data / "big_y.npy"),
                "-r",
                "none",
                "-q",
                "-o",
                str(target),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
                proc.send_signal(signum)
                break
            time.sleep(0.002)
        code = proc.wait(timeout=60)
        if code != 0:
            break  # the signal arrived while writing
        target.unlink()
    else:
        pytest.skip("the output was always written before the signal could arrive")
    assert code == 128 + signum
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert not target.exists()


def test_output_to_dev_stdout_into_a_closed_pipe_exits_141(data: Path) -> None:
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.run(
        [*PYTHON, "nll", str(data / "L.json"), str(data / "Y.json"), "--json", "-o", "/dev/stdout"],
        stdout=write,
        stderr=subprocess.PIPE,
        env=ENV,
        timeout=60,
    )
    os.close(write)
    assert proc.returncode == 141
    assert b"Broken pipe" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["ce", "--bogus"], "No such option: --bogus (see lossctl ce --help)"),
        (["softmax"], "(see lossctl softmax --help)"),
        (["nosuch"], "(see lossctl --help)"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], words: str) -> None:
    proc = subprocess.run([*PYTHON, *args], capture_output=True, env=ENV, timeout=60)
    assert proc.returncode == 2 and proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lossctl: error: ") and words in lines[0]
