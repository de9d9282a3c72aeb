"""Hostile environments in-process: atomic --output, Ctrl-C, odd consoles, closed streams.

The app runs through :func:`tests.helpers.run_in_process` with injected streams
(``io.BytesIO``/``io.StringIO``; a closed stdin or stdout is ``None``), a working
directory set by ``monkeypatch.chdir``, environment variables for the run, and
monkeypatched failures where a failure cannot be provoked from outside. What only a real
process shows (signals, pipes closed by their reader, terminals, encodings of the
process's own streams, file permissions as root, ``main()``) is in
tests/system/test_environments.py.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import LABELS, LOGITS, ROOT, leftovers, run_in_process


def test_ctrl_c_in_process_is_130_and_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import lossctl.core.losses

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(lossctl.core.losses, "compute", interrupted)
    result = run_in_process("ce", LOGITS, LABELS)
    assert result.code == 130
    assert result.err == "lossctl: interrupted\n"
    assert result.out == ""


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
    result = run_in_process("ce", LOGITS, LABELS, "-o", str(target), "--json")
    assert target.read_bytes() == b"previous"
    assert leftovers(tmp_path) == []
    assert result.out == ""
    if isinstance(failure, KeyboardInterrupt):
        assert result.code == 130
        assert result.err == "lossctl: interrupted\n"
    else:
        assert result.code == 1
        assert result.err == (f"lossctl: error: cannot write {target}: No space left on device\n")


def test_output_json_is_the_json_document_and_replaces_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "loss.json"
    target.write_text("old")
    target.chmod(0o640)
    printed = run_in_process("ce", LOGITS, LABELS, "--json")
    written = run_in_process("ce", LOGITS, LABELS, "--json", "--output", str(target))
    assert written.code == 0 and written.stdout == b"" and written.stderr == b""
    assert json.loads(target.read_text()) == printed.document()
    assert target.stat().st_mode & 0o777 == 0o640, "a replaced file keeps its permissions"
    assert leftovers(tmp_path) == []


def test_output_without_json_prints_the_table_too(tmp_path: Path) -> None:
    target = tmp_path / "loss.json"
    run = run_in_process("ce", LOGITS, LABELS, "-o", str(target))
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
    document = run_in_process(*args, "--json").document()
    run = run_in_process(*args, "--json", "-o", str(target))
    assert run.code == 0, run.err
    saved = np.load(target, allow_pickle=False)
    from_json = document.get("result", document.get("loss"))
    reference = np.array(from_json, dtype=np.float64)
    assert saved.shape == reference.shape
    if args[-1].endswith("fortran.npy"):  # a streamed .npy keeps the input's float32
        assert saved.dtype == np.float32
        np.testing.assert_array_max_ulp(saved, reference.astype(np.float32), maxulp=4)
        return
    assert saved.dtype == np.float64
    np.testing.assert_array_equal(saved, reference)
    if expected is not None:
        np.testing.assert_allclose(saved, expected, rtol=1e-14)


def test_output_may_replace_its_own_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The input is memory-mapped; atomic replacement leaves the map intact."""
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    np.save(tmp_path / "x.npy", x)
    monkeypatch.chdir(tmp_path)
    run = run_in_process("softmax", "x.npy", "-o", "x.npy", "--json")
    assert run.code == 0, run.err
    expected = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.load(tmp_path / "x.npy"), expected, rtol=1e-14)


def test_output_through_a_symlink_replaces_its_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    monkeypatch.chdir(tmp_path)
    assert run_in_process("ce", LOGITS, LABELS, "--json", "-o", "link.json").code == 0
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads((tmp_path / "real.json").read_text())["op"] == "cross_entropy"


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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, message: str
) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    run = run_in_process("ce", LOGITS, LABELS, "-o", name)
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
    result = run_in_process("softmax", LOGITS, "-o", str(tmp_path / "s.json"))
    assert result.code == 1
    assert (
        result.err == f"lossctl: error: cannot write {tmp_path / 's.json'}: Read-only file system\n"
    )
    assert result.out == "", "nothing is printed when the result cannot be saved"


# ---- working directory, terminal width, HOME ---------------------------------------------------


def test_read_only_working_directory_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading and printing write nothing into the working directory (the refusal to
    write --output there is a real-process test: root may write anywhere)."""
    directory = tmp_path / "ro"
    directory.mkdir()
    (directory / "x.json").write_text("[[1.1741, -0.4859], [-3.718, 1.5257], [0.0222, 0.5898]]")
    (directory / "y.json").write_text("[1, 2]")
    directory.chmod(0o555)
    monkeypatch.chdir(directory)
    try:
        before = sorted(os.listdir(directory))
        table = run_in_process("ce", "x.json", "y.json")
        assert table.code == 0, table.err
        assert "3.2655" in table.stdout.decode()
        document = run_in_process("ce", "x.json", "y.json", "--json").document()
        assert document["loss"] == pytest.approx(3.2654828147938195)
        assert sorted(os.listdir(directory)) == before, "lossctl wrote into the working directory"
    finally:
        directory.chmod(0o755)


def numbers(text: str) -> list[str]:
    return sorted(re.findall(r"-?\d+\.\d+(?:e[+-]\d+)?", text))


# the console settings the app reads from the environment; the encodings of the
# process's own streams (LANG=C, PYTHONIOENCODING) are real-process tests
CONSOLES: list[dict[str, str | None]] = [
    {"HOME": None},
    {"TERM": "dumb"},
    {"COLUMNS": "20"},
    {"HOME": None, "TERM": "dumb", "COLUMNS": "20"},
]
ODD_COMMANDS = {
    "ce-weighted": ("ce", LOGITS, LABELS, "--weight", "1,2,0.5"),  # a table with a "Σ"
    "log-softmax-full": ("log-softmax", str(ROOT / "tests" / "inputs" / "big_endian_int.npy")),
}


@functools.cache
def wide_numbers(name: str) -> list[str]:
    """Every number of the command's table on a 200-column console (at least four)."""
    wide = run_in_process(*ODD_COMMANDS[name], COLUMNS="200")
    assert wide.code == 0, wide.err
    found = numbers(wide.stdout.decode())
    assert len(found) >= 4, found
    return found


@pytest.mark.parametrize(
    "env", CONSOLES, ids=lambda env: ",".join(f"{k}={v}" for k, v in env.items())
)
@pytest.mark.parametrize("name", list(ODD_COMMANDS))
def test_odd_consoles_print_every_number(env: dict[str, str | None], name: str) -> None:
    """Every number of the normal 200-column table is printed in full, whatever the setup."""
    odd = run_in_process(*ODD_COMMANDS[name], **env)
    assert odd.code == 0, odd.err
    assert odd.stderr == b"", odd.err
    assert numbers(odd.stdout.decode("utf-8", "replace")) == wide_numbers(name)


def test_narrow_terminal_does_not_shorten_numbers(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.arange(1, 31, dtype=np.float64).reshape(3, 10) * 1000.123)
    narrow = run_in_process("log", str(tmp_path / "x.npy"), COLUMNS="30")
    assert narrow.code == 0
    assert "…" not in narrow.stdout.decode().replace("   …   ", ""), "a cell was cut short"
    for value in np.log(np.arange(1, 31).reshape(3, 10) * 1000.123)[:, [0, 1, -1]].ravel():
        assert f"{value:.4f}" in narrow.stdout.decode()


# ---- closed standard streams -----------------------------------------------------------------


def test_closed_stdin_reads_files_and_refuses_dash() -> None:
    files = run_in_process("ce", LOGITS, LABELS, "--json", stdin=None)
    assert files.code == 0, files.stderr
    assert json.loads(files.stdout)["loss"] == pytest.approx(3.2654828147938195)
    dash = run_in_process("ce", "-", LABELS, stdin=None)
    assert dash.code == 1
    assert dash.stderr == (
        b"lossctl: error: '-' reads standard input, but it is closed: pipe or redirect a file\n"
    )


def test_closed_stdout_is_an_error_unless_output_goes_to_a_file(tmp_path: Path) -> None:
    closed = run_in_process("ce", LOGITS, LABELS, "--json", stdout=False)
    assert closed.code == 1
    assert closed.stderr.startswith(b"lossctl: error: standard output is closed")
    to_file = run_in_process(
        "ce", LOGITS, LABELS, "--json", "-o", str(tmp_path / "l.json"), stdout=False
    )
    assert to_file.code == 0, to_file.stderr
    assert json.loads((tmp_path / "l.json").read_text())["op"] == "cross_entropy"


# ---- help, doctor and merge --------------------------------------------------------------------


def test_help_still_works_and_exits_0() -> None:
    run = run_in_process("--help")
    assert run.code == 0 and b"Usage" in run.stdout
    run = run_in_process("ce", "--help")
    assert run.code == 0 and b"--output" in run.stdout
    bare = run_in_process()
    assert bare.code == 2 and b"Usage" in bare.stdout + bare.stderr


def test_output_on_doctor_and_merge(tmp_path: Path) -> None:
    doctor = run_in_process("doctor", LOGITS, LABELS, "--json").document()
    assert run_in_process("doctor", LOGITS, LABELS, "-o", str(tmp_path / "d.json")).code == 0
    assert json.loads((tmp_path / "d.json").read_text()) == doctor
    refused = run_in_process("doctor", LOGITS, LABELS, "-o", str(tmp_path / "d.npy"))
    assert refused.code == 1 and "not an array of numbers" in refused.error_line()
    assert not (tmp_path / "d.npy").exists() and leftovers(tmp_path) == []
    shard = tmp_path / "shard.json"
    assert run_in_process("ce", LOGITS, LABELS, "--json", "-o", str(shard)).code == 0
    merged = run_in_process(
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
