"""``kl``: two models' outputs (and labels) read, streamed block by block, checked, printed;
and ``merge`` of kl documents (exactly, through their ``state``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from lossctl.cli.emit import emit_document, emit_rich, number_format, summary
from lossctl.cli.inputs import check_stdin, read
from lossctl.cli.loss import finish_strict
from lossctl.cli.options import KLOptions, KLReduction, OutputOptions
from lossctl.cli.streams import warn
from lossctl.errors import InputError

if TYPE_CHECKING:
    import numpy.typing as npt

    from lossctl.core.kl_stats import KLStats
    from lossctl.core.kl_stream import KLPass
    from lossctl.doctor import Finding
    from lossctl.io.readers import Loaded


@dataclass
class Shard:
    """One (reference, other[, labels]) group: its pass, sources, findings and messages."""

    result: KLPass
    sources: dict[str, str | None]
    findings: list[Finding] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    trace: Any = None


def run(options: KLOptions, output: OutputOptions, files: list[str]) -> None:
    """One group of inputs: the full report; several (shards): merged exactly."""
    from lossctl.cli.progress import Progress
    from lossctl.io.shards import split_groups

    if len(files) < 2:
        raise typer.BadParameter(
            "give the reference and the other model's logits (REFERENCE OTHER [LABELS])",
            param_hint="'REFERENCE OTHER [LABELS]'",
        )
    groups = split_groups(files, (2, 3))
    if len(groups) > 1 and output.explain:
        raise InputError("--explain works on one input at a time; run it per shard")
    check_stdin([spec for group in groups for spec in group])
    progress = Progress(0, "positions", enabled=not options.quiet)
    try:
        shards = [compute(options, output, group, progress.advance) for group in groups]
    finally:
        progress.close()
    messages: list[str] = []
    for shard in shards:
        prefix = f"{shard.sources['reference']}: " if len(shards) > 1 else ""
        messages += [prefix + message for message in shard.messages]
    for message in messages:
        warn(message)
    report(options, output, shards, messages)
    finish_strict(options.strict, messages)


def _labels_array(labels: Loaded | None) -> npt.NDArray[Any] | None:
    return None if labels is None else labels.array


def compute(
    options: KLOptions, output: OutputOptions, group: tuple[str, ...], advance: Any
) -> Shard:
    """Read one group and stream it (with the doctor watching every block)."""
    from lossctl.core.kl_stream import stream_kl
    from lossctl.doctor.kl import KLInputCheck

    ref = read(group[0], options.key)
    oth = read(group[1], options.key)
    lab = read(group[2], options.labels_key) if len(group) == 3 else None
    sources: dict[str, str | None] = {
        "reference": ref.source,
        "other": oth.source,
        "labels": None if lab is None else lab.source,
    }
    x, y, labels = ref.array, oth.array, _labels_array(lab)
    class_dim = options.class_dim
    if class_dim is None and isinstance(ref.meta.get("dim"), int):
        class_dim = int(ref.meta["dim"])  # type: ignore[call-overload]
    check = KLInputCheck(options.log_probs)
    try:
        if options.shift:
            x, y, labels, class_dim = _shifted(x, y, labels, class_dim)
        result = stream_kl(
            x,
            y,
            labels,
            class_dim=class_dim,
            log_probs=options.log_probs,
            ignore_index=options.ignore_index,
            both_directions=options.both_directions,
            precision=options.precision.value,
            per_position=options.reduction == KLReduction.none,
            observe=check.observe,
            on_rows=advance,
        )
        trace = None
        if output.explain:
            from lossctl.trace.kl import explain_kl

            trace = explain_kl(
                x,
                y,
                labels,
                class_dim=result.class_dim,
                log_probs=options.log_probs,
                ignore_index=options.ignore_index,
            )
    except InputError as error:
        raise error.located(sources) from None
    from lossctl.render.messages import message

    findings = check.findings({k: v for k, v in sources.items() if v})
    shard = Shard(result, sources, findings, [message(f) for f in findings], trace)
    shard.messages += _result_messages(result)
    return shard


def _shifted(
    x: npt.NDArray[Any], y: npt.NDArray[Any], labels: npt.NDArray[Any] | None, class_dim: int | None
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], int]:
    from lossctl.core.metrics import causal_shift

    if labels is None:
        raise InputError("--shift aligns the logits with the next token: give LABELS")
    if x.shape != y.shape:
        raise InputError(
            f"reference shape {list(x.shape)} and other shape {list(y.shape)} differ: "
            "kl compares two models' outputs for the same positions and classes"
        )
    x2, labels2, axis = causal_shift(x, labels, class_dim)
    y2, _, _ = causal_shift(y, labels, class_dim)
    return x2, y2, labels2, axis


def _result_messages(result: KLPass) -> list[str]:
    stats, out = result.stats, []
    if result.axis_candidates:
        axes = ", ".join(map(str, result.axis_candidates))
        out.append(
            f"the class axis is ambiguous: axes {axes} of shape {list(result.shape)} all fit the "
            f"labels; using axis {result.class_dim} (pass --class-dim to choose)"
        )
    if stats.kl.posinf:
        out.append(
            f"{stats.kl.posinf} positions have infinite KL: the other model gives probability "
            "0 (a -inf logit) to a class the reference gives probability > 0"
        )
    if stats.kl.nan:
        out.append(
            f"{stats.kl.nan} positions have NaN KL: NaN, +inf or all -inf logits in their rows"
        )
    if stats.nll.nonfinite:
        out.append(
            f"{stats.nll.nonfinite} labelled positions have an infinite or NaN NLL in one model; "
            "perplexities and NLL statistics are NaN"
        )
    return out


def settings_of(result: KLPass, options: KLOptions) -> dict[str, Any]:
    stats = result.stats
    return {
        "shape": list(result.shape),
        "class_dim": result.class_dim,
        "classes": stats.classes,
        "positions": result.total_positions,
        "ignored": result.total_positions - stats.positions,
        "log_probs": options.log_probs,
        "ignore_index": options.ignore_index,
        "labelled": stats.labelled,
        "shift": options.shift,
    }


def report(
    options: KLOptions, output: OutputOptions, shards: list[Shard], messages: list[str]
) -> None:
    import numpy as np

    from lossctl.core.kl_stats import merge_all

    if len(shards) == 1:
        shard = shards[0]
        stats, reverse = shard.result.stats, shard.result.reverse
        settings = settings_of(shard.result, options)
        inputs: Any = shard.sources
        per_position = shard.result.per_position
    else:
        stats = merge_all(s.result.stats for s in shards)
        reverse = (
            merge_all(s.result.reverse for s in shards if s.result.reverse is not None)
            if options.both_directions
            else None
        )
        each = [settings_of(s.result, options) for s in shards]
        settings = {
            **each[0],
            "shape": None,
            "class_dim": each[0]["class_dim"] if len({e["class_dim"] for e in each}) == 1 else None,
            "positions": sum(e["positions"] for e in each),
            "ignored": sum(e["ignored"] for e in each),
            "shards": len(shards),
        }
        inputs = [s.sources for s in shards]
        per_position = None
        if options.reduction == KLReduction.none:
            parts = [s.result.per_position for s in shards]
            per_position = np.concatenate([np.ravel(p) for p in parts if p is not None])
    from lossctl.render.messages import finding_json

    findings = [finding_json(f) for s in shards for f in s.findings]
    emit(
        stats, reverse, settings, inputs, messages, findings, output, per_position, shards[0].trace
    )


def emit(
    stats: KLStats,
    reverse: KLStats | None,
    settings: dict[str, Any],
    inputs: Any,
    messages: list[str],
    findings: list[dict[str, Any]],
    output: OutputOptions,
    per_position: Any = None,
    trace: Any = None,
) -> None:
    """The document (``--json`` / ``-o``) and the tables of one result or a merge."""
    import numpy as np

    from lossctl.core.kl_stream import kl_summary

    numbers = kl_summary(stats, reverse)
    if output.document_wanted:
        from lossctl.io.documents import kl_document

        document = kl_document(numbers, stats, reverse, settings, inputs, messages, findings)
        if per_position is not None:
            document["per_position"] = per_position
        if trace is not None:
            document["steps"] = trace.as_json()
        array = per_position if per_position is not None else np.asarray(numbers["kl"]["mean"])
        emit_document(document, output, array)
    if output.json:
        return
    if trace is not None:
        from lossctl.render.kl import kl_explain_view

        emit_rich(kl_explain_view(trace, fmt=number_format(output), summary=summary(output)))
    from lossctl.render.kl import kl_view

    facts = _facts(settings, inputs)
    title = "KL(reference ‖ other)"
    if settings.get("shards"):
        title += f" over {settings['shards']} shards"
    emit_rich(
        kl_view(
            numbers,
            fmt=number_format(output),
            facts=facts,
            title=title,
            grid=summary(output),
            per_position=per_position,
        )
    )


def _facts(settings: dict[str, Any], inputs: Any) -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = []
    if settings.get("shape") is not None:
        facts.append(("shape", str(tuple(settings["shape"]))))
    if settings.get("class_dim") is not None:
        facts.append(("class axis", f"{settings['class_dim']} ({settings['classes']} classes)"))
    if settings.get("ignored"):
        facts.append(("ignored", str(settings["ignored"])))
    if settings.get("log_probs"):
        facts.append(("inputs", "log-probabilities"))
    if isinstance(inputs, dict):
        facts += [(f"{name} file", str(path)) for name, path in inputs.items() if path]
    else:
        facts.append(("shards", str(len(inputs))))
    return facts


def merge_documents(documents: list[tuple[dict[str, Any], str]], output: OutputOptions) -> None:
    """``lossctl merge`` of kl documents: the exact statistics of all their positions."""
    from lossctl.core.kl_stats import merge_all
    from lossctl.io.documents import KL_SETTINGS, kl_state_from_document

    others = [source for document, source in documents if document.get("op") != "kl"]
    if others:
        raise InputError(
            f"{others[0]}: not a kl result; kl documents merge only with kl documents "
            "(merge ce/nll results separately)"
        )
    parts = [kl_state_from_document(document, source) for document, source in documents]
    first = parts[0][2]
    for (_, _, settings), (_, source) in zip(parts[1:], documents[1:], strict=True):
        for name in KL_SETTINGS:
            if settings[name] != first[name]:
                raise InputError(
                    f"{source}: {name} is {settings[name]!r} but {first[name]!r} in "
                    f"{documents[0][1]}; kl results merge only with the same settings"
                )
    stats = merge_all(p[0] for p in parts)
    reverses = [p[1] for p in parts]
    present = [r for r in reverses if r is not None]
    reverse = merge_all(present) if len(present) == len(reverses) else None
    shards = sum(int(d.get("shards") or 1) for d, _ in documents)
    settings = {
        **first,
        "shape": None,
        "class_dim": None,
        "positions": sum(int(d.get("positions") or 0) for d, _ in documents),
        "ignored": sum(int(d.get("ignored") or 0) for d, _ in documents),
        "shards": shards,
    }
    inputs = [source for _, source in documents]
    emit(stats, reverse, settings, inputs, [], [], output)
