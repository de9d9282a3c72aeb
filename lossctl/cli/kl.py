"""``kl``: two models' outputs (and labels) read, streamed block by block, checked, printed;
and ``merge`` of kl documents (exactly, through their ``state``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from lossctl.cli.emit import emit_document, emit_rich, number_format, summary
from lossctl.cli.inputs import check_stdin, read
from lossctl.cli.loss import finish_strict
from lossctl.cli.options import KLOptions, OutputOptions
from lossctl.cli.streams import note, warn
from lossctl.errors import InputError

if TYPE_CHECKING:
    import numpy.typing as npt

    from lossctl.core.kl_stats import KLStats
    from lossctl.core.kl_stream import KLPass
    from lossctl.dask.engine import EngineInfo
    from lossctl.doctor import Finding
    from lossctl.doctor.kl import KLInputCheck
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
    engine = None
    if options.scheduler:
        if output.explain:
            raise InputError("--explain works on one input here, not on a Dask cluster")
        shards, engine = run_on_cluster(options, groups, options.scheduler)
    else:
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
    report(options, output, shards, messages, engine)
    finish_strict(options.strict, messages)


def run_on_cluster(
    options: KLOptions, groups: list[tuple[str, ...]], scheduler: str
) -> tuple[list[Shard], EngineInfo]:
    """Every group read and streamed by a Dask worker (``--scheduler``), the doctor's check
    run there on every block; the statistics and checks combined here, in group order."""
    from functools import partial

    from lossctl.cli.progress import following_tasks
    from lossctl.dask.kl_shards import KLShardOptions, score_kl_shards
    from lossctl.doctor.kl import KLInputCheck

    shard_options = KLShardOptions(options.spec(), key=options.key, labels_key=options.labels_key)
    make_check = partial(KLInputCheck, options.log_probs)
    with following_tasks(len(groups), options.quiet) as on_done:
        scores, engine = score_kl_shards(
            groups, make_check, shard_options, scheduler=scheduler, on_done=on_done
        )
    for text in (text for score in scores for text in score.notes):
        note(text)
    shards = [checked_shard(s.result, s.sources, KLInputCheck.combined(s.checks)) for s in scores]
    return shards, engine


def _labels_array(labels: Loaded | None) -> npt.NDArray[Any] | None:
    return None if labels is None else labels.array


def compute(
    options: KLOptions, output: OutputOptions, group: tuple[str, ...], advance: Any
) -> Shard:
    """Read one group and stream it (with the doctor watching every block)."""
    from lossctl.core.kl_run import prepare, run_kl
    from lossctl.doctor.kl import KLInputCheck

    ref = read(group[0], options.key)
    oth = read(group[1], options.key)
    lab = read(group[2], options.labels_key) if len(group) == 3 else None
    sources: dict[str, str | None] = {
        "reference": ref.source,
        "other": oth.source,
        "labels": None if lab is None else lab.source,
    }
    spec = options.spec()
    stored = ref.meta.get("dim")
    check = KLInputCheck(options.log_probs)
    try:
        prepared = prepare(
            spec,
            ref.array,
            oth.array,
            _labels_array(lab),
            stored if isinstance(stored, int) else None,
        )
        result = run_kl(spec, prepared, observe=check.observe, on_rows=advance)
        trace = None
        if output.explain:
            from lossctl.trace.kl import explain_kl

            trace = explain_kl(
                *prepared.arrays,
                class_dim=result.class_dim,
                log_probs=options.log_probs,
                ignore_index=options.ignore_index,
            )
    except InputError as error:
        raise error.located(sources) from None
    return checked_shard(result, sources, check, trace)


def checked_shard(
    result: KLPass, sources: dict[str, str | None], check: KLInputCheck, trace: Any = None
) -> Shard:
    """A computed group with its findings and messages (the same locally and on Dask)."""
    from lossctl.render.messages import kl_pass_messages, message

    findings = check.findings({k: v for k, v in sources.items() if v})
    shard = Shard(result, sources, findings, [message(f) for f in findings], trace)
    shard.messages += kl_pass_messages(result)
    return shard


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
    options: KLOptions,
    output: OutputOptions,
    shards: list[Shard],
    messages: list[str],
    engine: EngineInfo | None = None,
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
        if options.reduction == "none":
            parts = [s.result.per_position for s in shards]
            per_position = np.concatenate([np.ravel(p) for p in parts if p is not None])
    from lossctl.render.messages import finding_json

    findings = [finding_json(f) for s in shards for f in s.findings]
    emit(
        stats,
        reverse,
        settings,
        inputs,
        messages,
        findings,
        output,
        per_position,
        shards[0].trace,
        engine,
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
    engine: EngineInfo | None = None,
) -> None:
    """The document (``--json`` / ``-o``) and the tables of one result or a merge
    (``engine``: the Dask cluster that computed it)."""
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
        if engine is not None:
            document["engine"] = engine
        array = per_position if per_position is not None else np.asarray(numbers["kl"]["mean"])
        emit_document(document, output, array)
    if output.json:
        return
    if trace is not None:
        from lossctl.render.kl import kl_explain_view

        emit_rich(kl_explain_view(trace, fmt=number_format(output), summary=summary(output)))
    from lossctl.render.i18n import t
    from lossctl.render.kl import kl_view

    facts = _facts(settings, inputs)
    title = "KL(reference ‖ other)"
    if settings.get("shards"):
        title = t("merge.title", op=title, shards=settings["shards"])
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
    from lossctl.render.i18n import t

    facts: list[tuple[str, str]] = []
    if settings.get("shape") is not None:
        facts.append(("shape", str(tuple(settings["shape"]))))
    if settings.get("class_dim") is not None:
        axis = t("result.class_axis_value", axis=settings["class_dim"], classes=settings["classes"])
        facts.append(("class axis", axis))
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
