"""lossctl.io.atomic on its own: JSON for any encoding, the unencodable handler, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from tests.helpers import leftovers


def test_json_for_encoding_keeps_the_document_valid() -> None:
    from lossctl.io.encoding import json_for_encoding

    text = json.dumps({"input": "données\udcff.json", "x": [1.5]}, ensure_ascii=False)
    assert "\\udcff" in json_for_encoding(text, "utf-8")  # a lone surrogate: escaped
    assert json_for_encoding('["é"]', "utf-8") == '["é"]'  # encodable: unchanged
    for encoding in ("ascii", "latin-1", "utf-8", None, "no-such-codec"):
        escaped = json_for_encoding(text, encoding)
        escaped.encode("ascii" if encoding in ("ascii", "no-such-codec") else "utf-8", "strict")
        assert json.loads(escaped) == json.loads(text)


def test_unencodable_handler() -> None:
    from lossctl.io.encoding import UNENCODABLE

    assert "Σ w … ε·x".encode("ascii", UNENCODABLE) == b"sum w ... eps*x"
    assert "a\udcffb".encode("utf-8", UNENCODABLE) == b"a\xffb"
    assert "日本".encode("latin-1", UNENCODABLE) == b"??"


def test_npy_output_of_a_result_without_numbers_is_refused(tmp_path: Path) -> None:
    from lossctl.io.atomic import OutputError, write_result

    for array in (None, "cross_entropy", np.array([object()])):
        with pytest.raises(OutputError, match="not an array of numbers"):
            write_result(str(tmp_path / "x.npy"), {}, array)
    assert leftovers(tmp_path) == [] and not (tmp_path / "x.npy").exists()


def test_write_atomic_refuses_directories_and_sockets(tmp_path: Path) -> None:
    import socket

    from lossctl.io.atomic import OutputError, write_atomic

    def write(handle: IO[bytes]) -> None:
        handle.write(b"x")

    with pytest.raises(OutputError, match="is a directory"):
        write_atomic(str(tmp_path), write)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock"))
        with pytest.raises(OutputError, match="not a regular file"):
            write_atomic(str(tmp_path / "sock"), write)
