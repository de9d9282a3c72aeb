"""From command-line arguments to read arrays: standard input rules, weights, shard pairs."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

from lossctl.cli.streams import current, note
from lossctl.errors import InputError
from lossctl.io.sources import is_stdin_spec

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from lossctl.io.readers import Loaded


def check_stdin(specs: list[str], weight: str | None = None) -> None:
    """At most one argument (or ``--weight``) may be ``-``, and standard input must not be
    a terminal; a FIFO can be read only once too (distinct FIFOs, such as ``<(…) <(…)``,
    are fine). Checked before anything is read."""
    if sum(map(is_stdin_spec, specs)) > 1:
        raise InputError("only one argument can be '-' (standard input)")
    if weight is not None and is_stdin_spec(weight) and any(map(is_stdin_spec, specs)):
        raise InputError(
            "--weight - and an argument '-' would both read standard input, which can be "
            "read only once: give the weights as a file or inline (--weight 1,2,0.5)"
        )
    check_fifos_once(specs)
    if any(map(is_stdin_spec, specs)):
        check_stdin_readable()


def check_fifos_once(specs: list[str]) -> None:
    """Refuse a FIFO named twice (also as ``FIFO:KEY`` twice): its data come only once."""
    from lossctl.io.sources import fifo_identity

    seen: set[tuple[int, int]] = set()
    for spec in specs:
        identity = None if is_stdin_spec(spec) else fifo_identity(spec)
        if identity in seen:
            raise InputError(
                f"{spec}: this FIFO is named twice, but its data can be read only once; "
                "save them to a file to use them twice (or for two keys)"
            )
        if identity is not None:
            seen.add(identity)


def check_stdin_readable() -> None:
    """Refuse at once, rather than wait for typing, when stdin is a terminal or closed."""
    environment = current()
    if environment.stdin is None:
        raise InputError("'-' reads standard input, but it is closed: pipe or redirect a file")
    if environment.stdin_is_terminal():
        raise InputError(
            "'-' reads standard input, but it is a terminal: pipe or redirect a file, "
            "e.g. `lossctl softmax - < logits.json`"
        )


def read(spec: str, key: str | None, header: str = "auto", *, values: bool = False) -> Loaded:
    """The array that ``spec`` names (a file, ``-``, ``FILE:KEY``, inline JSON); the
    reader's notes (which CSV header rule fired) go to stderr. ``values``: numbers that
    are computed with (logits, weights), so integers that float64 would round are refused.
    """
    from lossctl.io.exact import exact_float64
    from lossctl.io.readers import read_array

    if is_stdin_spec(spec):  # also --weight -, which check_stdin does not see
        check_stdin_readable()
    loaded = read_array(spec, key=key, stdin=current().stdin, header=header)  # type: ignore[arg-type]
    for text in loaded.notes:
        note(f"{loaded.source}: {text}")
    if values and loaded.array.dtype.kind in "iu":
        loaded = loaded._replace(array=exact_float64(loaded.array, loaded.source))
    return loaded


def read_weight(spec: str | None) -> npt.NDArray[np.float64] | None:
    """``--weight``: an existing file (or ``-``), else an inline list of numbers."""
    if spec is None:
        return None
    from lossctl.io.readers import parse_number_list

    if spec == "-" or os.path.exists(spec.rsplit(":", 1)[0]):
        return read(spec, None, values=True).array.astype("float64")
    return parse_number_list(spec, what="--weight")


def loss_inputs(files: list[str] | None, manifest: str | None) -> list[tuple[str, str]]:
    """(input, labels) pairs from the arguments or a manifest (one pair per shard)."""
    from lossctl.io.shards import read_manifest, split_arguments

    if manifest is not None:
        if files:
            raise typer.BadParameter("give either --manifest or INPUT LABELS files, not both")
        return read_manifest(manifest)
    if not files or len(files) < 2:
        raise typer.BadParameter(
            "give an input file and its labels file (INPUT LABELS), glob patterns for many "
            "shards, or --manifest FILE",
            param_hint="'INPUT LABELS'",
        )
    return split_arguments(files)


def labels_without_pandas_header(values: Loaded, labels: Loaded, class_dim: int | None) -> Loaded:
    """A label CSV whose first line (``0``, pandas' Series name) was read as data: drop it
    when only without it do the labels fit the input's positions on the class axis
    (``--class-dim``, else PyTorch's), as they do for ``Series.to_csv(index=False)``."""
    from lossctl.core.losses import normalize_axis, torch_class_dim
    from lossctl.core.rows import positions_shape

    line = labels.meta.get("header_candidate")
    shape = values.array.shape
    if not isinstance(line, int) or labels.array.ndim != 1 or not shape:
        return labels
    axis = torch_class_dim(len(shape)) if class_dim is None else class_dim
    expected = positions_shape(shape, normalize_axis(axis, len(shape), "class axis"))
    if labels.array.shape == expected or labels.array[1:].shape != expected:
        return labels
    note(
        f"{labels.source}: line {line} taken as a header after all: without it "
        f"the labels fit the input's positions {expected} (class axis {axis})"
    )
    return labels._replace(array=labels.array[1:])
