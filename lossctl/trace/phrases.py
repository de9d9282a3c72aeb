"""The trace's sentences that carry numbers, as message ids with fields.

The trace may not import :mod:`lossctl.render` (imports point down), yet its
sentences must be said in every language of the renderer. A :class:`Phrase` is the
English sentence (a ``str``, so the trace reads and compares as before) that also
carries its id and fields; :data:`ENGLISH` holds the English templates, and the
English catalogue (:mod:`lossctl.render.i18n.en`) includes them, so each sentence is
written once. Other languages translate the ids in their own catalogue; a renderer
says a phrase with :func:`lossctl.render.i18n.tr`.
"""

from __future__ import annotations

from collections.abc import Mapping

FieldValue = str | int | float

ENGLISH: dict[str, str] = {
    "trace.input.formula": "shape {shape}: {classes} classes along axis {axis}, {positions} "
    "positions",
    "trace.input.formula.one": "shape {shape}: {classes} classes along axis {axis}, 1 position",
    "trace.input.formula.shape": "shape {shape}",
    "trace.remark.weak_positive": "Why it works: softmax + log punishes weak positives. "
    "Position {where} gives its target (class {target}) only p = {{p}}, so its -log p is {{nll}}; "
    "a confident right answer, p ≈ 1, would cost ≈ 0.",
    "trace.remark.raw_nll": "Why softmax comes first: nll on the raw logits gives {{raw}}, and "
    "at position {where} its term -x[target] = {{term}} is negative although the largest logit "
    "there is class {largest}, not the target {target}. On raw logits NLL can reward the wrong "
    "class and go negative; after softmax + log every term is -log p ≥ 0.",
    "trace.reduce.denominator.count": "the number of counted targets ({count})",
    "trace.reduce.denominator.weights": "the sum of the class weights w[t_n] of the {count} "
    "counted targets",
    "trace.reduce.denominator.weights.one": "the sum of the class weights w[t_n] of the 1 "
    "counted target",
    "trace.reduce.ignored": "; {count} ignored positions count for nothing",
    "trace.reduce.ignored.one": "; 1 ignored position counts for nothing",
    "trace.reduce.mean.note": "One number for the whole input: the per-position losses summed "
    "and divided by {denominator}{ignored}.",
    "trace.reduce.sum.note": "No division{ignored}.",
    "trace.elementwise.identity": "Along axis {axis}; the max-shift changed nothing but the "
    "safety of exp.",
    "trace.smoothing.note": "Label smoothing, ε = {eps}, C = {classes}: the target keeps 1 - ε, "
    "every class gets ε/C (the uniform part).",
    "trace.kl.p": "p = {head} over the class axis",
    "trace.kl.q": "q = {tail} over the class axis",
    "trace.kl.mean": "Σ KL / {count} counted positions",
    "trace.check.positive": "{count} values are above 0 (a log-probability is ≤ 0)",
    "trace.check.positive.one": "1 value is above 0 (a log-probability is ≤ 0)",
    "trace.check.far": "{count} of the {checked} checked positions have log Σ exp far from 0 "
    "(the farthest: position {where})",
    "trace.check.negative": "{count} positions have a negative loss (the first: position "
    "{where}), which -log p ≥ 0 never gives",
    "trace.check.negative.one": "1 position has a negative loss (the first: position {where}), "
    "which -log p ≥ 0 never gives",
    "trace.check.note": "{reasons}.",
    "trace.gradient.scale.positions": "s = 1/{count} (mean over the positions)",
    "trace.gradient.scale.weights": "s = 1/{denominator} (mean: 1 / Σ w[target])",
    "trace.gradient.scale.count": "s = 1/{denominator} (mean: 1 / the {count} counted targets)",
    "trace.gradient.scale.count.one": "s = 1/{denominator} (mean: 1 / the 1 counted target)",
    "trace.gradient.ignored": "the {count} ignored positions get 0",
    "trace.gradient.ignored.one": "the 1 ignored position gets 0",
}


class Phrase(str):
    """An English sentence of the trace with the id and fields it was made from."""

    key: str
    fields: Mapping[str, FieldValue]

    def __new__(cls, key: str, **fields: FieldValue) -> Phrase:
        self = super().__new__(cls, ENGLISH[key].format(**fields))
        self.key, self.fields = key, fields
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, FieldValue]]:
        return (self.key,), dict(self.fields)  # pickle and copy make it from its id again


class Joined(str):
    """Phrases joined by ``"; "`` (a renderer joins their translations its own way)."""

    parts: tuple[Phrase, ...]

    def __new__(cls, parts: tuple[Phrase, ...]) -> Joined:
        self = super().__new__(cls, "; ".join(parts))
        self.parts = parts
        return self

    def __getnewargs__(self) -> tuple[tuple[Phrase, ...]]:  # type: ignore[override]
        return (self.parts,)


def say(key: str, **fields: FieldValue) -> Phrase:
    """The phrase ``key`` with its ``fields`` (``.one``: the variant for a count of 1)."""
    return Phrase(key, **fields)
