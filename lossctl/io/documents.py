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
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lossctl.core.exactsum import ExactSum, parse_exact, reduced
from lossctl.errors import InputError

if TYPE_CHECKING:
    from lossctl.core.losses import LossResult
    from lossctl.core.merge import Merged, Partial

# merge's, kl's and the fingerprints' modules are imported where they are used, so that
# ``ce --json`` loads none of them (14 ms of start-up)

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
    from lossctl.io.fingerprint import combined

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
        **({"fingerprint": combined(merged.fingerprints)} if merged.fingerprints else {}),
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
    """A number, or "nan"/"inf"/"-inf" as lossctl writes them; ``ValueError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, str) and value not in ("nan", "inf", "-inf"):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


# Every exact sum of float64 values is M*2**E with M odd: E from -1127 (below the lowest
# bit) to about 1100 (2**63 values near 2**1024), M of at most ~2300 bits (700 digits).
MAX_EXPONENT = 1100
MAX_MANTISSA_DIGITS = 720
_BOUNDED_EXACT = re.compile(rf"^(-?)(\d{{1,{MAX_MANTISSA_DIGITS}}})\*2\*\*(-?\d{{1,20}})$")
MAX_COUNT = 2**63


def parse_exact_bounded(text: Any, what: str) -> ExactSum:
    """``"M*2**E"`` within the range of exact float64 sums, checked before any arithmetic:
    ``"1*2**4000000000"`` is refused at once instead of building a 500 MB integer."""
    if not isinstance(text, str) or len(text) > MAX_MANTISSA_DIGITS + 16:
        raise ValueError(f"{what} must be a string M*2**E of at most {MAX_MANTISSA_DIGITS} digits")
    match = _BOUNDED_EXACT.match(text.strip())
    if not match:
        raise ValueError(f"{what} is not an exact sum of the form M*2**E: {text[:60]!r}")
    exponent = int(match.group(3))
    if abs(exponent) > MAX_EXPONENT + MAX_MANTISSA_DIGITS * 4:
        raise ValueError(f"{what} {text[:60]!r}: exponent {exponent} is outside float64's range")
    value = parse_exact(text)
    top = value.exponent + value.mantissa.bit_length()
    if value.mantissa and not (value.exponent >= -1127 and top <= MAX_EXPONENT):
        raise ValueError(f"{what} {text[:60]!r} is outside the range of sums of float64 values")
    return value


def _agrees(written: float, exact: float) -> bool:
    """A written float that is the exact value rounded (two ulps of slack)."""
    if math.isnan(written) or math.isnan(exact):
        return math.isnan(written) and math.isnan(exact)
    if math.isinf(written) or math.isinf(exact):
        return written == exact
    return abs(written - exact) <= 2 * math.ulp(exact)


def _settings(document: Mapping[str, Any], source: str) -> dict[str, Any]:
    from lossctl.core.merge import SAME_IN_EVERY_SHARD

    settings = {name: document.get(name) for name in SAME_IN_EVERY_SHARD}
    classes = settings["classes"]
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 0:
        raise InputError(f"{source}: classes must be a whole number ≥ 0, got {classes!r}")
    if settings["target_kind"] not in ("indices", "probabilities"):
        raise InputError(f"{source}: target_kind must be indices or probabilities")
    if not isinstance(settings["ignore_index"], int) or isinstance(settings["ignore_index"], bool):
        raise InputError(f"{source}: ignore_index must be a whole number")
    eps = settings["label_smoothing"]
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0.0 <= eps <= 1.0:
        raise InputError(f"{source}: label_smoothing must be a number in [0, 1], got {eps!r}")
    weight = settings["weight"]
    if weight is not None and (
        not isinstance(weight, list)
        or len(weight) != classes
        or not all(isinstance(w, int | float) and not isinstance(w, bool) for w in weight)
        or not all(math.isfinite(w) for w in weight)
    ):
        raise InputError(f"{source}: weight must be null or {classes} finite numbers")
    return settings


def _fingerprints(document: Mapping[str, Any], source: str) -> tuple[str, ...]:
    found = document.get("fingerprint")
    if found is None:
        return ()
    digests = found.get("parts", [found.get("digest")]) if isinstance(found, dict) else None
    if not isinstance(digests, list) or not all(
        isinstance(d, str) and 0 < len(d) <= 128 for d in digests
    ):
        raise InputError(f"{source}: fingerprint must be an object with a digest (or parts)")
    return tuple(digests)


def partial_from_document(document: Mapping[str, Any], source: str) -> Partial:
    """Validate one ``ce``/``nll`` document and take its additive pieces (for merge).

    Every field is checked with its bounds, and the written ``sum``, ``denominator`` and
    ``loss`` must be the exact partial sums rounded: a contradiction is refused.
    """
    from lossctl.core.merge import MERGEABLE_OPS, Partial

    op = _field(document, "op", str, source)
    if op not in MERGEABLE_OPS:
        raise InputError(f"{source}: op {op!r} cannot be merged; only ce and nll results can")
    reduction = document.get("reduction")
    if reduction not in ("mean", "sum"):
        raise InputError(
            f"{source}: reduction {reduction!r} cannot be merged; run each shard "
            "with --reduction mean or sum (per-position losses are not partial sums)"
        )
    count = _field(document, "count", int, source)
    ignored = _field(document, "ignored", int, source)
    if not 0 <= count < MAX_COUNT or not 0 <= ignored < MAX_COUNT:
        raise InputError(
            f"{source}: count ({count}) and ignored ({ignored}) must be whole numbers ≥ 0"
        )
    settings = _settings(document, source)
    exact = _field(document, "exact", dict, source)
    try:
        total_text = exact.get("sum")
        exact_total = None if total_text is None else parse_exact_bounded(total_text, "exact.sum")
        exact_denominator = parse_exact_bounded(exact.get("denominator"), "exact.denominator")
        total = _number(document.get("sum"))
        written_denominator = _number(document.get("denominator"))
        loss = _number(document.get("loss"))
    except ValueError as error:
        raise InputError(f"{source}: bad partial sums: {error}") from None
    _check_consistent(
        source,
        settings,
        count,
        ignored,
        exact_total,
        exact_denominator,
        (total, written_denominator, loss),
    )
    return Partial(
        source,
        settings,
        total,
        exact_total,
        exact_denominator,
        count,
        ignored,
        _fingerprints(document, source),
    )


def _check_consistent(
    source: str,
    settings: Mapping[str, Any],
    count: int,
    ignored: int,
    exact_total: ExactSum | None,
    exact_denominator: ExactSum,
    written: tuple[float, float, float],
) -> None:
    """Refuse a document whose fields contradict each other or its exact sums."""
    total, denominator, loss = written
    exact_d = exact_denominator.as_fraction()
    weight = settings["weight"]
    if exact_d < 0 and not (weight is not None and min(weight, default=0) < 0):
        raise InputError(f"{source}: the denominator is negative without a negative weight")
    if settings["target_kind"] == "probabilities":
        if ignored:
            raise InputError(f"{source}: probability targets have no ignored positions")
        if exact_d not in (count, 0) or (exact_d == 0 and count and settings["classes"]):
            raise InputError(
                f"{source}: the denominator of probability targets is the count ({count}), "
                f"not {float(exact_d):g}"
            )
    elif weight is None and exact_d != count:
        raise InputError(
            f"{source}: without weights the denominator is the count of targets ({count}), "
            f"not {float(exact_d):g}"
        )
    elif count == 0 and exact_d != 0:
        raise InputError(f"{source}: no targets are counted but the denominator is not 0")
    if exact_total is None:
        if math.isfinite(total):
            raise InputError(f"{source}: exact.sum is null (not finite) but sum is {total!r}")
        return
    if not _agrees(total, exact_total.to_float()):
        raise InputError(f"{source}: sum {total!r} contradicts exact.sum {exact_total.text()}")
    if not _agrees(denominator, exact_denominator.to_float()):
        raise InputError(
            f"{source}: denominator {denominator!r} contradicts exact.denominator "
            f"{exact_denominator.text()}"
        )
    expected = reduced(
        settings["reduction"], exact_total, exact_denominator, exact_total.to_float()
    )
    if not _agrees(loss, expected):
        raise InputError(f"{source}: loss {loss!r} contradicts exact.sum / exact.denominator")


def documents_from_bytes(data: bytes, source: str) -> list[dict[str, Any]]:
    """Every JSON object in ``data``: one document, or JSON Lines (one per line, as
    ``for f in …; do lossctl ce … --json; done`` writes them)."""
    try:
        text = data.decode("utf-8-sig", errors="strict") if data else ""
    except UnicodeDecodeError as error:
        raise InputError(f"{source}: not UTF-8 text (byte {error.start}): not JSON") from None
    decoder = json.JSONDecoder(parse_constant=_no_constant)
    documents: list[dict[str, Any]] = []
    position = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        if position == len(text):
            break
        try:
            document, position = decoder.raw_decode(text, position)
        except (ValueError, RecursionError) as error:
            why = "nested too deeply" if isinstance(error, RecursionError) else str(error)
            raise InputError(
                f"{source}: document {len(documents) + 1} is not valid JSON: {why}"
            ) from None
        if not isinstance(document, dict):
            raise InputError(
                f"{source}: document {len(documents) + 1} is not a JSON object (the --json "
                "output of lossctl ce or nll)"
            )
        documents.append(document)
    if not documents:
        raise InputError(f"{source}: no JSON documents (standard input is empty)")
    return documents


def _no_constant(name: str) -> Any:
    raise ValueError(f'{name} is not JSON (lossctl writes "nan", "inf")')


KL_SETTINGS = ("classes", "log_probs", "ignore_index", "labelled")


def kl_document(
    summary: Mapping[str, Any],
    stats: Any,
    reverse: Any,
    settings: Mapping[str, Any],
    inputs: Any,
    warnings: Sequence[str],
    findings: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The document of ``lossctl kl`` (and of merged kl documents): the numbers of
    :func:`~lossctl.core.kl_stream.kl_summary`, the settings, and ``state`` — the exact
    :class:`~lossctl.core.kl_stats.KLStats` (``to_dict``) that ``lossctl merge`` adds up."""
    from lossctl.core.kl_stats_io import stats_to_dict

    return {
        "op": "kl",
        "direction": "KL(reference || other)",
        **summary,
        **settings,
        "inputs": inputs,
        "state": {
            "forward": stats_to_dict(stats),
            "reverse": None if reverse is None else stats_to_dict(reverse),
        },
        "warnings": list(warnings),
        "findings": list(findings),
    }


def kl_state_from_document(
    document: Mapping[str, Any], source: str
) -> tuple[Any, Any, dict[str, Any]]:
    """The forward and reverse (or ``None``) KLStats and the settings of a kl document."""
    from lossctl.core.kl_stats_io import stats_from_dict

    if document.get("op") != "kl":
        raise InputError(f"{source}: op {document.get('op')!r} is not a kl result")
    state = _field(document, "state", dict, source)
    try:
        forward = stats_from_dict(state.get("forward"))
        back = state.get("reverse")
        reverse = None if back is None else stats_from_dict(back)
    except InputError as error:
        raise InputError(f"{source}: {error}") from None
    settings = {name: document.get(name) for name in KL_SETTINGS}
    return forward, reverse, settings
