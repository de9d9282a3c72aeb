"""What every check sees: the input, its labels and options, and the findings so far."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from lossctl.core.losses import FloatArray, LossOp, LossResult, loss_result
from lossctl.doctor.findings import Evidence, Finding, FindingCode, JsonValue, Severity
from lossctl.errors import InputError

EVIDENCE_POSITIONS = 20  # positions listed in the evidence (a message names the first few)


class Context(NamedTuple):
    """The arguments of one :func:`lossctl.doctor.diagnose` call and its findings (a list
    the checks append to)."""

    op: LossOp
    values: npt.NDArray[Any]
    labels: npt.NDArray[Any] | None
    axis: int
    classes: int
    weight: FloatArray | None
    ignore_index: int
    label_smoothing: float
    soft: bool
    findings: list[Finding]

    def add(
        self,
        code: FindingCode,
        severity: Severity,
        context: Evidence | None = None,
        **evidence: JsonValue,
    ) -> None:
        self.findings.append(Finding(code, severity, evidence, context or {}))

    def has(self, code: FindingCode) -> bool:
        return any(f.code == code for f in self.findings)

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
        return mean_loss(result)


def mean_loss(result: LossResult) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(result.total) / np.float64(result.denominator))


def positions(flat: npt.NDArray[np.intp], shape: tuple[int, ...]) -> list[list[int]]:
    """Flat position indices as index lists (``[]`` for a 0-D target)."""
    if not shape:
        return [[] for _ in range(flat.size)]
    return np.stack(np.unravel_index(flat, shape), axis=1).tolist()  # type: ignore[no-any-return]


def flagged(rows: npt.NDArray[np.intp], shape: tuple[int, ...]) -> tuple[int, list[list[int]]]:
    """How many positions the flat indices ``rows`` (in order) name, and the first few of
    them as index lists."""
    return int(rows.size), positions(rows[:EVIDENCE_POSITIONS], shape)


def position_shape(x: npt.NDArray[Any], axis: int) -> tuple[int, ...]:
    """The shape of the positions: ``x``'s shape without the class axis."""
    return tuple(int(n) for i, n in enumerate(x.shape) if i != axis)
