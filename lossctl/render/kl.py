"""Rich renderables of ``lossctl kl``: the statistics tables and the ``--explain`` trace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from rich.console import Group, RenderableType
from rich.text import Text

from lossctl.render.i18n import t, tr
from lossctl.render.results import NumberFormat, Summary, array_grid, facts_table, shape_text
from lossctl.trace.kl import KLTrace


def _pm(fmt: NumberFormat, mean: float, stderr: float) -> str:
    return f"{fmt(mean)} ± {fmt(stderr)}"


def _percentile_facts(fmt: NumberFormat, block: Mapping[str, Any]) -> list[tuple[str, str | Text]]:
    facts: list[tuple[str, str | Text]] = [(t("kl.median"), fmt(block["median"]))]
    facts += [(f"p{q}", fmt(v)) for q, v in block["percentiles"].items()]
    return facts


def kl_view(
    summary: Mapping[str, Any],
    *,
    fmt: NumberFormat,
    facts: Sequence[tuple[str, str]],
    title: str = "KL(reference ‖ other)",
    grid: Summary | None = None,
    per_position: Any = None,
) -> RenderableType:
    """The tables of ``lossctl kl`` (and of merged kl documents) from :func:`kl_summary`."""
    kl = summary["kl"]
    main: list[tuple[str, str | Text]] = [
        (t("kl.mean"), Text(_pm(fmt, kl["mean"], kl["stderr"]), style="bold green")),
        (t("kl.min"), fmt(kl["min"])),
        (t("kl.max"), fmt(kl["max"])),
        *_percentile_facts(fmt, kl),
    ]
    if "reverse_kl" in summary:
        reverse = summary["reverse_kl"]
        main.append(("KL(other ‖ reference)", _pm(fmt, reverse["mean"], reverse["stderr"])))
        main.append((t("kl.symmetric"), fmt(summary["symmetric_kl"]["mean"])))
    same = summary["same_top1"]
    main += [
        (t("kl.same_top1"), _pm(fmt, same["fraction"], same["stderr"])),
        (t("kl.overlap", k=summary["top_k"]), fmt(summary["top5_overlap"])),
        (t("kl.counted"), str(summary["count"])),
        *((tr(name), tr(value)) for name, value in facts),
    ]
    parts: list[RenderableType] = [facts_table(title, main)]
    if "perplexity" in summary:
        ppl, ratio, delta = summary["perplexity"], summary["log_ppl_ratio"], summary["delta_p"]
        labelled: list[tuple[str, str | Text]] = [
            (t("kl.ppl_reference"), fmt(ppl["reference"])),
            (t("kl.ppl_other"), fmt(ppl["other"])),
            (t("kl.ppl_ratio"), fmt(ppl["ratio"])),
            (t("kl.log_ppl_ratio"), _pm(fmt, ratio["mean"], ratio["stderr"])),
            (t("kl.nll_correlation"), fmt(summary["nll_correlation"])),
            (t("kl.delta_mean"), fmt(delta["mean"])),
            (t("kl.delta_rms"), fmt(delta["rms"])),
            *[(t("kl.delta", name=name), value) for name, value in _percentile_facts(fmt, delta)],
        ]
        parts.append(facts_table(t("kl.labelled"), labelled))
    if per_position is not None:
        array = np.asarray(per_position, dtype=np.float64)
        parts.append(
            array_grid(
                array,
                title=t("kl.per_position", shape=shape_text(array.shape)),
                fmt=fmt,
                summary=grid or Summary(),
            )
        )
    return Group(*parts)


def kl_explain_view(trace: KLTrace, *, fmt: NumberFormat, summary: Summary) -> RenderableType:
    """Every step of the trace as a grid (rows: positions, columns: classes)."""
    parts: list[RenderableType] = [
        facts_table(
            t("kl.explain.title"),
            [
                (t("result.input_shape"), shape_text(trace.shape)),
                (t("result.class_axis"), t("kl.explain.class_axis", dim=trace.class_dim)),
                (t("kl.inputs"), t("kl.log_probabilities" if trace.log_probs else "kl.logits")),
            ],
        )
    ]
    for step in trace.steps:
        parts.append(
            array_grid(
                step.values,
                title=t("kl.step.title", name=tr(step.name), formula=tr(step.formula)),
                fmt=fmt,
                summary=summary,
                caption=t("kl.grid_caption") if step.values.ndim == 2 else None,
            )
        )
    parts.append(
        facts_table(
            t("result.reduction"),
            [
                (t("kl.reduce.mean"), Text(fmt(trace.mean), style="bold green")),
                (t("kl.reduce.over"), f"{trace.counted}"),
            ],
        )
    )
    return Group(*parts)
