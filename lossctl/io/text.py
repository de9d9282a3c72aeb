"""Text helpers shared by the readers: UTF-8 decoding with precise refusals, message snippets."""

from __future__ import annotations

from lossctl.errors import ReadError

__all__ = [
    "BOM",
    "EMPTY",
    "MAX_NDIM",
    "UTF16_BOMS",
    "check_block",
    "count_items",
    "decode_text",
    "oneline",
    "show",
]

BOM = b"\xef\xbb\xbf"
EMPTY = "no numbers found (empty file)"
MAX_NDIM = 64
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def decode_text(data: bytes, source: str, what: str) -> str:
    offset = 0
    if data.startswith(BOM):
        data = data[3:]
        offset = 3
    if data[:2] in UTF16_BOMS:
        raise ReadError(source, f"looks like UTF-16 text; save it as UTF-8 {what}")
    _refuse_nul(data, offset, source, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(data, exc, offset, source, what) from None


def check_block(data: bytes, offset: int, source: str, what: str, *, final: bool) -> int:
    """Refuse a NUL byte, then invalid UTF-8, in ``data`` (at file offset ``offset``),
    with :func:`decode_text`'s messages.

    Returns how many bytes of ``data`` are whole characters: all of them, unless
    ``final`` is false and ``data`` ends inside a character (the rest is for the next
    block).
    """
    _refuse_nul(data, offset, source, what)
    if data.isascii():
        return len(data)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not final and exc.end == len(data) and exc.reason == "unexpected end of data":
            return int(exc.start)
        raise _not_utf8(data, exc, offset, source, what) from None
    return len(data)


def _refuse_nul(data: bytes, offset: int, source: str, what: str) -> None:
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ReadError(source, f"binary data (NUL byte at offset {nul + offset}), not {what} text")


def _not_utf8(
    data: bytes, exc: UnicodeDecodeError, offset: int, source: str, what: str
) -> ReadError:
    return ReadError(
        source,
        f"not valid UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start + offset}); "
        f"is this a binary file? expected {what} text",
    )


def count_items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def show(text: str, limit: int = 40) -> str:
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def oneline(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:200] + "..."
