"""Inline JSON arrays as arguments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lossctl.errors import ReadError
from lossctl.io.readers import INLINE_NAME, parse_number_list, read_array


def test_inline_matrix() -> None:
    loaded = read_array("[[1,2,3]]")
    assert loaded.source == INLINE_NAME == "<inline>" and loaded.format == "json"
    np.testing.assert_array_equal(loaded.array, [[1, 2, 3]])


def test_inline_errors_name_inline() -> None:
    with pytest.raises(ReadError, match=r"^<inline>: invalid JSON.*read as inline JSON"):
        read_array("[1, 2")


def test_existing_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "[1]").write_text("[5, 6]")
    np.testing.assert_array_equal(read_array("[1]").array, [5, 6])


def test_inline_weights() -> None:
    np.testing.assert_array_equal(parse_number_list("[1,2,0.5]", what="--weight"), [1, 2, 0.5])
