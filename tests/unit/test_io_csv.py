"""CSV as pandas writes it: header and index-column rules (lossctl.io.csv_format)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lossctl.errors import ReadError
from lossctl.io.readers import read_array

DATA = Path(__file__).resolve().parent.parent / "data" / "csv"


def expected(name: str) -> np.ndarray:  # type: ignore[type-arg]
    return np.load(DATA / name)


@pytest.mark.parametrize(
    ("name", "npy", "header", "rule"),
    [
        ("logits_index.csv", "logits.npy", "auto", "pandas' index"),
        ("logits_noindex.csv", "logits.npy", "auto", "pandas' column names 0..4"),
        ("labels_index.csv", "labels.npy", "auto", "pandas' index"),
        ("column_noindex.csv", "column.npy", "auto", "pandas' column names 0;"),
        ("labels_noindex.csv", "labels.npy", "yes", None),
        ("logits_noindex.csv", "logits.npy", "yes", None),
        ("logits_index.csv", "logits.npy", "yes", "pandas' index"),
    ],
)
def test_pandas_files_equal_the_npy(name: str, npy: str, header: str, rule: str | None) -> None:
    loaded = read_array(str(DATA / name), header=header)  # type: ignore[arg-type]
    np.testing.assert_array_equal(loaded.array, expected(npy))
    if rule is None:
        assert loaded.notes == ()
    else:
        assert len(loaded.notes) == 1 and rule in loaded.notes[0]


def test_int_label_series_with_header_zero_is_ambiguous_and_read_as_data() -> None:
    loaded = read_array(str(DATA / "labels_noindex.csv"))
    np.testing.assert_array_equal(loaded.array, np.r_[0, expected("labels.npy")])
    (note,) = loaded.notes
    assert "could be pandas' column names" in note and "--header yes" in note


def test_header_no_reads_line_one_as_data() -> None:
    loaded = read_array(str(DATA / "logits_noindex.csv"), header="no")
    assert loaded.array.shape == (5, 5) and loaded.notes == ()
    np.testing.assert_array_equal(loaded.array[0], np.arange(5.0))


def test_header_no_refuses_names(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ReadError, match="--header no was given"):
        read_array(str(tmp_path / "a.csv"), header="no")


@pytest.mark.parametrize(
    ("text", "values", "note"),
    [
        ("a,b\n1,2\n", [[1, 2]], "it holds names ('a'...)"),
        ("0,1\n0,1\n1,0\n", [[0, 1], [0, 1], [1, 0]], "could be pandas' column names"),
        ("0,1\n0.5,0.5\n", [[0.5, 0.5]], "pandas' column names 0..1"),
        ("0,2\n1,3\n", [[0, 2], [1, 3]], None),  # not 0..C-1: data
        ("1\n0\n", [1, 0], None),
        ("0\n", [0], None),  # the only line: no data under it, so not a header
        ("0.0,1.0\n2.5,3\n", [[0, 1], [2.5, 3]], None),  # written with decimals: data
        (",a,b\n0,1,2\n1,3,4\n", [[1, 2], [3, 4]], "pandas' index"),
    ],
)
def test_header_rules(tmp_path: Path, text: str, values: object, note: str | None) -> None:
    (tmp_path / "t.csv").write_text(text)
    loaded = read_array(str(tmp_path / "t.csv"))
    np.testing.assert_array_equal(loaded.array, np.asarray(values, dtype=np.float64))
    if note is None:
        assert loaded.notes == ()
    else:
        assert len(loaded.notes) == 1 and note in loaded.notes[0]


def test_index_column_must_count_rows(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(",0\n0,1.5\n2,2.5\n")
    with pytest.raises(ReadError, match=r"line 3, column 1 holds 2.0, not the row number 1"):
        read_array(str(tmp_path / "t.csv"))


def test_integer_cells_beyond_2_53_are_refused(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("1,9007199254740992\n0.5,9007199254740993\n")
    with pytest.raises(ReadError, match=r"integer 9007199254740993 at line 2, column 2"):
        read_array(str(tmp_path / "t.csv"))
    (tmp_path / "ok.csv").write_text("1,9007199254740994\n")  # exactly representable
    assert read_array(str(tmp_path / "ok.csv")).array[0, 1] == 2**53 + 2
