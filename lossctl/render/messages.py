"""The one-line messages of findings and reasons, rendered from their code and evidence.

One small function per code (:data:`FINDING_MESSAGES`, :data:`REASON_MESSAGES`); each states
the evidence and the fix, naming the CLI's flags. :func:`finding_json` is a finding's object
in the ``--json`` document.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lossctl.doctor.findings import Finding, FindingCode, JsonValue, NonfiniteReason, ReasonCode
from lossctl.render import i18n
from lossctl.render.i18n import t

SHOWN_POSITIONS = 5  # positions listed in a message; the evidence lists up to 20

Facts = Mapping[str, Any]  # a finding's evidence and context together


# ---------------------------------------------------------------- number formatting


def num(value: float) -> str:
    """A number for a message: 4 significant digits, or the exact integer."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.4f}"


def span(low: float, high: float) -> str:
    """``low…high``, or one number when both show the same."""
    a, b = num(low), num(high)
    return a if a == b else f"{a}…{b}"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 position``, ``2 positions``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def fmt_pos(position: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, position)) + ("," if len(position) == 1 else "") + ")"


def listing(positions: Sequence[Sequence[int]], values: Sequence[Any] | None, total: int) -> str:
    shown = positions[:SHOWN_POSITIONS]
    parts = [
        fmt_pos(p) + ("" if values is None else f" = {num(float(values[i]))}")
        for i, p in enumerate(shown)
    ]
    more = f", … ({total - len(shown)} more)" if total > len(shown) else ""
    return ", ".join(parts) + more


# ---------------------------------------------------------------- findings


def _kind_phrase(e: Facts) -> str:
    if e["kind"] == "probabilities":
        return (
            f"probabilities (every value in [0, 1], each position sums to "
            f"{span(e['sum_min'], e['sum_max'])})"
        )
    if e["kind"] == "log-probabilities":
        return (
            f"log-probabilities (every value ≤ 0, each position's log-sum-exp is "
            f"{span(e['logsumexp_min'], e['logsumexp_max'])})"
        )
    if e["kind"] == "logits":
        lse = ""
        if "logsumexp_min" in e:
            lse = f", log-sum-exp {span(e['logsumexp_min'], e['logsumexp_max'])}, not 0"
        return f"logits (values {span(e['min'], e['max'])}{lse})"
    return "nothing to judge (no finite positions)"


_KIND_ADVICE = {
    "logits": "right for ce / CrossEntropyLoss; for nll, apply log_softmax first",
    "log-probabilities": "right for nll / NLLLoss (ce gives the same loss: log_softmax is "
    "idempotent)",
    "probabilities": "take the log for nll; ce wants the logits from before the softmax",
}


def _input_kind(e: Facts) -> str:
    if e["kind"] == "unknown" and e["classes"] == 0:
        return f"the input has 0 classes along class axis {e['class_dim']}: no value to judge"
    note = ""
    if "pytorch_class_dim" in e:
        note = f", not PyTorch's class axis {e['pytorch_class_dim']} (found without labels)"
    return (
        f"the input holds {_kind_phrase(e)} along class axis {e['class_dim']} "
        f"({count(e['classes'], 'class', 'classes')}){note}: "
        f"{_KIND_ADVICE.get(e['kind'], 'see the other findings')}"
    )


def _double_softmax(e: Facts) -> str:
    return (
        f"cross-entropy was given probabilities (each position sums to 1), so softmax is "
        f"applied twice: the mean loss {num(e['loss'])} can never go below "
        f"log(1 + (C-1)/e) = {num(e['floor'])} for C = {e['classes']}, whatever the model "
        f"learns; on these probabilities the loss is {num(e['loss_on_probabilities'])}; pass "
        "the logits from before the softmax (or use nll on their log)"
    )


def _nll_on_logits(e: Facts) -> str:
    if "logsumexp_min" in e:
        lse_text = f"log-sum-exp {num(e['logsumexp_min'])}…{num(e['logsumexp_max'])}, not 0"
    else:
        lse_text = f"values up to {num(e['max'])}, above 0"
    return (
        f"nll expects log-probabilities but was given logits ({lse_text}): the loss "
        f"{num(e['loss'])} is just minus the input at the targets, not a likelihood, and "
        f"can be negative; cross-entropy on these logits gives {num(e['loss_cross_entropy'])}; "
        "use `lossctl ce` (F.cross_entropy), or apply log_softmax first"
    )


def _nll_on_probabilities(e: Facts) -> str:
    return (
        f"nll expects log-probabilities but was given probabilities (each position "
        f"sums to 1): the loss {num(e['loss'])} is minus the probability at the targets, "
        f"always in [-1, 0]; on their log it is {num(e['loss_on_log'])}; take the log first "
        "(`lossctl log`, torch.log) or give ce the logits"
    )


def _ambiguous_class_axis(e: Facts) -> str:
    texts = []
    for item in e["losses"]:
        axis, loss = item["class_dim"], item["loss"]
        if axis == e["chosen"]:
            texts.append(f"axis {axis} (used): {num(loss)}")
        elif loss is None:
            texts.append(f"axis {axis}: n/a (targets ≥ {item['classes']})")
        else:
            texts.append(f"axis {axis}: {num(loss)}")
    layout = (
        ": an (N, L, C) input needs .permute(0, 2, 1) first"
        if len(e["input_shape"]) >= 3
        else ": for (C, N) logits pass .T"
        if e["pytorch_class_dim"] == 1
        else ""
    )
    return (
        f"the class axis is ambiguous: axes {', '.join(map(str, e['axes']))} of input shape "
        f"{tuple(e['input_shape'])} all fit target shape {tuple(e['target_shape'])}; the mean "
        f"loss with each is {'; '.join(texts)}; pass --class-dim to choose (PyTorch silently "
        f"uses axis {e['pytorch_class_dim']}{layout})"
    )


def _out_of_range_hint(e: Facts) -> str:
    if e["hint"] == "padding":
        value = e["padding"]
        return f"if {value} marks padding, pass --ignore-index {value} (ignore_index={value})"
    if e["hint"] == "one-based":
        return "the labels look 1-based: subtract 1"
    return "the labels need the classes' 0-based indices, or the model more classes"


def _target_out_of_range(e: Facts) -> str:
    classes, n = e["classes"], e["count"]
    return (
        f"{n} of {e['targets']} targets are out of range for {classes} classes "
        f"(valid: 0…{classes - 1}, or ignore_index {e['ignore_index']}): "
        f"{listing(e['positions'], e['values'], n)}; {_out_of_range_hint(e)} (PyTorch: "
        "'Target … is out of bounds' on CPU, a device-side assert on CUDA)"
    )


def _ignore_index_is_a_class(e: Facts) -> str:
    ignore, classes = e["ignore_index"], e["classes"]
    return (
        f"ignore_index {ignore} is also a class (0…{classes - 1}): "
        f"{count(e['ignored'], 'target')} equal to {ignore} skipped, yet class {ignore} still "
        "takes part in every other position's softmax (ignore_index ignores targets, not "
        f"classes); if class {ignore} is real, mark padding with -100 (the default) instead"
    )


def _all_ignored(e: Facts) -> str:
    return (
        f"every target ({e['ignored']}) equals ignore_index ({e['ignore_index']}): nothing is "
        "counted, so the mean is nan (0/0; PyTorch returns nan too) and the sum is 0; check "
        "the labels or the padding mask"
    )


def _soft_targets_not_normalized(e: Facts) -> str:
    n = e["count"]
    return (
        f"{n} of {e['positions_total']} probability targets do not sum to 1 (sums "
        f"{num(e['sum_min'])}…{num(e['sum_max'])}, {e['negative']} with negative values): "
        f"{listing(e['positions'], e['sums'], n)}; PyTorch accepts them silently and each "
        "position's loss scales with its sum; normalise the targets (q / q.sum(class_dim)) "
        "or pass class indices"
    )


def _neg_inf_at_target(e: Facts) -> str:
    n, what = e["count"], "logit" if e["op"] == "cross_entropy" else "log-probability"
    return (
        f"{count(n, 'position')} with a -inf {what} at the target: the loss there is inf (the "
        f"model gives the right class probability 0): {listing(e['positions'], None, n)}; "
        "mask with a large negative number (e.g. torch.finfo(dtype).min) instead of -inf, or "
        "fix the mask that removed the target class"
    )


def _neg_inf_label_smoothing(e: Facts) -> str:
    n = e["count"]
    return (
        f"label smoothing {e['label_smoothing']} gives every class some target "
        f"probability, so {count(n, 'position')} holding -inf logits get an infinite "
        f"loss: {listing(e['positions'], None, n)}; mask with a large negative number "
        "instead of -inf, or drop label smoothing"
    )


def _neg_inf_zero_probability(e: Facts) -> str:
    n = e["count"]
    return (
        f"{count(n, 'position')} with a -inf logit where the probability target is 0: "
        f"0·(-inf) is nan, so the loss is nan: {listing(e['positions'], None, n)}; mask with "
        "a large negative number instead of -inf"
    )


def _nonfinite_input(e: Facts) -> str:
    return (
        f"the input holds {e['nan']} NaN and {e['posinf']} +inf values, in {e['positions']} of "
        f"{e['total_positions']} positions: softmax, the loss and the gradient of those "
        "positions are NaN; find where the model or the preprocessing produced them (a NaN "
        "in an ignored position still makes PyTorch's gradient NaN)"
    )


def _float16_overflow(e: Facts) -> str:
    if "losses_over_max" in e:
        return (
            f"{count(e['losses_over_max'], 'position')} with a loss above 65504, the float16 "
            "maximum: PyTorch computing in float16 returns inf there; cast the logits to "
            "float32 before the loss"
        )
    infinite, saturated, wide = e["infinite"], e["saturated"], e["positions_spanning_over_max"]
    parts = [
        text
        for n, text in (
            (infinite, count(infinite, "infinite value")),
            (saturated, f"{count(saturated, 'value')} at ±65504 (the float16 maximum)"),
            (
                wide,
                f"{count(wide, 'position')} whose logits span more than 65504, so x - max "
                "overflows in float16",
            ),
        )
        if n
    ]
    return (
        f"the float16 input holds {' and '.join(parts)} (PyTorch computes a float16 loss in "
        "float16, where these become inf): cast the logits to float32 before the loss "
        "(logits.float()), as Hugging Face models do"
    )


def _float16_precision(e: Facts) -> str:
    error, spacing = e["relative_probability_error"], e["spacing"]
    change = f"{error:.1%}" if error < 1 else f"a factor of {math.exp(spacing / 2):.3g}"
    return (
        f"the float16 input reaches |x| = {num(e['max_abs'])}, where float16 numbers are "
        f"{num(spacing)} apart: rounding a logit there changes its probability by up to "
        f"{change}; compute the logits (at least the last layer) in float32"
    )


def _kl_reduction_mean(e: Facts) -> str:
    return (
        f"reduction='mean' divides the sum by all {e['elements']} elements, not by the batch "
        f"size {e['batch']}: that is not the KL divergence; use reduction='batchmean'"
    )


def _kl_input_not_log_probs(e: Facts) -> str:
    if not e.get("cli"):
        return (
            f"input: {e['rows']} of {e['of']} rows are not log-probabilities (logsumexp not 0); "
            "kl_div wants log Q as input: apply log_softmax first"
        )
    if e.get("probabilities"):
        return (
            f"{e['source']}: every row is in [0, 1] and sums to 1: these look like "
            "probabilities, but kl takes logits (or log-probabilities with --log-probs); pass "
            "their log with --log-probs"
        )
    return _kl_not_normalized_rows(e)


def _kl_not_normalized_rows(e: Facts) -> str:
    return (
        f"{e['source']}: {e['rows']} of {e['of']} rows are not log-probabilities "
        f"(logsumexp {e['logsumexp']:.6g} at row {e['first_row']}, not 0); KL of "
        "unnormalised inputs can be negative: drop --log-probs to pass logits"
    )


def _kl_target_not_normalized(e: Facts) -> str:
    if e.get("cli"):
        return _kl_not_normalized_rows(e)
    kind = "exp(target)" if e["log_target"] else "target"
    return (
        f"target: {e['rows']} of {e['of']} rows of {kind} do not sum to 1 (or are negative): "
        "the target must be a probability distribution per row"
    )


FINDING_MESSAGES: dict[FindingCode, Callable[[Facts], str]] = {
    FindingCode.INPUT_KIND: _input_kind,
    FindingCode.DOUBLE_SOFTMAX: _double_softmax,
    FindingCode.NLL_ON_LOGITS: _nll_on_logits,
    FindingCode.NLL_ON_PROBABILITIES: _nll_on_probabilities,
    FindingCode.AMBIGUOUS_CLASS_AXIS: _ambiguous_class_axis,
    FindingCode.TARGET_OUT_OF_RANGE: _target_out_of_range,
    FindingCode.IGNORE_INDEX_IS_A_CLASS: _ignore_index_is_a_class,
    FindingCode.ALL_IGNORED: _all_ignored,
    FindingCode.SOFT_TARGETS_NOT_NORMALIZED: _soft_targets_not_normalized,
    FindingCode.NEG_INF_AT_TARGET: _neg_inf_at_target,
    FindingCode.NEG_INF_LABEL_SMOOTHING: _neg_inf_label_smoothing,
    FindingCode.NEG_INF_ZERO_PROBABILITY: _neg_inf_zero_probability,
    FindingCode.NONFINITE_INPUT: _nonfinite_input,
    FindingCode.FLOAT16_OVERFLOW: _float16_overflow,
    FindingCode.FLOAT16_PRECISION: _float16_precision,
    FindingCode.KL_REDUCTION_MEAN: _kl_reduction_mean,
    FindingCode.KL_INPUT_NOT_LOG_PROBS: _kl_input_not_log_probs,
    FindingCode.KL_TARGET_NOT_NORMALIZED: _kl_target_not_normalized,
}


def message(finding: Finding) -> str:
    """The finding's one-line message: the evidence and the fix (in ``--lang``, if translated)."""
    facts = {**finding.evidence, **finding.context}
    text = localised(finding.code, facts) or FINDING_MESSAGES[finding.code](facts)
    return " ".join(text.split())


# ---------------------------------------------------------------- other languages


def _kind_fields(e: Facts) -> dict[str, str]:
    kind = e["kind"]
    if kind == "logits":
        lse = ""
        if "logsumexp_min" in e:
            lse = t("finding.kind.lse", span=span(e["logsumexp_min"], e["logsumexp_max"]))
        phrase = t("finding.kind.logits", values=span(e["min"], e["max"]), lse=lse)
    elif kind == "probabilities":
        phrase = t("finding.kind.probabilities", span=span(e["sum_min"], e["sum_max"]))
    elif kind == "log-probabilities":
        lse = span(e["logsumexp_min"], e["logsumexp_max"])
        phrase = t("finding.kind.log-probabilities", span=lse)
    else:
        return {}
    return {"kind": phrase, "advice": t(f"finding.advice.{kind}")}


def _out_of_range_fields(e: Facts) -> dict[str, str]:
    hint = e["hint"] if e["hint"] in ("padding", "one-based") else "other"
    return {
        "last": str(e["classes"] - 1),
        "positions": listing(e["positions"], e["values"], e["count"]),
        "hint": t(f"finding.hint.{hint}", value=e.get("padding")),
    }


def _nll_on_logits_fields(e: Facts) -> dict[str, str]:
    if "logsumexp_min" in e:
        low, high = num(e["logsumexp_min"]), num(e["logsumexp_max"])
        return {"evidence": t("finding.evidence.lse", low=low, high=high)}
    return {"evidence": t("finding.evidence.max", max=num(e["max"]))}


LOCALISED_FIELDS: dict[FindingCode, Callable[[Facts], dict[str, str]]] = {
    FindingCode.INPUT_KIND: _kind_fields,
    FindingCode.DOUBLE_SOFTMAX: lambda e: {},
    FindingCode.NLL_ON_LOGITS: _nll_on_logits_fields,
    FindingCode.NLL_ON_PROBABILITIES: lambda e: {},
    FindingCode.TARGET_OUT_OF_RANGE: _out_of_range_fields,
}


def localised(code: FindingCode, e: Facts) -> str | None:
    """The message from this language's ``finding.<code>`` template; ``None``: use English."""
    template = i18n.CATALOGUES[i18n.current()].get(f"finding.{code.value}")
    make = LOCALISED_FIELDS.get(code)
    if i18n.current() == "en" or template is None or make is None:
        return None
    fields = make(e)
    if code == FindingCode.INPUT_KIND and not fields:
        return None
    numbers = {k: num(v) for k, v in e.items() if isinstance(v, float)}
    return template.format_map({**e, **numbers, **fields})


def finding_json(finding: Finding) -> dict[str, JsonValue]:
    """The finding's object in a ``--json`` document."""
    return {
        "code": finding.code.value,
        "severity": finding.severity,
        "message": message(finding),
        "evidence": finding.evidence,
    }


# ---------------------------------------------------------------- reasons

_INPUT_CAUSES = {
    ReasonCode.INPUT_HAS_NAN: "the input holds NaN values",
    ReasonCode.INPUT_HAS_POSINF: "the input holds +inf values (a whole row then becomes NaN)",
    ReasonCode.INPUT_HAS_NEGINF: "the input holds -inf values (at a target class, the loss is "
    "infinite)",
}

REASON_MESSAGES: dict[ReasonCode, Callable[[Facts], str]] = {
    ReasonCode.ALL_IGNORED: lambda e: (
        f"the loss is {e['loss']} because every target ({e['ignored']}) equals ignore_index: "
        "the mean of no targets is undefined (PyTorch returns nan too)"
    ),
    ReasonCode.EMPTY: lambda e: (
        f"the loss is {e['loss']} because the input is empty: the mean of no targets is undefined"
    ),
    ReasonCode.NO_CLASSES: lambda e: (
        f"the loss is {e['loss']} because the input has 0 classes: the mean of probability "
        f"targets divides by numel/classes = 0/0, not by the {e['positions']} positions "
        "(PyTorch returns nan too)"
    ),
    ReasonCode.ZERO_WEIGHT_SUM: lambda e: (
        f"the loss is {e['loss']} because the class weights of the counted targets sum to 0 "
        "(the mean divides by that sum)"
    ),
}


def reason_message(reason: NonfiniteReason) -> str:
    """Why the loss is NaN or infinite, in plain words."""
    e = reason.evidence
    cause = _INPUT_CAUSES.get(reason.code)
    if "nonfinite_positions" in e:
        text = (
            f"{e['nonfinite_positions']} of {e['positions']} per-position losses are NaN or "
            "infinite"
        )
        return f"{text}: {cause}" if cause else text
    if reason.code in REASON_MESSAGES:
        return REASON_MESSAGES[reason.code](e)
    return f"the loss is {e['loss']}" + (f" because {cause}" if cause else "")
