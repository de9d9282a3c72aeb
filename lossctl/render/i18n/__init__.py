"""The words of the output, one catalogue per language: :mod:`.en` (the default) and :mod:`.zh`.

A catalogue is a dictionary from a message id (``"loss.reduction"``) to its text, with
``{name}`` fields filled by :func:`t`. An id missing from a language falls back to
English, so a partial translation never loses a message. Text made by the lower layers
(the trace's step titles and notes, which may not import this package) is translated
by :func:`tr`: a fixed text is looked up among the English catalogue's texts, a
sentence with numbers is a :class:`~lossctl.trace.phrases.Phrase` that names its id.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
from collections.abc import Iterator
from typing import Any

from lossctl.render.i18n import en
from lossctl.trace.phrases import Joined, Phrase

LANGUAGES = ("en", "zh")  # each a module of this package with its MESSAGES
_CATALOGUES: dict[str, dict[str, str]] = {"en": en.MESSAGES}  # the others load when used
_BY_TEXT: dict[str, str] = {}
for _key, _text in en.MESSAGES.items():
    _BY_TEXT.setdefault(_text, _key)  # the first id of a text (e.g. "target") translates it

_LANGUAGE: contextvars.ContextVar[str] = contextvars.ContextVar("lossctl_language", default="en")


def current() -> str:
    """The language of this run (``"en"`` unless :func:`language` set another)."""
    return _LANGUAGE.get()


@contextlib.contextmanager
def language(name: str) -> Iterator[None]:
    """Render the block's output in ``name`` (one of :data:`LANGUAGES`)."""
    if name not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {name!r}")
    token = _LANGUAGE.set(name)
    try:
        yield
    finally:
        _LANGUAGE.reset(token)


def _catalogue() -> dict[str, str]:
    """The messages of this run's language (its module imported on first use)."""
    name = current()
    messages = _CATALOGUES.get(name)
    if messages is None:
        messages = _CATALOGUES[name] = importlib.import_module(f"{__name__}.{name}").MESSAGES
    return messages


def t(key: str, **fields: Any) -> str:
    """The text of message ``key`` in this run's language (else English), fields filled."""
    text = _catalogue().get(key)
    if text is None:
        text = en.MESSAGES[key]
    return text.format(**fields) if fields else text


def tr(english: str) -> str:
    """``english`` (a fixed text of the English catalogue, or a trace's
    :class:`~lossctl.trace.phrases.Phrase`) in this run's language.

    Text that is not in the English catalogue (numbers, names) is returned as it is.
    """
    if current() == "en":
        return english
    if isinstance(english, Joined):
        return t("list.semicolon").join(tr(part) for part in english.parts)
    if isinstance(english, Phrase):
        template = _catalogue().get(english.key)
        if template is None:
            return str(english)
        fields = english.fields.items()
        phrases = (Phrase, Joined)
        return template.format(**{k: tr(v) if isinstance(v, phrases) else v for k, v in fields})
    key = _BY_TEXT.get(english)
    return english if key is None else _catalogue().get(key, english)
