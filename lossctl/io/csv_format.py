"""CSV/TSV and whitespace-separated text into a float64 array.

Delimiter: tab, semicolon or comma, sniffed from the first non-blank, non-comment line
in that order of preference (``.tsv`` is always tab); a line with none of them is
split on runs of whitespace (``np.savetxt``'s default).  Blank lines and ``#`` comment
lines are skipped; CRLF/CR line ends and a UTF-8 BOM are accepted; quoted fields
(``"1.5"``) are accepted but may not span lines.  An empty last cell (a trailing
delimiter) is dropped on any row; any other empty cell is an error.  A non-numeric
row after the first is an error.  One column gives a 1-D array, more give 2-D; values
are float64, and an integer cell that float64 cannot hold exactly (beyond 2**53) is
refused with its line and column.  Positions in messages are CSV line and column.

The first line (``header="auto"``, the default)
    1. Some non-empty cell is not a number: a header, skipped (note: "holds names").
    2. Its first cell is empty and every other cell is not (``,0,1,2`` or ``,a,b``): the
       header pandas' ``to_csv()`` writes over its index column.  The header is skipped
       and column 1 dropped, after checking that line k of the data holds the row number
       k (0, 1, ...); otherwise refused (save with ``to_csv(index=False)``).
    3. Exactly ``0,1,...,C-1`` written as plain digits (``0`` for one column): pandas'
       default column names -- or data.  It is a header only when some data cell below
       is not written as a plain integer (a float frame: pandas writes ``1.0``, never
       ``1``); when every value is a plain integer (a label Series, an int frame) it is
       read as data, with a note that it could be a header.  A note names the rule
       either way, so a header is never silently data nor data silently a header.
    4. Otherwise it is data.
    ``header="yes"`` always skips the first line (rule 2 still drops an index column);
    ``header="no"`` always reads it as data (names are then an error).  Notes are
    returned for the caller to print; this module prints nothing.
"""

from __future__ import annotations

import array
import csv
import math
import re
import string
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lossctl.errors import ReadError
from lossctl.io.numbers import OutOfRange, cell_value, safe_value
from lossctl.io.text import EMPTY, oneline, show

__all__ = ["Header", "read_csv"]

Array = npt.NDArray[Any]
Header = Literal["auto", "yes", "no"]
Parsed = tuple[Array, tuple[str, ...], int | None]  # array, notes, ambiguous header line

_EXACT = 2**53
_INT_RE = re.compile(r"[+-]?[0-9]+")
_INT_CHARS = str.maketrans("", "", string.digits + '+-,;\t "')


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


class _Table:
    """Rows parsed so far, as one flat float64 buffer (8 bytes per value)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.values = array.array("d")
        self.rows = 0
        self.width = 0
        self.width_line = 0
        self.all_int = True  # every data cell written as a plain integer

    def add(self, values: list[float], lineno: int) -> None:
        if not self.rows:
            self.width, self.width_line = len(values), lineno
        elif len(values) != self.width:
            raise ReadError(
                self.source,
                f"line {lineno} has {len(values)} values, expected {self.width} as on line "
                f"{self.width_line} (ragged rows)",
            )
        self.values.extend(values)
        self.rows += 1


def _lines(blocks: Iterable[bytes]) -> Iterator[tuple[int, str]]:
    """(line number, line) for CRLF, CR and LF line ends, block by block of whole UTF-8
    characters (as ``io.StringIO(newline=None)`` splits them; a CRLF may straddle blocks)."""
    lineno, rest = 0, ""
    for block in blocks:
        text = rest + block.decode("utf-8")
        tail = "\r" if text.endswith("\r") else ""  # perhaps the first half of a CRLF
        if tail:
            text = text[:-1]
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        rest = lines.pop() + tail
        for line in lines:
            lineno += 1
            yield lineno, line
    last = rest.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if last[-1] == "":
        last.pop()
    for line in last:
        lineno += 1
        yield lineno, line


def _pandas_names(cells: list[str]) -> bool:
    """Exactly ``0,1,...,C-1`` written as plain digits: pandas' default column names."""
    return cells == [str(i) for i in range(len(cells))]


def _exact(cells: list[str], values: list[float], source: str, lineno: int) -> None:
    """Refuse integer cells that float64 would round (beyond 2**53)."""
    for column, (cell, value) in enumerate(zip(cells, values, strict=True), 1):
        text = cell.strip().strip('"').strip()
        if abs(value) >= _EXACT and _INT_RE.fullmatch(text) and int(text) != value:
            raise ReadError(
                source,
                f"integer {text} at line {lineno}, column {column} cannot be represented "
                "exactly as a float (beyond 2**53); write it as a float or use smaller numbers",
            )


def read_csv(
    blocks: Iterable[bytes], source: str, delimiter: str | None, header: Header = "auto"
) -> Parsed:
    """Parse CSV text given as checked blocks of whole UTF-8 characters
    (:class:`~lossctl.io.blocks.TextBlocks`), one line at a time: the text is never held
    whole, and the values go straight into one float64 buffer.  Returns the array, the
    notes saying which header rule fired, and the number of a first line that was read as
    data although it could be pandas' names."""
    return _Parser(source, delimiter, header).parse(_lines(blocks))


class _Parser:
    def __init__(self, source: str, delimiter: str | None, header: Header) -> None:
        self.source = source
        self.delimiter = delimiter
        self.sniffed = delimiter is not None
        self.header = header
        self.table = _Table(source)
        self.first: tuple[int, list[str], list[float]] | None = None  # pandas-names candidate
        self.header_line = 0
        self.candidate: int | None = None  # a first line read as data that may be names
        self.index_column = False
        self.notes: list[str] = []

    def parse(self, lines: Iterator[tuple[int, str]]) -> Parsed:
        seen = False
        for lineno, raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not self.sniffed:
                self.delimiter = _sniff_delimiter(line)
                self.sniffed = True
            if self.delimiter == "\t":
                line = raw.strip(" \f\v")  # keep leading/trailing tabs: they delimit empty cells
            if not seen:
                seen = True
                if self._first_line(line, lineno):
                    continue
            self._data_line(line, lineno)
        return self._finish()

    def _cells(self, line: str, lineno: int) -> list[str]:
        cells = _split_cells(line, self.delimiter, self.source, lineno)
        if len(cells) > 1 and not cells[-1]:
            cells.pop()  # trailing delimiter
        return cells

    def _first_line(self, line: str, lineno: int) -> bool:
        """Decide about line 1 (True: it is not data); see the module docstring."""
        if self.header == "no":
            return False
        cells = self._cells(line, lineno)
        names = any(c and safe_value(c) is None for c in cells)
        unnamed_index = len(cells) > 1 and not cells[0] and all(cells[1:])
        if unnamed_index:
            self.index_column = True
        if self.header == "yes" or names or unnamed_index:
            self.header_line = lineno
            if unnamed_index:
                self.notes.append(
                    f"line {lineno} taken as a header and column 1 dropped: its unnamed first "
                    "cell over a column 0..N-1 is pandas' index (to_csv() without index=False)"
                )
            elif names and self.header == "auto":
                self.notes.append(
                    f"line {lineno} taken as a header: it holds names ({show(cells[0])}...); "
                    "pass --header no if it is data"
                )
            return True
        if _pandas_names(cells):
            try:
                values = _careful_row(cells)
            except OutOfRange:
                return False
            if values is not None:
                self.first = (lineno, cells, values)
                return True
        return False

    def _data_line(self, line: str, lineno: int) -> None:
        table = self.table
        values = _fast_row(line, self.delimiter)
        cells: list[str] | None = None
        if values is None:
            cells = self._cells(line, lineno)
            try:
                values = _careful_row(cells)
            except OutOfRange as exc:
                column = cells.index(str(exc)) + 1
                raise ReadError(
                    self.source,
                    f"number out of float64 range at line {lineno}, column {column}: "
                    f"{show(str(exc))}",
                ) from None
            if values is None:
                raise ReadError(self.source, _bad_cell_message(cells, lineno, self.header))
        if table.all_int and line.translate(_INT_CHARS):
            table.all_int = False
        if values and (max(values) >= _EXACT or min(values) <= -_EXACT):
            _exact(cells or self._cells(line, lineno), values, self.source, lineno)
        if self.index_column:
            values = self._drop_index(values, lineno)
        table.add(values, lineno)

    def _drop_index(self, values: list[float], lineno: int) -> list[float]:
        expected = self.table.rows
        if values[0] != expected:
            raise ReadError(
                self.source,
                f"line {self.header_line} has an unnamed first cell, as pandas writes for its "
                f"index column, but line {lineno}, column 1 holds {values[0]!r}, not the row "
                f"number {expected}; save the file with to_csv(index=False)",
            )
        return values[1:]

    def _finish(self) -> Parsed:
        table = self.table
        if self.first is not None:
            lineno, cells, values = self.first
            shown = "0" if len(cells) == 1 else f"0..{len(cells) - 1}"
            if table.rows and not table.all_int:
                self.header_line = lineno
                self.notes.append(
                    f"line {lineno} taken as a header: it is pandas' column names {shown}; "
                    "pass --header no if it is data"
                )
            elif not table.rows:  # the only line: it cannot be a header over no data
                self._prepend(values, lineno)
            else:
                self._prepend(values, lineno)
                self.candidate = lineno
                self.notes.append(
                    f"line {lineno} ({shown}) could be pandas' column names, but every value "
                    "is an integer, so it was read as data; pass --header yes if it is a header"
                )
        if not table.rows:
            if self.header_line:
                raise ReadError(
                    self.source, f"{EMPTY}: only a header row (line {self.header_line})"
                )
            raise ReadError(self.source, EMPTY)
        flat: Array = np.frombuffer(table.values, dtype=np.float64)
        shape = (table.rows,) if table.width == 1 else (table.rows, table.width)
        return flat.reshape(shape), tuple(self.notes), self.candidate

    def _prepend(self, values: list[float], lineno: int) -> None:
        table = self.table
        if table.rows and len(values) != table.width:
            raise ReadError(
                self.source,
                f"line {table.width_line} has {table.width} values, expected {len(values)} as "
                f"on line {lineno} (ragged rows)",
            )
        if not table.rows:
            table.width, table.width_line = len(values), lineno
        table.values[0:0] = array.array("d", values)
        table.rows += 1


def _bad_cell_message(cells: list[str], lineno: int, header: Header) -> str:
    bad = [i for i, cell in enumerate(cells) if safe_value(cell) is None]
    column = bad[0] + 1
    cell = cells[bad[0]]
    if not cell:
        return f"line {lineno}, column {column}: empty cell; every cell must hold a number"
    hint = ""
    if len(bad) == len(cells):
        hint = " (this looks like a header row; a header is only allowed on the first line)"
        if header == "no":
            hint = " (this looks like a header row, but --header no was given)"
    return f"line {lineno}, column {column}: {show(cell)} is not a number{hint}"
