"""One named member of a container (an ``.npz`` archive's arrays, a safetensors file's
tensors): the ``--key`` / ``FILE:KEY`` rule and its messages, shared by the readers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from lossctl.errors import ReadError

__all__ = ["listing", "select_member"]

T = TypeVar("T")


def listing(names: list[str], limit: int, width: int = 60) -> str:
    """``'a', 'b', ... (30 in all)``: the first ``limit`` names, each cut to ``width``."""
    shown = ", ".join(_show(name, width) for name in names[:limit])
    if len(names) > limit:
        shown += f", ... ({len(names)} in all)"
    return shown


def _show(name: str, width: int) -> str:
    text = repr(name)
    return text if len(text) <= width else text[: width - 3] + "..."


def select_member(
    members: Mapping[str, T],
    key: str | None,
    source: str,
    *,
    container: str,
    noun: tuple[str, str],
    limit: int,
) -> tuple[str, T]:
    """The member named ``key``, or the only one; ``container``: "the .npz archive",
    ``noun``: ("array", "arrays"). Refused: no member, several and no key, an unknown key."""
    one, many = noun
    if not members:
        raise ReadError(source, f"{container} holds no {many}")
    names = list(members)
    if key is None:
        if len(members) > 1:
            raise ReadError(
                source,
                f"{container} holds {len(members)} {many} ({listing(names, limit)}); "
                "choose one with --key NAME or FILE:NAME",
            )
        key = names[0]
    if key not in members:
        raise ReadError(
            source,
            f"no {one} named {_show(key, 60)} in {container}; it holds: {listing(names, limit)}",
        )
    return key, members[key]
