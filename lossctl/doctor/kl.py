"""The classic KL mistakes, found block by block (``lossctl kl``) or on one call (the API).

``torch.nn.functional.kl_div(input, target)`` wants ``input`` = log Q (the model being
compared, ``OTHER``) and ``target`` = P (the reference, ``REFERENCE``), so:

* ``kl-input-not-log-probs``: with ``--log-probs``, rows of OTHER whose logsumexp is more
  than ``LSE_TOLERANCE`` from 0 (not log-probabilities); without it, an input whose every
  row lies in [0, 1] and sums to 1 (probabilities passed where logits belong: the softmax
  of probabilities is not the model's distribution).
* ``kl-target-not-normalized``: with ``--log-probs``, rows of REFERENCE whose logsumexp is
  far from 0 (``exp(target)`` does not sum to 1); for the API, a probability target that
  does not sum to 1 or is negative.
* ``kl-reduction-mean``: ``kl_div(reduction="mean")`` divides by N·C, not by N: it is not
  the KL (use ``batchmean``). Only the Python API has that reduction; the CLI reports the
  mean over positions, which is ``batchmean``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.spec import FloatArray
from lossctl.doctor.findings import Finding, FindingCode

LSE_TOLERANCE = 1e-3  # nats: float32 log_softmax is within ~1e-6 of 0
SUM_TOLERANCE = 1e-3


def _logsumexp(rows: FloatArray) -> FloatArray:
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        top = np.max(rows, axis=1, keepdims=True)
        safe = np.where(np.isfinite(top), top, 0.0)
        return np.asarray(safe[:, 0] + np.log(np.exp(rows - safe).sum(axis=1)), dtype=np.float64)


@dataclass
class _Tally:
    rows: int = 0
    flagged: int = 0
    first: int = -1
    worst: float = 0.0  # the logsumexp farthest from 0 (or the row sum farthest from 1)
    probability_like: int = 0

    def add(self, bad: npt.NDArray[np.bool_], deviation: FloatArray, offset: int) -> None:
        if bad.any():
            if self.first < 0:
                self.first = offset + int(np.argmax(bad))
            values = deviation[bad]
            pick = values[int(np.argmax(np.abs(values)))]
            self.worst = float(pick) if abs(pick) > abs(self.worst) else self.worst
        self.flagged += int(bad.sum())

    def then(self, later: _Tally) -> _Tally:
        """This tally followed by one of the rows after it (the same rule as :meth:`add`)."""
        first = self.first if self.first >= 0 or later.first < 0 else self.rows + later.first
        worst = later.worst if abs(later.worst) > abs(self.worst) else self.worst
        return _Tally(
            rows=self.rows + later.rows,
            flagged=self.flagged + later.flagged,
            first=first,
            worst=worst,
            probability_like=self.probability_like + later.probability_like,
        )


@dataclass
class KLInputCheck:
    """Watches every block of :func:`lossctl.core.kl_stream.stream_kl` (``observe``)."""

    log_probs: bool
    tallies: dict[str, _Tally] = field(
        default_factory=lambda: {"reference": _Tally(), "other": _Tally()}
    )

    def observe(self, reference: npt.NDArray[Any], other: npt.NDArray[Any]) -> None:
        """One block of rows of each input, as stored (any real dtype)."""
        for name, rows in (("reference", reference), ("other", other)):
            tally = self.tallies[name]
            offset = tally.rows
            tally.rows += rows.shape[0]
            if self.log_probs:
                lse = _logsumexp(np.asarray(rows, dtype=np.float64))
                bad = np.isfinite(lse) & (np.abs(lse) > LSE_TOLERANCE)
                tally.add(bad, lse, offset)
            elif rows.size and tally.probability_like == offset:  # else decided: no finding
                with np.errstate(invalid="ignore"):  # NaN: neither >= 0 nor <= 1
                    in_unit = np.flatnonzero((rows.min(axis=1) >= 0) & (rows.max(axis=1) <= 1))
                    sums = np.asarray(rows[in_unit], dtype=np.float64).sum(axis=1)
                tally.probability_like += int((np.abs(sums - 1) <= SUM_TOLERANCE).sum())

    @staticmethod
    def combined(checks: Sequence[KLInputCheck]) -> KLInputCheck:
        """The check of consecutive row ranges of one input (watched apart, on Dask
        workers), equal to one check that watched them all in order."""
        total = checks[0]
        for check in checks[1:]:
            tallies = {
                name: total.tallies[name].then(check.tallies[name]) for name in total.tallies
            }
            total = KLInputCheck(total.log_probs, tallies)
        return total

    def findings(self, sources: dict[str, str]) -> list[Finding]:
        out: list[Finding] = []
        for name in ("reference", "other"):
            tally, source = self.tallies[name], sources.get(name, name)
            if self.log_probs and tally.flagged:
                code = (
                    FindingCode.KL_INPUT_NOT_LOG_PROBS
                    if name == "other"
                    else FindingCode.KL_TARGET_NOT_NORMALIZED
                )
                evidence = {
                    "input": name,
                    "rows": tally.flagged,
                    "of": tally.rows,
                    "first_row": tally.first,
                    "logsumexp": tally.worst,
                    "tolerance": LSE_TOLERANCE,
                }
                out.append(Finding(code, "warning", evidence, {"source": source, "cli": True}))
            elif not self.log_probs and tally.rows and tally.probability_like == tally.rows:
                out.append(
                    Finding(
                        FindingCode.KL_INPUT_NOT_LOG_PROBS,
                        "warning",
                        {"input": name, "rows": tally.rows},
                        {"source": source, "cli": True, "probabilities": True},
                    )
                )
        return out


def kl_div_findings(
    input: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    reduction: str = "mean",
    log_target: bool = False,
) -> list[Finding]:
    """Findings for one ``kl_div(input, target, reduction=..., log_target=...)`` call
    (rows along the last axis)."""
    x = np.asarray(input, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    out: list[Finding] = []
    if reduction == "mean" and x.size > (x.shape[0] if x.ndim else 1):
        out.append(
            Finding(
                FindingCode.KL_REDUCTION_MEAN,
                "warning",
                {"elements": int(x.size), "batch": int(x.shape[0])},
            )
        )
    rows_x = x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
    lse = _logsumexp(rows_x)
    bad = int((np.isfinite(lse) & (np.abs(lse) > LSE_TOLERANCE)).sum())
    if bad:
        out.append(
            Finding(
                FindingCode.KL_INPUT_NOT_LOG_PROBS, "warning", {"rows": bad, "of": int(lse.size)}
            )
        )
    rows_t = t.reshape(-1, t.shape[-1]) if t.ndim else t.reshape(1, 1)
    with np.errstate(invalid="ignore", over="ignore"):
        total = _logsumexp(rows_t) if log_target else np.log(np.abs(rows_t.sum(axis=1)))
    negative = 0 if log_target else int((rows_t < 0).any(axis=1).sum())
    off = int((np.isfinite(total) & (np.abs(total) > LSE_TOLERANCE)).sum()) + negative
    if off:
        out.append(
            Finding(
                FindingCode.KL_TARGET_NOT_NORMALIZED,
                "warning",
                {"rows": off, "of": int(total.size), "log_target": log_target},
            )
        )
    return out
