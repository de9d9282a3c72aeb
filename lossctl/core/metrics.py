"""The numbers people compute next to a loss: perplexity, accuracy, top-k, entropy, per class.

Pure NumPy, no I/O. All metrics are over the *counted* positions (targets that are not
``ignore_index``); probability targets count every position and use the most probable
target class (first on ties) as "the" target. They do not use ``--weight`` or
``--label-smoothing``: the NLL below is the plain ``-log p[target]``.

* **NLL per position**: ``-log_softmax(x)[target]`` for ``ce``, ``-x[target]`` for ``nll``
  (the input taken as log-probabilities); for probability targets ``-Σ_c q_c·log p_c``.
* **standard errors** (``mean_nll_stderr``, ``perplexity_stderr``): of the mean NLL,
  ``s / sqrt(n)`` with the sample standard deviation ``s`` (n - 1; NaN for n < 2); of the
  perplexity by the delta method, ``exp(mean NLL) · stderr(mean NLL)`` (first order:
  honest when the stderr is small against 1).
* **perplexity** ``= exp(mean NLL)``. For ``nll`` only when the input looks like
  log-probabilities (otherwise ``None``, with a note: exp of minus a logit means nothing).
* **accuracy**: the fraction whose arg-max class (first on ties, like ``torch.argmax``) is
  the target. **top-k accuracy**: the target is among the ``k`` highest, ties broken by
  class index the same way, so top-1 equals accuracy. Positions holding NaN are wrong.
* **entropy**: mean over positions of ``-Σ p·log p`` of the predicted distribution
  (``softmax(x)``; ``exp(x)`` for ``nll``, when that is a distribution), in nats.
* **per class**: for each target class present, the number of positions, their mean NLL
  and accuracy, most frequent first.

``causal_shift`` implements ``--shift`` (the Hugging Face causal-LM convention).
Everything is vectorised; rows are processed in blocks of about ``CHUNK_ELEMENTS`` values
to bound memory on 4096-by-50257 inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lossctl.core.facts import InputFacts, facts_of_array, kind_of
from lossctl.core.kernels import RowSource
from lossctl.core.rows import normalize_axis, rows_last
from lossctl.core.spec import DEFAULT_IGNORE_INDEX, FloatArray, LossOp
from lossctl.errors import InputError

CHUNK_ELEMENTS = 1 << 20  # values per block (8 MiB as float64; a few such buffers)
PER_CLASS_JSON_LIMIT = 1000
DEFAULT_TOPK = 5


@dataclass(frozen=True)
class ClassStats:
    """Metrics of the positions whose target is one class."""

    cls: int
    count: int
    mean_loss: float
    accuracy: float

    def as_json(self) -> dict[str, Any]:
        return {
            "class": self.cls,
            "count": self.count,
            "mean_loss": self.mean_loss,
            "accuracy": self.accuracy,
        }


@dataclass(frozen=True)
class Metrics:
    """Metrics over the counted positions (see the module docstring for definitions)."""

    count: int
    classes: int
    mean_nll: float
    perplexity: float | None
    perplexity_note: str | None
    accuracy: float
    topk: int
    topk_accuracy: float
    entropy: float | None
    per_class: tuple[ClassStats, ...]  # every target class present, most frequent first
    mean_nll_stderr: float = math.nan
    perplexity_stderr: float | None = None

    def as_json(self, limit: int = PER_CLASS_JSON_LIMIT) -> dict[str, Any]:
        """The ``metrics`` object of ``--json``; ``per_class`` keeps the ``limit`` most
        frequent classes (``per_class_truncated`` says whether any were left out)."""
        return {
            "count": self.count,
            "perplexity": self.perplexity,
            "perplexity_note": self.perplexity_note,
            "mean_nll": self.mean_nll,
            "mean_nll_stderr": self.mean_nll_stderr,
            "perplexity_stderr": self.perplexity_stderr,
            "accuracy": self.accuracy,
            "topk": {"k": self.topk, "accuracy": self.topk_accuracy},
            "entropy": self.entropy,
            "classes_present": len(self.per_class),
            "per_class_truncated": len(self.per_class) > limit,
            "per_class": [stats.as_json() for stats in self.per_class[:limit]],
        }


def _looks_like_log_probabilities(x: npt.NDArray[Any], axis: int, facts: InputFacts | None) -> bool:
    if x.size == 0:
        return False
    return kind_of(facts_of_array(x, axis) if facts is None else facts) == "log-probabilities"


def _mean(values: FloatArray) -> float:
    if values.size == 0:
        return math.nan
    return float(np.mean(values))


def compute_metrics(
    op: LossOp,
    input: npt.ArrayLike,
    target: npt.ArrayLike,
    *,
    class_dim: int,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    topk: int = DEFAULT_TOPK,
    facts: InputFacts | None = None,
) -> Metrics:
    """Metrics of ``input`` against ``target`` with the classes on axis ``class_dim``.

    The arguments are assumed valid (as :func:`lossctl.core.loss_result` checks them).
    ``facts`` (of the input along ``class_dim``, e.g. a loss result's) spare ``nll`` a pass
    to tell log-probabilities. The rows are read in blocks, the pages of a memory-mapped
    input released after each.
    """
    if topk < 1:
        raise InputError(f"--topk must be at least 1, got {topk}")
    x = np.asarray(input)
    y = np.asarray(target)
    axis = normalize_axis(class_dim, x.ndim, "class axis")
    rows = rows_last(x, axis)
    positions, classes = rows.shape
    soft = y.shape == x.shape
    q_rows: npt.NDArray[Any] | None = None
    if soft:
        q_rows = rows_last(y, axis)
        counted = np.ones(positions, dtype=bool)
        target_class = np.argmax(q_rows, axis=1) if classes else np.zeros(positions, dtype=np.intp)
    else:
        flat = y.reshape(-1)
        counted = flat != ignore_index
        target_class = np.where(counted, flat, 0).astype(np.intp)

    distribution = op == "cross_entropy" or _looks_like_log_probabilities(x, axis, facts)
    source = RowSource(rows)
    nll = np.zeros(positions)
    entropy = np.zeros(positions)
    rank = np.zeros(positions, dtype=np.intp)
    step = max(1, CHUNK_ELEMENTS // max(classes, 1))
    for start in range(0, positions if classes else 0, step):
        stop = min(start + step, positions)
        t = target_class[start:stop]
        original = source.block(start, stop)
        rank[start:stop] = _ranks(original, t)
        block = np.array(original, dtype=np.float64)
        q = None if q_rows is None else np.asarray(q_rows[start:stop], dtype=np.float64)
        if op == "cross_entropy":
            nll[start:stop], entropy[start:stop] = _softmax_stats(block, t, q)
        else:
            with np.errstate(invalid="ignore", over="ignore"):
                nll[start:stop] = -np.take_along_axis(block, t[:, None], axis=1)[:, 0]
                if distribution:
                    p = np.exp(block)
                    entropy[start:stop] = -_sum_p_times(p, block)
        source.release(start, stop)

    kept_nll = nll[counted]
    kept_rank = rank[counted]
    count = int(kept_nll.size)
    mean_nll = _mean(kept_nll)
    perplexity: float | None
    note: str | None = None
    if distribution:
        with np.errstate(over="ignore"):
            perplexity = float(np.exp(mean_nll))
    else:
        perplexity = None
        note = "the input is not log-probabilities, so exp(mean NLL) is not a perplexity"
    correct = (kept_rank == 0).astype(np.float64)
    stderr = _stderr(kept_nll)
    with np.errstate(over="ignore", invalid="ignore"):
        perplexity_stderr = None if perplexity is None else float(perplexity * stderr)
    return Metrics(
        count=count,
        classes=int(classes),
        mean_nll=mean_nll,
        perplexity=perplexity,
        perplexity_note=note,
        accuracy=_mean(correct),
        topk=topk,
        topk_accuracy=_mean((kept_rank < topk).astype(np.float64)),
        entropy=_mean(entropy[counted]) if distribution else None,
        per_class=_per_class(target_class[counted], kept_nll, correct, int(classes)),
        mean_nll_stderr=stderr,
        perplexity_stderr=perplexity_stderr,
    )


def _stderr(values: FloatArray) -> float:
    """Standard error of the mean: sample standard deviation (n - 1) / sqrt(n)."""
    if values.size < 2 or not np.all(np.isfinite(values)):
        return math.nan
    return float(np.std(values, ddof=1) / math.sqrt(values.size))


def _ranks(rows: npt.NDArray[Any], target: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """How many classes come before the target in a descending sort that breaks ties by
    class index (0: the arg-max). Compared in the input's own dtype; NaN rows rank last."""
    classes = rows.shape[1]
    picked = np.take_along_axis(rows, target[:, None], axis=1)
    with np.errstate(invalid="ignore"):
        rank = np.count_nonzero(rows > picked, axis=1)
        equal = np.count_nonzero(rows == picked, axis=1)
    tied = np.flatnonzero(equal > 1)  # rare: only those rows need the tie-break pass
    if tied.size:
        before = (rows[tied] == picked[tied]) & (np.arange(classes) < target[tied, None])
        rank[tied] += np.count_nonzero(before, axis=1)
    with np.errstate(invalid="ignore"):
        nan_rows = np.isnan(np.max(rows, axis=1)) if rows.dtype.kind == "f" else None
    if nan_rows is not None:
        rank[nan_rows] = classes  # a NaN anywhere: never right
    return np.asarray(rank, dtype=np.intp)


def _sum_p_times(p: FloatArray, x: FloatArray) -> FloatArray:
    """``Σ_c p_c·x_c`` per row, with ``0·(-inf)`` taken as 0 (a class of probability 0)."""
    with np.errstate(invalid="ignore"):
        products = p * x
        sums = products.sum(axis=1)
    redo = np.flatnonzero(np.isnan(sums))
    if redo.size:
        fixed = np.where(p[redo] > 0, products[redo], 0.0)
        sums[redo] = fixed.sum(axis=1)
    return np.asarray(sums, dtype=np.float64)


def _softmax_stats(
    block: FloatArray, target: npt.NDArray[np.intp], q: FloatArray | None
) -> tuple[FloatArray, FloatArray]:
    """Per row of logits (float64, overwritten): the NLL at the target (or the cross-entropy
    with probability targets ``q``) and the entropy of the softmax, with the maximum term
    split off and ``log1p`` as in :func:`lossctl.core.row_stats`."""
    with np.errstate(invalid="ignore", over="ignore"):
        argmax = np.argmax(block, axis=1)[:, None]
        maximum = np.take_along_axis(block, argmax, axis=1)
        block -= maximum  # shifted: x - m
        terms = np.exp(block)
        np.put_along_axis(terms, argmax, 0.0, axis=1)
        tail = terms.sum(axis=1)
        np.put_along_axis(terms, argmax, 1.0, axis=1)
        log_norm = np.log1p(tail)
        bad = ~np.isfinite(maximum[:, 0])  # NaN or ±inf maximum: NaN, as in PyTorch
        log_norm[bad] = np.nan
        if q is None:
            nll = log_norm - np.take_along_axis(block, target[:, None], axis=1)[:, 0]
        else:
            nll = log_norm * q.sum(axis=1) - _sum_p_times(q, block)
        entropy = log_norm - _sum_p_times(terms, block) / (1.0 + tail)
    return np.asarray(nll, dtype=np.float64), np.asarray(entropy, dtype=np.float64)


def _per_class(
    targets: npt.NDArray[np.intp], nll: FloatArray, correct: FloatArray, classes: int
) -> tuple[ClassStats, ...]:
    if targets.size == 0:
        return ()
    counts = np.bincount(targets, minlength=classes)
    loss_sums = np.bincount(targets, weights=nll, minlength=classes)
    hits = np.bincount(targets, weights=correct, minlength=classes)
    present = np.flatnonzero(counts)
    order = present[np.lexsort((present, -counts[present]))]
    with np.errstate(invalid="ignore"):
        means = loss_sums[order] / counts[order]
        accuracies = hits[order] / counts[order]
    return tuple(
        ClassStats(cls=int(c), count=int(n), mean_loss=float(m), accuracy=float(a))
        for c, n, m, a in zip(
            order.tolist(), counts[order].tolist(), means.tolist(), accuracies.tolist(), strict=True
        )
    )


def causal_shift(
    values: npt.NDArray[Any], labels: npt.NDArray[Any], class_dim: int | None
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], int]:
    """``--shift``: logits at position t predict the label at t + 1 (Hugging Face).

    ``values`` are (N, L, C) or (L, C) logits with the classes last, ``labels`` the token
    ids (N, L) or (L,) aligned with them. The sequence axis is the last non-class axis:
    the last logit position and the first label are dropped. Returns the shifted logits,
    the shifted labels and the class axis (the last).
    """
    ndim = values.ndim
    if ndim < 2:
        raise InputError(
            "--shift needs logits of shape (N, L, C) or (L, C) (classes last); "
            f"got a {ndim}-D input"
        )
    last = ndim - 1
    if class_dim is not None and normalize_axis(class_dim, ndim, "class axis") != last:
        raise InputError(
            f"--shift needs the classes on the last axis (Hugging Face layout (N, L, C)); "
            f"got --class-dim {class_dim}"
        )
    if tuple(labels.shape) != tuple(values.shape[:-1]):
        raise InputError(
            f"--shift needs token ids of shape {tuple(int(n) for n in values.shape[:-1])} "
            f"aligned with the logits' positions; got labels of shape "
            f"{tuple(int(n) for n in labels.shape)}"
        )
    if values.shape[-2] < 2:
        raise InputError(
            "--shift needs at least 2 positions along the sequence axis (the logits' axis "
            f"{ndim - 2}): with {values.shape[-2]}, no label is left to predict"
        )
    return values[..., :-1, :], labels[..., 1:], last


def unshift_grad(grad: FloatArray) -> FloatArray:
    """The gradient of shifted logits as one of the original logits: 0 at the last position."""
    pad = [(0, 0)] * grad.ndim
    pad[-2] = (0, 1)
    return np.pad(grad, pad)
