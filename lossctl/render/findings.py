"""Rich renderables for ``doctor`` findings, ``--metrics`` and ``--grad``.

Nothing here prints: the CLI hands the renderables to a ``rich.console.Console``
(findings with ``soft_wrap=True``: on a pipe each stays on one line).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from lossctl.core.metrics import Metrics
from lossctl.doctor.findings import Finding
from lossctl.render.blocks import Paragraph, wide
from lossctl.render.i18n import t, tr
from lossctl.render.messages import message
from lossctl.render.results import (
    Corners,
    NumberFormat,
    Summary,
    array_grid,
    facts_table,
    shape_text,
)

PER_CLASS_ROWS = 20
SEVERITY_WIDTH = 8  # terminal cells of the severity column, and the hanging indent
SEVERITY_STYLES = {"info": "cyan", "warning": "yellow", "error": "bold red"}


def finding_line(finding: Finding) -> Text:
    """``warning  double-softmax: message`` as one line of text."""
    line = Text()
    line.append(severity_cell(finding.severity), style=SEVERITY_STYLES.get(finding.severity, ""))
    line.append(finding.code.value, style="bold")
    line.append(f": {message(finding)}")
    return line


def severity_cell(severity: str) -> str:
    """The severity in this language, padded to :data:`SEVERITY_WIDTH` terminal cells."""
    word = t(f"doctor.{severity}")
    return word + " " * max(1, SEVERITY_WIDTH - cell_len(word))


def summary_line(findings: Sequence[Finding]) -> Text:
    """``doctor: 1 error, 2 warnings`` (or ``no problems found``)."""
    counts = {
        severity: sum(1 for f in findings if f.severity == severity)
        for severity in ("error", "warning")
    }
    parts = [
        t(f"doctor.{severity}s" + ("" if n == 1 else "_plural"), n=n)
        for severity, n in counts.items()
        if n
    ]
    if not parts:
        return Text(t("doctor.none"), style="green")
    return Text(t("doctor.summary", parts=", ".join(parts)), style="bold")


class FindingsView:
    """Every finding, then the summary line.

    On a console that soft-wraps (a pipe, see :func:`lossctl.cli.emit.emit_rich`) each
    finding is one line, for grep; otherwise a finding wraps at words to the width,
    its lines after the first indented under the code (a hanging indent).
    """

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = findings

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for finding in self.findings:
            line = finding_line(finding)
            if console.soft_wrap or options.no_wrap:
                yield line
                continue
            indented = max(options.max_width - SEVERITY_WIDTH, 20)
            if wide(line.plain):  # Chinese: between characters, never inside a word
                first, *parts = Paragraph(line).lines(options.max_width, indented)
                yield first
                for part in parts:
                    yield Padding(part, (0, 0, 0, SEVERITY_WIDTH), expand=False)
                continue
            first = line.wrap(console, options.max_width)[0]
            rest = line[len(first.plain) :]
            rest = rest[len(rest.plain) - len(rest.plain.lstrip()) :]
            yield first
            if rest.plain:
                for part in rest.wrap(console, indented):
                    yield Padding(part, (0, 0, 0, SEVERITY_WIDTH), expand=False)
        yield summary_line(self.findings)


def findings_view(findings: Sequence[Finding]) -> RenderableType:
    """Every finding on its own line (wrapped on a terminal), then the summary line."""
    return FindingsView(findings)


def grad_view(
    grad: npt.NDArray[np.float64] | Corners,
    *,
    class_dim: int,
    reduction: str,
    fmt: NumberFormat,
    summary: Summary,
    shifted: bool = False,
) -> RenderableType:
    """The gradient d loss / d input, laid out like the input."""
    notes = [t("grad.class_axis", dim=class_dim)]
    if reduction == "none":
        notes.append(t("trace.gradient.none"))
    if shifted:
        notes.append(t("grad.shift"))
    return array_grid(
        grad,
        title=t("grad.title", shape=shape_text(grad.shape)),
        caption=t("list.semicolon").join(notes),
        fmt=fmt,
        summary=summary,
    )


def metrics_view(metrics: Metrics, *, fmt: NumberFormat, rows: int = PER_CLASS_ROWS) -> Group:
    """The metrics table and the per-class table (the ``rows`` most frequent classes)."""
    perplexity: str | Text = (
        Text(fmt(metrics.perplexity), style="bold green")
        if metrics.perplexity is not None
        else t("metrics.na_because", note=tr(metrics.perplexity_note or ""))
    )
    always = metrics.topk >= metrics.classes
    topk_note = t("metrics.topk_always", classes=metrics.classes) if always else ""
    entropy = metrics.entropy
    facts: list[tuple[str, str | Text]] = [
        (t("metrics.perplexity"), perplexity),
        (t("metrics.mean_nll"), fmt(metrics.mean_nll)),
        (t("metrics.accuracy"), fmt(metrics.accuracy)),
        (t("metrics.topk_accuracy", k=metrics.topk), fmt(metrics.topk_accuracy) + topk_note),
        (
            t("metrics.entropy"),
            t("metrics.na") if entropy is None else t("metrics.nats", value=fmt(entropy)),
        ),
        (t("result.counted"), str(metrics.count)),
    ]
    parts: list[RenderableType] = [facts_table(t("metrics.title"), facts)]
    shown = metrics.per_class[:rows]
    if shown:
        more = len(metrics.per_class) - len(shown)
        caption = (
            t("metrics.per_class.caption", shown=len(shown), total=len(metrics.per_class))
            if more
            else None
        )
        table = Table(
            title=t("metrics.per_class"),
            caption=caption,
            box=box.SIMPLE_HEAD,
            title_justify="left",
        )
        for key in ("column.class", "column.count", "column.mean_loss", "accuracy"):
            table.add_column(t(f"metrics.{key}"), justify="right")
        for stats in shown:
            table.add_row(
                str(stats.cls), str(stats.count), fmt(stats.mean_loss), fmt(stats.accuracy)
            )
        parts.append(table)
    return Group(*parts)
