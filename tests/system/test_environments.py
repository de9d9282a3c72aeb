"""Issue #5, hostile environments that need a real process: closed pipes, signals, terminals.

Real subprocesses (``python -m lossctl`` through tests.helpers' launcher, which
makes file permissions apply even to root), real pipes, real signals, a real
pseudo-terminal, the encodings of the process's own streams, file names that are not
UTF-8, ``main()``. Everything the app can show with injected streams is in
tests/cli/test_output_and_streams.py.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cli.test_output_and_streams import ODD_COMMANDS, numbers, wide_numbers
from tests.conftest import remove_tree
from tests.helpers import LABELS, LOGITS, ROOT, clean_env, leftovers, lossctl_command, run_lossctl


def spawn(*args: str, cwd: Path | str = ROOT, **kwargs: Any) -> subprocess.Popen[bytes]:
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("env", clean_env())
    return subprocess.Popen(lossctl_command(*args), cwd=cwd, **kwargs)


def wait_until_computing(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until the command runs: NumPy is only imported inside a command, after start-up."""
    deadline = time.monotonic() + timeout
    maps = Path(f"/proc/{proc.pid}/maps")
    if not maps.exists():  # not Linux: start-up takes well under 2 s
        time.sleep(2)
        return
    while time.monotonic() < deadline:
        assert proc.poll() is None, "lossctl ended before it could be interrupted"
        try:
            if "_multiarray_umath" in maps.read_text():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError("lossctl never got to its command")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Inputs whose results are megabytes of JSON (seconds of work); 25 MB, removed after."""
    directory = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(5)
    files = {
        "x": directory / "x.npy",  # 200,000 positions x 8 classes
        "y": directory / "y.npy",
        "wide": directory / "wide.npy",  # 4,000,000 values: about 5 s of softmax --json
    }
    np.save(files["x"], rng.standard_normal((200_000, 8)).astype(np.float32))
    np.save(files["y"], rng.integers(0, 8, 200_000))
    np.save(files["wide"], rng.standard_normal((1_000_000, 4)).astype(np.float32))
    yield files
    remove_tree(directory)


# ---- stdout closed by its reader -------------------------------------------------------------


def test_head_closing_the_pipe_is_a_quiet_exit_141(big: dict[str, Path]) -> None:
    """The issue's own example: `lossctl ce big.npy labels.npy -r none --json | head -c 100`."""
    command = shlex.join(
        lossctl_command("ce", str(big["x"]), str(big["y"]), "-r", "none", "--json")
    )
    script = f'{command} 2>err.txt | head -c 100 >out.txt; echo "${{PIPESTATUS[0]}}" >code.txt'
    directory = big["x"].parent
    subprocess.run(["bash", "-c", script], cwd=directory, env=clean_env(), timeout=120, check=True)
    assert (directory / "code.txt").read_text().strip() == "141"
    assert (directory / "err.txt").read_text() == "", "stderr must stay empty"
    assert (directory / "out.txt").read_bytes().startswith(b'{"op": "cross_entropy"')


@pytest.mark.parametrize("when", ["before-any-output", "mid-output"])
def test_reader_closing_early_gives_141_and_nothing_on_stderr(
    big: dict[str, Path], when: str
) -> None:
    proc = spawn("ce", str(big["x"]), str(big["y"]), "-r", "none", "--json")
    assert proc.stdout is not None and proc.stderr is not None
    if when == "mid-output":
        assert proc.stdout.read(100).startswith(b'{"op"')
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert err == b"", err  # no BrokenPipeError, no "Exception ignored"


def test_closed_pipe_while_printing_a_table(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.arange(12_000.0).reshape(1_200, 10))  # 100 kB of table
    proc = spawn("softmax", str(tmp_path / "x.npy"), "--full")
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert err == b""


def test_full_disk_on_stdout_is_one_error_line() -> None:
    with open("/dev/full", "wb") as full:
        proc = spawn("ce", LOGITS, LABELS, "--json", stdout=full)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert err.decode() == (
        "lossctl: error: cannot write to standard output: No space left on device\n"
    )


# ---- Ctrl-C ----------------------------------------------------------------------------------


def test_ctrl_c_during_a_long_computation(big: dict[str, Path]) -> None:
    proc = spawn("softmax", str(big["wide"]), "--json")
    wait_until_computing(proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err == b"lossctl: interrupted\n"
    assert out == b"", "an interrupted run prints no partial result"


# ---- --output: atomic, and never a truncated file -------------------------------------------

_SLOW_WRITER = """
import os, sys, time
import lossctl.io.atomic as output

def slow(handle, data, chunk=4096):
    open(os.environ["LOSSCTL_TEST_MARKER"], "w").close()  # writing has begun
    for start in range(0, len(data), chunk):
        handle.write(data[start : start + chunk])
        handle.flush()
        time.sleep(0.01)

output._write_chunked = slow
from lossctl.cli.process import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"]
)
def test_signal_while_writing_output_keeps_the_previous_file(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """A real process stopped in the middle of writing --output (slowed down on purpose)."""
    np.save(tmp_path / "x.npy", np.linspace(-3, 3, 20_000).reshape(400, 50))
    target = tmp_path / "result.json"
    target.write_text('{"previous": true}\n')
    marker = tmp_path / "writing"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, "softmax", "x.npy", "-o", "result.json", "--json"],
        cwd=tmp_path,
        env=clean_env(LOSSCTL_TEST_MARKER=str(marker)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.05)
    assert leftovers(tmp_path), "the temporary file should exist while writing"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert target.read_text() == '{"previous": true}\n', "the previous file must survive"
    assert out == b""
    if signum in (signal.SIGINT, signal.SIGTERM):
        assert (proc.returncode, err) == (
            (130, b"lossctl: interrupted\n")
            if signum == signal.SIGINT
            else (143, b"lossctl: terminated\n")
        )
        assert leftovers(tmp_path) == [], "the temporary file must be removed"
    else:  # a hard kill cannot clean up; what is left is hidden and not the target
        assert proc.returncode == -signal.SIGKILL
        assert all(name.startswith(".result.json.") for name in leftovers(tmp_path))


@pytest.mark.parametrize("device", ["/dev/null", "/dev/stdout"])
def test_output_to_a_device(device: str) -> None:
    run = run_lossctl("ce", LOGITS, LABELS, "--json", "-o", device)
    assert run.code == 0, run.err
    if device == "/dev/stdout":
        assert json.loads(run.stdout)["op"] == "cross_entropy"
    else:
        assert run.stdout == b""


# ---- working directory, HOME, terminal, locale -----------------------------------------------


@pytest.fixture
def read_only_cwd(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "ro"
    directory.mkdir()
    (directory / "x.json").write_text("[[1.1741, -0.4859], [-3.718, 1.5257], [0.0222, 0.5898]]")
    (directory / "y.json").write_text("[1, 2]")
    directory.chmod(0o555)
    yield directory
    directory.chmod(0o755)


def test_read_only_working_directory_refuses_output_there(read_only_cwd: Path) -> None:
    """A real process: root may write anywhere, the launcher's process may not."""
    before = sorted(os.listdir(read_only_cwd))
    refused = run_lossctl("ce", "x.json", "y.json", "-o", "loss.json", cwd=read_only_cwd)
    assert refused.code == 2
    assert "directory '.' is not writable" in refused.error_line()
    assert sorted(os.listdir(read_only_cwd)) == before


# the encodings of the process's own stdout; HOME, TERM and COLUMNS alone are in-process
ENVIRONMENTS: list[dict[str, str | None]] = [
    {"LANG": "C", "LC_ALL": "C"},
    {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0"},  # a really ASCII stdout
    {"PYTHONIOENCODING": "latin-1"},
    {"HOME": None, "TERM": "dumb", "COLUMNS": "20", "LC_ALL": "C", "PYTHONUTF8": "0"},
]


@pytest.mark.parametrize(
    "env", ENVIRONMENTS, ids=lambda env: ",".join(f"{k}={v}" for k, v in env.items())
)
@pytest.mark.parametrize("name", list(ODD_COMMANDS))
def test_odd_environments_print_every_number(env: dict[str, str | None], name: str) -> None:
    """Every number of the normal 200-column table is printed in full, whatever the setup."""
    odd = run_lossctl(*ODD_COMMANDS[name], env=clean_env(**env))
    assert odd.code == 0, odd.err
    assert odd.stderr == b"", odd.err
    assert numbers(odd.stdout.decode("utf-8", "replace")) == wide_numbers(name)


def test_ascii_terminal_gets_ascii_and_json_stays_exact(tmp_path: Path) -> None:
    (tmp_path / "données.json").write_text("[0.5, 1.5]")
    env = clean_env(PYTHONIOENCODING="ascii")
    table = run_lossctl("ce", LOGITS, LABELS, "--weight", "1,2,3", env=env)
    assert table.code == 0, table.err
    table.stdout.decode("ascii")  # nothing but ASCII
    assert "sum w[target] over 2 counted targets" in table.stdout.decode()  # not markup
    document = run_lossctl("softmax", "données.json", "--json", cwd=tmp_path, env=env)
    document.stdout.decode("ascii")
    assert document.document()["input"] == "données.json"


def test_undecodable_file_name(tmp_path: Path) -> None:
    """A file name that is not UTF-8 (bytes 0xff) is printed back as those bytes."""
    name = b"\xff\xfe.json"
    (tmp_path / os.fsdecode(name)).write_text("[0.5, 1.5]")
    command = [os.fsencode(part) for part in lossctl_command("softmax")] + [name]
    for extra, check_json in (([], False), ([b"--json"], True)):
        proc = subprocess.run(
            command + extra, cwd=tmp_path, capture_output=True, env=clean_env(), timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert b"Traceback" not in proc.stderr
        if check_json:
            assert json.loads(proc.stdout)["input"] == os.fsdecode(name)
        else:
            assert name in proc.stdout
    missing = subprocess.run(
        [*command[:-1], b"\xff-missing.json"], cwd=tmp_path, capture_output=True, env=clean_env()
    )
    assert missing.returncode == 1
    assert missing.stderr.count(b"\n") == 1 and b"no such file" in missing.stderr


def _on_a_terminal(*args: str, env: dict[str, str]) -> tuple[int, bytes]:
    """Run lossctl with stdout (and stdin) on a pseudo-terminal; return (code, output)."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        lossctl_command(*args),
        stdin=secondary,
        stdout=secondary,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    os.close(secondary)
    output = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError("lossctl hung on a terminal")
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    return proc.wait(timeout=60), output


def test_dumb_terminal_gets_no_escape_codes() -> None:
    code, output = _on_a_terminal("ce", LOGITS, LABELS, env=clean_env(TERM="dumb"))
    assert code == 0
    assert b"\x1b[" not in output
    assert b"3.2655" in output
    code, coloured = _on_a_terminal("ce", LOGITS, LABELS, env=clean_env(TERM="xterm-256color"))
    assert code == 0 and b"\x1b[" in coloured, "the check above would pass vacuously"


def test_stdin_terminal_is_refused_at_once_not_waited_for() -> None:
    start = time.monotonic()
    run = run_lossctl("ce", "-", LABELS, stdin="tty", timeout=30)
    assert time.monotonic() - start < 30
    assert run.code == 1
    assert "it is a terminal" in run.error_line()


# ---- closed standard streams -----------------------------------------------------------------


def _in_shell(redirect: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    command = shlex.join(lossctl_command(*args))
    return subprocess.run(
        ["bash", "-c", f"{command} {redirect}"],
        capture_output=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=60,
    )


def test_closed_stdin_and_stdout_of_a_real_process() -> None:
    """The process's own closed streams (``<&-``, ``>&-``) reach the app as ``None``
    (the in-process tests cover what the app then does)."""
    dash = _in_shell("<&-", "ce", "-", LABELS)
    assert dash.returncode == 1
    assert dash.stderr == (
        b"lossctl: error: '-' reads standard input, but it is closed: pipe or redirect a file\n"
    )
    closed = _in_shell(">&-", "ce", LOGITS, LABELS, "--json")
    assert closed.returncode == 1
    assert closed.stderr.startswith(b"lossctl: error: standard output is closed")


def test_closed_stderr_keeps_the_exit_codes() -> None:
    assert _in_shell("2>&-", "ce", LOGITS, LABELS).returncode == 0
    assert _in_shell("2>&-", "ce", "missing.json", LABELS).returncode == 1
    assert _in_shell("2>&-", "ce", LOGITS).returncode == 2


# ---- a bug in lossctl ------------------------------------------------------------------------

_BUGGY = """
import sys
import lossctl.core.losses

def bug(*args, **kwargs):
    raise ZeroDivisionError("something\\nwent wrong")

lossctl.core.losses.compute = bug
from lossctl.cli.process import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("debug", [False, True])
def test_internal_error_is_one_line_and_exit_3(debug: bool) -> None:
    env = clean_env(LOSSCTL_DEBUG="1" if debug else None)
    proc = subprocess.run(
        [sys.executable, "-c", _BUGGY, "ce", LOGITS, LABELS],
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 3
    assert proc.stdout == b""
    last = (
        "lossctl: internal error: ZeroDivisionError: something went wrong "
        "(please report this; set LOSSCTL_DEBUG=1 for the traceback)"
    )
    lines = proc.stderr.decode().splitlines()
    assert lines[-1] == last
    if debug:
        assert lines[0] == "Traceback (most recent call last):"
    else:
        assert lines == [last]


# ---- lossctl.io.atomic on its own ---------------------------------------------------------------


def test_stray_python_warnings_do_not_reach_stderr(tmp_path: Path) -> None:
    """NumPy's own RuntimeWarnings (here: overflow in doctor's probability check) would
    print two lines of lossctl source on stderr; only lossctl's lines may appear."""
    np.save(tmp_path / "q.npy", np.array([[0.0, 1e308], [0.0, 0.0], [0.0, 0.0]]))
    for command in ("doctor", "ce"):
        run = run_lossctl(command, LOGITS, str(tmp_path / "q.npy"))
        assert run.code == 0, run.err
        assert all(line.startswith("lossctl: ") for line in run.err.splitlines()), run.err


@pytest.mark.parametrize("args", [["--help"], ["ce", "--help"], ["--version"], []])
def test_help_and_version_into_a_closed_pipe_or_a_full_disk(args: list[str]) -> None:
    proc = spawn(*args)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141, err
    assert err == b""
    with open("/dev/full", "wb") as full:
        proc = spawn(*args, stdout=full)
        _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err.decode()) == (
        1,
        "lossctl: error: cannot write to standard output: No space left on device\n",
    )
