"""Output on any terminal and into any pipe: no trailing spaces, --color, --export, --help's
length, doctor findings that wrap at words on a terminal (one line each into a pipe)."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from lossctl.cli.app import app
from lossctl.doctor import diagnose
from lossctl.render import i18n
from lossctl.render.findings import findings_view
from tests.conftest import ROOT
from tests.helpers import html_text

EX = ROOT / "examples"
SEED = [str(EX / "seed" / "logits.json"), str(EX / "seed" / "labels.json")]
M = EX / "mistakes"
KL = [str(EX / "kl" / n) for n in ("reference.json", "other.json", "labels.json")]
COLOUR = re.compile(r"\x1b\[[0-9;]*m")

COMMANDS = [
    ["ce", *SEED],
    ["ce", *SEED, "--explain"],
    ["ce", *SEED, "--reduction", "none", "--metrics", "--grad"],
    ["nll", *SEED],
    ["nll", *SEED, "--explain"],
    ["softmax", SEED[0], "-d", "0"],
    ["log-softmax", SEED[0], "-d", "0", "--explain"],
    ["log", str(M / "probs.json")],
    ["doctor", str(M / "probs.json"), SEED[1]],
    ["doctor", str(M / "probs.json"), SEED[1], "--loss", "nll"],
    ["doctor", str(M / "ambiguous.json"), str(M / "ambiguous-labels.json")],
    ["doctor", str(M / "batch-logits.json"), str(M / "padded-labels.json")],
    ["doctor", str(M / "soft-logits.json"), str(M / "soft-targets.json")],
    ["doctor", str(M / "float16-logits.npy"), str(M / "float16-labels.json")],
    ["log", str(M / "probs.json"), "--explain"],
    ["softmax", SEED[0], "-d", "0", "--explain"],
    ["kl", *KL],
    ["kl", *KL, "--explain"],
]


def run(args: list[str], **env: str) -> str:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80", **env})
    assert result.exit_code in (0, 1), result.output
    return result.stdout


def trailing(text: str) -> list[str]:
    """The lines of ``text`` (colour codes removed) that end in white space."""
    return [line for line in COLOUR.sub("", text).splitlines() if line != line.rstrip()]


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a[:1] + a[3:]) for a in COMMANDS])
@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("columns", ["60", "80"])
def test_piped_output_has_no_trailing_spaces(args: list[str], lang: str, columns: str) -> None:
    text = run([*args, "--lang", lang], COLUMNS=columns)
    assert text.strip()
    assert trailing(text) == []
    assert trailing(run([*args, "--color", "always", "--lang", lang], COLUMNS=columns)) == []


MERGED = [
    (["ce", *SEED], "3.2655"),  # the mean
    (["ce", *SEED, "--reduction", "sum"], "13.0619"),  # twice the sum
    (["kl", *KL], "0.0030"),
]


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize(("command", "number"), MERGED, ids=["mean", "sum", "kl"])
def test_merged_shards_have_no_trailing_spaces(
    tmp_path: Path, lang: str, command: list[str], number: str
) -> None:
    shard = tmp_path / "shard.json"
    shard.write_text(run([*command, "--json"]))
    merged = ["merge", str(shard), str(shard), "--allow-duplicates", "--lang", lang]
    text = run(merged)
    assert number in text and trailing(text) == []
    assert trailing(run([*merged, "--color", "always"])) == []


def test_every_command_is_checked_for_trailing_spaces() -> None:
    from lossctl.cli.app import COMMANDS as APP_COMMANDS

    assert {args[0] for args in COMMANDS} | {"merge"} == set(APP_COMMANDS)


def test_json_is_untouched_by_the_table_rules() -> None:
    document = run(["ce", *SEED, "--json", "--color", "always"])
    assert "\x1b" not in document and document.startswith("{") and document.endswith("}\n")


def test_color_always_never_and_no_color() -> None:
    assert "\x1b[" in run(["ce", *SEED, "--color", "always"])
    assert "\x1b[" in run(["ce", *SEED, "--color", "always"], NO_COLOR="1")  # always wins
    assert "\x1b[" not in run(["ce", *SEED, "--color", "never"], FORCE_COLOR="1")
    assert "\x1b[" not in run(["ce", *SEED])  # auto into a pipe
    forced = run(["ce", *SEED], FORCE_COLOR="1")
    assert "32m" in forced  # auto on a (forced) terminal: colour
    assert "32m" not in run(["ce", *SEED], FORCE_COLOR="1", NO_COLOR="1")  # NO_COLOR wins
    plain = run(["ce", *SEED])
    assert COLOUR.sub("", run(["ce", *SEED, "--color", "always"])) == plain


@pytest.mark.parametrize("command", ["ce", "nll", "kl", "doctor", "softmax"])
def test_every_command_exports_svg_html_and_text(tmp_path: Path, command: str) -> None:
    args = {
        "ce": ["ce", *SEED],
        "nll": ["nll", *SEED, "--explain"],
        "kl": ["kl", *KL],
        "doctor": ["doctor", str(M / "probs.json"), SEED[1]],
        "softmax": ["softmax", SEED[0], "-d", "0"],
    }[command]
    expected = {"ce": "3.2655", "nll": "1.5641", "doctor": "3.2655", "softmax": "0.7555"}
    shown = run(args)
    svg, html, txt = (tmp_path / f"out.{ext}" for ext in ("svg", "html", "txt"))
    for path in (svg, html, txt):
        assert run([*args, "--export", str(path)]) == shown  # stdout is unchanged
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    svg_text = " ".join("".join(node.itertext()) for node in root.iter()).replace("\xa0", " ")
    shown_html = html_text(html.read_text(encoding="utf-8"))
    exported = txt.read_text(encoding="utf-8")
    number = expected.get(command)
    for text in (svg_text, shown_html, exported):
        assert number is None or number in text, command
    if command == "doctor":  # a pipe gets one line per finding, the export wraps them
        assert exported.split() == shown.split() and len(exported.splitlines()) > 3
    else:
        assert exported == shown  # the text export is what a pipe gets
    if number:
        assert number in shown


@pytest.mark.parametrize("columns", [60, 120])
def test_an_export_is_as_wide_as_the_terminal_or_its_widest_table(
    tmp_path: Path, columns: int
) -> None:
    """The SVG's width is that of the terminal (a table drawn at its natural width in one
    pass, e.g. ce's, records no width of its own), else the widest table's."""

    def columns_of(svg: Path) -> int:  # rich draws a character 0.61 x 20 px wide
        width = float(ET.parse(svg).getroot().attrib["viewBox"].split()[2])
        return round((width - 40) / 12.2)

    table, wide = tmp_path / "table.svg", tmp_path / "wide.svg"
    run(["ce", *SEED, "--export", str(table)], COLUMNS=str(columns))
    assert abs(columns_of(table) - columns) <= 2
    run(["ce", *SEED, "--reduction", "none", "--explain", "--export", str(wide)], COLUMNS="20")
    drawn = run(["ce", *SEED, "--reduction", "none", "--explain"], COLUMNS="20")
    assert abs(columns_of(wide) - max(cell_len(line) for line in drawn.splitlines())) <= 2


def test_export_refuses_unknown_formats_and_warns_with_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ce", *SEED, "--export", str(tmp_path / "x.pdf")])
    assert result.exit_code == 2 and "--export" in result.output
    result = CliRunner().invoke(app, ["ce", *SEED, "--json", "--export", str(tmp_path / "x.svg")])
    assert result.exit_code == 0 and not (tmp_path / "x.svg").exists()
    assert "nothing was drawn" in result.stderr


def test_export_in_colour_unless_never(tmp_path: Path) -> None:
    coloured, plain = tmp_path / "c.html", tmp_path / "p.html"
    run(["ce", *SEED, "--export", str(coloured)])
    run(["ce", *SEED, "--export", str(plain), "--color", "never"])
    assert "#008000" in coloured.read_text() and "#008000" not in plain.read_text()


@pytest.mark.parametrize("command", ["ce", "nll", "kl", "doctor", "softmax", "merge", "log"])
def test_help_at_80_columns_is_short_with_the_example_first(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "80"})
    lines = result.output.splitlines()
    assert len(lines) <= 80, (command, len(lines))  # was 99 for ce
    assert all(len(line) <= 80 for line in lines)
    assert "--color" in result.output and "--export" in result.output and "--lang" in result.output
    head = "\n".join(lines[:8])
    assert "Example: lossctl" in head or command in ("kl", "doctor")


# ------------------------------------------------------------------ doctor findings


def findings() -> list:  # type: ignore[type-arg]
    from lossctl.io.readers import read_array

    x = read_array(str(M / "probs.json")).array
    t = read_array(SEED[1]).array
    return list(diagnose(x, t, op="cross_entropy"))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_findings_wrap_at_words_with_a_hanging_indent_on_a_terminal(lang: str) -> None:
    found = findings()
    buffer, piped = io.StringIO(), io.StringIO()
    with i18n.language(lang):
        Console(file=buffer, width=60, color_system=None).print(findings_view(found))
        Console(file=piped, width=60, color_system=None, soft_wrap=True).print(findings_view(found))
    text = buffer.getvalue()
    lines = text.splitlines()
    assert all(cell_len(line) <= 60 for line in lines)
    continuation = [line for line in lines if line.startswith(" ")]
    assert continuation and all(line.startswith(" " * 8) for line in continuation)
    one_line = piped.getvalue().splitlines()
    assert len(one_line) == len(found) + 1  # one line per finding, then the summary
    if lang == "en":
        assert text.split() == piped.getvalue().split()  # no word is broken
    else:  # Chinese breaks between characters, never inside a Latin word or a number
        latin = re.compile(r"[A-Za-z0-9.]+")
        assert latin.findall(text) == latin.findall(piped.getvalue())
        assert "".join(text.split()) == "".join(piped.getvalue().split())


def test_piped_doctor_prints_one_line_per_finding() -> None:
    text = run(["doctor", str(M / "probs.json"), SEED[1]])
    assert len(text.splitlines()) == 3 and len(text.splitlines()[1]) > 200


# ------------------------------------------------------------------ result grids at 60 columns

NUMBER_TOKEN = re.compile(r"-?\d+\.\d+(?:e[-+]\d+)?")


@pytest.fixture
def wide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(4, 12) logits with tiny and huge values, and their labels, saved as NumPy files
    in the working directory (a long path would widen the facts table)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 12)) * 3
    x[0, :3] = [2.5608e-05, -1234567.0, 3.1e-9]
    np.save(tmp_path / "wide.npy", x)
    np.save(tmp_path / "labels.npy", rng.integers(0, 12, 4))
    monkeypatch.chdir(tmp_path)
    return "wide.npy", "labels.npy"


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize(
    "make",
    [
        lambda w: ["softmax", w[0], "-d", "1"],
        lambda w: ["log", w[0]],
        lambda w: ["ce", *w, "--grad"],
        lambda w: ["kl", w[0], w[0], "--explain"],
    ],
    ids=["softmax", "log", "grad", "kl-explain"],
)
def test_result_grids_at_60_columns_elide_columns_never_numbers(
    wide: tuple[str, str], make: Any, lang: str
) -> None:
    args = [*make(wide), "--lang", lang]
    narrow, unbounded = run(args, COLUMNS="60"), run([*args, "--full"], COLUMNS="1000")
    assert max(map(cell_len, narrow.splitlines())) <= 60
    assert "…" in narrow and not re.search(r"\d…|…\d", narrow)
    # every number shown is a whole number of the full table, the first and last columns kept
    assert set(NUMBER_TOKEN.findall(narrow)) <= set(NUMBER_TOKEN.findall(unbounded))
    header = next(line for line in narrow.splitlines() if line.strip().startswith("0 "))
    assert header.split()[-1] == "11" and "…" in header
    assert "…" not in run([*args, "--full"], COLUMNS="60").replace("(…", "")
