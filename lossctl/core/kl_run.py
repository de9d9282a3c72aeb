"""What ``lossctl kl`` computes on one group of arrays, as a typed spec: shared by the
local run and the Dask workers, so both compute the same statistics the same way.

:class:`KLSpec` holds the options; :func:`prepare` applies ``--shift`` (the logits at t
predict the label at t + 1) and picks the class axis; :func:`run_kl` streams the
prepared arrays through :func:`~lossctl.core.kl_stream.stream_kl`. Pure NumPy, no I/O.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from lossctl.core.kl_stream import BlockObserver, KLPass, stream_kl
from lossctl.core.spec import DEFAULT_IGNORE_INDEX, Precision
from lossctl.errors import InputError


@dataclass(frozen=True)
class KLSpec:
    """The options of one ``kl`` computation (``per_position``: ``--reduction none``;
    ``precision``: ``auto`` computes two float32 inputs with a float32 exp)."""

    class_dim: int | None = None
    log_probs: bool = False
    ignore_index: int = DEFAULT_IGNORE_INDEX
    both_directions: bool = False
    per_position: bool = False
    shift: bool = False
    precision: Precision = "auto"


@dataclass(frozen=True)
class Prepared:
    """The arrays as they are streamed (shifted with ``--shift``) and their class axis."""

    reference: npt.NDArray[Any]
    other: npt.NDArray[Any]
    labels: npt.NDArray[Any] | None
    class_dim: int | None

    @property
    def arrays(self) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any] | None]:
        """(reference, other, labels), as :func:`~lossctl.core.kl_stream.stream_kl` takes them."""
        return self.reference, self.other, self.labels


def prepare(
    spec: KLSpec,
    reference: npt.NDArray[Any],
    other: npt.NDArray[Any],
    labels: npt.NDArray[Any] | None,
    stored_dim: int | None = None,
) -> Prepared:
    """The arrays to stream; ``stored_dim`` is the class axis the reference's file records
    (a ``.pt`` file's ``dim``), used when the spec gives none."""
    class_dim = spec.class_dim if spec.class_dim is not None else stored_dim
    if not spec.shift:
        return Prepared(reference, other, labels, class_dim)
    from lossctl.core.metrics import causal_shift

    if labels is None:
        raise InputError("--shift aligns the logits with the next token: give LABELS")
    if reference.shape != other.shape:
        raise InputError(
            f"reference shape {list(reference.shape)} and other shape {list(other.shape)} "
            "differ: kl compares two models' outputs for the same positions and classes"
        )
    x, shifted_labels, axis = causal_shift(reference, labels, class_dim)
    y, _, _ = causal_shift(other, labels, class_dim)
    return Prepared(x, y, shifted_labels, axis)


def run_kl(
    spec: KLSpec,
    prepared: Prepared,
    *,
    observe: BlockObserver | None = None,
    on_rows: Any = None,
) -> KLPass:
    """The statistics of the prepared arrays (``observe`` sees every block as stored)."""
    return stream_kl(
        *prepared.arrays,
        class_dim=prepared.class_dim,
        log_probs=spec.log_probs,
        ignore_index=spec.ignore_index,
        both_directions=spec.both_directions,
        per_position=spec.per_position,
        precision=spec.precision,
        observe=observe,
        on_rows=on_rows,
    )


def with_class_dim(spec: KLSpec, class_dim: int) -> KLSpec:
    """The spec with its class axis resolved (a row range of a shard keeps the shard's)."""
    return dataclasses.replace(spec, class_dim=class_dim)


__all__ = ["KLSpec", "Prepared", "prepare", "run_kl", "with_class_dim"]
