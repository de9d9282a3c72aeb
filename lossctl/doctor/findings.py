"""Findings and reasons as data: a code, a severity and the numbers behind them.

No prose here: the one-line messages are rendered from ``code`` + ``evidence`` (+ ``context``)
by :mod:`lossctl.render.messages`. ``evidence`` is what the ``--json`` document shows;
``context`` holds the few further facts a message states that the JSON evidence has never
carried (the input's shape, the op …), kept apart so the JSON stays as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from types import MappingProxyType
from typing import Literal, NamedTuple, TypeAlias

JsonValue: TypeAlias = (
    "bool | int | float | str | Sequence[JsonValue] | Mapping[str, JsonValue] | None"
)
Evidence: TypeAlias = Mapping[str, JsonValue]
Severity = Literal["info", "warning", "error"]
NO_EVIDENCE: Evidence = MappingProxyType({})  # the default: one shared, read-only, empty


class _Code(str, Enum):
    """A code that is its string: equal, hashed, printed and JSON-encoded as its value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    def __hash__(self) -> int:
        return hash(str(self.value))


class FindingCode(_Code):
    """The stable codes of ``lossctl doctor`` findings (see :data:`CODES`)."""

    INPUT_KIND = "input-kind"
    DOUBLE_SOFTMAX = "double-softmax"
    NLL_ON_LOGITS = "nll-on-logits"
    NLL_ON_PROBABILITIES = "nll-on-probabilities"
    AMBIGUOUS_CLASS_AXIS = "ambiguous-class-axis"
    TARGET_OUT_OF_RANGE = "target-out-of-range"
    IGNORE_INDEX_IS_A_CLASS = "ignore-index-is-a-class"
    ALL_IGNORED = "all-ignored"
    SOFT_TARGETS_NOT_NORMALIZED = "soft-targets-not-normalized"
    NEG_INF_AT_TARGET = "neg-inf-at-target"
    NEG_INF_LABEL_SMOOTHING = "neg-inf-label-smoothing"
    NEG_INF_ZERO_PROBABILITY = "neg-inf-zero-probability"
    NONFINITE_INPUT = "nonfinite-input"
    FLOAT16_OVERFLOW = "float16-overflow"
    FLOAT16_PRECISION = "float16-precision"
    KL_REDUCTION_MEAN = "kl-reduction-mean"
    KL_INPUT_NOT_LOG_PROBS = "kl-input-not-log-probs"
    KL_TARGET_NOT_NORMALIZED = "kl-target-not-normalized"


CODES: dict[str, str] = {
    "input-kind": "what the input holds: logits, probabilities or log-probabilities",
    "double-softmax": "cross-entropy given probabilities (softmax applied twice)",
    "nll-on-logits": "nll given logits instead of log-probabilities",
    "nll-on-probabilities": "nll given probabilities instead of log-probabilities",
    "ambiguous-class-axis": "several axes of the input could be the class axis",
    "target-out-of-range": "class-index targets outside [0, C) that are not ignore_index",
    "ignore-index-is-a-class": "ignore_index inside [0, C) while targets equal it",
    "all-ignored": "every target equals ignore_index: nothing is counted",
    "soft-targets-not-normalized": "probability targets that do not sum to 1 (or are negative)",
    "neg-inf-at-target": "-inf logit (log-probability) at a target: infinite loss",
    "neg-inf-label-smoothing": "-inf logits under label smoothing: infinite loss",
    "neg-inf-zero-probability": "-inf logit where the probability target is 0: NaN loss",
    "nonfinite-input": "NaN or +inf values in the input",
    "float16-overflow": "float16 input that overflows (inf, saturated, or beyond 65504)",
    "float16-precision": "float16 input too large to keep its logits' differences",
    "kl-reduction-mean": "kl_div(reduction='mean') divides by N·C: not the KL (use batchmean)",
    "kl-input-not-log-probs": "kl input that is not log-probabilities (or logits)",
    "kl-target-not-normalized": "kl target that is not a probability distribution per row",
}

NEG_INF_CODES = frozenset(
    {
        FindingCode.NEG_INF_AT_TARGET,
        FindingCode.NEG_INF_LABEL_SMOOTHING,
        FindingCode.NEG_INF_ZERO_PROBABILITY,
    }
)


class Finding(NamedTuple):
    """One thing noticed about the input, with the numbers that show it."""

    code: FindingCode
    severity: Severity
    evidence: Evidence = NO_EVIDENCE
    context: Evidence = NO_EVIDENCE  # message-only facts (module doc)


class ReasonCode(_Code):
    """Why a loss is NaN or infinite."""

    ALL_IGNORED = "nan-loss-all-ignored"  # mean over no targets: every one ignored
    EMPTY = "nan-loss-empty"  # mean over no targets: the input is empty
    ZERO_WEIGHT_SUM = "zero-weight-sum"  # the counted targets' class weights sum to 0
    NO_CLASSES = "nan-loss-no-classes"  # probability targets over 0 classes: numel/C = 0/0
    INPUT_HAS_NAN = "input-has-nan"
    INPUT_HAS_POSINF = "input-has-posinf"
    INPUT_HAS_NEGINF = "input-has-neginf"
    UNEXPLAINED = "nonfinite-loss"  # none of the above


class NonfiniteReason(NamedTuple):
    """Why a result is NaN or infinite: ``evidence`` has ``loss`` (a reduced loss) or
    ``nonfinite_positions`` and ``positions`` (``reduction="none"``), and ``ignored``."""

    code: ReasonCode
    evidence: Evidence = NO_EVIDENCE
