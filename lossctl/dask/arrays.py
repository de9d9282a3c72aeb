"""Cross-entropy and NLL of ``dask.array`` inputs, equal to the in-memory core to the last bit.

Each block of rows (all classes of its positions: the class axis is kept in one chunk,
rechunked with a :class:`ClassAxisRechunkWarning` when it is split) is scored by the core's
:func:`lossctl.core.losses.loss_result` with the class axis resolved once on the whole
shapes. A block returns its exact partial sums, counts and per-position losses (the input's
size divided by the number of classes); the pieces are combined exactly, in block order,
so the :class:`~lossctl.core.losses.LossResult` is the one the core computes in memory.
The blocks run on whatever scheduler Dask is using (threads, or a ``distributed.Client``).

The helpers :func:`as_dask` and :func:`classes_in_one_chunk` serve
:mod:`lossctl.dask.kl_arrays` too (``kl_div``, ``kl_statistics``, ``kl_logits``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from lossctl.core.exactsum import ZERO, ExactSum
from lossctl.core.losses import (
    FloatArray,
    LossOp,
    LossResult,
    compute,
    infer_class_dim,
    normalize_axis,
    reduce_result,
)
from lossctl.core.spec import LossKeywords, LossSpec, spec_of
from lossctl.errors import InputError, LossctlError

if TYPE_CHECKING:
    from typing_extensions import Unpack


class ClassAxisRechunkWarning(UserWarning):
    """The class axis of a dask array was split over chunks; it was rechunked into one."""


@dataclass(frozen=True)
class _Piece:
    """One block's share of a :class:`LossResult` (small: no logits)."""

    per_position: FloatArray
    exact_denominator: ExactSum
    count: int
    ignored: int
    target_kind: str


def _score_block(spec: LossSpec, logits: npt.NDArray[Any], targets: npt.NDArray[Any]) -> _Piece:
    result = compute(spec, logits, targets)
    return _Piece(
        per_position=result.per_position,
        exact_denominator=result.exact_denominator,
        count=result.count,
        ignored=result.ignored,
        target_kind=result.target_kind,
    )


def as_dask(value: Any, what: str) -> Any:
    """``value`` as a ``dask.array`` (as given if it is one) of known chunk sizes."""
    _, da = require_dask()
    array = value if isinstance(value, da.Array) else da.asarray(value)
    if any(math.isnan(n) for n in array.shape):
        raise InputError(f"the {what} has unknown chunk sizes; call compute_chunk_sizes()")
    return array


def classes_in_one_chunk(array: Any, axis: int, what: str, stacklevel: int = 4) -> Any:
    """``array`` with its class axis in one chunk: rechunked, with a
    :class:`ClassAxisRechunkWarning` (pointing at the public function's caller), if split."""
    chunks = len(array.chunks[axis])
    if chunks == 1:
        return array
    warnings.warn(
        f"the class axis ({axis}) of the {what} is split into {chunks} chunks; rechunking "
        "it into one (each block needs all the classes of its rows)",
        ClassAxisRechunkWarning,
        stacklevel=stacklevel,
    )
    return array.rechunk({axis: -1})


def require_dask() -> tuple[Any, Any]:
    """``dask`` and ``dask.array``, untyped (Dask's annotations are partial)."""
    try:
        import dask
        import dask.array
    except ImportError:
        raise LossctlError(
            "lossctl.dask needs the dask extra: pip install 'lossctl[dask]'"
        ) from None
    return dask, dask.array


def _class_axis(
    input_shape: tuple[int, ...], target_shape: tuple[int, ...], class_dim: int | None
) -> int:
    """The class axis, resolved on the whole shapes as the core resolves it."""
    if class_dim is None:
        return infer_class_dim(input_shape, target_shape)
    axis = normalize_axis(class_dim, len(input_shape), "class axis")
    expected = input_shape[:axis] + input_shape[axis + 1 :]
    if target_shape not in (input_shape, expected):
        raise InputError(
            f"target shape {target_shape} does not fit input shape {input_shape} with class "
            f"axis {axis}: expected {expected} (class indices) or {input_shape} (probabilities)"
        )
    return axis


def loss_result(op: LossOp, input: Any, target: Any, **options: Unpack[LossKeywords]) -> LossResult:
    """:func:`lossctl.loss_result` of dask arrays (or anything ``dask.array.asarray`` takes),
    with the same keyword options.

    Computes the blocks (``dask.compute``) and returns the same :class:`LossResult`,
    ``per_position`` included.
    """
    spec = spec_of(op, options)
    dask, _ = require_dask()
    logits, labels = as_dask(input, "input"), as_dask(target, "target")
    input_shape = tuple(int(n) for n in logits.shape)
    target_shape = tuple(int(n) for n in labels.shape)
    axis = _class_axis(input_shape, target_shape, spec.class_dim)
    logits = classes_in_one_chunk(logits, axis, "input")
    probabilities = target_shape == input_shape
    position_chunks = logits.chunks[:axis] + logits.chunks[axis + 1 :]
    labels = labels.rechunk(logits.chunks if probabilities else position_chunks)
    spec = spec.with_class_dim(axis)
    score = dask.delayed(_score_block, pure=True)
    logit_blocks, label_blocks = logits.to_delayed(), labels.to_delayed()
    grid = tuple(len(c) for c in position_chunks)
    tasks = []
    for index in np.ndindex(grid):
        block = (*index[:axis], 0, *index[axis:])
        tasks.append(
            score(spec, logit_blocks[block], label_blocks[block if probabilities else index])
        )
    pieces: list[_Piece] = list(dask.compute(*tasks))
    return _combined(spec, pieces, grid, input_shape)


def _combined(
    spec: LossSpec, pieces: list[_Piece], grid: tuple[int, ...], input_shape: tuple[int, ...]
) -> LossResult:
    """The blocks' pieces as one :class:`LossResult`, reduced by the core (exactly)."""
    denominator = ZERO
    for piece in pieces:
        denominator = denominator + piece.exact_denominator
    return reduce_result(
        spec,
        input_shape,
        _blocked(pieces, grid),
        denominator,
        sum(p.count for p in pieces),
        sum(p.ignored for p in pieces),
        target_kind="probabilities" if pieces[0].target_kind == "probabilities" else "indices",
    )


def _blocked(pieces: list[_Piece], grid: tuple[int, ...]) -> FloatArray:
    """The per-position blocks laid back out in their grid (C order, as ``np.ndindex``)."""
    if not grid:
        return pieces[0].per_position
    nested: Any = np.empty(grid, dtype=object)
    for index, piece in zip(np.ndindex(grid), pieces, strict=True):
        nested[index] = piece.per_position
    return np.asarray(np.block(nested.tolist()), dtype=np.float64)


def cross_entropy(input: Any, target: Any, **options: Unpack[LossKeywords]) -> float | FloatArray:
    """:func:`lossctl.cross_entropy` of dask arrays, bit for bit."""
    return loss_result("cross_entropy", input, target, **options).loss


def nll_loss(input: Any, target: Any, **options: Unpack[LossKeywords]) -> float | FloatArray:
    """:func:`lossctl.nll_loss` of dask arrays (log-probabilities), bit for bit."""
    return loss_result("nll_loss", input, target, **options).loss
