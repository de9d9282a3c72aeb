"""A large JSON array of numbers read block by block into one growing buffer.

The common shape of a large JSON file is a nested list of numbers (``json.dump`` of
``tensor.tolist()``).  :func:`stream_json_array` reads it from checked blocks
(:class:`~lossctl.io.blocks.TextBlocks`) without the whole text, its decoded copy, or
the whole tree of Python objects: it finds the commas between the elements of the
outermost list (``[`` ``]`` counted outside strings, with NumPy, a block at a time),
parses each run of complete elements with :func:`~lossctl.io.json_format.load_json`,
validates it with :func:`~lossctl.io.json_format.nested_to_array` (the very checks of a
whole document: ragged rows, strings, booleans, bare ``NaN``, integers exact), and
appends its values to one ``array.array`` buffer (int64 while every number is a JSON
integer, float64 otherwise, integers that float64 would round refused).  A document
``[[...]]`` whose outer list holds one huge element (``(1, T, C)`` logits) is streamed one
level down, and so on.

Anything else -- an object, a syntax error, a string with a backslash, rows that disagree,
an element bigger than a few blocks -- raises :class:`Fallback`: the caller then reads the
document the ordinary way, which gives the same array or the same one-line message as
ever (with its line and column), at the ordinary cost in memory.
"""

from __future__ import annotations

import array
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.io.json_format import load_json, nested_to_array
from lossctl.io.text import MAX_NDIM

__all__ = ["Fallback", "stream_json_array"]

Array = npt.NDArray[Any]

_OPEN, _CLOSE, _COMMA, _QUOTE = ord("["), ord("]"), ord(","), ord('"')
_BLANK = b" \t\r\n"
_EXACT = 2**53
_MAX_PENDING = 8  # blocks of one element (or of leading text) before giving up
_RUN_BYTES = 1 << 18  # text parsed by one json.loads call


class Fallback(Exception):
    """Not a plain nested list of numbers (or not valid): read the document whole."""


def stream_json_array(blocks: Iterable[bytes], source: str, block_bytes: int) -> Array:
    """The array of a JSON document that is a nested list of numbers, read block by block;
    raises :class:`Fallback` for anything else (see the module doc)."""
    stream = _Stream(source, block_bytes)
    for block in blocks:
        stream.feed(block)
    return stream.finish()


class _Values:
    """The values so far: int64 while every number was an integer, then float64."""

    def __init__(self) -> None:
        self.buffer: array.array[Any] = array.array("q")
        self.count = 0  # elements of the streamed list
        self.item_shape: tuple[int, ...] | None = None

    def add(self, part: Array) -> None:
        if self.item_shape is None:
            self.item_shape = tuple(part.shape[1:])
            if 0 in self.item_shape:
                raise Fallback  # no numbers to stream; the ordinary reader is exact
        elif tuple(part.shape[1:]) != self.item_shape:
            raise Fallback  # ragged: the ordinary reader names the row
        if part.dtype == np.float64 and self.buffer.typecode == "q":
            floats = _exact_floats(np.frombuffer(self.buffer, dtype=np.int64))
            self.buffer = array.array("d")
            self.buffer.frombytes(_bytes(floats))
        elif part.dtype == np.int64 and self.buffer.typecode == "d":
            part = _exact_floats(part)
        self.buffer.frombytes(_bytes(part))
        self.count += int(part.shape[0])

    def array(self, outer: int) -> Array:
        assert self.item_shape is not None
        dtype = np.int64 if self.buffer.typecode == "q" else np.float64
        flat: Array = np.frombuffer(self.buffer, dtype=dtype)
        return flat.reshape((1,) * outer + (self.count, *self.item_shape))


def _bytes(values: Array) -> memoryview:
    """The bytes of ``values`` in C order, without a copy when it already is."""
    return memoryview(np.ascontiguousarray(values)).cast("B")  # type: ignore[arg-type]


def _exact_floats(ints: Array) -> Array:
    """int64 values as float64, or :class:`Fallback` when one would be rounded."""
    floats = ints.astype(np.float64)
    big = np.flatnonzero(np.abs(ints) > _EXACT)
    if big.size and np.any(floats[big].astype(np.int64) != ints[big]):
        raise Fallback  # the ordinary reader names the integer and its position
    return floats


class _Stream:
    """The scan: ``pending`` is the text after the last cut (inside the streamed list, at
    depth ``level``, outside strings); its first ``scanned`` bytes are scanned already, and
    end at bracket depth ``depth`` (absolute) and string parity ``quoted``."""

    def __init__(self, source: str, block_bytes: int) -> None:
        self.source = source
        self.limit = _MAX_PENDING * block_bytes
        self.pending = b""
        self.scanned = 0
        self.depth = 0
        self.quoted = False
        self.level = 0  # depth of the list being streamed (0: not started)
        self.closing = 0  # after its end: the ']' still expected (then only blanks)
        self.done = False
        self.values = _Values()

    def feed(self, block: bytes) -> None:
        if self.done:
            self._tail(block)
            return
        if b"\\" in block:
            raise Fallback  # escapes: not a list of numbers (nor of "nan" strings)
        self.pending = self.pending + block if self.pending else block
        if not self.level:
            text = self.pending.lstrip(_BLANK)
            if not text:
                self.pending = b""
                return
            if text[:1] != b"[":
                raise Fallback  # an object, a number, or not JSON
            self._restart(text[1:], 1)
        self._scan()

    def _restart(self, text: bytes, level: int) -> None:
        self.pending, self.level, self.depth = text, level, level
        self.scanned, self.quoted = 0, False

    def _scan(self) -> None:
        new = np.frombuffer(self.pending, dtype=np.uint8, offset=self.scanned)
        steps = (new == _OPEN).view(np.int8) - (new == _CLOSE).view(np.int8)
        cut = new == _COMMA
        quotes = new == _QUOTE
        if quotes.any():
            inside = (np.cumsum(quotes, dtype=np.int32) % 2).astype(bool) ^ self.quoted
            self.quoted = bool(inside[-1])
            inside |= quotes
            steps[inside] = 0
            cut[inside] = False
            del inside
        del quotes
        depth = np.cumsum(steps, dtype=np.int32)  # after each byte, relative to self.depth
        del steps
        level = self.level - self.depth
        below = np.flatnonzero(depth < level)[:1]
        end = int(below[0]) if below.size else len(new)
        cut[:end] &= depth[:end] == level
        cut[end:] = False
        if below.size:
            self._parse_runs(self.scanned + end, cut)
            self.done, self.closing = True, self.level
            rest, self.pending = self.pending[self.scanned + end :], b""
            self._tail(rest)
            return
        self.depth += int(depth[-1]) if depth.size else 0
        del depth
        backwards = cut[::-1]
        if backwards.any():  # the last comma between elements: parse everything before it
            last = self.scanned + len(cut) - 1 - int(np.argmax(backwards))
            self._parse_runs(last, cut)
            self.pending = self.pending[last + 1 :]
            self.scanned = len(self.pending)
            return
        self.scanned = len(self.pending)
        if len(self.pending) > self.limit:
            self._descend()

    def _descend(self) -> None:
        """The streamed list's first element is bigger than a few blocks: if it is a list
        and the only element so far, stream it instead (a sibling is refused later)."""
        text = self.pending.lstrip(_BLANK)
        if self.values.count or text[:1] != b"[" or self.level >= MAX_NDIM:
            raise Fallback
        self._restart(text[1:], self.level + 1)
        self._scan()

    def _parse_runs(self, end: int, cut: npt.NDArray[np.bool_]) -> None:
        """Parse ``pending[:end]`` in runs of about :data:`_RUN_BYTES`, split at the commas
        marked in ``cut`` (which covers ``pending[scanned:]``): few Python objects at a time."""
        base, begin = self.scanned, 0
        while True:
            stop = end
            if end - begin > _RUN_BYTES:
                lo, hi = max(begin - base, 0), min(begin + _RUN_BYTES - base, end - base)
                window = cut[lo:hi]
                if window.any():  # the last comma of the run
                    stop = base + hi - 1 - int(np.argmax(window[::-1]))
                else:  # an element longer than a run: up to the next comma
                    after = cut[hi : end - base]
                    stop = base + hi + int(np.argmax(after)) if after.any() else end
            self._parse(self.pending[begin:stop])
            if stop >= end:
                return
            begin = stop + 1

    def _parse(self, piece: bytes) -> None:
        if not piece.strip(_BLANK):
            raise Fallback  # an empty list, or a comma without an element
        try:
            items = load_json(b"[" + piece + b"]")  # integers exact, by int() itself
            part = nested_to_array(items, self.source, big_integers=False)
            if part.dtype == np.float64 and np.any(np.abs(part) >= _EXACT):
                # an integer beyond 2**53 may have been rounded beside floats: check them all
                part = nested_to_array(items, self.source, big_integers=True)
        except Exception as exc:  # any refusal: the ordinary reader words it
            raise Fallback from exc
        self.values.add(part)

    def _tail(self, text: bytes) -> None:
        """After the streamed list: its enclosing ']' and blanks, nothing else."""
        for byte in text.translate(None, _BLANK):
            if byte != _CLOSE or not self.closing:
                raise Fallback  # extra data: the ordinary reader says where
            self.closing -= 1

    def finish(self) -> Array:
        if not self.done or self.closing or self.values.item_shape is None:
            raise Fallback  # unterminated, or never started
        return self.values.array(self.level - 1)
