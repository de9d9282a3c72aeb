"""Start-up: ``lossctl ce`` on the seed example imports only what it uses (never a timing:
the set of modules is the figure a test can hold). The format modules load per format,
the merge machinery only for merged results, and no thread pool starts on a small input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import LABELS, LOGITS, ROOT

PROBE = """
import dataclasses, json, sys, threading
from lossctl.cli.process import run_cli
code = run_cli(sys.argv[1:])
classes = [
    f"{name}.{value.__name__}"
    for name, module in list(sys.modules.items()) if name.startswith("lossctl")
    for value in vars(module).values()
    if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == name
]
print(json.dumps({"modules": sorted(sys.modules), "threads": threading.active_count(),
                  "code": int(code), "dataclasses": sorted(classes)}))
"""
NOT_FOR_JSON = [
    "csv",
    "zipfile",
    "lossctl.io.torch_pt",
    "lossctl.io.safetensors",
    "lossctl.io.csv_format",
    "lossctl.io.npz",
    "lossctl.io.npy",
    "lossctl.core.merge",
    "concurrent.futures",
    "lossctl.trace.loss",  # the --explain trace's builders
    "lossctl.trace.elementwise",
]


def loaded(*args: str, probe: str = PROBE, env: dict[str, str] | None = None) -> dict[str, object]:
    """The JSON report that ``probe`` prints last on stdout after running ``lossctl args``."""
    proc = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, cwd=ROOT, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode()
    report: dict[str, object] = json.loads(proc.stdout.decode().splitlines()[-1])
    return report


def test_ce_on_json_imports_no_other_format() -> None:
    report = loaded("ce", LOGITS, LABELS)
    assert report["code"] == 0
    modules = set(report["modules"])  # type: ignore[arg-type]
    assert "lossctl.io.json_format" in modules and "lossctl.core.kernels" in modules
    assert not modules & set(NOT_FOR_JSON), sorted(modules & set(NOT_FOR_JSON))
    assert report["threads"] == 1  # one block of rows: the kernel pool never starts


# What ``ce --json`` does not need: the table's renderer, the kl and merge machinery, and
# hashlib (its import loads OpenSSL; the fingerprint's blake2b comes from _blake2).
NOT_FOR_A_DOCUMENT = [
    "rich",
    "rich.console",
    "lossctl.render.results",
    "lossctl.core.merge",
    "lossctl.core.kl_stats",
    "lossctl.core.kl_stats_io",
    "hashlib",
    "_hashlib",
]


def test_ce_json_imports_no_renderer_and_no_merge() -> None:
    report = loaded("ce", LOGITS, LABELS, "--json")
    assert report["code"] == 0
    modules = set(report["modules"])  # type: ignore[arg-type]
    assert "lossctl.io.documents" in modules and "_blake2" in modules
    assert not modules & set(NOT_FOR_A_DOCUMENT), sorted(modules & set(NOT_FOR_A_DOCUMENT))


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_the_start_up_path_defines_no_dataclass(extra: list[str]) -> None:
    """Defining a frozen dataclass costs 0.8-2.2 ms at import (it compiles six methods):
    the records on the start-up path are NamedTuples or small classes."""
    report = loaded("ce", LOGITS, LABELS, *extra)
    assert report["code"] == 0
    assert report["dataclasses"] == []
    metrics = loaded("ce", LOGITS, LABELS, "--metrics", *extra)  # the probe sees them
    assert "lossctl.core.metrics.Metrics" in metrics["dataclasses"]  # type: ignore[operator]


THREADS_PROBE = """
import atexit, json, os, sys
def report():
    print(json.dumps({"threads": len(os.listdir("/proc/self/task")),
                      "blas": os.environ.get("OPENBLAS_NUM_THREADS")}))
atexit.register(report)
sys.argv[0] = "lossctl"
from lossctl.__main__ import main
main()
"""


@pytest.mark.skipif(sys.platform != "linux", reason="threads counted in /proc/self/task")
@pytest.mark.parametrize("given", [None, "2"])
def test_the_entry_point_starts_one_blas_thread_unless_told(given: str | None) -> None:
    """NumPy's import starts an OpenBLAS thread per core, which spins on a small input;
    lossctl calls no BLAS routine, so its entry point asks for one (a user's
    OPENBLAS_NUM_THREADS is kept)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    report = loaded("ce", LOGITS, LABELS, probe=THREADS_PROBE, env=env)
    assert report["blas"] == (given or "1")
    if given is None:
        assert report["threads"] == 1  # the main thread only


@pytest.mark.parametrize(
    ("suffix", "module"), [(".npy", "lossctl.io.npy"), (".csv", "lossctl.io.csv_format")]
)
def test_each_format_loads_its_own_module(tmp_path: Path, suffix: str, module: str) -> None:
    x = np.asarray(json.loads(Path(LOGITS).read_text()))
    path = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(path, x)
    else:
        np.savetxt(path, x, delimiter=",")
    modules = set(loaded("ce", str(path), LABELS)["modules"])  # type: ignore[arg-type]
    assert module in modules
    assert "lossctl.io.safetensors" not in modules and "lossctl.io.torch_pt" not in modules


def test_a_command_line_builds_only_the_command_it_names() -> None:
    from typer.main import get_command

    from lossctl.cli.app import COMMANDS, app_for

    def names(args: list[str]) -> set[str]:
        return set(get_command(app_for(args)).commands)  # type: ignore[attr-defined]

    assert names(["ce", LOGITS, LABELS]) == {"ce"}
    assert names(["log-softmax", LOGITS]) == {"log-softmax"}
    assert names(["--help"]) == names([]) == names(["cee"]) == set(COMMANDS)  # suggestions
