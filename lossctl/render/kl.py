"""Rich renderables of ``lossctl kl``: the statistics tables and the ``--explain`` trace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from rich.console import Group, RenderableType
from rich.text import Text

from lossctl.render.results import NumberFormat, Summary, array_grid, facts_table, shape_text
from lossctl.trace.kl import KLTrace


def _pm(fmt: NumberFormat, mean: float, stderr: float) -> str:
    return f"{fmt(mean)} ± {fmt(stderr)}"


def _percentile_facts(fmt: NumberFormat, block: Mapping[str, Any]) -> list[tuple[str, str | Text]]:
    facts: list[tuple[str, str | Text]] = [("median", fmt(block["median"]))]
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
        ("KL mean", Text(_pm(fmt, kl["mean"], kl["stderr"]), style="bold green")),
        ("min", fmt(kl["min"])),
        ("max", fmt(kl["max"])),
        *_percentile_facts(fmt, kl),
    ]
    if "reverse_kl" in summary:
        reverse = summary["reverse_kl"]
        main.append(("KL(other ‖ reference)", _pm(fmt, reverse["mean"], reverse["stderr"])))
        main.append(("symmetric mean", fmt(summary["symmetric_kl"]["mean"])))
    same = summary["same_top1"]
    main += [
        ("same top-1", _pm(fmt, same["fraction"], same["stderr"])),
        (f"top-{summary['top_k']} overlap", fmt(summary["top5_overlap"])),
        ("counted positions", str(summary["count"])),
        *facts,
    ]
    parts: list[RenderableType] = [facts_table(title, main)]
    if "perplexity" in summary:
        ppl, ratio, delta = summary["perplexity"], summary["log_ppl_ratio"], summary["delta_p"]
        labelled: list[tuple[str, str | Text]] = [
            ("PPL reference", fmt(ppl["reference"])),
            ("PPL other", fmt(ppl["other"])),
            ("PPL ratio", fmt(ppl["ratio"])),
            ("mean ln(PPL_o/PPL_r)", _pm(fmt, ratio["mean"], ratio["stderr"])),
            ("NLL correlation", fmt(summary["nll_correlation"])),
            ("Δp mean", fmt(delta["mean"])),
            ("Δp RMS", fmt(delta["rms"])),
            *[(f"Δp {name}", value) for name, value in _percentile_facts(fmt, delta)],
        ]
        parts.append(facts_table("with labels (target token)", labelled))
    if per_position is not None:
        array = np.asarray(per_position, dtype=np.float64)
        parts.append(
            array_grid(
                array,
                title=f"KL per position, shape {shape_text(array.shape)}",
                fmt=fmt,
                summary=grid or Summary(),
            )
        )
    return Group(*parts)


def kl_explain_view(trace: KLTrace, *, fmt: NumberFormat, summary: Summary) -> RenderableType:
    """Every step of the trace as a grid (rows: positions, columns: classes)."""
    parts: list[RenderableType] = [
        facts_table(
            "KL(reference ‖ other), step by step",
            [
                ("input shape", shape_text(trace.shape)),
                ("class axis", f"{trace.class_dim} (moved last below)"),
                ("inputs", "log-probabilities" if trace.log_probs else "logits"),
            ],
        )
    ]
    for step in trace.steps:
        parts.append(
            array_grid(
                step.values,
                title=f"{step.name}: {step.formula}",
                fmt=fmt,
                summary=summary,
                caption="rows: positions; columns: classes" if step.values.ndim == 2 else None,
            )
        )
    parts.append(
        facts_table(
            "reduction",
            [("mean", Text(fmt(trace.mean), style="bold green")), ("over", f"{trace.counted}")],
        )
    )
    return Group(*parts)
