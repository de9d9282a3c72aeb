"""Softmax, log-softmax, NLL and cross-entropy with PyTorch's semantics.

Pure NumPy: no I/O, no printing. Everything is computed in float64 whatever the
input dtype, with the maximum shifted out and the maximum term split off with
``log1p`` (:mod:`lossctl.core.rows`), except cross-entropy with class-index targets
and no label smoothing, which goes through the blocked kernel of
:mod:`lossctl.core.kernels` (float32 ``exp`` with float64 sums for float16/float32
input unless ``precision="float64"``; no float64 copy of the input)::

    lse    = m + log1p(tail)                      # log-sum-exp
    nll    = log1p(tail) - (x_t - m)              # -log softmax(x)_t

>>> cross_entropy([[1.1741, -0.4859], [-3.718, 1.5257], [0.0222, 0.5898]], [1, 2])
3.2654828147938195
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from lossctl.core.exactsum import ZERO, ExactSum, exact_sum, reduced
from lossctl.core.facts import FactsCollector, FactsMode, InputFacts, facts_of_array
from lossctl.core.kernels import nll_of_logits
from lossctl.core.overflow import gather_rows, index_coefficients, repair_rows, scaled_total
from lossctl.core.rowpass import Inspect, picked_values, smoothed_blocks
from lossctl.core.rows import (
    RowStats,
    apply_along,
    log_softmax_rows,
    normalize_axis,
    positions_shape,
    row_stats,
    rows_last,
    softmax_rows,
)
from lossctl.core.spec import (
    DEFAULT_IGNORE_INDEX,
    REDUCTIONS,
    FloatArray,
    LossKeywords,
    LossOp,
    LossSpec,
    Reduction,
    TargetKind,
    fmt_shape,
    spec_of,
)
from lossctl.core.targets import TargetIndex, target_index
from lossctl.errors import InputError

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_IGNORE_INDEX",
    "REDUCTIONS",
    "AmbiguousClassAxisWarning",
    "FloatArray",
    "LossOp",
    "LossResult",
    "LossSpec",
    "Reduction",
    "RowStats",
    "TargetKind",
    "ambiguous_axis_text",
    "axis_warnings",
    "class_axis_candidates",
    "compute",
    "cross_entropy",
    "infer_class_dim",
    "log_softmax",
    "log_softmax_rows",
    "loss_result",
    "nll_loss",
    "normalize_axis",
    "reduce_result",
    "row_stats",
    "softmax",
    "torch_class_dim",
]

OnRows = Callable[[int, int], None]


class AmbiguousClassAxisWarning(UserWarning):
    """Several axes of the input could hold the classes; PyTorch's convention was used."""


class LossResult(NamedTuple):
    """A loss with everything it was computed from.

    ``loss`` is ``total / denominator`` for ``mean``, ``total`` for ``sum`` and
    ``per_position`` for ``none``. ``total`` and ``denominator`` are the exact
    partial sums, so results over shards can be merged. ``spec`` is the spec with
    the class axis resolved; ``targets`` the validated class indices (``None`` for
    probability targets); ``axis_candidates`` the axes that all fitted when the class
    axis was inferred and ambiguous (else empty). A NamedTuple (0.3 ms to define at every
    start, a frozen dataclass of 17 fields 2.2 ms); ``_replace`` makes a changed copy.
    """

    op: LossOp
    loss: float | FloatArray
    per_position: FloatArray
    total: float
    denominator: float
    exact_total: ExactSum | None  # None when a per-position loss is NaN or infinite
    exact_denominator: ExactSum
    count: int  # type: ignore[assignment]  # the field, not tuple.count: a public name
    ignored: int
    class_dim: int
    input_shape: tuple[int, ...]
    reduction: Reduction
    target_kind: TargetKind
    spec: LossSpec
    targets: TargetIndex | None = None
    axis_candidates: tuple[int, ...] = ()
    facts: InputFacts | None = None  # of the input's rows, when the pass was asked for them


def _real_array(x: npt.ArrayLike, what: str) -> npt.NDArray[np.generic]:
    array = np.asarray(x)
    if array.dtype.kind not in "iuf":
        raise InputError(f"{what} must hold real numbers, got dtype {array.dtype}", what)
    return array


def log_softmax(x: npt.ArrayLike, dim: int = -1) -> FloatArray:
    """``log softmax(x)_c = (x_c - m) - log1p(sum_{j != argmax} exp(x_j - m))`` along ``dim``."""
    return apply_along(np.asarray(_real_array(x, "input"), np.float64), dim, log_softmax_rows)


def softmax(x: npt.ArrayLike, dim: int = -1) -> FloatArray:
    """``softmax(x)_c = exp(x_c - m) / sum_j exp(x_j - m)`` along ``dim``."""
    return apply_along(np.asarray(_real_array(x, "input"), np.float64), dim, softmax_rows)


def torch_class_dim(ndim: int) -> int:
    """PyTorch's class axis: 0 for a 1-D input, else 1."""
    return 0 if ndim == 1 else 1


def class_axis_candidates(
    input_shape: tuple[int, ...], target_shape: tuple[int, ...]
) -> tuple[int, ...]:
    """The axes of the input whose removal gives the target's shape."""
    return tuple(
        axis
        for axis in range(len(input_shape))
        if positions_shape(input_shape, axis) == target_shape
    )


def _choose_class_dim(
    input_shape: tuple[int, ...], target_shape: tuple[int, ...]
) -> tuple[int, tuple[int, ...]]:
    """The inferred class axis and, when several fit, every fitting axis."""
    ndim = len(input_shape)
    if ndim == 0:
        raise InputError("input is a scalar; it needs at least one axis of classes")
    if target_shape == input_shape:
        return torch_class_dim(ndim), ()
    fitting = class_axis_candidates(input_shape, target_shape)
    if not fitting:
        raise InputError(
            f"target shape {fmt_shape(target_shape)} does not fit input shape "
            f"{fmt_shape(input_shape)}: class-index targets need the input's shape without "
            "its class axis, probability targets the input's shape"
        )
    if len(fitting) == 1:
        return fitting[0], ()
    default = torch_class_dim(ndim)
    return (default if default in fitting else fitting[-1]), fitting


def ambiguous_axis_text(
    input_shape: tuple[int, ...], target_shape: tuple[int, ...], fitting: tuple[int, ...]
) -> str:
    """The message of :class:`AmbiguousClassAxisWarning`."""
    chosen, _ = _choose_class_dim(input_shape, target_shape)
    return (
        f"the class axis is ambiguous: axes {', '.join(map(str, fitting))} of input shape "
        f"{fmt_shape(input_shape)} all fit target shape {fmt_shape(target_shape)}; "
        f"using axis {chosen} (pass class_dim / --class-dim to choose)"
    )


def axis_warnings(result: LossResult) -> list[str]:
    """The warning a result deserves when its class axis was inferred and ambiguous."""
    if not result.axis_candidates:
        return []
    positions = positions_shape(result.input_shape, result.class_dim)
    return [ambiguous_axis_text(result.input_shape, positions, result.axis_candidates)]


def infer_class_dim(input_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> int:
    """The axis of the input whose removal gives the target's shape.

    Probability targets (same shape as the input) use PyTorch's axis. When several
    axes fit (equal sizes side by side), PyTorch's axis is used if it fits, else the
    last fitting axis, with an :class:`AmbiguousClassAxisWarning`.
    """
    axis, fitting = _choose_class_dim(input_shape, target_shape)
    if fitting:
        warnings.warn(
            ambiguous_axis_text(input_shape, target_shape, fitting),
            AmbiguousClassAxisWarning,
            stacklevel=3,
        )
    return axis


def _resolve_class_dim(
    input_shape: tuple[int, ...], target_shape: tuple[int, ...], class_dim: int | None
) -> tuple[int, tuple[int, ...]]:
    if class_dim is None:
        return _choose_class_dim(input_shape, target_shape)
    axis = normalize_axis(class_dim, len(input_shape), "class axis")
    if target_shape != input_shape:
        expected = positions_shape(input_shape, axis)
        if target_shape != expected:
            raise InputError(
                f"target shape {fmt_shape(target_shape)} does not fit input shape "
                f"{fmt_shape(input_shape)} with class axis {axis}: expected "
                f"{fmt_shape(expected)} (class indices) or {fmt_shape(input_shape)} "
                "(probabilities)"
            )
    return axis, ()


def compute(
    spec: LossSpec,
    input: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    on_rows: OnRows | None = None,
    facts: FactsMode = "none",
) -> LossResult:
    """NLL or cross-entropy of ``input`` against ``target`` as ``spec`` says.

    Class-index targets: ``l_n = (1-eps)·w[t_n]·(-logp[n, t_n]) + (eps/C)·sum_c w_c·(-logp[n, c])``,
    0 where ``t_n == ignore_index``; mean divides by ``sum_n w[t_n]`` over counted positions.
    Probability targets: ``l_n = -sum_c w_c·q'[n, c]·logp[n, c]`` with
    ``q' = (1-eps)·q + eps/C``; mean divides by the number of positions.
    For ``nll_loss`` the input is taken as ``logp`` as it is. ``on_rows(k, M)`` reports
    progress through the blocked kernel (``k`` more of ``M`` positions done). ``facts``
    (``"plain"``, ``"logsumexp"``) fills ``result.facts`` from the blocks the loss reads
    (:class:`~lossctl.core.facts.FactsCollector`; soft targets: a pass of its own).
    """
    array = _real_array(input, "input")
    labels = np.asarray(target)
    if labels.dtype.kind not in "iuf":
        raise InputError(f"target must hold numbers, got dtype {labels.dtype}", "target")
    axis, candidates = _resolve_class_dim(array.shape, labels.shape, spec.class_dim)
    spec = spec.with_class_dim(axis)
    spec.check_weight(array.shape[axis])
    if labels.shape == array.shape:
        result = _probability_loss(spec, array, labels)
        if facts == "none":
            return result
        return result._replace(facts=facts_of_array(array, axis, logsumexp=facts == "logsumexp"))
    collector = (
        None
        if facts == "none"
        else FactsCollector(array.shape[axis], logsumexp=facts == "logsumexp")
    )
    result = _index_loss(spec, array, labels, candidates, on_rows, collector)
    return result if collector is None else result._replace(facts=collector.facts())


def _probability_loss(
    spec: LossSpec, array: npt.NDArray[np.generic], labels: npt.NDArray[np.generic]
) -> LossResult:
    """Cross-entropy against class probabilities (soft targets)."""
    axis = int(spec.class_dim or 0)
    if spec.op == "nll_loss":
        raise InputError(
            "nll_loss takes class-index targets (the input's shape without the class axis); "
            f"the target has the input's shape {fmt_shape(array.shape)}"
        )
    if spec.ignore_index != DEFAULT_IGNORE_INDEX:
        raise InputError(
            "ignore_index applies to class-index targets; probability targets have no "
            "ignored positions (drop --ignore-index)"
        )
    classes = array.shape[axis]
    positions = positions_shape(array.shape, axis)
    if classes == 0:  # every position's loss is -Σ of nothing; (10**12, 0) allocates nothing
        count = math.prod(positions)
        empty = np.broadcast_to(np.float64(-0.0), positions)
        denominator = ExactSum(count if array.size else 0, 0)
        return reduce_result(
            spec, array.shape, empty, denominator, count, 0, None, (), exact_total=ZERO
        )
    probs = rows_last(np.asarray(labels, dtype=np.float64), axis)
    if spec.label_smoothing > 0.0:
        probs = probs * (1.0 - spec.label_smoothing) + spec.label_smoothing / classes
    rows = rows_last(np.asarray(array, dtype=np.float64), axis)
    logp = log_softmax_rows(rows)
    with np.errstate(invalid="ignore", over="ignore"):
        weighted = probs if spec.weight is None else probs * spec.weight
        per_row = -np.sum(weighted * logp, axis=1)
    repair_rows(
        per_row,
        np.ones(per_row.shape, dtype=bool),
        lambda flat: rows[flat],
        lambda flat: probs[flat] if spec.weight is None else probs[flat] * spec.weight,
    )
    count = per_row.shape[0]
    per_position = per_row.reshape(positions_shape(array.shape, axis))
    # PyTorch: the mean over an empty input is NaN (0 / numel·C⁻¹), also with 0 classes
    denominator = ExactSum(count if array.size else 0, 0)
    return reduce_result(spec, array.shape, per_position, denominator, count, 0, None, ())


def _index_loss(
    spec: LossSpec,
    array: npt.NDArray[np.generic],
    labels: npt.NDArray[np.generic],
    candidates: tuple[int, ...],
    on_rows: OnRows | None,
    collector: FactsCollector | None,
) -> LossResult:
    """NLL or cross-entropy against class indices (the facts into ``collector``)."""
    axis = int(spec.class_dim or 0)
    classes = array.shape[axis]
    if classes == 0:
        raise InputError("the input has 0 classes along its class axis; there is nothing to pick")
    targets = target_index(labels, classes, spec.ignore_index, spec.weight)
    eps = spec.label_smoothing
    inspect = None if collector is None else collector.add
    picked: FloatArray | None = None  # -logp[t], when it does not depend on the weights
    if spec.op == "nll_loss":
        picked = picked_values(array, axis, targets, inspect)
    elif eps == 0.0:
        moved = np.moveaxis(array, axis, -1)
        picked = nll_of_logits(
            moved, targets.indices, precision=spec.precision, on_rows=on_rows, inspect=inspect
        ).reshape(-1)

    def losses(e: int, inspect: Inspect | None = None) -> FloatArray:
        """The per-row losses with the weights in units of 2**e."""
        target_weight = np.ldexp(targets.weight, -e) if e else targets.weight
        weight = None if spec.weight is None else np.ldexp(spec.weight, -e)
        with np.errstate(invalid="ignore", over="ignore"):
            if picked is not None:
                per_row = target_weight * picked
            else:
                per_row = smoothed_blocks(eps, weight, array, axis, targets, target_weight, inspect)
        per_row = np.where(targets.counted, per_row, 0.0)
        if spec.op == "cross_entropy":  # nll_loss: one product, rounded once
            repair_rows(
                per_row,
                targets.counted,
                lambda flat: gather_rows(array, axis, flat),
                lambda flat: index_coefficients(
                    targets.indices[flat], target_weight[flat], weight, classes, eps
                ),
            )
        return per_row

    per_row = losses(0, None if picked is not None else inspect)  # the facts: one pass
    denominator = exact_sum(targets.weight)
    assert denominator is not None, "weights are checked to be finite"
    per_position = per_row.reshape(positions_shape(array.shape, axis))
    return reduce_result(
        spec,
        array.shape,
        per_position,
        denominator,
        *targets.counted_and_ignored(),
        targets,
        candidates,
        exact_total=scaled_total(per_row, spec.weight, losses),
    )


def reduce_result(
    spec: LossSpec,
    input_shape: tuple[int, ...],
    per_position: FloatArray,
    denominator: ExactSum,
    count: int,
    ignored: int,
    targets: TargetIndex | None = None,
    candidates: tuple[int, ...] = (),
    target_kind: TargetKind | None = None,
    exact_total: ExactSum | None = None,
) -> LossResult:
    """The result of per-position losses: their exact sum (unless given), and the reduction
    ``spec`` asks for (``mean`` = exact sum / exact ``denominator``, rounded once)."""
    exact_total = exact_sum(per_position) if exact_total is None else exact_total
    total = float(np.sum(per_position)) if exact_total is None else exact_total.to_float()
    loss: float | FloatArray = (
        per_position
        if spec.reduction == "none"
        else reduced(spec.reduction, exact_total, denominator, total)
    )
    return LossResult(
        op=spec.op,
        loss=loss,
        per_position=per_position,
        total=total,
        denominator=denominator.to_float(),
        exact_total=exact_total,
        exact_denominator=denominator,
        count=count,
        ignored=ignored,
        class_dim=int(spec.class_dim or 0),
        input_shape=tuple(int(n) for n in input_shape),
        reduction=spec.reduction,
        target_kind=target_kind or ("indices" if targets is not None else "probabilities"),
        spec=spec,
        targets=targets,
        axis_candidates=candidates,
    )


def loss_result(
    op: LossOp,
    input: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    on_rows: OnRows | None = None,
    **options: Unpack[LossKeywords],
) -> LossResult:
    """:func:`compute` with the options as keywords (``weight``, ``ignore_index``,
    ``reduction``, ``label_smoothing``, ``class_dim``, ``precision``: see
    :class:`~lossctl.core.spec.LossSpec`); warns when the class axis is ambiguous.

    Raises :class:`InputError` for what PyTorch (or lossctl) refuses.
    """
    result = compute(spec_of(op, options), input, target, on_rows=on_rows)
    if result.axis_candidates:
        warnings.warn(
            ambiguous_axis_text(
                result.input_shape, tuple(np.shape(target)), result.axis_candidates
            ),
            AmbiguousClassAxisWarning,
            stacklevel=2,
        )
    return result


def nll_loss(
    input: npt.ArrayLike, target: npt.ArrayLike, **options: Unpack[LossKeywords]
) -> float | FloatArray:
    """``l_n = -w[t_n]·input[n, t_n]``; mean = ``sum l_n / sum w[t_n]`` over non-ignored targets.

    Options as PyTorch's ``F.nll_loss``: ``weight``, ``ignore_index`` (-100),
    ``reduction`` ("mean"), and ``class_dim`` (inferred from the shapes).

    >>> nll_loss([[-0.5, -1.0]], [1])
    1.0
    """
    return loss_result("nll_loss", input, target, **options).loss


def cross_entropy(
    input: npt.ArrayLike, target: npt.ArrayLike, **options: Unpack[LossKeywords]
) -> float | FloatArray:
    """``nll_loss(log_softmax(input, class_dim), target)``; also label smoothing, soft targets.

    Options as PyTorch's ``F.cross_entropy``: ``weight``, ``ignore_index`` (-100),
    ``reduction`` ("mean"), ``label_smoothing`` (0.0), and ``class_dim`` (inferred from the
    shapes) and ``precision`` ("auto": the float32 kernel for float32 input; "float64").

    >>> round(cross_entropy([[0.0, 0.0]], [0]), 6)  # log 2
    0.693147
    """
    return loss_result("cross_entropy", input, target, **options).loss
