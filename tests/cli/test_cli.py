"""The command line end to end: real files through the app in-process (injected streams),
and real processes for pipes, start-up and the module entry point."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import ROOT, as_array, load_reference_cases
from tests.helpers import (
    LABELS,
    LOGITS,
    Run,
    clean_env,
    lossctl_command,
    run_in_process,
    run_lossctl,
)


def lossctl(*args: str, stdin: bytes | None = b"") -> Run:
    """The app in-process, with real files and injected streams."""
    return run_in_process(*args, stdin=stdin)


def json_of(proc: Run) -> dict[str, Any]:
    assert proc.code == 0, proc.stderr.decode()
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


def test_seed_cross_entropy_and_nll_print_the_article_numbers() -> None:
    ce = lossctl("ce", LOGITS, LABELS)
    assert ce.code == 0, ce.stderr
    assert "3.2655" in ce.stdout.decode()
    assert "class axis    0 (3 classes)" in ce.stdout.decode()
    nll = lossctl("nll", LOGITS, LABELS)
    assert "1.5641" in nll.stdout.decode()
    assert b"\x1b[" not in ce.stdout + nll.stdout, "escape codes in piped output"


def test_seed_json_documents() -> None:
    ce = json_of(lossctl("ce", LOGITS, LABELS, "--json"))
    assert ce["loss"] == pytest.approx(3.2654828147938195, rel=1e-15)
    assert ce | {"loss": None} == ce | {
        "loss": None,
        "op": "cross_entropy",
        "reduction": "mean",
        "count": 2,
        "ignored": 0,
        "denominator": 2.0,
        "class_dim": 0,
        "classes": 3,
        "shape": [3, 2],
        "target_kind": "indices",
    }
    nll = json_of(lossctl("nll", LOGITS, LABELS, "--json"))
    assert nll["loss"] == pytest.approx(1.5641, rel=1e-15)
    soft = json_of(lossctl("softmax", LOGITS, "-d", "0", "--json"))
    assert soft["op"] == "softmax" and soft["dim"] == 0 and soft["shape"] == [3, 2]
    np.testing.assert_allclose(np.array(soft["result"])[:, 0], [0.7555, 0.0057, 0.2388], atol=5e-5)


def pipe(*commands: list[str]) -> bytes:
    """Run lossctl commands connected by real OS pipes; return the last one's stdout."""
    procs: list[subprocess.Popen[bytes]] = []
    previous = None
    for args in commands:
        proc = subprocess.Popen(
            lossctl_command(*args),
            stdin=previous,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=clean_env(),
        )
        if previous is not None:
            previous.close()
        previous = proc.stdout
        procs.append(proc)
    out, err = procs[-1].communicate(timeout=60)
    for proc in procs:
        proc.wait(timeout=60)
        assert proc.returncode == 0, (proc.args, err)
    return out


def test_softmax_log_nll_pipeline_equals_cross_entropy() -> None:
    direct = json_of(lossctl("ce", LOGITS, LABELS, "--json"))["loss"]
    out = pipe(
        ["softmax", LOGITS, "-d", "0", "--json"], ["log", "-", "--json"], ["nll", "-", LABELS]
    )
    assert "3.2655" in out.decode()
    piped = json.loads(
        pipe(
            ["softmax", LOGITS, "-d", "0", "--json"],
            ["log", "-", "--json"],
            ["nll", "-", LABELS, "--json"],
        )
    )
    assert piped["loss"] == pytest.approx(direct, rel=1e-14)
    assert piped["class_dim"] == 0


def test_log_softmax_nll_pipeline_equals_cross_entropy() -> None:
    direct = json_of(lossctl("ce", LOGITS, LABELS, "--json"))["loss"]
    piped = json.loads(
        pipe(["log-softmax", LOGITS, "-d", "0", "--json"], ["nll", "-", LABELS, "--json"])
    )
    assert piped["loss"] == pytest.approx(direct, rel=1e-15)


SEED_X = np.array([[1.1741, -0.4859], [-3.718, 1.5257], [0.0222, 0.5898]])
SEED_Y = np.array([1, 2])


def write_format(path: Path, array: np.ndarray, fmt: str) -> str:
    if fmt == "json":
        path.write_text(json.dumps(array.tolist()))
    elif fmt == "csv":
        body = array.reshape(array.shape[0], -1) if array.ndim else array.reshape(1, 1)
        np.savetxt(path, body, delimiter=",", fmt="%.17g")
    elif fmt == "tsv":
        np.savetxt(path, array.reshape(array.shape[0], -1), delimiter="\t", fmt="%.17g")
    elif fmt == "npy":
        np.save(path, array)
    elif fmt == "npz":
        np.savez(path, other=np.zeros(2), data=array)
        return f"{path}:data"
    return str(path)


@pytest.mark.parametrize("fmt", ["json", "csv", "tsv", "npy", "npz"])
def test_every_input_format_from_files(tmp_path: Path, fmt: str) -> None:
    x = write_format(tmp_path / f"x.{fmt}", SEED_X, fmt)
    y = write_format(tmp_path / f"y.{fmt}", SEED_Y, fmt)
    doc = json_of(lossctl("ce", x, y, "--json"))
    assert doc["loss"] == pytest.approx(3.2654828147938195, rel=1e-12)


@pytest.mark.parametrize("fmt", ["json", "csv", "npy", "npz"])
@pytest.mark.parametrize("which", ["logits", "labels"])
def test_every_input_format_from_stdin(tmp_path: Path, fmt: str, which: str) -> None:
    x = write_format(tmp_path / f"x.{fmt}", SEED_X, fmt)
    y = write_format(tmp_path / f"y.{fmt}", SEED_Y, fmt)
    if fmt == "npz":  # a piped NPZ takes its member from --key / --labels-key
        x, y = x.split(":")[0], y.split(":")[0]
    stdin_file = x if which == "logits" else y
    args = ["-", y] if which == "logits" else [x, "-"]
    keys = ["--key", "data", "--labels-key", "data"] if fmt == "npz" else []
    doc = json_of(lossctl("ce", *args, *keys, "--json", stdin=Path(stdin_file).read_bytes()))
    assert doc["loss"] == pytest.approx(3.2654828147938195, rel=1e-12)
    assert "<stdin>" in doc["inputs"].values()


def test_csv_with_header_and_label_column(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("class0,class1,class2\n0.3,1.2,-0.7\n2.0,0.1,0.4\n")
    (tmp_path / "y.csv").write_text("label\n1\n2\n")
    doc = json_of(lossctl("ce", str(tmp_path / "x.csv"), str(tmp_path / "y.csv"), "--json"))
    x = np.array([[0.3, 1.2, -0.7], [2.0, 0.1, 0.4]])
    expected = -np.mean(
        [x[0, 1] - np.log(np.exp(x[0]).sum()), x[1, 2] - np.log(np.exp(x[1]).sum())]
    )
    assert doc["loss"] == pytest.approx(expected, rel=1e-12)


def test_weight_inline_and_from_file(tmp_path: Path) -> None:
    inline = json_of(lossctl("ce", LOGITS, LABELS, "--weight", "1,2,0.5", "--json"))
    (tmp_path / "w.json").write_text("[1, 2, 0.5]")
    from_file = json_of(lossctl("ce", LOGITS, LABELS, "-w", str(tmp_path / "w.json"), "--json"))
    assert inline["loss"] == from_file["loss"]
    assert inline["denominator"] == 2.5
    assert inline["weight"] == [1.0, 2.0, 0.5]


def test_reduction_none_and_sum() -> None:
    none = json_of(lossctl("ce", LOGITS, LABELS, "--reduction", "none", "--json"))
    np.testing.assert_allclose(none["loss"], [5.172411003810087, 1.3585546257775527], rtol=1e-12)
    total = json_of(lossctl("ce", LOGITS, LABELS, "-r", "sum", "--json"))
    assert total["loss"] == pytest.approx(sum(none["loss"]))


# ---- a sample of the reference cases through the CLI ----------------------------------------

CLI_SAMPLE = [c for c in load_reference_cases() if "error" not in c][::9]


def case_args(case: dict[str, Any], tmp_path: Path) -> list[str]:
    x = as_array(case, "input", "input_shape")
    np.save(tmp_path / "x.npy", x)
    command = {"softmax": "softmax", "log_softmax": "log-softmax"}.get(case["op"])
    if command:
        return [command, str(tmp_path / "x.npy"), "--dim", str(case["dim"]), "--json"]
    np.save(tmp_path / "y.npy", as_array(case, "target", "target_shape"))
    args = ["ce" if case["op"] == "cross_entropy" else "nll"]
    args += [str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "-d", str(case["class_dim"])]
    options = case.get("options", {})
    if "weight" in options:
        args += ["--weight", ",".join(map(repr, options["weight"]))]
    if "ignore_index" in options:
        args += ["--ignore-index", str(options["ignore_index"])]
    if "reduction" in options:
        args += ["--reduction", options["reduction"]]
    if "label_smoothing" in options:
        args += ["--label-smoothing", repr(options["label_smoothing"])]
    return [*args, "--json"]


@pytest.mark.parametrize("case", CLI_SAMPLE, ids=lambda c: c["id"])
def test_reference_case_through_the_cli(case: dict[str, Any], tmp_path: Path) -> None:
    result = lossctl(*case_args(case, tmp_path))
    assert result.code == 0, result.err
    document = json.loads(result.stdout)
    got = document["result"] if "result" in document else document["loss"]
    got = np.array(got, dtype=float).reshape(case["expected_shape"])
    expected = as_array(case, "expected", "expected_shape")
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_cli_sample_is_broad() -> None:
    ops = {c["op"] for c in CLI_SAMPLE}
    assert ops == {"softmax", "log_softmax", "nll_loss", "cross_entropy"}
    assert len(CLI_SAMPLE) >= 25


# ---- errors and exit codes -------------------------------------------------------------------


def one_error_line(proc: Run, code: int) -> str:
    assert proc.code == code, (proc.stdout, proc.stderr)
    err = proc.stderr.decode()
    assert "Traceback" not in err
    assert proc.stdout == b"", "nothing may be half-written on stdout"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_missing_file_is_exit_1_naming_the_file() -> None:
    line = one_error_line(lossctl("ce", "nope.json", LABELS), 1)
    assert line.startswith("lossctl: error: nope.json")


def test_out_of_range_target_names_file_position_and_value(tmp_path: Path) -> None:
    (tmp_path / "y.json").write_text("[1, 3]")
    line = one_error_line(lossctl("ce", LOGITS, str(tmp_path / "y.json"), "--json"), 1)
    assert str(tmp_path / "y.json") in line
    assert "target 3 at position (1,) is out of range" in line


def test_non_integral_label_is_refused(tmp_path: Path) -> None:
    (tmp_path / "y.json").write_text("[1.5, 2]")
    line = one_error_line(lossctl("ce", LOGITS, str(tmp_path / "y.json")), 1)
    assert "not a whole class index" in line


def test_shapes_that_fit_no_class_axis(tmp_path: Path) -> None:
    (tmp_path / "y.json").write_text("[1, 2, 0, 1]")
    line = one_error_line(lossctl("ce", LOGITS, str(tmp_path / "y.json")), 1)
    assert "does not fit input shape (3, 2)" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label-smoothing", "1.5"], "label_smoothing must be between 0.0 and 1.0"),
        (["--label-smoothing", "-0.1"], "label_smoothing must be between 0.0 and 1.0"),
        (["--weight", "1,2"], "one value per class"),
        (["--weight", "1,x,2"], "--weight"),
        (["--class-dim", "5"], "class axis 5 is out of range"),
    ],
)
def test_bad_options_are_exit_1(args: list[str], message: str) -> None:
    line = one_error_line(lossctl("ce", LOGITS, LABELS, *args), 1)
    assert message in line


def test_usage_errors_are_exit_2() -> None:
    proc = lossctl("ce", LOGITS)
    assert proc.code == 2
    assert "Traceback" not in proc.stderr.decode()
    assert lossctl("ce", LOGITS, LABELS, "--reduction", "avg").code == 2
    assert lossctl("frobnicate").code == 2


def test_two_stdin_arguments_are_refused() -> None:
    line = one_error_line(lossctl("ce", "-", "-", stdin=b"[1]"), 1)
    assert "only one argument can be '-'" in line


def test_nan_result_is_printed_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "y.json").write_text("[-100, -100]")
    proc = lossctl("ce", LOGITS, str(tmp_path / "y.json"), "--json")
    doc = json_of(proc)
    assert doc["loss"] == "nan" and doc["count"] == 0 and doc["ignored"] == 2
    assert "every target (2) equals ignore_index" in proc.stderr.decode()
    assert doc["warnings"]


def test_ambiguous_class_axis_warns_on_stderr(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.arange(9.0).reshape(3, 3))
    np.save(tmp_path / "y.npy", np.array([0, 1, 2]))
    proc = lossctl("ce", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--json")
    doc = json_of(proc)
    assert doc["class_dim"] == 1
    assert "class axis is ambiguous" in proc.stderr.decode()


# ---- housekeeping ----------------------------------------------------------------------------


def test_version_and_module_entry_point() -> None:
    from lossctl import __version__

    proc = run_lossctl("--version")
    assert proc.stdout.decode().strip() == f"lossctl {__version__}"


@pytest.mark.parametrize("command", ["ce", "nll", "softmax", "log-softmax", "log"])
def test_every_command_help_shows_an_example(command: str) -> None:
    result = run_in_process(command, "--help", COLUMNS="200")
    assert result.code == 0
    assert "Example: lossctl" in result.out


def test_help_and_version_do_not_import_numpy() -> None:
    code = (
        "import sys; from lossctl.cli.app import app\n"
        "try:\n    app(['--version'])\nexcept SystemExit:\n    pass\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()


def test_no_color_and_colour_on_request() -> None:
    coloured = run_in_process("ce", LOGITS, LABELS, FORCE_COLOR="1")
    assert b"\x1b[" in coloured.stdout
    plain = run_in_process("ce", LOGITS, LABELS, FORCE_COLOR="1", NO_COLOR="1")
    colour = re.compile(rb"\x1b\[[0-9;]*(?:3[0-8]|9[0-7])[;m]")
    assert colour.search(coloured.stdout)
    assert not colour.search(plain.stdout), "NO_COLOR must remove colours (styles may stay)"
