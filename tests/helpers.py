"""What the tests share: the seed paths, the two ways to run the CLI, and clean environments.

- :func:`run_in_process`: the app through :func:`lossctl.cli.process.run_cli` with an
  injected :class:`~lossctl.cli.streams.Environment` (``io.BytesIO``/``io.StringIO``);
  milliseconds, and it sees what a process would (exit codes included).
- :func:`run_lossctl`: a real ``python -m lossctl`` process (subject to file permissions
  even as root); for signals, pipes, terminals, file names and ``main()`` itself.

Both return a :class:`Run`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "seed"
LOGITS = str(SEED / "logits.json")
LABELS = str(SEED / "labels.json")
INPUTS = ROOT / "tests" / "inputs"
BIN = Path(sys.executable).parent  # the virtual environment's scripts (the `lossctl` script)

# Root ignores permission bits, which would make "permission denied" untestable: when
# running as root, the lossctl process is started without CAP_DAC_OVERRIDE and
# CAP_DAC_READ_SEARCH (dropped from the capability bounding set before exec), so it
# meets file permissions like any user.
_LAUNCHER = """
import ctypes, os, sys
if sys.platform.startswith("linux") and os.geteuid() == 0:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP
    except (OSError, AttributeError):
        pass
os.execv(sys.executable, [sys.executable, "-m", "lossctl", *sys.argv[1:]])
"""


def lossctl_command(*args: str) -> list[str]:
    """The argv that runs the real CLI (``python -m lossctl``) subject to file permissions."""
    return [sys.executable, "-c", _LAUNCHER, *args]


def clean_env(**changes: str | None) -> dict[str, str]:
    """os.environ without colour forcing, with ``changes`` applied (None removes)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    env["PYTHONPATH"] = str(ROOT)  # the scratch directory is not the project
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@dataclass
class Run:
    """A finished lossctl run (a process, or the app in-process)."""

    args: tuple[str, ...]
    code: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    def error_line(self) -> str:
        """The one stderr line of a failed run (and check the failure is clean)."""
        assert self.code != 0, (self.args, self.stdout[:300])
        assert "Traceback" not in self.err, self.err
        assert self.stdout == b"", f"stdout must stay empty on error: {self.stdout[:300]!r}"
        lines = self.err.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got {self.err!r}"
        return lines[0]

    def document(self) -> dict[str, Any]:
        """The JSON document of a successful run."""
        assert self.code == 0, self.err
        assert "Traceback" not in self.err
        document: dict[str, Any] = json.loads(self.stdout)
        return document


def run_lossctl(
    *args: str,
    cwd: Path | str = ROOT,
    stdin: bytes | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Run:
    """Run the real CLI; ``stdin="tty"`` gives it a pseudo-terminal as standard input."""
    command = lossctl_command(*args)
    environment = clean_env() if env is None else env
    if stdin == "tty":
        primary, secondary = pty.openpty()
        try:
            proc = subprocess.run(
                command,
                stdin=secondary,
                capture_output=True,
                cwd=cwd,
                env=environment,
                timeout=timeout,
            )
        finally:
            os.close(primary)
            os.close(secondary)
    else:
        assert not isinstance(stdin, str)
        proc = subprocess.run(
            command,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            cwd=cwd,
            env=environment,
            timeout=timeout,
        )
    return Run(tuple(args), proc.returncode, proc.stdout, proc.stderr)


@contextlib.contextmanager
def environ(**changes: str | None) -> Iterator[None]:
    """``os.environ`` with ``changes`` applied (None removes) for the block."""
    saved = dict(os.environ)
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_in_process(
    *args: str, stdin: bytes | None = b"", stdout: bool = True, **env: str | None
) -> Run:
    """Run the app in this process with injected streams; what a process would print.

    ``stdin``: the bytes on standard input (``None``: stdin closed, as ``<&-``);
    ``stdout=False``: standard output closed (``>&-``); ``env``: changes to the
    environment variables for the run. As for :func:`run_lossctl`, colour forcing is
    removed, and the console is 80 columns unless ``COLUMNS`` says otherwise (a process
    whose output is captured gets rich's default 80). What click and rich print
    themselves (usage errors, ``--help``) goes to ``sys.stdout``/``sys.stderr``, which
    are pointed at the same streams meanwhile. Python warnings are restored afterwards.
    """
    from lossctl.cli.process import run_cli
    from lossctl.cli.streams import Environment

    out, err = io.StringIO(), io.StringIO()
    environment = Environment(
        stdin=None if stdin is None else io.BytesIO(stdin),
        stdout=out if stdout else None,
        stderr=err,
    )
    changes: dict[str, str | None] = {"FORCE_COLOR": None, "NO_COLOR": None}
    changes["COLUMNS"] = os.environ.get("COLUMNS", "80")
    with (
        environ(**(changes | env)),
        warnings.catch_warnings(),
        contextlib.redirect_stdout(out if stdout else io.StringIO()),
        contextlib.redirect_stderr(err),
    ):
        code = run_cli(list(args), environment)
    return Run(tuple(args), int(code), out.getvalue().encode(), err.getvalue().encode())


def leftovers(directory: Path) -> list[str]:
    """The temporary files (``*.tmp``) an atomic write left in ``directory``."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def run_shell(
    script: str, cwd: Path | str, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """A real bash with only the virtual environment's scripts on PATH (globs, pipes, xargs)."""
    return subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        cwd=cwd,
        env={"PATH": f"{BIN}:/usr/bin:/bin"},
        timeout=timeout,
    )


def mp_kl(x: Any, y: Any, digits: int = 60) -> float:
    """The exact KL(softmax(x) || softmax(y)) of two rows of floats, by mpmath."""
    import mpmath

    with mpmath.workdps(digits):
        xs, ys = [mpmath.mpf(float(v)) for v in x], [mpmath.mpf(float(v)) for v in y]
        lx = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in xs))
        ly = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in ys))
        terms = (mpmath.exp(a - lx) * ((a - lx) - (b - ly)) for a, b in zip(xs, ys, strict=True))
        return float(mpmath.fsum(terms))


def float32_kl_bound(x: Any, y: Any) -> Any:
    """lossctl.core.kl_fast32's relative bound per row, (44 + 14 E_p|e|) 2**-24, of (M, C)."""
    import numpy as np

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    p = np.exp(x - x.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    d = x - y
    e = d - np.sum(p * d, axis=-1, keepdims=True)
    return (44 + 14 * np.sum(p * np.abs(e), axis=-1)) * 2.0**-24


def peak_rss_mib(
    command: list[str], cwd: Path | str = ROOT, env: dict[str, str] | None = None
) -> tuple[float, Run]:
    """The peak RSS in MiB of ``command`` (Linux) and its :class:`Run` (``env``: default
    :func:`clean_env`).

    Measured in a small launcher process with ``RUSAGE_CHILDREN``: a child started straight
    from pytest counts pytest's own resident memory in its peak (Linux records the memory
    the child had before ``exec``: pytest's, at fork or vfork).
    """
    launcher = (
        "import resource, subprocess, sys\n"
        "proc = subprocess.run(sys.argv[1:], capture_output=True, stdin=subprocess.DEVNULL)\n"
        "sys.stderr.buffer.write(proc.stderr)\n"
        "sys.stdout.buffer.write(b'%d %d\\n' % (proc.returncode, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
        "sys.stdout.buffer.write(proc.stdout)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", launcher, *command],
        capture_output=True,
        cwd=cwd,
        env=clean_env() if env is None else env,
        timeout=300,
    )
    first, _, out = proc.stdout.partition(b"\n")
    code, kib = first.split()
    return int(kib) / 1024, Run(tuple(command), int(code), out, proc.stderr)


def html_text(markup: str) -> str:
    """The text of an HTML document (what a reader sees), parsed by ``html.parser``."""
    from html.parser import HTMLParser

    class TextOf(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []

        def handle_data(self, data: str) -> None:
            self.parts.append(data)

    parser = TextOf()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)
