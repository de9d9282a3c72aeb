"""Text read block by block, checked as it comes: the readers never hold the whole file.

:class:`TextBlocks` reads a binary stream (a regular file, or the bytes of standard input
wrapped in :class:`io.BytesIO`) in blocks of :data:`BLOCK_BYTES`.  The first block is
read whole before anything is parsed, so a binary file is refused from its first block
(``binary data (NUL byte at offset N)``, ``looks like UTF-16``, ``not valid UTF-8``, with
the file offset; :func:`~lossctl.io.text.check_block`) without reading the rest; every
later block is checked the same way before it is handed out.  A file no bigger than a
block is therefore checked whole before parsing, exactly as
:func:`~lossctl.io.text.decode_text` does.  Blocks end on whole UTF-8 characters (a
character cut by the block boundary is carried to the next block); a UTF-8 BOM at the
start is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from lossctl.errors import ReadError
from lossctl.io.text import BOM, UTF16_BOMS, check_block

__all__ = ["BLOCK_BYTES", "TextBlocks"]

BLOCK_BYTES = 1 << 20
_BLANK = b" \t\r\n"
_FIRST_MIN = 16


class TextBlocks:
    """The checked UTF-8 blocks of ``handle``, whose first bytes ``head`` were already read."""

    def __init__(
        self, handle: IO[bytes], head: bytes, source: str, block_bytes: int | None = None
    ) -> None:
        self.handle = handle
        self.source = source
        self.block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
        want = max(_FIRST_MIN, self.block_bytes)  # a BOM and a UTF-16 mark fit in it
        first = head + handle.read(max(0, want - len(head)))
        self._read: list[bytes] = [first]  # raw blocks read ahead (for the sniff)
        self.single = len(first) < want  # the whole input is in the first block

    def _more(self) -> bytes:
        return self.handle.read(self.block_bytes)

    def first_char(self) -> bytes:
        """The first non-blank byte after a BOM (``b""`` if none), reading ahead as needed."""
        index = 0
        while True:
            if index == len(self._read):
                if self.single:
                    return b""
                block = self._more()
                if not block:
                    return b""
                self._read.append(block)
            block = self._read[index]
            if index == 0 and block.startswith(BOM):
                block = block[len(BOM) :]
            found = block.lstrip(_BLANK)[:1]
            if found:
                return found
            index += 1

    def whole(self) -> bytes:
        """Every byte of the input (from the start): for the readers that need it all."""
        self.handle.seek(0)
        return self.handle.read()

    def check_first(self, what: str) -> None:
        """Refuse binary data from the first block alone, before the rest is read."""
        data, offset = self._unmark(self._read[0], what)
        check_block(data, offset, self.source, what, final=self.single)

    def _unmark(self, first: bytes, what: str) -> tuple[bytes, int]:
        """The first block without its UTF-8 BOM, and the offset of what is left."""
        offset = 0
        if first.startswith(BOM):
            first, offset = first[len(BOM) :], len(BOM)
        if first[:2] in UTF16_BOMS:
            raise ReadError(self.source, f"looks like UTF-16 text; save it as UTF-8 {what}")
        return first, offset

    def blocks(self, what: str) -> Iterator[bytes]:
        """The checked blocks (``what``: "JSON" or "CSV", for the refusals)."""
        offset, carry = 0, b""
        for index, raw in enumerate(self._raw()):
            data = carry + raw if carry else raw
            if index == 0:
                data, offset = self._unmark(data, what)
            complete = check_block(data, offset, self.source, what, final=False)
            if complete:
                yield data[:complete] if complete < len(data) else data
            carry = data[complete:]
            offset += complete
        if carry:
            check_block(carry, offset, self.source, what, final=True)  # raises

    def _raw(self) -> Iterator[bytes]:
        read, self._read = self._read, []
        yield from read
        if self.single and len(read) == 1:
            return
        while True:
            block = self._more()
            if not block:
                return
            yield block
