"""Combine the partial results of ``ce``/``nll`` over shards into the loss of all the data.

Each result carries its exact partial sums (``exact.sum`` and ``exact.denominator``, as
``"M*2**E"``), so the merged mean ``Σ sum / Σ denominator`` is rounded once and equals,
to the last bit, the loss computed over the concatenated inputs. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lossctl.core.exactsum import ZERO, ExactSum, reduced
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
    fingerprints: tuple[str, ...] = ()  # the digests of the inputs it was computed from


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
    fingerprints: tuple[str, ...] = ()


def partial_from_result(result: LossResult, source: str) -> Partial:
    """The additive pieces of a freshly computed result, with the settings that must agree
    across shards."""
    weight = result.spec.weight
    return Partial(
        source=source,
        settings={
            "op": result.op,
            "reduction": result.reduction,
            "classes": result.input_shape[result.class_dim],
            "target_kind": result.target_kind,
            "ignore_index": result.spec.ignore_index,
            "label_smoothing": result.spec.label_smoothing,
            "weight": None if weight is None else weight.tolist(),
        },
        total=result.total,
        exact_total=result.exact_total,
        exact_denominator=result.exact_denominator,
        count=result.count,
        ignored=result.ignored,
    )


def merge_partials(partials: Sequence[Partial], *, allow_duplicates: bool = False) -> Merged:
    """``Σ`` of the shards' sums, denominators and counts; the mean rounded once.

    Refuses two partials computed from the same inputs (equal fingerprints) unless
    ``allow_duplicates``: their sum would count the same data twice.
    """
    if not partials:
        raise InputError("nothing to merge: give one or more --json results of lossctl ce or nll")
    if not allow_duplicates:
        _refuse_duplicates(partials)
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
    loss = reduced(first.settings["reduction"], exact_total, exact_denominator, total)
    return Merged(
        settings=first.settings,
        loss=loss,
        total=total,
        exact_total=exact_total,
        exact_denominator=exact_denominator,
        count=sum(p.count for p in partials),
        ignored=sum(p.ignored for p in partials),
        shards=len(partials),
        fingerprints=tuple(f for p in partials for f in p.fingerprints),
    )


def _refuse_duplicates(partials: Sequence[Partial]) -> None:
    seen: dict[str, str] = {}
    for partial in partials:
        for digest in partial.fingerprints:
            if digest in seen:
                raise InputError(
                    f"{partial.source} and {seen[digest]} were computed from the same inputs "
                    f"(fingerprint {digest[:12]}…): merging them would count that data twice; "
                    "pass --allow-duplicates if that is what you want"
                )
            seen[digest] = partial.source
