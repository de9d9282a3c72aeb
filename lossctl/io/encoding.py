"""Text that any terminal can take: JSON made encodable, and a codec error handler.

The CLI's standard output and standard error use :data:`UNENCODABLE` (``LANG=C``, file
names that are not UTF-8); a JSON document is escaped instead (:func:`json_for_encoding`),
so it stays valid JSON whatever the encoding.
"""

from __future__ import annotations

import codecs
import json
import re

__all__ = ["UNENCODABLE", "json_for_encoding"]

_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def json_for_encoding(text: str, encoding: str | None) -> str:
    """``text`` (a JSON document) made encodable in ``encoding``.

    Characters outside JSON's syntax only occur inside strings, so any character the
    encoding cannot take is replaced by its JSON escape (``\\u00e9``, surrogate pairs
    beyond the BMP; lone surrogates from undecodable file names stay ``\\udcff``):
    the document stays valid and means the same.
    """
    try:
        text.encode(encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return _NON_ASCII.sub(lambda match: json.dumps(match.group())[1:-1], text)
    return text


UNENCODABLE = "lossctl-replace"
"""A codec error handler for stdout/stderr: surrogates from undecodable bytes (file
names) go back to those bytes, like ``surrogateescape``; other characters the stream
cannot encode get an ASCII stand-in (``…`` -> ``...``, ``Σ`` -> ``sum``) or ``?``."""

_ASCII_STAND_INS = {
    "…": "...",
    "Σ": "sum",
    "·": "*",
    "ε": "eps",
    "\u00d7": "x",  # multiplication sign
    "\u2212": "-",  # minus sign
    "≤": "<=",
    "≥": ">=",
    "≠": "!=",
    "→": "->",
    "←": "<-",
    "─": "-",
    "│": "|",
    "—": "--",
    "\u2013": "-",  # en dash
}


def _replace_unencodable(error: UnicodeError) -> tuple[str | bytes, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    chunk = error.object[error.start : error.end]
    if all("\udc80" <= char <= "\udcff" for char in chunk):
        return bytes(ord(char) - 0xDC00 for char in chunk), error.end
    return "".join(_ASCII_STAND_INS.get(char, "?") for char in chunk), error.end


codecs.register_error(UNENCODABLE, _replace_unencodable)
