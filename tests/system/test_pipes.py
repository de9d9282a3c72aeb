"""Issue #10/#12: the files people really have: ``<(python dump.py)``, ``mkfifo``, pipes
that never end. Real bash, real FIFOs with writer processes, memory bounded by the child's
``ru_maxrss``; the losses compared with those of the same data read from files and with
PyTorch's (recorded in tests/data/stream/loss.json by tools/make_stream_fixtures.py)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import (
    ROOT,
    Run,
    clean_env,
    lossctl_command,
    peak_rss_mib,
    run_in_process,
    run_shell,
)

DATA = ROOT / "tests" / "data" / "stream"
TORCH_LOSS = json.loads((DATA / "loss.json").read_text())  # by dtype: float32, float64


def torch_loss(logits: str) -> object:
    """PyTorch's loss for these logits: text is read as float64, the binary files are float32
    (lossctl's result is exact, torch's float32 one within an ulp or so)."""
    if logits.endswith((".json", ".csv")):
        return pytest.approx(TORCH_LOSS["float64"], rel=1e-14)
    return pytest.approx(TORCH_LOSS["float32"], rel=1e-6)


@pytest.fixture
def stream_dir(tmp_path: Path) -> Path:
    for path in DATA.iterdir():
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def loss_of(proc: subprocess.CompletedProcess[bytes]) -> float:
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
    loss: float = json.loads(proc.stdout)["loss"]
    return loss


@pytest.mark.parametrize("logits", ["x.json", "x.csv", "x.npy", "x.safetensors", "x.pt", "x.npz"])
def test_process_substitution_gives_the_loss_of_the_file(stream_dir: Path, logits: str) -> None:
    key = "" if logits in ("x.json", "x.csv", "x.npy") else ":logits"
    from_files = run_shell(f"lossctl ce {logits}{key} y.json --json", stream_dir)
    from_pipes = run_shell(f"lossctl ce <(cat {logits}){key} <(cat y.json) --json", stream_dir)
    assert loss_of(from_pipes) == loss_of(from_files)  # the same bits
    assert loss_of(from_pipes) == torch_loss(logits)


def test_named_fifo_whose_writer_starts_late(stream_dir: Path) -> None:
    """The writer opens the FIFO after lossctl has: lossctl waits for it, then reads."""
    script = (
        "mkfifo logits.fifo labels.fifo; "
        "(sleep 0.5; cat x.npy > logits.fifo) & (cat y.json > labels.fifo) & "
        "lossctl ce logits.fifo labels.fifo --json; status=$?; wait; exit $status"
    )
    assert loss_of(run_shell(script, stream_dir)) == torch_loss("x.npy")


def test_manifest_listing_fifos_is_read_as_pipes(stream_dir: Path) -> None:
    (stream_dir / "y2.json").write_bytes((stream_dir / "y.json").read_bytes())
    (stream_dir / "files.txt").write_text("x.npy y.json\nx.json y2.json\n")
    (stream_dir / "pipes.txt").write_text("x.npy y.json\na.fifo b.fifo\n")
    files = run_shell("lossctl ce --manifest files.txt --json", stream_dir)
    script = (
        "mkfifo a.fifo b.fifo; (cat x.json > a.fifo) & (cat y.json > b.fifo) & "
        "lossctl ce --manifest pipes.txt --json; status=$?; wait; exit $status"
    )
    pipes = run_shell(script, stream_dir)
    assert loss_of(pipes) == loss_of(files)
    assert json.loads(pipes.stdout)["shards"] == 2


def test_manifest_listing_a_device_names_its_line(stream_dir: Path) -> None:
    (stream_dir / "m.txt").write_text("# shards\nx.npy y.json\n/dev/urandom y.json\n")
    proc = run_shell("lossctl ce --manifest m.txt", stream_dir)
    run = Run(("ce",), proc.returncode, proc.stdout, proc.stderr)
    assert run.error_line().startswith(
        "lossctl: error: m.txt: line 3: /dev/urandom is a character device"
    )


def _peak(command: str, cwd: Path, env: dict[str, str]) -> tuple[Run, float]:
    """Run ``command`` in bash with lossctl as its last process: (run, lossctl's max RSS in
    KiB). lossctl is exec'd by the shell, so the shell's child is lossctl itself."""
    mib, run = peak_rss_mib(["bash", "-c", command], cwd, env)
    return run, mib * 1024


LIMIT_MIB = 48


@pytest.mark.parametrize("how", ["stdin", "fifo"])
def test_dev_zero_stops_at_the_limit_in_bounded_memory(stream_dir: Path, how: str) -> None:
    """``lossctl softmax - < /dev/zero`` (and a FIFO fed by it) ends with the size-limit
    error; lossctl's peak memory stays within the limit over what reading a small file
    costs (measured in the same test)."""
    env = clean_env(LOSSCTL_STREAM_LIMIT=f"{LIMIT_MIB}M")
    env["PATH"] = f"{Path(lossctl_command()[0]).parent}:/usr/bin:/bin"
    lossctl = shlex.join(lossctl_command("softmax"))
    baseline, base_rss = _peak(f"exec {lossctl} x.json --json", stream_dir, env)
    assert baseline.code == 0, baseline.err
    if how == "stdin":
        command = f"exec {lossctl} - < /dev/zero"
        source, what = "<stdin>", "standard input"
    else:
        os.mkfifo(stream_dir / "zeros.fifo")
        command = f"(cat /dev/zero > zeros.fifo 2>/dev/null &) ; exec {lossctl} zeros.fifo"
        source, what = "zeros.fifo", "this FIFO"
    run, rss = _peak(command, stream_dir, env)
    line = run.error_line()
    assert line.startswith(
        f"lossctl: error: {source}: more than {LIMIT_MIB} MiB on {what}, the limit for a stream"
    )
    assert "save the data to a file" in line
    growth = rss - base_rss
    assert growth < LIMIT_MIB * 1024 * 1.5, f"max RSS {rss} KiB, {growth} KiB over the baseline"


def test_standard_input_twice_and_streams_for_workers_are_refused(stream_dir: Path) -> None:
    data = (stream_dir / "x.json").read_bytes()
    assert run_in_process("ce", "-", "-", stdin=data).error_line() == (
        "lossctl: error: only one argument can be '-' (standard input)"
    )
    fifo = stream_dir / "x.fifo"
    os.mkfifo(fifo)
    second = {"ce": str(stream_dir / "y.json"), "kl": str(stream_dir / "x.json")}
    for command, other in second.items():  # one check, in the Dask engine, for both
        for spec, what in (("-", "standard input"), (str(fifo), "a FIFO")):
            run = run_in_process(
                command, spec, other, "--scheduler", "tcp://127.0.0.1:9", stdin=data
            )
            assert run.error_line() == (
                f"lossctl: error: {spec}: --scheduler sends file paths to the Dask workers, "
                f"which cannot read {what}; save the data to a file first"
            ), command


def test_merge_reads_standard_input_within_the_limit(stream_dir: Path) -> None:
    document = run_in_process(
        "ce", str(stream_dir / "x.json"), str(stream_dir / "y.json"), "--json"
    )
    merged = run_in_process("merge", "-", "--json", stdin=document.stdout)
    assert merged.document()["loss"] == document.document()["loss"]
    refused = run_in_process(
        "merge", "-", stdin=document.stdout, LOSSCTL_STREAM_LIMIT=str(len(document.stdout) - 1)
    )
    assert "more than" in refused.error_line() and "on standard input" in refused.error_line()
