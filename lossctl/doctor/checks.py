"""Findings: the classic mistakes in what is passed to a loss, with the numbers that show them.

Pure NumPy, no I/O. :func:`diagnose` looks at an input (and optionally its labels) the way
``lossctl doctor`` and the warnings of ``lossctl ce`` / ``nll`` report it. Each
:class:`Finding` has a stable ``code`` (see :data:`CODES`), a ``severity`` (``info``,
``warning`` or ``error``), a one-line ``message`` that states the evidence and the fix,
and ``evidence``: the numbers behind it, JSON-ready.

Thresholds are chosen so that well-formed input raises nothing (see tests/test_doctor.py):

* **probabilities**: every value of every evaluable position is in [0, 1] and each
  position's sum over the classes is within ``1e-3`` of 1;
* **log-probabilities**: every value is ≤ ``1e-6`` and each position's log-sum-exp is
  within ``1e-3`` of 0;
* anything else is **logits**. Positions holding NaN or ``+inf`` are left out of this
  test (they are reported as ``nonfinite-input``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lossctl.core.losses import (
    DEFAULT_IGNORE_INDEX,
    AmbiguousClassAxisWarning,
    FloatArray,
    LossOp,
    LossResult,
    infer_class_dim,
    loss_result,
    normalize_axis,
    torch_class_dim,
)
from lossctl.errors import InputError

Severity = Literal["info", "warning", "error"]
InputKind = Literal["logits", "probabilities", "log-probabilities", "unknown"]

PROB_SUM_TOL = 1e-3
LOGPROB_MAX = 1e-6
LSE_TOL = 1e-3
FLOAT16_MAX = 65504.0
FLOAT16_PROB_ERROR = 0.01  # relative error of a probability from rounding a float16 logit
SHOWN_POSITIONS = 5  # positions listed in a message; evidence lists up to EVIDENCE_POSITIONS
EVIDENCE_POSITIONS = 20
BLOCK_ELEMENTS = 1 << 20  # float64 values per block when a pass needs a float64 copy

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
}


@dataclass(frozen=True)
class Finding:
    """One thing noticed about the input, with the numbers that show it."""

    code: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class KindReport:
    """The input kind along one class axis, with the statistics it was decided from."""

    kind: InputKind
    evidence: dict[str, Any]
    smallest: float = math.nan  # the smallest value, NaN if any (saves a pass for -inf checks)


# ---------------------------------------------------------------- helpers


def _num(value: float) -> str:
    """A number for a message: 4 significant digits, or the exact integer."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.4f}"


def _span(low: float, high: float) -> str:
    """``low…high``, or one number when both show the same."""
    a, b = _num(low), _num(high)
    return a if a == b else f"{a}…{b}"


def _count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 position``, ``2 positions``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _rows(x: npt.NDArray[Any], axis: int) -> npt.NDArray[Any]:
    """(positions, classes) view (or copy) of ``x`` with ``axis`` last."""
    moved = np.moveaxis(x, axis, -1)
    return moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1])


def _positions(flat: npt.NDArray[np.intp], shape: tuple[int, ...]) -> list[list[int]]:
    """Flat position indices as index lists (``[]`` for a 0-D target)."""
    if not shape:
        return [[] for _ in range(flat.size)]
    return np.stack(np.unravel_index(flat, shape), axis=1).tolist()  # type: ignore[no-any-return]


def _flagged(mask: npt.NDArray[np.bool_], shape: tuple[int, ...]) -> tuple[int, list[list[int]]]:
    """How many positions ``mask`` flags, and the first few of them as index lists."""
    return int(np.count_nonzero(mask)), _positions(np.flatnonzero(mask)[:EVIDENCE_POSITIONS], shape)


def _fmt_pos(position: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, position)) + ("," if len(position) == 1 else "") + ")"


def _listing(positions: list[list[int]], values: list[Any] | None, total: int) -> str:
    shown = positions[:SHOWN_POSITIONS]
    parts = [
        _fmt_pos(p) + ("" if values is None else f" = {_num(float(values[i]))}")
        for i, p in enumerate(shown)
    ]
    more = f", … ({total - len(shown)} more)" if total > len(shown) else ""
    return ", ".join(parts) + more


def _mean_loss(result: LossResult) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(result.total) / np.float64(result.denominator))


def _fitting_axes(input_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> list[int]:
    return [
        axis
        for axis in range(len(input_shape))
        if input_shape[:axis] + input_shape[axis + 1 :] == target_shape
    ]


def double_softmax_floor(classes: int) -> float:
    """The lowest cross-entropy a model whose outputs are probabilities can reach.

    softmax of a one-hot probability vector puts ``e / (e + C - 1)`` on the target, so the
    loss is at least ``log(1 + (C - 1)/e)``.
    """
    return math.log1p((classes - 1) / math.e)


# ---------------------------------------------------------------- input kind


def input_kind(values: npt.NDArray[Any], axis: int, *, detailed: bool = True) -> KindReport:
    """Logits, probabilities or log-probabilities along ``axis`` (thresholds: module doc).

    ``detailed`` adds the log-sum-exp range of logits (a pass over the data that the
    decision itself does not need).
    """
    x = np.asarray(values)
    classes = int(x.shape[axis])
    evidence: dict[str, Any] = {"class_dim": axis, "classes": classes}
    if x.size == 0:
        return KindReport("unknown", {**evidence, "positions": 0})
    rows = _rows(x, axis)
    evidence["positions"] = int(rows.shape[0])
    low, high = float(np.min(rows)), float(np.max(rows))
    smallest = low
    if math.isfinite(low) and math.isfinite(high):
        usable = rows
        finite_rows = rows
    else:
        with np.errstate(invalid="ignore"):
            bad = np.isnan(rows).any(axis=1) | np.isposinf(rows).any(axis=1)
            usable = rows[~bad]
            finite_rows = usable[np.isfinite(usable).all(axis=1)]
        if usable.shape[0] == 0:
            return KindReport("unknown", {**evidence, "evaluated_positions": 0}, smallest)
        finite_values = usable[np.isfinite(usable)]
        low = float(np.min(finite_values)) if finite_values.size else -math.inf
        high = float(np.max(finite_values)) if finite_values.size else -math.inf
        evidence["evaluated_positions"] = int(usable.shape[0])
    evidence["min"] = low
    evidence["max"] = high
    if finite_rows.shape[0] == usable.shape[0] and low >= 0.0 and high <= 1.0:
        sums = finite_rows.sum(axis=1, dtype=np.float64)
        sum_min, sum_max = float(np.min(sums)), float(np.max(sums))
        if abs(sum_min - 1.0) <= PROB_SUM_TOL and abs(sum_max - 1.0) <= PROB_SUM_TOL:
            return KindReport(
                "probabilities", {**evidence, "sum_min": sum_min, "sum_max": sum_max}, smallest
            )
    if high <= LOGPROB_MAX or detailed:
        lse = _logsumexp(usable)
        lse_min, lse_max = float(np.min(lse)), float(np.max(lse))
        evidence["logsumexp_min"] = lse_min
        evidence["logsumexp_max"] = lse_max
        if high <= LOGPROB_MAX and abs(lse_min) <= LSE_TOL and abs(lse_max) <= LSE_TOL:
            return KindReport("log-probabilities", evidence, smallest)
    return KindReport("logits", evidence, smallest)


def _logsumexp(rows: npt.NDArray[Any]) -> FloatArray:
    """log Σ exp over each row (rows have at least one class), block by block in float64.

    ``m + log Σ exp(x - m)``: good to ~1e-16 absolute, plenty for telling log-probabilities
    (0) from logits. A row whose maximum is NaN or ±inf gives NaN.
    """
    count, classes = rows.shape
    out = np.empty(count)
    step = max(1, BLOCK_ELEMENTS // classes)
    for start in range(0, count, step):
        block = np.array(rows[start : start + step], dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            maximum = block.max(axis=1)
            block -= maximum[:, None]
            np.exp(block, out=block)
            out[start : start + step] = maximum + np.log(block.sum(axis=1))
    return out


def _kind_phrase(report: KindReport) -> str:
    e = report.evidence
    if report.kind == "probabilities":
        return (
            f"probabilities (every value in [0, 1], each position sums to "
            f"{_span(e['sum_min'], e['sum_max'])})"
        )
    if report.kind == "log-probabilities":
        return (
            f"log-probabilities (every value ≤ 0, each position's log-sum-exp is "
            f"{_span(e['logsumexp_min'], e['logsumexp_max'])})"
        )
    if report.kind == "logits":
        lse = ""
        if "logsumexp_min" in e:
            lse = f", log-sum-exp {_span(e['logsumexp_min'], e['logsumexp_max'])}, not 0"
        return f"logits (values {_span(e['min'], e['max'])}{lse})"
    return "nothing to judge (no finite positions)"


# ---------------------------------------------------------------- the checks


@dataclass
class _Context:
    op: LossOp
    values: npt.NDArray[Any]
    labels: npt.NDArray[Any] | None
    axis: int
    classes: int
    weight: FloatArray | None
    ignore_index: int
    label_smoothing: float
    soft: bool
    findings: list[Finding] = field(default_factory=list)

    def add(self, code: str, severity: Severity, message: str, **evidence: Any) -> None:
        self.findings.append(Finding(code, severity, " ".join(message.split()), evidence))

    def loss(self, values: npt.ArrayLike, op: LossOp, labels: npt.ArrayLike) -> float:
        """Mean loss with the context's options (NaN if the options do not apply)."""
        try:
            result = loss_result(
                op,
                values,
                labels,
                weight=self.weight,
                ignore_index=self.ignore_index,
                label_smoothing=self.label_smoothing if op == "cross_entropy" else 0.0,
                class_dim=self.axis,
            )
        except InputError:
            return math.nan
        return _mean_loss(result)


def diagnose(
    values: npt.ArrayLike,
    labels: npt.ArrayLike | None = None,
    *,
    op: LossOp = "cross_entropy",
    class_dim: int | None = None,
    weight: npt.ArrayLike | None = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    label_smoothing: float = 0.0,
    result: LossResult | None = None,
    inline: bool = False,
) -> list[Finding]:
    """Everything noticed about ``values`` (and ``labels``) as input of ``op``.

    ``class_dim`` is the user's choice (``None``: inferred from the shapes, as
    :func:`lossctl.core.loss_result` does, and an ambiguity is a finding). ``result`` is
    the already computed loss of the same arguments, if any (saves a pass). ``inline``
    leaves out what ``ce``/``nll`` report otherwise: the ``input-kind`` info and
    ``nonfinite-input`` (their NaN-loss warning explains that).

    Raises :class:`InputError` for what no loss can be computed from (shapes that fit
    no class axis, non-numeric data, fractional class indices).
    """
    x = np.asarray(values)
    if x.dtype.kind not in "iuf":
        raise InputError(f"input must hold real numbers, got dtype {x.dtype}", "input")
    if x.ndim == 0:
        raise InputError("input is a scalar; it needs at least one axis of classes", "input")
    y = None if labels is None else np.asarray(labels)
    if y is not None and y.dtype.kind not in "iuf":
        raise InputError(f"target must hold numbers, got dtype {y.dtype}", "target")
    w = None if weight is None else np.asarray(weight, dtype=np.float64)

    fitting: list[int] = []
    kind_note = ""
    if y is None:
        axis, kind_note = _axis_without_labels(x, class_dim)
    elif class_dim is not None:
        axis = normalize_axis(class_dim, x.ndim, "class axis")
        expected = x.shape[:axis] + x.shape[axis + 1 :]
        if y.shape not in (x.shape, expected):
            raise InputError(
                f"target shape {tuple(y.shape)} does not fit input shape {tuple(x.shape)} with "
                f"class axis {axis}: expected {tuple(expected)} (class indices) or "
                f"{tuple(x.shape)} (probabilities)"
            )
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AmbiguousClassAxisWarning)
            axis = infer_class_dim(tuple(x.shape), tuple(y.shape))
        if y.shape != x.shape:
            fitting = _fitting_axes(tuple(x.shape), tuple(y.shape))
    ctx = _Context(
        op=op,
        values=x,
        labels=y,
        axis=axis,
        classes=int(x.shape[axis]),
        weight=w,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        soft=y is not None and y.shape == x.shape,
    )

    report = input_kind(x, axis, detailed=not inline)
    if not inline:
        _report_kind(ctx, report, kind_note)
        _check_nonfinite(ctx)
    _check_float16(ctx)
    if y is None:
        return ctx.findings

    clean = y
    if not ctx.soft:
        clean = _check_targets(ctx, y)
    if result is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AmbiguousClassAxisWarning)
            result = loss_result(
                op,
                x,
                clean,
                weight=w,
                ignore_index=ignore_index,
                label_smoothing=label_smoothing,
                class_dim=axis,
            )
    if len(fitting) > 1:
        _check_ambiguous(ctx, fitting, y, result)
    _check_kind_for_op(ctx, report, clean, result)
    if ctx.soft:
        _check_soft_targets(ctx, y)
    _check_neg_inf(ctx, clean, report.smallest)
    _check_float16_loss(ctx, result)
    return ctx.findings


def _axis_without_labels(x: npt.NDArray[Any], class_dim: int | None) -> tuple[int, str]:
    """The class axis to judge an input by when there are no labels."""
    if class_dim is not None:
        return normalize_axis(class_dim, x.ndim, "class axis"), ""
    default = torch_class_dim(x.ndim)
    if x.ndim == 1 or x.size == 0:
        return default, ""
    if input_kind(x, default, detailed=False).kind != "logits":
        return default, ""  # already probabilities or log-probabilities (or unjudgeable)
    for axis in range(x.ndim):
        if axis != default:
            kind = input_kind(x, axis, detailed=False).kind
            if kind in ("probabilities", "log-probabilities"):
                return axis, f", not PyTorch's class axis {default} (found without labels)"
    return default, ""


def _report_kind(ctx: _Context, report: KindReport, note: str) -> None:
    what = _kind_phrase(report)
    if report.kind == "logits":
        advice = "right for ce / CrossEntropyLoss; for nll, apply log_softmax first"
    elif report.kind == "log-probabilities":
        advice = "right for nll / NLLLoss (ce gives the same loss: log_softmax is idempotent)"
    elif report.kind == "probabilities":
        advice = "take the log for nll; ce wants the logits from before the softmax"
    else:
        advice = "see the other findings"
    ctx.add(
        "input-kind",
        "info",
        f"the input holds {what} along class axis {ctx.axis} "
        f"({_count(ctx.classes, 'class', 'classes')}){note}: {advice}",
        kind=report.kind,
        **report.evidence,
    )


def _check_nonfinite(ctx: _Context) -> None:
    x = ctx.values
    if x.size == 0 or x.dtype.kind != "f":
        return
    nan = int(np.count_nonzero(np.isnan(x)))
    posinf = int(np.count_nonzero(np.isposinf(x)))
    if nan == 0 and posinf == 0:
        return
    rows = _rows(x, ctx.axis)
    bad_rows = int(np.count_nonzero(np.isnan(rows).any(axis=1) | np.isposinf(rows).any(axis=1)))
    ctx.add(
        "nonfinite-input",
        "warning",
        f"the input holds {nan} NaN and {posinf} +inf values, in {bad_rows} of {rows.shape[0]} "
        "positions: softmax, the loss and the gradient of those positions are NaN; find where "
        "the model or the preprocessing produced them (a NaN in an ignored position still "
        "makes PyTorch's gradient NaN)",
        nan=nan,
        posinf=posinf,
        positions=bad_rows,
        total_positions=int(rows.shape[0]),
    )


def _check_float16(ctx: _Context) -> None:
    x = ctx.values
    if x.dtype != np.float16 or x.size == 0:
        return
    rows = _rows(x, ctx.axis)
    infinite = int(np.count_nonzero(np.isinf(rows)))
    saturated = int(np.count_nonzero(np.abs(rows) == np.float16(FLOAT16_MAX)))
    finite = np.isfinite(rows)
    wide64 = rows.astype(np.float64)
    high = np.where(finite, wide64, -np.inf).max(axis=1)
    low = np.where(finite, wide64, np.inf).min(axis=1)
    with np.errstate(invalid="ignore"):
        wide = int(np.count_nonzero(high - low > FLOAT16_MAX))
    if infinite or saturated or wide:
        parts = [
            text
            for n, text in (
                (infinite, f"{_count(infinite, 'infinite value')}"),
                (saturated, f"{_count(saturated, 'value')} at ±65504 (the float16 maximum)"),
                (
                    wide,
                    f"{_count(wide, 'position')} whose logits span more than 65504, so "
                    "x - max overflows in float16",
                ),
            )
            if n
        ]
        ctx.add(
            "float16-overflow",
            "warning",
            f"the float16 input holds {' and '.join(parts)} (PyTorch computes a float16 loss in "
            "float16, where these become inf): cast the logits to float32 before the loss "
            "(logits.float()), as Hugging Face models do",
            infinite=infinite,
            saturated=saturated,
            positions_spanning_over_max=wide,
        )
    magnitudes = np.abs(wide64[finite])
    largest = float(np.max(magnitudes)) if magnitudes.size else 0.0
    spacing = float(np.spacing(np.float16(min(largest, FLOAT16_MAX))))
    error = math.expm1(spacing / 2)
    if error > FLOAT16_PROB_ERROR:
        change = f"{error:.1%}" if error < 1 else f"a factor of {math.exp(spacing / 2):.3g}"
        ctx.add(
            "float16-precision",
            "warning",
            f"the float16 input reaches |x| = {_num(largest)}, where float16 numbers are "
            f"{_num(spacing)} apart: rounding a logit there changes its probability by up to "
            f"{change}; compute the logits (at least the last layer) in float32",
            max_abs=largest,
            spacing=spacing,
            relative_probability_error=error,
        )


def _check_float16_loss(ctx: _Context, result: LossResult) -> None:
    """With labels: per-position losses beyond float16's range (PyTorch returns inf)."""
    if ctx.values.dtype != np.float16:
        return
    with np.errstate(invalid="ignore"):
        over = int(np.count_nonzero(np.abs(result.per_position) > FLOAT16_MAX))
    if over and not any(f.code == "float16-overflow" for f in ctx.findings):
        ctx.add(
            "float16-overflow",
            "warning",
            f"{_count(over, 'position')} with a loss above 65504, the float16 maximum: PyTorch "
            "computing in float16 returns inf there; cast the logits to float32 before the loss",
            losses_over_max=over,
        )


def _check_targets(ctx: _Context, y: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Index-target findings; returns targets with out-of-range ones set to ignore_index."""
    flat = y.reshape(-1)
    if flat.dtype.kind == "f":
        bad = ~np.isfinite(flat) | (flat != np.round(flat))
        if bad.any():
            first_bad = int(np.argmax(bad))
            raise InputError(
                f"target {float(flat[first_bad])} at position "
                f"{_fmt_pos(_positions(np.array([first_bad]), y.shape)[0])} is not a whole class "
                "index",
                "target",
            )
    classes, ignore = ctx.classes, ctx.ignore_index
    counted = flat != ignore
    out = counted & ((flat < 0) | (flat >= classes))
    n_out = int(np.count_nonzero(out))
    if n_out:
        first = np.flatnonzero(out)[:EVIDENCE_POSITIONS]
        values = [int(v) for v in flat[first]]
        bad_values = flat[out]
        hint = _out_of_range_hint(bad_values, flat[counted & ~out], classes)
        positions = _positions(first, y.shape)
        ctx.add(
            "target-out-of-range",
            "error",
            f"{n_out} of {flat.size} targets are out of range for {classes} classes "
            f"(valid: 0…{classes - 1}, or ignore_index {ignore}): "
            f"{_listing(positions, values, n_out)}; {hint} (PyTorch: 'Target … is out of "
            "bounds' on CPU, a device-side assert on CUDA)",
            count=n_out,
            classes=classes,
            ignore_index=ignore,
            min=int(np.min(bad_values)),
            max=int(np.max(bad_values)),
            positions=positions,
            values=values,
        )
        y = np.where(out.reshape(y.shape), ignore, y)
        counted = counted & ~out
    n_counted = int(np.count_nonzero(counted))
    n_ignored = int(flat.size - n_counted - n_out)
    if 0 <= ignore < classes and n_ignored:
        ctx.add(
            "ignore-index-is-a-class",
            "warning",
            f"ignore_index {ignore} is also a class (0…{classes - 1}): "
            f"{_count(n_ignored, 'target')} equal to {ignore} skipped, yet class {ignore} still "
            "takes part in every other position's softmax (ignore_index ignores targets, not "
            f"classes); if class {ignore} is real, mark padding with -100 (the default) instead",
            ignore_index=ignore,
            classes=classes,
            ignored=n_ignored,
        )
    if flat.size and n_counted == 0 and n_ignored == flat.size:
        ctx.add(
            "all-ignored",
            "warning",
            f"every target ({n_ignored}) equals ignore_index ({ignore}): nothing is counted, so "
            "the mean is nan (0/0; PyTorch returns nan too) and the sum is 0; check the "
            "labels or the padding mask",
            ignored=n_ignored,
            ignore_index=ignore,
        )
    return y


def _out_of_range_hint(bad: npt.NDArray[Any], good: npt.NDArray[Any], classes: int) -> str:
    distinct = np.unique(bad)
    if distinct.size == 1 and distinct[0] < 0:
        value = int(distinct[0])
        return f"if {value} marks padding, pass --ignore-index {value} (ignore_index={value})"
    low = int(min(np.min(bad), np.min(good))) if good.size else int(np.min(bad))
    if low >= 1 and int(np.max(bad)) == classes:
        return "the labels look 1-based: subtract 1"
    return "the labels need the classes' 0-based indices, or the model more classes"


def _check_ambiguous(
    ctx: _Context, fitting: list[int], y: npt.NDArray[Any], result: LossResult
) -> None:
    losses: list[dict[str, Any]] = []
    texts: list[str] = []
    flat = y.reshape(-1)
    counted = flat != ctx.ignore_index
    for axis in fitting:
        classes = int(ctx.values.shape[axis])
        loss: float | None
        if axis == ctx.axis:
            loss = _mean_loss(result)
            texts.append(f"axis {axis} (used): {_num(loss)}")
        elif np.any(counted & ((flat < 0) | (flat >= classes))):
            loss = None
            texts.append(f"axis {axis}: n/a (targets ≥ {classes})")
        else:
            other = replace(ctx, axis=axis, classes=classes, findings=[])
            loss = other.loss(ctx.values, ctx.op, y)
            texts.append(f"axis {axis}: {_num(loss)}")
        losses.append({"class_dim": axis, "classes": classes, "loss": loss})
    shape = tuple(int(n) for n in ctx.values.shape)
    ctx.add(
        "ambiguous-class-axis",
        "warning",
        f"the class axis is ambiguous: axes {', '.join(map(str, fitting))} of input shape "
        f"{shape} all fit target shape {tuple(int(n) for n in y.shape)}; the mean loss with each "
        f"is {'; '.join(texts)}; pass --class-dim to choose (PyTorch silently uses axis "
        f"{torch_class_dim(len(shape))}: an (N, L, C) input needs .permute(0, 2, 1) first)",
        axes=fitting,
        chosen=ctx.axis,
        losses=losses,
    )


def _check_kind_for_op(
    ctx: _Context, report: KindReport, labels: npt.NDArray[Any], result: LossResult
) -> None:
    given = _mean_loss(result)
    if ctx.op == "cross_entropy" and report.kind == "probabilities":
        floor = double_softmax_floor(ctx.classes)
        with np.errstate(divide="ignore"):
            logp = np.log(np.asarray(ctx.values, dtype=np.float64))
        right = ctx.loss(logp, "cross_entropy", labels)
        ctx.add(
            "double-softmax",
            "warning",
            f"cross-entropy was given probabilities (each position sums to 1), so softmax is "
            f"applied twice: the mean loss {_num(given)} can never go below "
            f"log(1 + (C-1)/e) = {_num(floor)} for C = {ctx.classes}, whatever the model "
            f"learns; on these probabilities the loss is {_num(right)}; pass the logits from "
            "before the softmax (or use nll on their log)",
            classes=ctx.classes,
            loss=given,
            floor=floor,
            loss_on_probabilities=right,
        )
    elif ctx.op == "nll_loss" and report.kind in ("logits", "probabilities"):
        if report.kind == "logits":
            right = ctx.loss(ctx.values, "cross_entropy", labels)
            lse = report.evidence.get("logsumexp_min")
            if lse is None:
                lse_text = f"values up to {_num(report.evidence['max'])}, above 0"
            else:
                lse_text = (
                    f"log-sum-exp {_num(lse)}…{_num(report.evidence['logsumexp_max'])}, not 0"
                )
            ctx.add(
                "nll-on-logits",
                "warning",
                f"nll expects log-probabilities but was given logits ({lse_text}): the loss "
                f"{_num(given)} is just minus the input at the targets, not a likelihood, and "
                f"can be negative; cross-entropy on these logits gives {_num(right)}; use "
                "`lossctl ce` (F.cross_entropy), or apply log_softmax first",
                loss=given,
                loss_cross_entropy=right,
                **{k: v for k, v in report.evidence.items() if k.startswith("logsumexp")},
            )
        else:
            with np.errstate(divide="ignore"):
                logp = np.log(np.asarray(ctx.values, dtype=np.float64))
            right = ctx.loss(logp, "nll_loss", labels)
            ctx.add(
                "nll-on-probabilities",
                "warning",
                f"nll expects log-probabilities but was given probabilities (each position "
                f"sums to 1): the loss {_num(given)} is minus the probability at the targets, "
                f"always in [-1, 0]; on their log it is {_num(right)}; take the log first "
                "(`lossctl log`, torch.log) or give ce the logits",
                loss=given,
                loss_on_log=right,
            )


def _check_soft_targets(ctx: _Context, y: npt.NDArray[Any]) -> None:
    rows = _rows(np.asarray(y, dtype=np.float64), ctx.axis)
    if rows.shape[0] == 0 or ctx.classes == 0:
        return
    sums = rows.sum(axis=1)
    with np.errstate(invalid="ignore"):
        off = ~(np.abs(sums - 1.0) <= PROB_SUM_TOL)
        negative = (rows < 0).any(axis=1)
    bad = off | negative
    n_bad = int(np.count_nonzero(bad))
    if not n_bad:
        return
    where = np.flatnonzero(bad)[:EVIDENCE_POSITIONS]
    shape = tuple(int(n) for i, n in enumerate(y.shape) if i != ctx.axis)
    positions = _positions(where, shape)
    n_negative = int(np.count_nonzero(negative))
    sum_min = float(np.min(sums))
    sum_max = float(np.max(sums))
    ctx.add(
        "soft-targets-not-normalized",
        "warning",
        f"{n_bad} of {rows.shape[0]} probability targets do not sum to 1 (sums "
        f"{_num(sum_min)}…{_num(sum_max)}, {n_negative} with negative values): "
        f"{_listing(positions, sums[where].tolist(), n_bad)}; PyTorch accepts them silently "
        "and each position's loss scales with its sum; normalise the targets "
        "(q / q.sum(class_dim)) or pass class indices",
        count=n_bad,
        positions_total=int(rows.shape[0]),
        negative=n_negative,
        sum_min=sum_min,
        sum_max=sum_max,
        positions=positions,
        sums=sums[where].tolist(),
    )


def _check_neg_inf(ctx: _Context, labels: npt.NDArray[Any], smallest: float) -> None:
    x = ctx.values
    if x.dtype.kind != "f" or x.size == 0:
        return
    if not (math.isinf(smallest) or math.isnan(smallest)):  # NaN hides a -inf from min
        return
    rows = _rows(x, ctx.axis)
    neginf = np.isneginf(rows)
    if not neginf.any():
        return
    clean_row = ~(np.isnan(rows).any(axis=1) | np.isposinf(rows).any(axis=1))
    shape = tuple(int(n) for i, n in enumerate(x.shape) if i != ctx.axis)
    smoothing = ctx.op == "cross_entropy" and ctx.label_smoothing > 0.0
    what = "logit" if ctx.op == "cross_entropy" else "log-probability"
    if ctx.soft:
        q = _rows(np.asarray(labels, dtype=np.float64), ctx.axis)
        counted = clean_row
        at_target = (neginf & (q != 0)).any(axis=1) & counted
        at_zero = (neginf & (q == 0)).any(axis=1) & counted & ~at_target
    else:
        flat = labels.reshape(-1)
        counted = (flat != ctx.ignore_index) & clean_row
        index = np.where(counted, flat, 0).astype(np.intp)
        at_target = np.take_along_axis(neginf, index[:, None], axis=1)[:, 0] & counted
        at_zero = np.zeros_like(at_target)
    if at_target.any():
        n, positions = _flagged(at_target, shape)
        ctx.add(
            "neg-inf-at-target",
            "warning",
            f"{_count(n, 'position')} with a -inf {what} at the target: the loss there is inf (the "
            f"model gives the right class probability 0): {_listing(positions, None, n)}; mask "
            "with a large negative number (e.g. torch.finfo(dtype).min) instead of -inf, or "
            "fix the mask that removed the target class",
            count=n,
            positions=positions,
        )
    if smoothing:
        hit = neginf.any(axis=1) & counted & ~at_target
        if hit.any():
            n, positions = _flagged(hit, shape)
            ctx.add(
                "neg-inf-label-smoothing",
                "warning",
                f"label smoothing {ctx.label_smoothing} gives every class some target "
                f"probability, so {_count(n, 'position')} holding -inf logits get an infinite "
                f"loss: {_listing(positions, None, n)}; mask with a large negative number "
                "instead of -inf, or drop label smoothing",
                count=n,
                label_smoothing=ctx.label_smoothing,
                positions=positions,
            )
    elif at_zero.any():
        n, positions = _flagged(at_zero, shape)
        ctx.add(
            "neg-inf-zero-probability",
            "warning",
            f"{_count(n, 'position')} with a -inf logit where the probability target is 0: "
            f"0·(-inf) is nan, so the loss is nan: {_listing(positions, None, n)}; mask with a "
            "large negative number instead of -inf",
            count=n,
            positions=positions,
        )
