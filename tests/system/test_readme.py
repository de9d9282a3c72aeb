"""The README's promises: its two set-up commands and its example sessions (and those of the
pages in docs/) are real."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.helpers import BIN, ROOT

README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_blocks() -> list[tuple[str, str]]:
    """(command, expected output) for every `$ lossctl …` line in the code blocks of the README
    and of every page in docs/."""
    sessions: list[tuple[str, str]] = []
    text = "\n".join(page.read_text() for page in PAGES)
    for block in re.findall(r"```\n(.*?)```", text, flags=re.S):
        parts = re.split(r"^\$ ", block, flags=re.M)
        for part in parts[1:]:
            command, _, output = part.partition("\n")
            sessions.append((command, output))
    return sessions


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"```\n{ci}\n```" in README


def test_readme_main_job_command_runs_the_seed_example() -> None:
    assert (
        "```\npython3 -m venv .venv && .venv/bin/pip install -q . && "
        ".venv/bin/lossctl ce examples/seed/logits.json examples/seed/labels.json\n```" in README
    )


SESSIONS = shell_blocks()


def test_readme_has_example_sessions() -> None:
    assert len(SESSIONS) >= 20
    assert len(README.splitlines()) <= 300, "the README is the first screen and a tour"


@pytest.mark.parametrize(("command", "expected"), SESSIONS, ids=[c for c, _ in SESSIONS])
def test_readme_session_output_is_real(command: str, expected: str) -> None:
    jq = re.search(r"\s*\|\s*jq (\.\w+)$", command)
    runnable = command[: jq.start()] if jq else command
    runnable = re.sub(r"\blossctl\b", str(BIN / "lossctl"), runnable)
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", runnable],
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "COLUMNS": "100", "LANG": "C.UTF-8"},
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    if jq:
        out = json.dumps(json.loads(out)[jq.group(1)[1:]]) + "\n"
    assert normalise(out) == normalise(expected)


def normalise(text: str) -> str:
    """Trailing spaces and surrounding blank lines do not count."""
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")
