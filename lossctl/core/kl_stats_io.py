"""Plain-dict form of :class:`~lossctl.core.kl_stats.KLStats`, validated strictly.

Only ints, strings, lists and nested dicts: exact sums as ``"M*2**E"``, extremes as
``repr`` of the float (``"inf"``/``"-inf"`` allowed), histograms as ``[[bin, count], ...]``
sorted by bin. :func:`stats_from_dict` raises :class:`InputError` for anything else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from lossctl.core.exactsum import ExactSum, parse_exact
from lossctl.core.kl_block import TOP_K
from lossctl.core.kl_stats import (
    _KEY_MAX,
    _KEY_MIN,
    DELTA_BINS,
    FORMAT,
    Bins,
    KLStats,
    LabelSums,
    Moments,
)
from lossctl.errors import InputError

_COUNTS = ("finite", "nan", "posinf", "neginf", "zero")


def _moments_to_dict(m: Moments) -> dict[str, Any]:
    out: dict[str, Any] = {name: getattr(m, name) for name in _COUNTS}
    out.update(
        sum=m.total.text(),
        squares=m.squares.text(),
        min=repr(m.minimum),
        max=repr(m.maximum),
        positive=[[k, c] for k, c in m.positive],
        negative=[[k, c] for k, c in m.negative],
    )
    return out


def stats_to_dict(stats: KLStats) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "classes": stats.classes,
        "positions": stats.positions,
        "same_top1": stats.same_top1,
        "top_overlap": stats.top_overlap,
        "labelled": int(stats.labelled),
        "kl": _moments_to_dict(stats.kl),
        "nll": {
            f.name: (v if isinstance(v := getattr(stats.nll, f.name), int) else v.text())
            for f in fields(stats.nll)
        },
        "delta_p": _moments_to_dict(stats.delta_p),
    }


def _fail(where: str, why: str) -> InputError:
    return InputError(f"KL statistics: {where}: {why}")


def _mapping(value: Any, where: str, keys: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, "must be an object")
    if set(value) != keys:
        missing, extra = sorted(keys - set(value)), sorted(set(value) - keys)
        raise _fail(where, f"missing fields {missing}, unknown fields {extra}")
    return value


def _count(value: Any, where: str, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(where, "must be a non-negative integer")
    if high is not None and value > high:
        raise _fail(where, f"must be at most {high}")
    return value


def _exact_text(value: Any, where: str) -> ExactSum:
    if not isinstance(value, str) or len(value) > 100_000:
        raise _fail(where, "must be an exact sum string M*2**E")
    try:
        return parse_exact(value)
    except ValueError as error:
        raise _fail(where, str(error)) from None


def _float_text(value: Any, where: str) -> float:
    if not isinstance(value, str) or len(value) > 40:
        raise _fail(where, "must be a number written as a string")
    try:
        number = float(value)
    except ValueError:
        raise _fail(where, f"{value!r} is not a number") from None
    if math.isnan(number):
        raise _fail(where, "must not be nan")
    return number


def _bins(value: Any, where: str, low: int, high: int) -> Bins:
    if not isinstance(value, list):
        raise _fail(where, "must be a list of [bin, count] pairs")
    out: list[tuple[int, int]] = []
    for i, pair in enumerate(value):
        if not isinstance(pair, list) or len(pair) != 2:
            raise _fail(f"{where}[{i}]", "must be a [bin, count] pair")
        key, count = pair
        if not isinstance(key, int) or isinstance(key, bool) or not low <= key <= high:
            raise _fail(f"{where}[{i}]", f"bin must be an integer in [{low}, {high}]")
        if _count(count, f"{where}[{i}] count") == 0:
            raise _fail(f"{where}[{i}]", "count must be positive")
        if out and key <= out[-1][0]:
            raise _fail(f"{where}[{i}]", "bins must be strictly increasing")
        out.append((key, count))
    return tuple(out)


def _moments(value: Any, where: str, linear: bool) -> Moments:
    keys = {*_COUNTS, "sum", "squares", "min", "max", "positive", "negative"}
    doc = _mapping(value, where, keys)
    counts = {name: _count(doc[name], f"{where}.{name}") for name in _COUNTS}
    if linear:
        positive = _bins(doc["positive"], f"{where}.positive", 0, DELTA_BINS - 1)
        negative = _bins(doc["negative"], f"{where}.negative", 0, -1)
        if counts["zero"] or counts["posinf"] or counts["neginf"]:
            raise _fail(where, "a linear histogram has no zero or infinite counts")
    else:
        positive = _bins(doc["positive"], f"{where}.positive", _KEY_MIN, _KEY_MAX)
        negative = _bins(doc["negative"], f"{where}.negative", _KEY_MIN, _KEY_MAX)
    binned = sum(c for _, c in positive) + sum(c for _, c in negative) + counts["zero"]
    if binned != counts["finite"]:
        raise _fail(where, f"histogram counts {binned} but finite is {counts['finite']}")
    minimum = _float_text(doc["min"], f"{where}.min")
    maximum = _float_text(doc["max"], f"{where}.max")
    ordered = counts["finite"] + counts["posinf"] + counts["neginf"]
    if ordered == 0 and (minimum, maximum) != (math.inf, -math.inf):
        raise _fail(where, "min/max must be inf/-inf when there are no values")
    if ordered and minimum > maximum:
        raise _fail(where, "min is above max")
    squares = _exact_text(doc["squares"], f"{where}.squares")
    if squares.mantissa < 0:
        raise _fail(f"{where}.squares", "a sum of squares cannot be negative")
    return Moments(
        **counts,
        total=_exact_text(doc["sum"], f"{where}.sum"),
        squares=squares,
        minimum=minimum,
        maximum=maximum,
        positive=positive,
        negative=negative,
        linear=linear,
    )


def stats_from_dict(document: Any) -> KLStats:
    keys = {"format", "classes", "positions", "same_top1", "top_overlap", "labelled"}
    doc = _mapping(document, "document", keys | {"kl", "nll", "delta_p"})
    if doc["format"] != FORMAT:
        raise _fail("format", f"expected {FORMAT!r}, got {doc['format']!r}")
    classes = _count(doc["classes"], "classes")
    if classes == 0:
        raise _fail("classes", "must be positive")
    positions = _count(doc["positions"], "positions")
    labelled = _count(doc["labelled"], "labelled", 1) == 1
    kl = _moments(doc["kl"], "kl", linear=False)
    if kl.count != positions:
        raise _fail("kl", f"counts {kl.count} values for {positions} positions")
    names = [f.name for f in fields(LabelSums)]
    nll_doc = _mapping(doc["nll"], "nll", set(names))
    parts: dict[str, Any] = {}
    for name in names:
        if name in ("count", "nonfinite"):
            parts[name] = _count(nll_doc[name], f"nll.{name}")
        else:
            parts[name] = _exact_text(nll_doc[name], f"nll.{name}")
    nll = LabelSums(**parts)
    delta_p = _moments(doc["delta_p"], "delta_p", linear=True)
    expected = positions if labelled else 0
    if nll.count + nll.nonfinite != expected or delta_p.count != expected:
        raise _fail("nll", f"labelled statistics must cover {expected} positions")
    if not labelled and nll != LabelSums():
        raise _fail("nll", "must be all zero without labels")
    return KLStats(
        classes=classes,
        positions=positions,
        kl=kl,
        same_top1=_count(doc["same_top1"], "same_top1", positions),
        top_overlap=_count(doc["top_overlap"], "top_overlap", min(TOP_K, classes) * positions),
        labelled=labelled,
        nll=nll,
        delta_p=delta_p,
    )
