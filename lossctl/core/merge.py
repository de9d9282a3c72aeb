"""Combine the ``--json`` results of ``ce``/``nll`` over shards into the loss of all the data.

Each result carries its exact partial sums (``exact.sum`` and ``exact.denominator``, as
``"M*2**E"``), so the merged mean ``Σ sum / Σ denominator`` is rounded once and equals,
to the last bit, the loss computed over the concatenated inputs. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lossctl.core.exactsum import ZERO, ExactSum, exact_mean, parse_exact
from lossctl.core.losses import FloatArray, LossResult
from lossctl.errors import InputError

MERGEABLE_OPS = ("cross_entropy", "nll_loss")
SAME_IN_EVERY_SHARD = (
    "op",
    "reduction",
    "classes",
    "target_kind",
    "ignore_index",
    "label_smoothing",
    "weight",
)


@dataclass(frozen=True)
class Partial:
    """The additive pieces of one shard's result."""

    source: str
    settings: dict[str, Any]
    total: float
    exact_total: ExactSum | None
    exact_denominator: ExactSum
    count: int
    ignored: int


@dataclass(frozen=True)
class Merged:
    """The loss of all shards together, with its own partial sums (mergeable again).

    ``loss`` is the per-position array for ``reduction='none'`` (set by the caller, who
    has the arrays; documents never carry them).
    """

    settings: dict[str, Any]
    loss: float | FloatArray
    total: float
    exact_total: ExactSum | None
    exact_denominator: ExactSum
    count: int
    ignored: int
    shards: int


def _field(document: Mapping[str, Any], name: str, kind: type, source: str) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(
            f"{source}: field {name!r} is missing or not a {kind.__name__}; merge takes the "
            "--json output of lossctl ce or nll (reduction mean or sum)"
        )
    return value


def _number(value: Any) -> float:
    if isinstance(value, str):
        return float(value)  # "nan", "inf", "-inf" as lossctl writes them
    return float(value)


def partial_from_document(document: Mapping[str, Any], source: str) -> Partial:
    """Validate one ``ce``/``nll`` JSON result and take its additive pieces."""
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


def partial_from_result(result: LossResult, settings: dict[str, Any], source: str) -> Partial:
    """The additive pieces of a freshly computed result; ``settings`` adds the options
    (``ignore_index``, ``label_smoothing``, ``weight``) that must agree across shards."""
    return Partial(
        source=source,
        settings={
            "op": result.op,
            "reduction": result.reduction,
            "classes": result.input_shape[result.class_dim],
            "target_kind": result.target_kind,
            **settings,
        },
        total=result.total,
        exact_total=result.exact_total,
        exact_denominator=result.exact_denominator,
        count=result.count,
        ignored=result.ignored,
    )


def merge_partials(partials: Sequence[Partial]) -> Merged:
    """``Σ`` of the shards' sums, denominators and counts; the mean rounded once."""
    if not partials:
        raise InputError("nothing to merge: give one or more --json results of lossctl ce or nll")
    first = partials[0]
    for partial in partials[1:]:
        for name in SAME_IN_EVERY_SHARD:
            if partial.settings[name] != first.settings[name]:
                raise InputError(
                    f"{partial.source}: {name} is {partial.settings[name]!r} but "
                    f"{first.source} has {first.settings[name]!r}; only results computed the "
                    "same way can be merged"
                )
    exact_total: ExactSum | None = ZERO
    exact_denominator = ZERO
    for partial in partials:
        exact_denominator = exact_denominator + partial.exact_denominator
        if exact_total is not None and partial.exact_total is not None:
            exact_total = exact_total + partial.exact_total
        else:
            exact_total = None
    total = sum(p.total for p in partials) if exact_total is None else exact_total.to_float()
    if first.settings["reduction"] == "sum":
        loss = total
    else:
        loss = exact_mean(exact_total, exact_denominator, total)
    return Merged(
        settings=first.settings,
        loss=loss,
        total=total,
        exact_total=exact_total,
        exact_denominator=exact_denominator,
        count=sum(p.count for p in partials),
        ignored=sum(p.ignored for p in partials),
        shards=len(partials),
    )
