"""Text helpers shared by the readers: UTF-8 decoding with precise refusals, message snippets."""

from __future__ import annotations

from lossctl.errors import ReadError

__all__ = ["BOM", "EMPTY", "MAX_NDIM", "count_items", "decode_text", "oneline", "show"]

BOM = b"\xef\xbb\xbf"
EMPTY = "no numbers found (empty file)"
MAX_NDIM = 64


def decode_text(data: bytes, source: str, what: str) -> str:
    offset = 0
    if data.startswith(BOM):
        data = data[3:]
        offset = 3
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ReadError(source, f"looks like UTF-16 text; save it as UTF-8 {what}")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ReadError(source, f"binary data (NUL byte at offset {nul + offset}), not {what} text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        raise ReadError(
            source,
            f"not valid UTF-8 text (byte 0x{bad:02x} at offset {exc.start + offset}); "
            f"is this a binary file? expected {what} text",
        ) from None


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
