"""``softmax``, ``log-softmax`` and ``log``: streamed to ``-o FILE.npy``, summarised in tables.

- ``-o FILE.npy``: the result is computed and written block by block
  (:mod:`lossctl.core.blocked`, :mod:`lossctl.io.npy_writer`), in the input's float
  dtype (float16, float32, float64; integers give float64) unless ``--precision
  float64``; nothing of the input's size is held in memory.
- a table: for a large input (more than ``CORNERS_FROM`` numbers, without ``--full``)
  only the cells the summarised grid shows are computed, each from its own line along
  the axis; the facts say so.
- ``--json`` (or ``-o FILE.json``): the whole result in float64, refused before any
  work past ``JSON_LIMIT`` numbers with a hint to use ``-o FILE.npy``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from lossctl.cli.emit import edges, emit_document, emit_rich, number_format, summary
from lossctl.cli.inputs import check_stdin, read
from lossctl.cli.options import OutputOptions
from lossctl.cli.streams import warn
from lossctl.errors import InputError

if TYPE_CHECKING:
    from lossctl.core.blocked import ElementwiseOp

JSON_LIMIT = 10**7  # numbers in a JSON document's array before --json is refused
CORNERS_FROM = 10**6  # numbers from which a table computes only the cells it shows
NEGATIVE_LOG = "warning.negative-log"  # the catalogue id of the warning


def negative_log() -> str:
    """The warning for the log of negative numbers, in this run's language."""
    from lossctl.render.i18n import t

    return t(NEGATIVE_LOG)


def corners_suffice(output: OutputOptions, size: int) -> bool:
    """Whether only the cells a summarised table shows need computing: a table alone (no
    ``--json``, ``--explain`` or ``--full``) of more than ``CORNERS_FROM`` numbers."""
    return not (output.json or output.explain or output.full) and size > CORNERS_FROM


def npy_output(output: OutputOptions) -> bool:
    """Whether ``-o`` names a ``.npy`` file (the array, not the JSON document)."""
    from lossctl.io.atomic import is_npy_path

    return output.path is not None and is_npy_path(output.path)


def refuse_large_json(size: int, output: OutputOptions, what: str) -> None:
    """Refuse, before any work, a JSON document holding more than ``JSON_LIMIT`` numbers."""
    text = (output.json and output.path is None) or (
        output.path is not None and not npy_output(output)
    )
    if text and size > JSON_LIMIT:
        raise InputError(
            f"the {what} has {size:,} numbers, too many for a JSON document (limit "
            f"{JSON_LIMIT:,}); write it with -o FILE.npy instead"
        )


def run(
    op: str,
    input_spec: str,
    *,
    dim: int | None,
    key: str | None,
    header: str,
    output: OutputOptions,
    precision: str,
) -> None:
    """Read, compute and print or write ``softmax``, ``log-softmax`` or ``log``."""
    from lossctl.core.losses import normalize_axis

    check_stdin([input_spec])
    values = read(input_spec, key, header)
    array = values.array
    if op == "log":
        carried = values.meta.get("dim")
        dim = carried if isinstance(carried, int) else None
        axis = None
    else:
        assert dim is not None
        dim = axis = normalize_axis(dim, array.ndim, "--dim")
    refuse_large_json(int(array.size), output, f"{op} result")
    messages: list[str] = []
    if npy_output(output):
        assert output.path is not None
        _stream(op, array, axis, precision, output.path, messages)
    trace = None
    if output.explain:
        from lossctl.trace import explain_elementwise

        trace = explain_elementwise(op, array, dim=dim, edges=edges(output))  # type: ignore[arg-type]
    whole = None
    if (output.document_wanted and not npy_output(output)) or (
        not output.json and trace is None and not corners_suffice(output, int(array.size))
    ):
        whole = _in_memory(op, array, axis, messages)
    elif op == "log" and not npy_output(output) and _any_negative(array):
        messages.append(negative_log())
    for message in dict.fromkeys(messages):
        warn(message)
    if output.document_wanted and not npy_output(output):
        from lossctl.io.documents import elementwise_document

        document = elementwise_document(
            op, dim, whole, values.source, list(dict.fromkeys(messages))
        )
        if trace is not None:
            from lossctl.render.explain_data import steps_json

            document["steps"] = steps_json(trace, number_format(output))
        emit_document(document, output)
    if output.json:
        return
    if trace is not None:
        from lossctl.render.explain import explain_view

        emit_rich(explain_view(trace, fmt=number_format(output)))
        return
    from lossctl.render.results import elementwise_view

    shown, stats = (whole, []) if whole is not None else _corners(op, array, axis, output)
    sources = [("input file", values.source)]
    if output.path is not None:
        sources.append(("written to", output.path))
    emit_rich(
        elementwise_view(
            op,
            shown,
            dim=dim,
            fmt=number_format(output),
            summary=summary(output),
            sources=sources,
            stats=stats,
        )
    )


def _in_memory(op: str, array: Any, axis: int | None, messages: list[str]) -> Any:
    import numpy as np

    from lossctl.core.losses import log_softmax, softmax

    if op == "log":
        values = np.asarray(array, dtype=np.float64)
        if (values < 0).any():
            messages.append(negative_log())
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(values)
    assert axis is not None
    return (softmax if op == "softmax" else log_softmax)(array, axis)


def _stream(
    op: str, array: Any, axis: int | None, precision: str, path: str, messages: list[str]
) -> None:
    from lossctl.core.blocked import elementwise_blocks, output_dtype
    from lossctl.io.npy_writer import write_npy_blocks

    negative = [False]

    def inspect(block: Any) -> None:
        if not negative[0] and (block < 0).any():
            negative[0] = True

    dtype = output_dtype(array.dtype, precision)
    checked = inspect if op == "log" else None
    blocks = elementwise_blocks(cast("ElementwiseOp", op), array, axis, dtype, inspect=checked)
    write_npy_blocks(path, tuple(array.shape), dtype, blocks)
    if negative[0]:
        messages.append(negative_log())


def _any_negative(array: Any) -> bool:
    """Whether any input number is negative, one block at a time."""
    from lossctl.core.blocked import PageBudget, block_indices

    pages = PageBudget(array)
    try:
        for index in block_indices(tuple(array.shape), None):
            block = array[index]
            pages.touched(block)
            if (block < 0).any():
                return True
        return False
    finally:
        pages.release()


def _corners(
    op: str, array: Any, axis: int | None, output: OutputOptions
) -> tuple[Any, list[tuple[str, str]]]:
    """Only the cells the summarised grid shows, and what was computed for them."""
    import numpy as np

    from lossctl.core.blocked import shown_cells
    from lossctl.render.results import Corners

    rows, cols = Corners.indices(tuple(array.shape), summary(output))
    kept_rows = [r for r in rows if r is not None]
    kept_cols = [c for c in cols if c is not None]
    cells, computed = shown_cells(cast("ElementwiseOp", op), array, axis, kept_rows, kept_cols)
    fmt = number_format(output)
    finite = computed[np.isfinite(computed)]
    rest = f"not the other {int(array.size) - cells.size:,}"
    what = (
        f"only the {cells.size} cells shown, {rest}"
        if op == "log"
        else f"the {cells.size} cells shown, from their {computed.size:,} values along "
        f"axis {axis}; {rest}"
    )
    stats = [
        ("computed", what),
        (
            "min / max of those",
            f"{fmt(float(finite.min()))} / {fmt(float(finite.max()))}"
            if finite.size
            else "no finite values",
        ),
        ("non-finite among those", str(int(computed.size - finite.size))),
    ]
    return Corners(tuple(array.shape), rows, cols, cells), stats
