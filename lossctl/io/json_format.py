"""JSON text into a float64 array.

Bare ``NaN``/``Infinity`` tokens, numbers beyond float64 (``1e999``, integers with
hundreds of digits), booleans, null, strings other than the nan/inf names of
:mod:`lossctl.io.numbers`, objects inside arrays, ragged or mixed-depth nesting,
duplicate object keys and nesting deeper than 64 levels are refused, each with the
JSON index path (such as ``[3][1]``) of the offending value.

JSON objects
    With a key: that member.  A lossctl document (``"op"`` plus ``"result"`` or
    ``"loss"``): its ``"result"`` (reshaped by ``"shape"``, so empty results keep
    their shape) or its ``"loss"`` (``"shape"`` is then the input's and is ignored);
    ``"op"``, ``"dim"`` and ``"class_dim"`` go to :attr:`Loaded.meta` as present.
    Otherwise the only member holding a list or number, else an error listing keys.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.errors import ReadError
from lossctl.io.members import listing
from lossctl.io.numbers import SPECIAL
from lossctl.io.text import EMPTY, MAX_NDIM, count_items, decode_text, show

__all__ = ["IntegerTracker", "load_json", "nested_to_array", "parse_json", "read_json"]

Array = npt.NDArray[Any]

_NUMERIC_TYPES = frozenset({int, float})
_LIST_TYPE = frozenset({list})
_INF = math.inf
_NINF = -math.inf


class _BareConstant:
    """Stands in for a bare NaN/Infinity/-Infinity token until validation reports it."""

    def __init__(self, token: str) -> None:
        self.token = token


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _DuplicateKey(name)
        result[name] = value
    return result


def _big_int(text: str) -> float:
    return float(text)  # inf for huge integers; validation reports it


class IntegerTracker:
    """``parse_int`` for :func:`json.loads`: exact ints, noting any beyond ±2**53."""

    def __init__(self) -> None:
        self.beyond_float = False

    def __call__(self, text: str) -> int:
        value = int(text)
        if not self.beyond_float and abs(value) > 2**53:
            self.beyond_float = True
        return value


def load_json(text: str | bytes, ints: IntegerTracker | None = None) -> Any:
    """:func:`json.loads` as lossctl reads numbers: bare NaN/Infinity kept for validation to
    report, duplicate keys refused (``_DuplicateKey``), integers exact (noted by ``ints``)."""
    return json.loads(
        text, parse_constant=_BareConstant, object_pairs_hook=_pairs_hook, parse_int=ints or int
    )


def parse_json(
    text: str, source: str, note: str, is_json_ext: bool, ints: IntegerTracker | None = None
) -> Any:
    try:
        try:
            return load_json(text, ints)
        except ValueError as exc:
            if isinstance(exc, json.JSONDecodeError) or "digits" not in str(exc):
                raise
            # an integer with more digits than Python converts; parse ints as floats
            return json.loads(
                text,
                parse_constant=_BareConstant,
                object_pairs_hook=_pairs_hook,
                parse_int=_big_int,
            )
    except json.JSONDecodeError as exc:
        hint = ""
        if is_json_ext and exc.msg == "Extra data" and text.lstrip()[:1] not in ("[", "{"):
            hint = "; it looks like CSV: rename it to .csv"
        raise ReadError(
            source, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}{note}"
        ) from None
    except _DuplicateKey as exc:
        raise ReadError(
            source, f"duplicate key {exc.key!r} in a JSON object; every key must appear once"
        ) from None
    except RecursionError:
        raise ReadError(
            source,
            f"JSON nested too deeply; arrays have at most {MAX_NDIM} dimensions",
        ) from None


def read_json(
    data: bytes, source: str, key: str | None, note: str, is_json_ext: bool
) -> tuple[Array, dict[str, object]]:
    text = decode_text(data, source, "JSON")
    if not text.strip():
        raise ReadError(source, EMPTY)
    ints = IntegerTracker()
    document = parse_json(text, source, note, is_json_ext, ints)
    node, path, meta, shape_field = _select_json(document, source, key)
    array = _json_to_array(node, source, path, ints.beyond_float)
    if shape_field is not None:
        array = _apply_shape(array, shape_field, source)
    return array, meta


def _is_lossctl_document(document: dict[str, Any]) -> bool:
    return "op" in document and ("result" in document or "loss" in document)


def _select_json(
    document: Any, source: str, key: str | None
) -> tuple[Any, tuple[int | str, ...], dict[str, object], Any]:
    """Pick the array inside the document: (node, index path, meta, "shape" field or None)."""
    if type(document) is not dict:
        if key is not None:
            kind = "a list" if type(document) is list else _describe(document)
            raise ReadError(
                source,
                f"a key ({key!r}) was given, but the JSON document is {kind}, not an object",
            )
        return document, (), {}, None
    meta: dict[str, object] = {}
    is_doc = _is_lossctl_document(document)
    if is_doc:
        for name in ("op", "dim", "class_dim"):
            if name in document:
                meta[name] = document[name]
    if key is not None:
        if key not in document:
            raise ReadError(
                source,
                f"no key {key!r} in the JSON object; available keys: {listing(list(document), 12)}",
            )
        shape = document.get("shape") if is_doc and key == "result" else None
        return document[key], (key,), meta, shape
    if is_doc:
        member = "result" if "result" in document else "loss"
        # a loss document's "shape" is the input's shape, not the loss's
        shape = document.get("shape") if member == "result" else None
        return document[member], (member,), meta, shape
    if not document:
        raise ReadError(source, "the JSON object is empty; no numbers found")
    candidates = [name for name, value in document.items() if type(value) in (list, int, float)]
    if len(candidates) == 1:
        return document[candidates[0]], (candidates[0],), meta, None
    raise ReadError(
        source,
        f"the JSON object has keys {listing(list(document), 12)}; choose the array with "
        "--key NAME or FILE:NAME",
    )


def _where(path: tuple[int | str, ...]) -> str:
    if not path:
        return "top level"
    return "".join(f"[{json.dumps(p)}]" if isinstance(p, str) else f"[{p}]" for p in path)


def _describe(value: Any) -> str:
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is str:
        return f"the string {json.dumps(value if len(value) <= 40 else value[:40] + '...')}"
    if kind is dict:
        return "an object"
    if kind is list:
        return f"a list of {count_items(len(value))}"
    if kind is int:
        return "an integer"
    if kind is float:
        return repr(value)
    if isinstance(value, _BareConstant):
        return value.token
    return kind.__name__


def _json_scalar(value: Any, path: tuple[int | str, ...], source: str) -> float:
    kind = type(value)
    if kind is float:
        if math.isinf(value):
            raise ReadError(source, f"number out of float64 range at {_where(path)}")
        return float(value)
    if kind is int:
        try:
            converted = float(value)
        except OverflowError:
            raise ReadError(source, f"number out of float64 range at {_where(path)}") from None
        _refuse_rounded_integers(value, path, source)
        return converted
    where = _where(path)
    if kind is str:
        special = SPECIAL.get(value.lower()) if len(value) <= 9 else None
        if special is not None:
            return special
        raise ReadError(
            source,
            f"{where}: expected a number, found {_describe(value)} "
            '(only numbers and the strings "nan", "inf", "-inf" are allowed)',
        )
    if isinstance(value, _BareConstant):
        name = '"nan"' if value.token == "NaN" else ('"-inf"' if value.token[0] == "-" else '"inf"')
        raise ReadError(
            source,
            f"{where}: bare {value.token} is not valid JSON (RFC 8259); "
            f"write it as the string {name}",
        )
    if kind is list:
        raise ReadError(
            source, f"{where}: expected a number, found {_describe(value)} (mixed nesting depth)"
        )
    raise ReadError(source, f"{where}: expected a number, found {_describe(value)}")


def _row_ok(row: list[Any]) -> bool:
    return set(map(type, row)) <= _NUMERIC_TYPES and _INF not in row and _NINF not in row


def _json_to_array(
    node: Any, source: str, path: tuple[int | str, ...], big_integers: bool = True
) -> Array:
    """The nested list as an array: int64 when every number is an integer (exact), else
    float64, refusing integers that float64 would round (``big_integers``: some were seen)."""
    shape: list[int] = []
    current = node
    while type(current) is list:
        shape.append(len(current))
        if len(shape) > MAX_NDIM:
            raise ReadError(
                source,
                f"{_where(path)}: nested more than {MAX_NDIM} levels deep; "
                f"arrays have at most {MAX_NDIM} dimensions",
            )
        if not current:
            break
        current = current[0]
    checked = _json_check(node, shape, 0, path, source)
    whole = _all_integers(checked, len(shape))
    try:
        array = np.array(checked, dtype=np.int64 if whole else np.float64)
    except OverflowError:
        _find_overflow(checked, path, source, whole)
        raise
    if big_integers and not whole and array.size:
        _refuse_rounded_integers(checked, path, source)
    if array.shape != tuple(shape):  # cannot happen after the checks; be safe
        raise ReadError(source, f"{_where(path)}: inconsistent nesting")
    return array


def nested_to_array(node: Any, source: str, big_integers: bool) -> Array:
    """A parsed nested list as an array, validated and exact (int64 or float64); raises
    :class:`ReadError` as for a whole document (positions relative to ``node``)."""
    return _json_to_array(node, source, (), big_integers)


def _find_overflow(node: Any, path: tuple[int | str, ...], source: str, whole: bool) -> None:
    if type(node) is list:
        for index, child in enumerate(node):
            _find_overflow(child, (*path, index), source, whole)
    elif whole and not -(2**63) <= node < 2**63:
        raise ReadError(
            source,
            f"integer {show(str(node))} at {_where(path)} is beyond the 64-bit integer range "
            "(class indices are int64, as in PyTorch); write logits as floats (e.g. 1e20) if "
            "rounding is acceptable",
        )
    else:
        _json_scalar(node, path, source)


def _leaves(node: Any, ndim: int) -> Iterator[Any]:
    """The numbers of a validated nested list, in order."""
    if ndim == 0:
        yield node
    elif ndim == 1:
        yield from node
    else:
        for child in node:
            yield from _leaves(child, ndim - 1)


def _all_integers(node: Any, ndim: int) -> bool:
    """Whether every number is a JSON integer (then the array is int64, exactly)."""
    if ndim == 0:
        return type(node) is int
    return any(True for _ in _leaves(node, ndim)) and all(
        type(value) is int for value in _leaves(node, ndim)
    )


def _refuse_rounded_integers(node: Any, path: tuple[int | str, ...], source: str) -> None:
    """Integers beside floats become float64: refuse one that would be rounded."""
    if type(node) is list:
        for index, child in enumerate(node):
            _refuse_rounded_integers(child, (*path, index), source)
    elif type(node) is int and abs(node) > 2**53 and int(float(node)) != node:
        raise ReadError(
            source,
            f"integer {node} at {_where(path)} cannot be represented exactly as a float "
            "(beyond ±2**53) beside the other numbers; write every number as an integer, or "
            "round it yourself",
        )


def _json_check(
    node: Any, shape: list[int], depth: int, path: tuple[int | str, ...], source: str
) -> Any:
    """Validate ``node`` against ``shape``; return it, or a converted copy when needed."""
    ndim = len(shape)
    if depth == ndim:
        if ndim == 0 and type(node) is int:
            return node  # a single integer stays exact (int64)
        return _json_scalar(node, path, source)
    expected = shape[depth]
    if type(node) is not list:
        raise ReadError(
            source,
            f"{_where(path)}: expected a list of {expected} items, found {_describe(node)} "
            "(mixed nesting depth)",
        )
    if len(node) != expected:
        first = _where((*path[: len(path) - depth], *([0] * depth))) if depth else ""
        like = f" like {first}" if first else ""
        raise ReadError(
            source,
            f"{_where(path)} has {count_items(len(node))}, expected {expected}{like} "
            "(ragged rows: lists at the same depth must have the same length)",
        )
    if depth == ndim - 1:
        if _row_ok(node):
            return node
        return [_json_scalar(value, (*path, i), source) for i, value in enumerate(node)]
    replaced: list[Any] | None = None
    if depth == ndim - 2:
        width = shape[depth + 1]
        if (
            set(map(type, node)) <= _LIST_TYPE
            and set(map(len, node)) <= {width}
            and _row_ok(list(itertools.chain.from_iterable(node)))
        ):
            return node
        for index, row in enumerate(node):
            if type(row) is list and len(row) == width and _row_ok(row):
                continue
            fixed = _json_check(row, shape, depth + 1, (*path, index), source)
            if replaced is None:
                replaced = list(node)
            replaced[index] = fixed
        return node if replaced is None else replaced
    for index, child in enumerate(node):
        fixed = _json_check(child, shape, depth + 1, (*path, index), source)
        if fixed is not child:
            if replaced is None:
                replaced = list(node)
            replaced[index] = fixed
    return node if replaced is None else replaced


def _apply_shape(array: Array, shape: Any, source: str) -> Array:
    if type(shape) is not list or not all(type(n) is int and n >= 0 for n in shape):
        raise ReadError(
            source,
            f"field 'shape' must be a list of non-negative integers, not {show(str(shape))}",
        )
    if len(shape) > MAX_NDIM:
        raise ReadError(source, f"field 'shape' has more than {MAX_NDIM} dimensions")
    if math.prod(shape) != array.size:
        raise ReadError(
            source, f"field 'shape' {shape} does not match the {array.size} values of the result"
        )
    return array.reshape(shape)
