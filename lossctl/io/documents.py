"""The ``--json`` document format: written here, read back here, strict JSON (RFC 8259).

Non-finite floats become the strings "nan", "inf", "-inf". The CLI writes the text
straight to standard output, never through rich (markup and wrapping would corrupt
it). Every document that lossctl writes is built by a function of this module, and
the two things lossctl reads back from one — an array with its ``op``/``dim`` meta
(:func:`is_lossctl_document`) and the partial sums for ``lossctl merge``
(:func:`partial_from_document`) — are read here too. The schema is in the README.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lossctl.core.exactsum import ExactSum, parse_exact
from lossctl.core.losses import LossResult
from lossctl.core.merge import MERGEABLE_OPS, SAME_IN_EVERY_SHARD, Merged, Partial
from lossctl.errors import InputError

Sources = Mapping[str, str | None]


def _finite_or_name(value: float) -> float | str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def jsonable(value: Any) -> Any:
    """Numbers, arrays and containers as plain JSON values; non-finite floats as strings."""
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return _empty_lists(tuple(int(n) for n in value.shape))
        if value.size > MAX_JSON_VALUES:  # a broadcast (10**12,) of zeros from a tiny input
            raise InputError(
                f"the result has shape {tuple(int(n) for n in value.shape)}: {value.size} "
                "values are too many for a JSON document; use --output FILE.npy for the array"
            )
        if value.dtype.kind in "iub":
            return value.tolist()
        if np.all(np.isfinite(value)):
            return value.astype(np.float64).tolist()
        return jsonable(value.astype(np.float64).tolist())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _finite_or_name(float(value))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


MAX_EMPTY_LISTS = 1 << 20
MAX_JSON_VALUES = 1 << 28


def _empty_lists(shape: tuple[int, ...]) -> list[Any]:
    """The nested lists of an empty array without enumerating it (the inner lists are shared).

    Shape (10**12, 0) would be 10**12 ``[]`` in JSON: refused beyond :data:`MAX_EMPTY_LISTS`.
    """
    outer = shape[: shape.index(0)]
    if math.prod(outer) > MAX_EMPTY_LISTS:
        raise InputError(
            f"the result has shape {tuple(shape)} and no values, but as JSON that is "
            f"{math.prod(outer)} nested empty lists; use --output FILE.npy for the array"
        )
    nested: list[Any] = []
    for length in reversed(outer):
        nested = [nested] * length
    return nested


def dumps(document: dict[str, Any]) -> str:
    """One JSON document and a newline; raises if anything non-finite slipped through."""
    return json.dumps(jsonable(document), allow_nan=False, ensure_ascii=False) + "\n"


def is_lossctl_document(document: Mapping[str, Any]) -> bool:
    """Whether a JSON object is a lossctl result (``op`` and ``result`` or ``loss``)."""
    return "op" in document and ("result" in document or "loss" in document)


def exact_document(total: ExactSum | None, denominator: ExactSum) -> dict[str, str | None]:
    """The exact partial sums as ``"M*2**E"`` strings (``sum`` is null when not finite)."""
    return {"sum": None if total is None else total.text(), "denominator": denominator.text()}


def loss_document(result: LossResult, sources: Sources, warnings: Sequence[str]) -> dict[str, Any]:
    """The document of ``ce`` / ``nll`` of one input."""
    spec = result.spec
    return {
        "op": result.op,
        "loss": result.loss,
        "reduction": result.reduction,
        "count": result.count,
        "ignored": result.ignored,
        "sum": result.total,
        "denominator": result.denominator,
        "exact": exact_document(result.exact_total, result.exact_denominator),
        "class_dim": result.class_dim,
        "classes": result.input_shape[result.class_dim],
        "shape": list(result.input_shape),
        "target_kind": result.target_kind,
        "ignore_index": spec.ignore_index,
        "label_smoothing": spec.label_smoothing,
        "weight": spec.weight,
        "inputs": dict(sources),
        "warnings": list(warnings),
    }


def merged_document(
    merged: Merged, inputs: Sequence[Any], warnings: Sequence[str]
) -> dict[str, Any]:
    """The document of a merged result: the schema of ``ce``/``nll``, plus ``shards``."""
    settings = merged.settings
    return {
        "op": settings["op"],
        "loss": merged.loss,
        "reduction": settings["reduction"],
        "count": merged.count,
        "ignored": merged.ignored,
        "sum": merged.total,
        "denominator": merged.exact_denominator.to_float(),
        "exact": exact_document(merged.exact_total, merged.exact_denominator),
        "shards": merged.shards,
        **{k: settings[k] for k in ("classes", "target_kind", "ignore_index")},
        **{k: settings[k] for k in ("label_smoothing", "weight")},
        "inputs": list(inputs),
        "warnings": list(warnings),
    }


def elementwise_document(
    op: str, dim: int | None, result: Any, source: str, warnings: Sequence[str]
) -> dict[str, Any]:
    """The document of ``softmax`` / ``log-softmax`` / ``log``."""
    return {
        "op": op,
        "dim": dim,
        "shape": list(result.shape),
        "result": result,
        "input": source,
        "warnings": list(warnings),
    }


def doctor_document(
    loss: str, shape: Sequence[int], sources: Sources, findings: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The document of ``doctor``: the findings as ``{code, severity, message, evidence}``."""
    return {
        "op": "doctor",
        "loss": loss,
        "shape": list(shape),
        "inputs": dict(sources),
        "findings": list(findings),
    }


def _field(document: Mapping[str, Any], name: str, kind: type, source: str) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(
            f"{source}: field {name!r} is missing or not a {kind.__name__}; merge takes the "
            "--json output of lossctl ce or nll (reduction mean or sum)"
        )
    return value


def _number(value: Any) -> float:
    return float(value)  # "nan", "inf", "-inf" as lossctl writes them, or a number


def partial_from_document(document: Mapping[str, Any], source: str) -> Partial:
    """Validate one ``ce``/``nll`` document and take its additive pieces (for merge)."""
    op = _field(document, "op", str, source)
    if op not in MERGEABLE_OPS:
        raise InputError(f"{source}: op {op!r} cannot be merged; only ce and nll results can")
    if document.get("reduction") not in ("mean", "sum"):
        raise InputError(
            f"{source}: reduction {document.get('reduction')!r} cannot be merged; run each shard "
            "with --reduction mean or sum (per-position losses are not partial sums)"
        )
    exact = _field(document, "exact", dict, source)
    try:
        total_text = exact.get("sum")
        exact_total = None if total_text is None else parse_exact(total_text)
        exact_denominator = parse_exact(_field(exact, "denominator", str, source))
        total = _number(document.get("sum"))
    except (TypeError, ValueError) as error:
        raise InputError(f"{source}: bad partial sums: {error}") from None
    count = _field(document, "count", int, source)
    ignored = _field(document, "ignored", int, source)
    settings = {name: document.get(name) for name in SAME_IN_EVERY_SHARD}
    return Partial(source, settings, total, exact_total, exact_denominator, count, ignored)
