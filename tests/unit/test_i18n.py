"""--lang zh: the same numbers and alignment in Simplified Chinese; English unchanged; the
catalogues (which ids are translated, English for the rest).

Goldens: tests/golden/zh_*.txt (rewrite with LOSSCTL_UPDATE_GOLDEN=1, check by eye)."""

from __future__ import annotations

import re

import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from lossctl.cli.app import app
from lossctl.render import i18n
from lossctl.render.i18n import en, zh
from tests.conftest import ROOT
from tests.unit.test_explain_golden import check_golden

SEED = [f"examples/seed/{n}" for n in ("logits.json", "labels.json")]  # relative: goldens
NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]\d+)?")


@pytest.fixture(autouse=True)
def in_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths in the goldens are relative to the project, wherever it is checked out."""
    monkeypatch.chdir(ROOT)


def run(args: list[str], **env: str) -> str:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80", **env})
    assert result.exit_code in (0, 1), result.output
    return result.stdout


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("zh_seed_ce_80.txt", ["ce", *SEED]),
        ("zh_seed_ce_explain_80.txt", ["ce", *SEED, "--explain"]),
        ("zh_seed_doctor_80.txt", ["doctor", "examples/mistakes/probs.json", SEED[1]]),
    ],
)
def test_chinese_at_80_columns_has_the_same_numbers(name: str, args: list[str]) -> None:
    chinese, english = run([*args, "--lang", "zh"]), run(args)
    assert NUMBER.findall(chinese) == NUMBER.findall(english)
    assert all(cell_len(line) <= 80 for line in chinese.splitlines()) or "doctor" in args
    assert chinese != english
    check_golden(name, chinese)


def test_lossctl_lang_environment_variable() -> None:
    assert run(["ce", *SEED], LOSSCTL_LANG="zh") == run(["ce", *SEED, "--lang", "zh"])
    assert "交叉熵" in run(["ce", *SEED], LOSSCTL_LANG="zh")


def test_chinese_table_columns_line_up() -> None:
    lines = [line for line in run(["ce", *SEED, "--lang", "zh"]).splitlines() if "  " in line]
    starts = {cell_len(line[: re.search(r"\S+\s{2,}(\S)", line).start(1)]) for line in lines[1:]}  # type: ignore[union-attr]
    assert len(starts) == 1, "the values start at one column, whatever the labels' widths"


def test_every_translated_id_exists_in_english_and_keeps_its_fields() -> None:
    fields = re.compile(r"\{(\w+)\}")
    for key, text in zh.MESSAGES.items():
        if key.startswith("finding."):
            continue  # doctor templates: their fields come from the finding's evidence
        assert key in en.MESSAGES, key
        assert set(fields.findall(text)) <= set(fields.findall(en.MESSAGES[key])), key


def test_which_ids_are_translated() -> None:
    """The untranslated ids print in English; this list says which they are."""
    missing = sorted(set(en.MESSAGES) - i18n.translated_ids("zh"))
    # function names stay as they are; Chinese has no plural ("2 个计入的目标")
    assert missing == [
        "result.log_softmax",
        "result.softmax",
        "result.target",
        "result.targets_plural",
    ]
    translated_findings = sorted(
        k for k in zh.MESSAGES if k.count(".") == 1 and k.startswith("finding.")
    )
    assert translated_findings == [
        "finding.double-softmax",
        "finding.input-kind",
        "finding.nll-on-logits",
        "finding.nll-on-probabilities",
        "finding.target-out-of-range",
    ]


def test_missing_ids_fall_back_to_english() -> None:
    with i18n.language("zh"):
        assert i18n.t("result.softmax") == "softmax"
        assert i18n.t("result.loss") == "损失"
        assert (
            i18n.tr("a sentence of the trace with 2 numbers")
            == "a sentence of the trace with 2 numbers"
        )
    assert i18n.t("result.loss") == "loss"
    with pytest.raises(ValueError, match="language"), i18n.language("fr"):
        pass
