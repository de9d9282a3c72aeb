"""Immutable value classes without a dataclass's generated methods.

The records that every start defines (:class:`~lossctl.core.spec.LossSpec`,
:class:`~lossctl.core.exactsum.ExactSum`) cannot be NamedTuples. A frozen dataclass would
compile six methods at import, 0.8-1.3 ms each class. :class:`Frozen` gives them what
frozen means instead, from one tuple of field names.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["Frozen"]


class Frozen:
    """A value whose fields, named by ``_fields`` in the order ``__init__`` takes them (and
    its ``__slots__``), are set once by :meth:`_set`: assigning one later raises, pickling
    rebuilds it through ``__init__``, and ``repr`` names every field."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]]

    def _set(self, *values: Any) -> None:
        for name, value in zip(self._fields, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __reduce__(self) -> tuple[type[Frozen], tuple[Any, ...]]:
        return type(self), tuple(getattr(self, name) for name in self._fields)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"
