"""Issue #5, hostile environments: closed pipes, Ctrl-C, atomic --output, odd terminals.

Real subprocesses (``python -m lossctl`` through tests.test_hostile's launcher, which
makes file permissions apply even to root), real pipes, real signals, a real
pseudo-terminal; CliRunner with monkeypatched failures where a failure cannot be
provoked from outside.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
from typer.testing import CliRunner

from lossctl.cli.app import app
from tests.conftest import ROOT, SEED
from tests.test_hostile import clean_env, lossctl_command, run_lossctl

LOGITS = str(SEED / "logits.json")
LABELS = str(SEED / "labels.json")
runner = CliRunner()


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
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Inputs whose results are megabytes of JSON (seconds of work)."""
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
    return files


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


def test_ctrl_c_in_process_is_130_and_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import lossctl.core.losses

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(lossctl.core.losses, "compute", interrupted)
    result = runner.invoke(app, ["ce", LOGITS, LABELS])
    assert result.exit_code == 130
    assert result.stderr == "lossctl: interrupted\n"
    assert result.stdout == ""


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


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


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
    assert _leftovers(tmp_path), "the temporary file should exist while writing"
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
        assert _leftovers(tmp_path) == [], "the temporary file must be removed"
    else:  # a hard kill cannot clean up; what is left is hidden and not the target
        assert proc.returncode == -signal.SIGKILL
        assert all(name.startswith(".result.json.") for name in _leftovers(tmp_path))


@pytest.mark.parametrize("name", ["out.json", "out.npy"])
@pytest.mark.parametrize(
    "failure", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device")]
)
def test_failure_at_fsync_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, failure: BaseException
) -> None:
    target = tmp_path / name
    target.write_bytes(b"previous")

    def broken_fsync(fd: int) -> None:
        raise failure

    monkeypatch.setattr(os, "fsync", broken_fsync)
    result = runner.invoke(app, ["ce", LOGITS, LABELS, "-o", str(target), "--json"])
    assert target.read_bytes() == b"previous"
    assert _leftovers(tmp_path) == []
    assert result.stdout == ""
    if isinstance(failure, KeyboardInterrupt):
        assert result.exit_code == 130
        assert result.stderr == "lossctl: interrupted\n"
    else:
        assert result.exit_code == 1
        assert result.stderr == (
            f"lossctl: error: cannot write {target}: No space left on device\n"
        )


def test_output_json_is_the_json_document_and_replaces_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "loss.json"
    target.write_text("old")
    target.chmod(0o640)
    printed = run_lossctl("ce", LOGITS, LABELS, "--json")
    written = run_lossctl("ce", LOGITS, LABELS, "--json", "--output", str(target))
    assert written.code == 0 and written.stdout == b"" and written.stderr == b""
    assert json.loads(target.read_text()) == printed.document()
    assert target.stat().st_mode & 0o777 == 0o640, "a replaced file keeps its permissions"
    assert _leftovers(tmp_path) == []


def test_output_without_json_prints_the_table_too(tmp_path: Path) -> None:
    target = tmp_path / "loss.json"
    run = run_lossctl("ce", LOGITS, LABELS, "-o", str(target))
    assert run.code == 0
    assert "3.2655" in run.stdout.decode()
    assert json.loads(target.read_text())["loss"] == pytest.approx(3.2654828147938195)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ce", LOGITS, LABELS], np.float64(3.2654828147938195)),
        (["ce", LOGITS, LABELS, "-r", "sum"], np.float64(6.530965629587639)),
        (["ce", LOGITS, LABELS, "-r", "none"], np.array([5.172411003810087, 1.3585546257775527])),
        (["nll", LOGITS, LABELS, "-r", "none"], np.array([3.718, -0.5898])),
        (["softmax", LOGITS, "-d", "0"], None),
        (["log-softmax", LOGITS], None),
        (["log", str(ROOT / "tests" / "inputs" / "fortran.npy")], None),
    ],
)
def test_output_npy_holds_the_result_array(
    tmp_path: Path, args: list[str], expected: np.ndarray[Any, Any] | None
) -> None:
    target = tmp_path / "result.npy"
    document = run_lossctl(*args, "--json").document()
    run = run_lossctl(*args, "--json", "-o", str(target))
    assert run.code == 0, run.err
    saved = np.load(target, allow_pickle=False)
    assert saved.dtype == np.float64
    from_json = document.get("result", document.get("loss"))
    reference = np.array(from_json, dtype=np.float64)
    assert saved.shape == reference.shape
    np.testing.assert_array_equal(saved, reference)
    if expected is not None:
        np.testing.assert_allclose(saved, expected, rtol=1e-14)


def test_output_may_replace_its_own_input(tmp_path: Path) -> None:
    """The input is memory-mapped; atomic replacement leaves the map intact."""
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    np.save(tmp_path / "x.npy", x)
    run = run_lossctl("softmax", "x.npy", "-o", "x.npy", "--json", cwd=tmp_path)
    assert run.code == 0, run.err
    expected = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.load(tmp_path / "x.npy"), expected, rtol=1e-14)


def test_output_through_a_symlink_replaces_its_target(tmp_path: Path) -> None:
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    assert run_lossctl("ce", LOGITS, LABELS, "--json", "-o", "link.json", cwd=tmp_path).code == 0
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads((tmp_path / "real.json").read_text())["op"] == "cross_entropy"


@pytest.mark.parametrize("device", ["/dev/null", "/dev/stdout"])
def test_output_to_a_device(device: str) -> None:
    run = run_lossctl("ce", LOGITS, LABELS, "--json", "-o", device)
    assert run.code == 0, run.err
    if device == "/dev/stdout":
        assert json.loads(run.stdout)["op"] == "cross_entropy"
    else:
        assert run.stdout == b""


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing/x.json", "directory 'missing' does not exist"),
        ("sub", "'sub' is a directory; give a file name"),
        ("x.npz", "cannot write .npz files"),
        ("x.csv", "cannot write .csv files"),
    ],
)
def test_impossible_output_is_refused_before_any_work(
    tmp_path: Path, name: str, message: str
) -> None:
    (tmp_path / "sub").mkdir()
    run = run_lossctl("ce", LOGITS, LABELS, "-o", name, cwd=tmp_path)
    assert run.code == 2
    assert message in run.error_line()


def test_output_failing_after_the_check_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory vanishes (or fills up) between the check and the write."""
    import lossctl.io.atomic

    def no_temporary(path: str, directory: str, name: str) -> tuple[str, int]:
        raise lossctl.io.atomic.OutputError(f"cannot write {path}: Read-only file system")

    monkeypatch.setattr(lossctl.io.atomic, "_create_temporary", no_temporary)
    result = runner.invoke(app, ["softmax", LOGITS, "-o", str(tmp_path / "s.json")])
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"lossctl: error: cannot write {tmp_path / 's.json'}: Read-only file system\n"
    )
    assert result.stdout == "", "nothing is printed when the result cannot be saved"


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


def test_read_only_working_directory(read_only_cwd: Path) -> None:
    before = sorted(os.listdir(read_only_cwd))
    table = run_lossctl("ce", "x.json", "y.json", cwd=read_only_cwd)
    assert table.code == 0, table.err
    assert "3.2655" in table.stdout.decode()
    document = run_lossctl("ce", "x.json", "y.json", "--json", cwd=read_only_cwd).document()
    assert document["loss"] == pytest.approx(3.2654828147938195)
    assert sorted(os.listdir(read_only_cwd)) == before, "lossctl wrote into the working directory"
    refused = run_lossctl("ce", "x.json", "y.json", "-o", "loss.json", cwd=read_only_cwd)
    assert refused.code == 2
    assert "directory '.' is not writable" in refused.error_line()
    assert sorted(os.listdir(read_only_cwd)) == before


def _numbers(text: str) -> list[str]:
    return sorted(re.findall(r"-?\d+\.\d+(?:e[+-]\d+)?", text))


ENVIRONMENTS: list[dict[str, str | None]] = [
    {"HOME": None},
    {"TERM": "dumb"},
    {"COLUMNS": "20"},
    {"LANG": "C", "LC_ALL": "C"},
    {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0"},  # a really ASCII stdout
    {"PYTHONIOENCODING": "latin-1"},
    {"HOME": None, "TERM": "dumb", "COLUMNS": "20", "LC_ALL": "C", "PYTHONUTF8": "0"},
]
ODD_COMMANDS = {
    "ce-weighted": ("ce", LOGITS, LABELS, "--weight", "1,2,0.5"),  # a table with a "Σ"
    "log-softmax-full": ("log-softmax", str(ROOT / "tests" / "inputs" / "big_endian_int.npy")),
}


@functools.cache
def _wide_numbers(name: str) -> list[str]:
    wide = run_lossctl(*ODD_COMMANDS[name], env=clean_env(COLUMNS="200"))
    assert wide.code == 0, wide.err
    return _numbers(wide.stdout.decode())


@pytest.mark.parametrize(
    "env", ENVIRONMENTS, ids=lambda env: ",".join(f"{k}={v}" for k, v in env.items())
)
@pytest.mark.parametrize("name", list(ODD_COMMANDS))
def test_odd_environments_print_every_number(env: dict[str, str | None], name: str) -> None:
    """Every number of the normal 200-column table is printed in full, whatever the setup."""
    odd = run_lossctl(*ODD_COMMANDS[name], env=clean_env(**env))
    assert odd.code == 0, odd.err
    assert odd.stderr == b"", odd.err
    expected = _numbers_or_fail(name)
    assert _numbers(odd.stdout.decode("utf-8", "replace")) == expected


def _numbers_or_fail(name: str) -> list[str]:
    numbers = _wide_numbers(name)
    assert len(numbers) >= 4, numbers
    return numbers


def test_narrow_terminal_does_not_shorten_numbers(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.arange(1, 31, dtype=np.float64).reshape(3, 10) * 1000.123)
    narrow = run_lossctl("log", str(tmp_path / "x.npy"), env=clean_env(COLUMNS="30"))
    assert narrow.code == 0
    assert "…" not in narrow.stdout.decode().replace("   …   ", ""), "a cell was cut short"
    for value in np.log(np.arange(1, 31).reshape(3, 10) * 1000.123)[:, [0, 1, -1]].ravel():
        assert f"{value:.4f}" in narrow.stdout.decode()


def test_ascii_terminal_gets_ascii_and_json_stays_exact(tmp_path: Path) -> None:
    (tmp_path / "données.json").write_text("[0.5, 1.5]")
    env = clean_env(PYTHONIOENCODING="ascii")
    table = run_lossctl("ce", LOGITS, LABELS, "--weight", "1,2,3", env=env)
    assert table.code == 0, table.err
    table.stdout.decode("ascii")  # nothing but ASCII
    assert "sum w over 2 counted targets" in table.stdout.decode()
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


def test_closed_stdin_reads_files_and_refuses_dash() -> None:
    files = _in_shell("<&-", "ce", LOGITS, LABELS, "--json")
    assert files.returncode == 0, files.stderr
    assert json.loads(files.stdout)["loss"] == pytest.approx(3.2654828147938195)
    dash = _in_shell("<&-", "ce", "-", LABELS)
    assert dash.returncode == 1
    assert dash.stderr == (
        b"lossctl: error: '-' reads standard input, but it is closed: pipe or redirect a file\n"
    )


def test_closed_stdout_is_an_error_unless_output_goes_to_a_file(tmp_path: Path) -> None:
    closed = _in_shell(">&-", "ce", LOGITS, LABELS, "--json")
    assert closed.returncode == 1
    assert closed.stderr.startswith(b"lossctl: error: standard output is closed")
    to_file = _in_shell(">&-", "ce", LOGITS, LABELS, "--json", "-o", str(tmp_path / "l.json"))
    assert to_file.returncode == 0, to_file.stderr
    assert json.loads((tmp_path / "l.json").read_text())["op"] == "cross_entropy"


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


def test_help_still_works_and_exits_0() -> None:
    run = run_lossctl("--help")
    assert run.code == 0 and b"Usage" in run.stdout
    run = run_lossctl("ce", "--help")
    assert run.code == 0 and b"--output" in run.stdout
    bare = run_lossctl()
    assert bare.code == 2 and b"Usage" in bare.stdout + bare.stderr


# ---- lossctl.io.atomic on its own ---------------------------------------------------------------


def test_json_for_encoding_keeps_the_document_valid() -> None:
    from lossctl.io.atomic import json_for_encoding

    text = json.dumps({"input": "données\udcff.json", "x": [1.5]}, ensure_ascii=False)
    assert "\\udcff" in json_for_encoding(text, "utf-8")  # a lone surrogate: escaped
    assert json_for_encoding('["é"]', "utf-8") == '["é"]'  # encodable: unchanged
    for encoding in ("ascii", "latin-1", "utf-8", None, "no-such-codec"):
        escaped = json_for_encoding(text, encoding)
        escaped.encode("ascii" if encoding in ("ascii", "no-such-codec") else "utf-8", "strict")
        assert json.loads(escaped) == json.loads(text)


def test_unencodable_handler() -> None:
    from lossctl.io.atomic import UNENCODABLE

    assert "Σ w … ε·x".encode("ascii", UNENCODABLE) == b"sum w ... eps*x"
    assert "a\udcffb".encode("utf-8", UNENCODABLE) == b"a\xffb"
    assert "日本".encode("latin-1", UNENCODABLE) == b"??"


def test_npy_output_of_a_result_without_numbers_is_refused(tmp_path: Path) -> None:
    from lossctl.io.atomic import OutputError, write_result

    for array in (None, "cross_entropy", np.array([object()])):
        with pytest.raises(OutputError, match="not an array of numbers"):
            write_result(str(tmp_path / "x.npy"), {}, array)
    assert _leftovers(tmp_path) == [] and not (tmp_path / "x.npy").exists()


def test_write_atomic_refuses_directories_and_sockets(tmp_path: Path) -> None:
    import socket

    from lossctl.io.atomic import OutputError, write_atomic

    def write(handle: IO[bytes]) -> None:
        handle.write(b"x")

    with pytest.raises(OutputError, match="is a directory"):
        write_atomic(str(tmp_path), write)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock"))
        with pytest.raises(OutputError, match="not a regular file"):
            write_atomic(str(tmp_path / "sock"), write)


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


def test_output_on_doctor_and_merge(tmp_path: Path) -> None:
    doctor = run_lossctl("doctor", LOGITS, LABELS, "--json").document()
    assert run_lossctl("doctor", LOGITS, LABELS, "-o", str(tmp_path / "d.json")).code == 0
    assert json.loads((tmp_path / "d.json").read_text()) == doctor
    refused = run_lossctl("doctor", LOGITS, LABELS, "-o", str(tmp_path / "d.npy"))
    assert refused.code == 1 and "not an array of numbers" in refused.error_line()
    assert not (tmp_path / "d.npy").exists() and _leftovers(tmp_path) == []
    shard = tmp_path / "shard.json"
    assert run_lossctl("ce", LOGITS, LABELS, "--json", "-o", str(shard)).code == 0
    merged = run_lossctl(
        "merge",
        str(shard),
        str(shard),
        "--allow-duplicates",
        "--json",
        "-o",
        str(tmp_path / "m.npy"),
    )
    assert merged.code == 0 and merged.stdout == b""
    loss = np.load(tmp_path / "m.npy")
    assert loss.shape == () and float(loss) == pytest.approx(3.2654828147938195, rel=1e-15)
