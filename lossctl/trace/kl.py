"""The ``kl --explain`` trace: every step of KL(P_ref || P_other), as plain data.

Rows are the positions (in C order, the class axis moved last), columns the classes:
``p = softmax(reference)``, ``q = softmax(other)``, the log ratio ``log p - log q``,
``p · log ratio`` (0 where ``p = 0``), the sum per position and the mean over the counted
positions. The per-position value shown is the one ``lossctl kl`` reports (evaluated
without cancellation, so never negative); it equals the plain sum of the row above up
to rounding. Only for small inputs (``EXPLAIN_LIMIT`` values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.kl import kl_rows, rows_last
from lossctl.core.rows import log_softmax_rows
from lossctl.core.spec import DEFAULT_IGNORE_INDEX, FloatArray
from lossctl.errors import InputError
from lossctl.trace.phrases import say

EXPLAIN_LIMIT = 10_000


@dataclass(frozen=True)
class KLStep:
    name: str
    formula: str
    values: FloatArray


@dataclass(frozen=True)
class KLTrace:
    class_dim: int
    shape: tuple[int, ...]
    log_probs: bool
    steps: tuple[KLStep, ...]
    counted: int
    mean: float

    def as_json(self) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = [
            {"name": s.name, "formula": s.formula, "values": s.values} for s in self.steps
        ]
        steps.append(
            {
                "name": "mean",
                "formula": say("trace.kl.mean", count=self.counted),
                "values": self.mean,
            }
        )
        return steps


def explain_kl(
    reference: npt.ArrayLike,
    other: npt.ArrayLike,
    labels: npt.ArrayLike | None = None,
    *,
    class_dim: int,
    log_probs: bool = False,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
) -> KLTrace:
    """The steps of KL(P_ref || P_other) along ``class_dim`` (shapes already checked)."""
    ref = np.asarray(reference, dtype=np.float64)
    oth = np.asarray(other, dtype=np.float64)
    if ref.size > EXPLAIN_LIMIT:
        raise InputError(
            f"--explain shows every value: it takes at most {EXPLAIN_LIMIT} values per input, "
            f"these have {ref.size}"
        )
    x, _ = rows_last(ref, class_dim)
    y, _ = rows_last(oth, class_dim)
    log_p = x if log_probs else log_softmax_rows(x)
    log_q = y if log_probs else log_softmax_rows(y)
    with np.errstate(invalid="ignore", over="ignore"):
        p, q = np.exp(log_p), np.exp(log_q)
        ratio = log_p - log_q
        weighted = np.where(p == 0, 0.0, p * ratio)
    per_position = kl_rows(x, y, log_probs=log_probs)
    counted = np.ones(per_position.shape, dtype=bool)
    if labels is not None:
        counted = np.asarray(labels).reshape(-1) != ignore_index
    kept = per_position[counted]
    mean = float(np.mean(kept)) if kept.size else float("nan")
    head = "exp(reference)" if log_probs else "softmax(reference)"
    tail = "exp(other)" if log_probs else "softmax(other)"
    steps = (
        KLStep("p", say("trace.kl.p", head=head), p),
        KLStep("q", say("trace.kl.q", tail=tail), q),
        KLStep("log ratio", "log p - log q", ratio),
        KLStep("p · log ratio", "p · (log p - log q), 0 where p = 0", weighted),
        KLStep("KL per position", "Σ_c p · (log p - log q)", per_position),
    )
    return KLTrace(
        class_dim=class_dim,
        shape=tuple(int(n) for n in ref.shape),
        log_probs=log_probs,
        steps=steps,
        counted=int(counted.sum()),
        mean=mean,
    )
