"""The one-line messages of findings and reasons, rendered from their code and evidence.

One small function per finding code (:data:`FINDING_FIELDS`) chooses the message's id in
the catalogues (``finding.<code>``, ``reason.<code>`` in :mod:`lossctl.render.i18n.en` and
``zh``) and fills its fields with the evidence's numbers; the words, stating the evidence
and the fix and naming the CLI's flags, live in the catalogues only. :func:`finding_json`
is a finding's object in the ``--json`` document.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lossctl.doctor.findings import Finding, FindingCode, JsonValue, NonfiniteReason, ReasonCode
from lossctl.render.i18n import t

if TYPE_CHECKING:
    from lossctl.core.kl_stream import KLPass

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


def fmt_pos(position: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, position)) + ("," if len(position) == 1 else "") + ")"


def listing(positions: Sequence[Sequence[int]], values: Sequence[Any] | None, total: int) -> str:
    shown = positions[:SHOWN_POSITIONS]
    parts = [
        fmt_pos(p) + ("" if values is None else f" = {num(float(values[i]))}")
        for i, p in enumerate(shown)
    ]
    more = t("list.more", n=total - len(shown)) if total > len(shown) else ""
    return ", ".join(parts) + more


# ---------------------------------------------------------------- findings
#
# One function per code: it picks the catalogue id (``finding.<code>``, or a variant
# ``finding.<code>.<case>``) and fills its fields from the evidence; the words are in
# the catalogues (render/i18n/en.py, zh.py), never here.

Fields = dict[str, Any]


def counted(n: int, noun: str) -> str:
    """``1 position``, ``2 positions`` in this language (catalogue ``noun.<noun>[_plural]``)."""
    return t(f"noun.{noun}" + ("" if n == 1 else "_plural"), n=n)


def _kind_phrase(e: Facts) -> str:
    kind = e["kind"]
    if kind == "probabilities":
        return t("finding.kind.probabilities", span=span(e["sum_min"], e["sum_max"]))
    if kind == "log-probabilities":
        lse = span(e["logsumexp_min"], e["logsumexp_max"])
        return t("finding.kind.log-probabilities", span=lse)
    if kind == "logits":
        lse = ""
        if "logsumexp_min" in e:
            lse = t("finding.kind.lse", span=span(e["logsumexp_min"], e["logsumexp_max"]))
        return t("finding.kind.logits", values=span(e["min"], e["max"]), lse=lse)
    return t("finding.kind.none")


_ADVICE = ("logits", "log-probabilities", "probabilities")


def _input_kind(e: Facts) -> tuple[str, Fields]:
    if e["kind"] == "unknown" and e["classes"] == 0:
        return "finding.input-kind.no-classes", {"class_dim": e["class_dim"]}
    note = ""
    if "pytorch_class_dim" in e:
        note = t("finding.input-kind.note", pytorch_class_dim=e["pytorch_class_dim"])
    advice = e["kind"] if e["kind"] in _ADVICE else "other"
    return "finding.input-kind", {
        "kind": _kind_phrase(e),
        "class_dim": e["class_dim"],
        "classes": counted(e["classes"], "class"),
        "note": note,
        "advice": t(f"finding.advice.{advice}"),
    }


def _double_softmax(e: Facts) -> tuple[str, Fields]:
    return "finding.double-softmax", {
        "loss": num(e["loss"]),
        "floor": num(e["floor"]),
        "classes": e["classes"],
        "loss_on_probabilities": num(e["loss_on_probabilities"]),
    }


def _nll_on_logits(e: Facts) -> tuple[str, Fields]:
    if "logsumexp_min" in e:
        low, high = num(e["logsumexp_min"]), num(e["logsumexp_max"])
        evidence = t("finding.evidence.lse", low=low, high=high)
    else:
        evidence = t("finding.evidence.max", max=num(e["max"]))
    return "finding.nll-on-logits", {
        "evidence": evidence,
        "loss": num(e["loss"]),
        "loss_cross_entropy": num(e["loss_cross_entropy"]),
    }


def _nll_on_probabilities(e: Facts) -> tuple[str, Fields]:
    return "finding.nll-on-probabilities", {
        "loss": num(e["loss"]),
        "loss_on_log": num(e["loss_on_log"]),
    }


def _axis_loss(item: Facts, chosen: int) -> str:
    axis, loss = item["class_dim"], item["loss"]
    if axis == chosen:
        return t("finding.axis.used", axis=axis, loss=num(loss))
    if loss is None:
        return t("finding.axis.none", axis=axis, classes=item["classes"])
    return t("finding.axis.loss", axis=axis, loss=num(loss))


def _ambiguous_class_axis(e: Facts) -> tuple[str, Fields]:
    layout = (
        t("finding.layout.permute")
        if len(e["input_shape"]) >= 3
        else t("finding.layout.transpose")
        if e["pytorch_class_dim"] == 1
        else ""
    )
    return "finding.ambiguous-class-axis", {
        "axes": ", ".join(map(str, e["axes"])),
        "input_shape": tuple(e["input_shape"]),
        "target_shape": tuple(e["target_shape"]),
        "losses": t("list.semicolon").join(_axis_loss(item, e["chosen"]) for item in e["losses"]),
        "pytorch_class_dim": e["pytorch_class_dim"],
        "layout": layout,
    }


def _target_out_of_range(e: Facts) -> tuple[str, Fields]:
    hint = e["hint"] if e["hint"] in ("padding", "one-based") else "other"
    return "finding.target-out-of-range", {
        "count": e["count"],
        "targets": e["targets"],
        "classes": e["classes"],
        "last": e["classes"] - 1,
        "ignore_index": e["ignore_index"],
        "positions": listing(e["positions"], e["values"], e["count"]),
        "hint": t(f"finding.hint.{hint}", value=e.get("padding")),
    }


def _ignore_index_is_a_class(e: Facts) -> tuple[str, Fields]:
    return "finding.ignore-index-is-a-class", {
        "ignore_index": e["ignore_index"],
        "last": e["classes"] - 1,
        "ignored": counted(e["ignored"], "target"),
    }


def _all_ignored(e: Facts) -> tuple[str, Fields]:
    return "finding.all-ignored", {"ignored": e["ignored"], "ignore_index": e["ignore_index"]}


def _soft_targets_not_normalized(e: Facts) -> tuple[str, Fields]:
    return "finding.soft-targets-not-normalized", {
        "count": e["count"],
        "positions_total": e["positions_total"],
        "sum_min": num(e["sum_min"]),
        "sum_max": num(e["sum_max"]),
        "negative": e["negative"],
        "positions": listing(e["positions"], e["sums"], e["count"]),
    }


def _neg_inf(e: Facts) -> Fields:
    return {
        "count": counted(e["count"], "position"),
        "positions": listing(e["positions"], None, e["count"]),
    }


def _neg_inf_at_target(e: Facts) -> tuple[str, Fields]:
    what = t("finding.what.logit" if e["op"] == "cross_entropy" else "finding.what.log-probability")
    return "finding.neg-inf-at-target", {**_neg_inf(e), "what": what}


def _neg_inf_label_smoothing(e: Facts) -> tuple[str, Fields]:
    return "finding.neg-inf-label-smoothing", {
        **_neg_inf(e),
        "label_smoothing": e["label_smoothing"],
    }


def _neg_inf_zero_probability(e: Facts) -> tuple[str, Fields]:
    return "finding.neg-inf-zero-probability", _neg_inf(e)


def _nonfinite_input(e: Facts) -> tuple[str, Fields]:
    return "finding.nonfinite-input", {
        "nan": e["nan"],
        "posinf": e["posinf"],
        "positions": e["positions"],
        "total_positions": e["total_positions"],
    }


def _float16_overflow(e: Facts) -> tuple[str, Fields]:
    if "losses_over_max" in e:
        return "finding.float16-overflow.loss", {"count": counted(e["losses_over_max"], "position")}
    infinite, saturated, wide = e["infinite"], e["saturated"], e["positions_spanning_over_max"]
    parts = [
        text
        for n, text in (
            (infinite, counted(infinite, "infinite_value")),
            (saturated, t("finding.float16.saturated", values=counted(saturated, "value"))),
            (wide, t("finding.float16.span", positions=counted(wide, "position"))),
        )
        if n
    ]
    return "finding.float16-overflow", {"parts": t("list.and").join(parts)}


def _float16_precision(e: Facts) -> tuple[str, Fields]:
    error, spacing = e["relative_probability_error"], e["spacing"]
    change = (
        f"{error:.1%}"
        if error < 1
        else t("finding.change.factor", factor=f"{math.exp(spacing / 2):.3g}")
    )
    return "finding.float16-precision", {
        "max_abs": num(e["max_abs"]),
        "spacing": num(spacing),
        "change": change,
    }


def _kl_reduction_mean(e: Facts) -> tuple[str, Fields]:
    return "finding.kl-reduction-mean", {"elements": e["elements"], "batch": e["batch"]}


def _kl_input_not_log_probs(e: Facts) -> tuple[str, Fields]:
    if not e.get("cli"):
        return "finding.kl-input-not-log-probs", {"rows": e["rows"], "of": e["of"]}
    if e.get("probabilities"):
        return "finding.kl-input-not-log-probs.probabilities", {"source": e["source"]}
    return _kl_not_normalized_rows(e)


def _kl_not_normalized_rows(e: Facts) -> tuple[str, Fields]:
    return "finding.kl.rows-not-normalized", {
        "source": e["source"],
        "rows": e["rows"],
        "of": e["of"],
        "logsumexp": f"{e['logsumexp']:.6g}",
        "first_row": e["first_row"],
    }


def _kl_target_not_normalized(e: Facts) -> tuple[str, Fields]:
    if e.get("cli"):
        return _kl_not_normalized_rows(e)
    kind = "exp(target)" if e["log_target"] else "target"
    return "finding.kl-target-not-normalized", {"rows": e["rows"], "of": e["of"], "kind": kind}


FINDING_FIELDS: dict[FindingCode, Callable[[Facts], tuple[str, Fields]]] = {
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
    """The finding's one-line message in this run's language: the evidence and the fix."""
    key, fields = FINDING_FIELDS[finding.code]({**finding.evidence, **finding.context})
    return " ".join(t(key, **fields).split())


def finding_json(finding: Finding) -> dict[str, JsonValue]:
    """The finding's object in a ``--json`` document."""
    return {
        "code": finding.code.value,
        "severity": finding.severity,
        "message": message(finding),
        "evidence": dict(finding.evidence),
    }


# ---------------------------------------------------------------- reasons

_INPUT_CAUSES = {ReasonCode.INPUT_HAS_NAN, ReasonCode.INPUT_HAS_POSINF, ReasonCode.INPUT_HAS_NEGINF}
_REASONS = {
    ReasonCode.ALL_IGNORED,
    ReasonCode.EMPTY,
    ReasonCode.NO_CLASSES,
    ReasonCode.ZERO_WEIGHT_SUM,
}


def reason_message(reason: NonfiniteReason) -> str:
    """Why the loss is NaN or infinite, in plain words (catalogue ``reason.*``)."""
    e = reason.evidence
    cause = t(f"reason.cause.{reason.code.value}") if reason.code in _INPUT_CAUSES else None
    if "nonfinite_positions" in e:
        text = t("reason.positions", count=e["nonfinite_positions"], positions=e["positions"])
        return t("reason.with_cause", text=text, cause=cause) if cause else text
    if reason.code in _REASONS:
        fields = {"loss": e["loss"], "ignored": e.get("ignored"), "positions": e.get("positions")}
        return t(f"reason.{reason.code.value}", **fields)
    if cause:
        return t("reason.loss_because", loss=e["loss"], cause=cause)
    return t("reason.loss", loss=e["loss"])


# ---------------------------------------------------------------- kl warnings


def kl_pass_messages(result: KLPass) -> list[str]:
    """The warnings a ``kl`` pass deserves: an inferred ambiguous axis, infinite or NaN KL."""
    stats, out = result.stats, []
    if result.axis_candidates:
        axes = ", ".join(map(str, result.axis_candidates))
        out.append(
            t(
                "warning.kl.ambiguous-axis",
                axes=axes,
                shape=list(result.shape),
                axis=result.class_dim,
            )
        )
    if stats.kl.posinf:
        out.append(t("warning.kl.posinf", count=stats.kl.posinf))
    if stats.kl.nan:
        out.append(t("warning.kl.nan", count=stats.kl.nan))
    if stats.nll.nonfinite:
        out.append(t("warning.kl.nll-nonfinite", count=stats.nll.nonfinite))
    return out
