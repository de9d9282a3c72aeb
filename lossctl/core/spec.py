"""What a loss is asked to compute: :class:`LossSpec`, the one declaration of its options.

A spec is built once (from keyword arguments in the Python API, from the option
groups in the CLI) and passed whole to every part that needs the options: the loss,
the gradient, the trace, the checks. It validates what can be validated without the
data; :func:`lossctl.core.losses.compute` checks the rest against the input's shape.
"""

from __future__ import annotations

from typing import Literal, TypedDict

import numpy as np
import numpy.typing as npt

from lossctl.core.frozen import Frozen
from lossctl.errors import InputError

Reduction = Literal["mean", "sum", "none"]
TargetKind = Literal["indices", "probabilities"]
LossOp = Literal["cross_entropy", "nll_loss"]
Precision = Literal["auto", "float64"]
FloatArray = npt.NDArray[np.float64]

REDUCTIONS: tuple[Reduction, ...] = ("mean", "sum", "none")
PRECISIONS: tuple[Precision, ...] = ("auto", "float64")
LOSS_OPS: tuple[LossOp, ...] = ("cross_entropy", "nll_loss")
DEFAULT_IGNORE_INDEX = -100
INT64_RANGE = range(-(2**63), 2**63)


def _checked_weight(weight: npt.ArrayLike | None) -> FloatArray | None:
    """``weight`` as float64, refused unless it holds finite real numbers."""
    if weight is None:
        return None
    array = np.asarray(weight)
    if array.dtype.kind not in "iuf":
        raise InputError(f"weight must hold real numbers, got dtype {array.dtype}", "weight")
    checked = array.astype(np.float64)
    if not np.all(np.isfinite(checked)):
        raise InputError("weight values must be finite numbers", "weight")
    return checked


class LossSpec(Frozen):
    """The options of ``cross_entropy`` / ``nll_loss``, as PyTorch names them.

    ``weight`` is one float64 value per class (``None``: all 1); ``class_dim`` is the
    axis of the input that holds the classes (``None``: inferred from the shapes);
    ``precision`` chooses the float32 kernel (``"auto"``) or float64 throughout. Immutable
    and validated when made (:class:`~lossctl.core.frozen.Frozen`). Two specs are equal when
    they are the same object (the weight is an array).

    >>> LossSpec("cross_entropy", reduction="sum").reduction
    'sum'
    """

    _fields = (
        "op",
        "weight",
        "ignore_index",
        "reduction",
        "label_smoothing",
        "class_dim",
        "precision",
    )
    __slots__ = _fields
    op: LossOp
    weight: FloatArray | None
    ignore_index: int
    reduction: Reduction
    label_smoothing: float
    class_dim: int | None
    precision: Precision

    def __init__(
        self,
        op: LossOp = "cross_entropy",
        weight: npt.ArrayLike | None = None,
        ignore_index: int = DEFAULT_IGNORE_INDEX,
        reduction: Reduction = "mean",
        label_smoothing: float = 0.0,
        class_dim: int | None = None,
        precision: Precision = "auto",
    ) -> None:
        if op not in LOSS_OPS:
            raise InputError(f"op must be one of cross_entropy, nll_loss; got {op!r}")
        if ignore_index not in INT64_RANGE:
            raise InputError(
                f"ignore_index must fit in a 64-bit integer, as in PyTorch; got {ignore_index}"
            )
        if reduction not in REDUCTIONS:
            raise InputError(f"reduction must be one of mean, sum, none; got {reduction!r}")
        if not 0.0 <= label_smoothing <= 1.0:  # also refuses NaN
            raise InputError(f"label_smoothing must be between 0.0 and 1.0; got {label_smoothing}")
        if op == "nll_loss" and label_smoothing:
            raise InputError("label smoothing applies to cross-entropy only")
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of auto, float64; got {precision!r}")
        weight = _checked_weight(weight)
        self._set(op, weight, ignore_index, reduction, label_smoothing, class_dim, precision)

    def with_class_dim(self, class_dim: int | None) -> LossSpec:
        """The same spec with the class axis ``class_dim`` (``None``: inferred)."""
        return LossSpec(
            self.op,
            self.weight,
            self.ignore_index,
            self.reduction,
            self.label_smoothing,
            class_dim,
            self.precision,
        )

    def check_weight(self, classes: int) -> None:
        """Refuse a weight that does not give one value per class."""
        if self.weight is not None and (self.weight.ndim != 1 or self.weight.shape[0] != classes):
            raise InputError(
                f"weight must have one value per class ({classes}), got shape "
                f"{fmt_shape(self.weight.shape)}",
                "weight",
            )


def fmt_shape(shape: tuple[int, ...]) -> str:
    """``(3, 2)``: a shape as PyTorch prints it, without NumPy integer types."""
    return str(tuple(int(n) for n in shape))


class LossKeywords(TypedDict, total=False):
    """The options of :class:`LossSpec` as keywords, for the functions of the Python API
    (``cross_entropy(x, t, weight=..., reduction="sum")``): declared once, here."""

    weight: npt.ArrayLike | None
    ignore_index: int
    reduction: Reduction
    label_smoothing: float
    class_dim: int | None
    precision: Precision


def spec_of(op: LossOp, options: LossKeywords) -> LossSpec:
    """The spec of ``op`` with ``options`` (``weight`` may be any array-like); an unknown
    keyword is a ``TypeError``, as for any Python function."""
    unknown = sorted(set(options) - set(LossKeywords.__annotations__))
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
    weight = options.get("weight")
    return LossSpec(
        op,
        weight=None if weight is None else np.asarray(weight),
        ignore_index=options.get("ignore_index", DEFAULT_IGNORE_INDEX),
        reduction=options.get("reduction", "mean"),
        label_smoothing=options.get("label_smoothing", 0.0),
        class_dim=options.get("class_dim"),
        precision=options.get("precision", "auto"),
    )
