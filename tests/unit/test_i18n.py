"""--lang zh: the same numbers and alignment in Simplified Chinese; English unchanged; one
catalogue per language (every English id translated, with the same fields); no English
sentence left in the Chinese output of the seed example, the doctor findings, the
warnings and kl.

Goldens: tests/golden/zh_*.txt (rewrite with LOSSCTL_UPDATE_GOLDEN=1, check by eye)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.cells import cell_len
from rich.console import Console

from lossctl.core.losses import loss_result
from lossctl.render import i18n
from lossctl.render.blocks import CLOSING
from lossctl.render.explain import positions_table
from lossctl.render.i18n import en, zh
from lossctl.render.messages import message
from lossctl.render.results import NumberFormat, Summary, loss_view
from lossctl.trace import explain_loss
from lossctl.trace.phrases import ENGLISH as TRACE_ENGLISH
from tests.cli.test_doctor import TRIGGERS
from tests.conftest import ROOT
from tests.helpers import run_in_process
from tests.unit.test_explain_golden import check_golden

SEED = [f"examples/seed/{n}" for n in ("logits.json", "labels.json")]  # relative: goldens
KL = [f"examples/kl/{n}" for n in ("reference.json", "other.json", "labels.json")]
M = "examples/mistakes"
NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]\d+)?")
FIELD = re.compile(r"\{(\w+)\}")
COLOUR = re.compile(r"\x1b\[[0-9;]*m")
LATIN = re.compile(r"[A-Za-z]+")
X = np.array([[1.1741, -0.4859], [-3.718, 1.5257], [0.0222, 0.5898]])
Y = np.array([1, 2])

# Two English words in a row are a sentence that was not translated, unless they are one
# of these names and identifiers (flags, code and quoted strings are removed first).
NAMES = ("Hugging Face", "NLLLoss vs CrossEntropy", "device-side assert")
CODE = re.compile(r"`[^`]*`|'[^']*'|--[\w-]+|\S+\.(?:json|npy|npz|csv|pt|safetensors)\b")
SENTENCE = re.compile(r"\b[A-Za-z]{2,}(?: [A-Za-z]{2,})+\b")


def english_sentences(text: str) -> list[str]:
    """The runs of two or more English words in ``text`` (see :data:`NAMES`)."""
    text = CODE.sub(" ", text)
    for name in NAMES:
        text = text.replace(name, " ")
    return SENTENCE.findall(text)


@pytest.fixture(autouse=True)
def in_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths in the goldens are relative to the project, wherever it is checked out."""
    monkeypatch.chdir(ROOT)


def run(args: list[str], columns: int = 80) -> tuple[str, str]:
    result = run_in_process(*args, COLUMNS=str(columns))
    assert result.code in (0, 1), result.err
    return result.out, result.err


# ------------------------------------------------------------------ the catalogues


def test_every_english_id_has_a_chinese_text_with_the_same_fields() -> None:
    assert sorted(set(en.MESSAGES) - set(zh.MESSAGES)) == []
    assert sorted(set(zh.MESSAGES) - set(en.MESSAGES)) == []  # no stale translations
    different = [
        key
        for key, text in en.MESSAGES.items()
        if sorted(FIELD.findall(text)) != sorted(FIELD.findall(zh.MESSAGES[key]))
    ]
    assert different == []


def test_the_english_catalogue_holds_the_traces_sentences_once() -> None:
    assert all(en.MESSAGES[key] == text for key, text in TRACE_ENGLISH.items())
    assert not english_sentences("".join(zh.MESSAGES[key] for key in TRACE_ENGLISH))


@pytest.mark.parametrize("code", sorted(TRIGGERS))
def test_every_finding_in_chinese_has_the_numbers_and_no_english_sentence(code: str) -> None:
    finding = next(f for f in TRIGGERS[code]() if f.code == code)
    english = message(finding)
    with i18n.language("zh"):
        chinese = message(finding)
    assert chinese != english
    assert NUMBER.findall(chinese) == NUMBER.findall(english)
    assert english_sentences(chinese) == [], chinese
    assert english_sentences(english), "the detector finds English"


def test_missing_ids_fall_back_to_english() -> None:
    with i18n.language("zh"):
        assert i18n.t("result.loss") == "损失"
        assert (
            i18n.tr("a sentence of the trace with 2 numbers")
            == "a sentence of the trace with 2 numbers"
        )
    assert i18n.t("result.loss") == "loss"
    with pytest.raises(ValueError, match="language"), i18n.language("fr"):
        pass


# ------------------------------------------------------------------ whole commands

CHINESE_RUNS = [
    ["ce", *SEED],
    ["ce", *SEED, "--explain"],
    ["ce", *SEED, "--explain", "--grad"],
    ["ce", *SEED, "--reduction", "none", "--metrics", "--grad"],
    ["ce", *SEED, "--ignore-index", "1", "--explain"],
    ["nll", *SEED, "--explain"],
    ["nll", *SEED, "--explain", "--grad", "--reduction", "sum"],
    ["softmax", SEED[0], "-d", "0", "--explain"],
    ["log-softmax", SEED[0], "-d", "0", "--explain"],
    ["log", f"{M}/probs.json", "--explain"],
    ["doctor", f"{M}/probs.json", SEED[1]],
    ["doctor", f"{M}/probs.json", SEED[1], "--loss", "nll"],
    ["doctor", f"{M}/ambiguous.json", f"{M}/ambiguous-labels.json"],
    ["doctor", f"{M}/batch-logits.json", f"{M}/padded-labels.json"],
    ["doctor", f"{M}/soft-logits.json", f"{M}/soft-targets.json"],
    ["doctor", f"{M}/float16-logits.npy", f"{M}/float16-labels.json"],
    ["ce", f"{M}/masked-logits.json", f"{M}/masked-at-target-labels.json"],
    ["ce", f"{M}/masked-logits.json", f"{M}/masked-labels.json", "--label-smoothing", "0.1"],
    ["ce", SEED[0], f"{M}/all-ignored-labels.json"],
    ["nll", *SEED, "--metrics"],
    ["ce", f"{M}/lm-logits.npy", f"{M}/lm-ids.npy", "--shift"],
    ["kl", *KL],
    ["kl", *KL, "--explain"],
]


@pytest.mark.parametrize("args", CHINESE_RUNS, ids=[" ".join(a) for a in CHINESE_RUNS])
def test_no_english_sentence_in_chinese_output(args: list[str]) -> None:
    chinese_out, chinese_err = run([*args, "--lang", "zh"])
    english_out, english_err = run(args)
    assert NUMBER.findall(chinese_out) == NUMBER.findall(english_out)
    assert NUMBER.findall(chinese_err) == NUMBER.findall(english_err)
    assert english_sentences(chinese_out) == []
    warnings = chinese_err.replace("lossctl: warning:", "")  # the prefix is for grep
    assert english_sentences(warnings) == []
    assert english_sentences(english_out + english_err) or "doctor" not in args


GOLDEN_RUNS = {
    "seed_ce": ["ce", *SEED],
    "seed_ce_explain": ["ce", *SEED, "--explain"],
    "seed_doctor": ["doctor", f"{M}/probs.json", SEED[1]],
}


# The result table is the same at every width: one golden of it, at 80 columns.
GOLDEN_WIDTHS = [("seed_ce", 80)] + [
    (name, width) for name in ("seed_ce_explain", "seed_doctor") for width in (60, 80, 120)
]


@pytest.mark.parametrize(("name", "width"), GOLDEN_WIDTHS)
def test_chinese_at_a_fixed_width(name: str, width: int) -> None:
    chinese, _ = run([*GOLDEN_RUNS[name], "--lang", "zh"], width)
    english, _ = run(GOLDEN_RUNS[name], width)
    assert NUMBER.findall(chinese) == NUMBER.findall(english)
    assert chinese != english
    if name != "seed_doctor":  # into a pipe a finding is one line, for grep
        assert max(map(cell_len, chinese.splitlines())) <= width
    lines = chinese.splitlines()
    assert not [line for line in lines if line.lstrip()[:1] in tuple(CLOSING)]
    unwrapped, _ = run([*GOLDEN_RUNS[name], "--lang", "zh"], 1000)
    assert set(LATIN.findall(chinese)) <= set(LATIN.findall(unwrapped)), "a word was broken"
    check_golden(f"zh_{name}_{width}.txt", chinese)


@pytest.mark.parametrize("width", [60, 80, 120])
def test_chinese_in_colour_at_a_fixed_width(width: int) -> None:
    """The colour matrix: the same text as without colour, plus the escapes."""
    args = [*GOLDEN_RUNS["seed_ce_explain"], "--lang", "zh"]
    coloured, _ = run([*args, "--color", "always"], width)
    assert "\x1b[" in coloured
    assert COLOUR.sub("", coloured) == run(args, width)[0]
    check_golden(f"zh_seed_ce_explain_{width}_colour.txt", coloured)


def test_lossctl_lang_environment_variable() -> None:
    from_env = run_in_process("ce", *SEED, LOSSCTL_LANG="zh").out
    assert from_env == run(["ce", *SEED, "--lang", "zh"])[0] and "交叉熵" in from_env


# ------------------------------------------------------------------ CJK alignment


def rendered(renderable: object, width: int = 80) -> list[str]:
    """The lines rich draws, with the padding that makes a table's rows one width."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None).print(renderable)
    return buffer.getvalue().splitlines()


def table_rows(lines: list[str]) -> list[str]:
    """The lines of a table without its title and caption (they are not padded)."""
    return [line for line in lines if line.strip()][1:]


def test_chinese_table_rows_have_one_display_width() -> None:
    """CJK labels are two columns wide: rows still line up (rich.cells.cell_len)."""
    result = loss_result("cross_entropy", X, Y, class_dim=0)
    trace = explain_loss("cross_entropy", X, Y)
    nll = next(step for step in trace.steps if step.key == "nll")
    fmt = NumberFormat()
    for lang in ("en", "zh"):
        with i18n.language(lang):
            facts = rendered(
                loss_view(result, fmt=fmt, summary=Summary(), sources=[], weighted=False)
            )
            grid = rendered(positions_table(trace, nll.columns, fmt))
        rows = [line for line in facts if line.strip()][1:]  # below the title
        assert len(rows) == 9 and len({cell_len(row) for row in rows}) == 1, (lang, rows)
        body = [line for line in grid if line.strip() and "─" not in line][1:]  # no header
        assert len(body) == len(nll.columns) and len({cell_len(row) for row in body}) == 1
        ends = {
            tuple(cell_len(row[: m.end()]) for m in list(re.finditer(r"\S+", row))[-2:])
            for row in body
        }
        assert len(ends) == 1, (lang, body)  # each position's values end in one column


def test_chinese_labels_keep_the_values_in_one_column() -> None:
    lines = [line for line in run(["ce", *SEED, "--lang", "zh"])[0].splitlines() if "  " in line]
    starts = {cell_len(line[: re.search(r"\S+\s{2,}(\S)", line).start(1)]) for line in lines[1:]}  # type: ignore[union-attr]
    assert len(starts) == 1, "the values start at one column, whatever the labels' widths"


def test_no_english_sentence_in_a_summarised_chinese_trace(tmp_path: Path) -> None:
    """A large input: the statistics of the per-position losses and the worst positions."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "logits.npy", rng.normal(size=(300, 40)))
    np.save(tmp_path / "labels.npy", rng.integers(0, 40, 300))
    np.save(tmp_path / "weight.npy", np.abs(rng.normal(size=40)))
    files = [str(tmp_path / n) for n in ("logits.npy", "labels.npy")]
    for extra in ([], ["--weight", str(tmp_path / "weight.npy"), "--label-smoothing", "0.1"]):
        args = ["ce", *files, "--explain", *extra]
        chinese, english = run([*args, "--lang", "zh"], 120)[0], run(args, 120)[0]
        assert "…" in chinese and english_sentences(chinese) == [] and english_sentences(english)
        # wide enough for every kept column in both languages: the same numbers
        chinese, english = run([*args, "--lang", "zh"], 1000)[0], run(args, 1000)[0]
        assert NUMBER.findall(chinese) == NUMBER.findall(english)


def test_a_pickled_trace_still_speaks_chinese() -> None:
    """A trace's phrases keep their ids through pickle and copy (a notebook, a worker)."""
    import copy
    import pickle

    from lossctl.render.explain import explain_view

    trace = explain_loss("cross_entropy", X, Y)
    with i18n.language("zh"):
        text = "\n".join(rendered(explain_view(trace, fmt=NumberFormat())))
        for again in (pickle.loads(pickle.dumps(trace)), copy.deepcopy(trace)):
            assert "\n".join(rendered(explain_view(again, fmt=NumberFormat()))) == text
    assert "为什么有效" in text and "Why it works" not in text


def test_explain_json_prose_follows_lang_and_keeps_its_numbers() -> None:
    """--explain --json: titles and notes in the chosen language, the same names and values."""
    import json

    seed = [str(ROOT / "examples/seed/logits.json"), str(ROOT / "examples/seed/labels.json")]
    seed += ["--explain", "--json"]
    english = json.loads(run_in_process("ce", *seed).stdout)
    chinese = json.loads(run_in_process("ce", *seed, "--lang", "zh").stdout)
    assert [s["name"] for s in english["steps"]] == [s["name"] for s in chinese["steps"]]

    def numbers(document: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in s["values"].items() if k != "remarks"} for s in document["steps"]]

    assert numbers(english) == numbers(chinese)
    assert english["steps"][1]["title"] == "Max-shift"
    assert chinese["steps"][1]["title"] == "减去最大值"
    notes = zip(english["steps"], chinese["steps"], strict=True)
    assert all(s["note"] != t["note"] for s, t in notes if s["note"])
