"""CSV/TSV and whitespace-separated text into a float64 array.

Delimiter: tab, semicolon or comma, sniffed from the first non-blank, non-comment line
in that order of preference (``.tsv`` is always tab); a line with none of them is
split on runs of whitespace (``np.savetxt``'s default).  Blank lines and ``#`` comment
lines are skipped; CRLF/CR line ends and a UTF-8 BOM are accepted; quoted fields
(``"1.5"``) are accepted but may not span lines.  An empty last cell (a trailing
delimiter) is dropped on any row; any other empty cell is an error.  The first row is
a header (skipped) when any of its non-empty cells is not a number; a non-numeric row
anywhere else is an error.  One column gives a 1-D array, more give 2-D.  Positions
in messages are CSV line and column.
"""

from __future__ import annotations

import csv
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.errors import ReadError
from lossctl.io.numbers import OutOfRange, cell_value, safe_value
from lossctl.io.text import EMPTY, decode_text, oneline, show

__all__ = ["read_csv"]

Array = npt.NDArray[Any]


def _sniff_delimiter(line: str) -> str | None:
    for delimiter in ("\t", ";", ","):
        if delimiter in line:
            return delimiter
    return None


def _split_cells(line: str, delimiter: str | None, source: str, lineno: int) -> list[str]:
    if delimiter is None:
        cells = line.split()
        return [c[1:-1].strip() if len(c) >= 2 and c[0] == c[-1] == '"' else c for c in cells]
    if '"' not in line:
        return [cell.strip() for cell in line.split(delimiter)]
    try:
        reader = csv.reader([line], delimiter=delimiter, skipinitialspace=True, strict=True)
        cells = next(reader)
    except (csv.Error, StopIteration) as exc:
        raise ReadError(
            source,
            f"line {lineno}: malformed quoting ({oneline(exc)}); quoted fields may not span lines",
        ) from None
    return [cell.strip() for cell in cells]


def _fast_row(line: str, delimiter: str | None) -> list[float] | None:
    """Plain finite numbers only (the common case), else None to take the careful path."""
    if '"' in line or "_" in line or not line.isascii():
        return None
    if delimiter is not None and line.endswith(delimiter):
        line = line[: -len(delimiter)]  # trailing delimiter
    try:
        values = list(map(float, line.split(delimiter)))
    except ValueError:
        return None
    return values if all(map(math.isfinite, values)) else None


def _careful_row(cells: list[str]) -> list[float] | None:
    """Per-cell parsing (nan/inf names); None if any cell is not a number."""
    values: list[float] = []
    for cell in cells:
        value = cell_value(cell)
        if value is None:
            return None
        values.append(value)
    return values


def read_csv(data: bytes, source: str, delimiter: str | None) -> Array:
    text = decode_text(data, source, "CSV")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    rows: list[list[float]] = []
    sniffed = delimiter is not None
    seen_content = False
    header_line = 0
    width = 0
    width_line = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not sniffed:
            delimiter = _sniff_delimiter(line)
            sniffed = True
        if delimiter == "\t":
            line = raw.strip(" \f\v")  # keep leading/trailing tabs: they delimit empty cells
        values = _fast_row(line, delimiter)
        if values is None:
            cells = _split_cells(line, delimiter, source, lineno)
            if len(cells) > 1 and not cells[-1]:
                cells.pop()  # trailing delimiter
            try:
                values = _careful_row(cells)
            except OutOfRange as exc:
                column = cells.index(str(exc)) + 1
                raise ReadError(
                    source,
                    f"number out of float64 range at line {lineno}, column {column}: "
                    f"{show(str(exc))}",
                ) from None
            if values is None:
                if not seen_content and any(c and safe_value(c) is None for c in cells):
                    seen_content = True
                    header_line = lineno
                    continue
                raise ReadError(source, _bad_cell_message(cells, lineno))
        seen_content = True
        if not rows:
            width, width_line = len(values), lineno
        elif len(values) != width:
            raise ReadError(
                source,
                f"line {lineno} has {len(values)} values, expected {width} as on line "
                f"{width_line} (ragged rows)",
            )
        rows.append(values)
    if not rows:
        if header_line:
            raise ReadError(source, f"{EMPTY}: only a header row (line {header_line})")
        raise ReadError(source, EMPTY)
    array = np.array(rows, dtype=np.float64)
    return array.reshape(-1) if width == 1 else array


def _bad_cell_message(cells: list[str], lineno: int) -> str:
    bad = [i for i, cell in enumerate(cells) if safe_value(cell) is None]
    column = bad[0] + 1
    cell = cells[bad[0]]
    if not cell:
        return f"line {lineno}, column {column}: empty cell; every cell must hold a number"
    hint = ""
    if len(bad) == len(cells):
        hint = " (this looks like a header row; a header is only allowed on the first line)"
    return f"line {lineno}, column {column}: {show(cell)} is not a number{hint}"
