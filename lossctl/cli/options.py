"""Every command-line option, declared once, and option groups that commands share.

A group is a frozen dataclass whose fields carry their typer declaration
(``Annotated[type, typer.Option(...)]``) and default. :func:`grouped` turns a
handler that takes groups (``def ce(files, target: TargetOptions, …)``) into the flat
signature typer reads, and hands the handler typed objects back, so ``ce`` and
``nll`` share one declaration and nothing travels as a string-keyed dict.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

import typer

LOSS = "Loss"
INPUT = "Input"
OUTPUT = "Output"
EXTRAS = "Extras"


class Reduction(str, Enum):
    mean = "mean"
    sum = "sum"
    none = "none"


class Precision(str, Enum):
    auto = "auto"
    float64 = "float64"


class Header(str, Enum):
    auto = "auto"
    yes = "yes"
    no = "no"


class LossName(str, Enum):
    ce = "ce"
    nll = "nll"


def check_output_option(value: str | None) -> str | None:
    """``--output``: refuse an impossible path before any work (exit status 2)."""
    if value is not None:
        from lossctl.io.atomic import check_output_path

        problem = check_output_path(value)
        if problem:
            raise typer.BadParameter(problem)
    return value


FilesArgument = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="INPUT LABELS",
        help="Input and labels (JSON, CSV, NPY, NPZ, or '-'); shards: globs or INPUTS… LABELS…",
        show_default=False,
    ),
]
DimOption = Annotated[
    int,
    typer.Option(
        "--dim", "-d", help="Axis to normalise over (default: the last).", rich_help_panel=LOSS
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="Array in an NPZ or JSON object (or FILE:KEY).",
        rich_help_panel=INPUT,
    ),
]
HeaderOption = Annotated[
    Header,
    typer.Option(
        "--header",
        help="CSV: is the first line column names? (auto: names, or pandas' 0,1,…)",
        rich_help_panel=INPUT,
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document only.", rich_help_panel=OUTPUT),
]
OutputPathOption = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        callback=check_output_option,
        help="Also write the result to FILE: .npy the array, else the --json document.",
        rich_help_panel=OUTPUT,
    ),
]
DigitsOption = Annotated[
    int,
    typer.Option(
        "--digits", min=0, max=17, help="Decimal places in tables.", rich_help_panel=OUTPUT
    ),
]
StrictOption = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Exit with status 1 when there is any warning (for CI).",
        rich_help_panel=EXTRAS,
    ),
]
LabelSmoothingOption = Annotated[
    float,
    typer.Option("--label-smoothing", help="Smoothing ε in [0, 1].", rich_help_panel=LOSS),
]


@dataclass(frozen=True)
class TargetOptions:
    """How the labels are read and matched to the input (ce, nll, doctor)."""

    class_dim: Annotated[
        int | None,
        typer.Option(
            "--class-dim",
            "-d",
            help="The class axis (default: inferred from the shapes).",
            rich_help_panel=LOSS,
        ),
    ] = None
    ignore_index: Annotated[
        int,
        typer.Option(
            "--ignore-index",
            help="Target value that is skipped.",
            rich_help_panel=LOSS,
        ),
    ] = -100
    weight: Annotated[
        str | None,
        typer.Option(
            "--weight",
            "-w",
            help="Class weights: a file or 1,2,0.5.",
            rich_help_panel=LOSS,
        ),
    ] = None
    key: KeyOption = None
    header: HeaderOption = Header.auto
    labels_key: Annotated[
        str | None,
        typer.Option(
            "--labels-key", help="Array to take from the labels file.", rich_help_panel=INPUT
        ),
    ] = None


@dataclass(frozen=True)
class LossOptions:
    """How ``ce`` / ``nll`` reduce and compute, and where many shards come from."""

    reduction: Annotated[
        Reduction,
        typer.Option(
            "--reduction",
            "-r",
            help="mean, sum, or none (per position).",
            rich_help_panel=LOSS,
        ),
    ] = Reduction.mean
    precision: Annotated[
        Precision,
        typer.Option(
            "--precision",
            help="auto: float32 exp, float64 sums (5e-7); float64: all float64.",
            rich_help_panel=LOSS,
        ),
    ] = Precision.auto
    manifest: Annotated[
        str | None,
        typer.Option(
            "--manifest",
            help="File of 'INPUT LABELS' lines.",
            rich_help_panel=INPUT,
        ),
    ] = None
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No progress bar on stderr.", rich_help_panel=OUTPUT),
    ] = False
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            envvar="DASK_SCHEDULER_ADDRESS",
            show_envvar=True,
            help="Dask cluster: tcp://HOST:PORT or local:N (the dask extra).",
            rich_help_panel=INPUT,
        ),
    ] = None


@dataclass(frozen=True)
class ElementwiseOptions:
    """How ``softmax`` / ``log-softmax`` / ``log`` compute their result."""

    precision: Annotated[
        Precision,
        typer.Option(
            "--precision",
            help="auto: the result keeps the input's float dtype (float16, float32 or float64; "
            "integers give float64); float16/float32 use float32 exp with float64 sums (a few "
            "ulps); float64: a float64 result, every step in float64. --json is always float64.",
            rich_help_panel=LOSS,
        ),
    ] = Precision.auto


@dataclass(frozen=True)
class SmoothingOptions:
    """``--label-smoothing`` (cross-entropy only)."""

    label_smoothing: LabelSmoothingOption = 0.0


@dataclass(frozen=True)
class ExtraOptions:
    """What ``ce`` / ``nll`` compute besides the loss."""

    grad: Annotated[
        bool,
        typer.Option(
            "--grad",
            help="Also give d loss / d input, as torch.autograd does.",
            rich_help_panel=EXTRAS,
        ),
    ] = False
    metrics: Annotated[
        bool,
        typer.Option(
            "--metrics",
            help="Also perplexity, accuracy, top-k accuracy, entropy, per-class table.",
            rich_help_panel=EXTRAS,
        ),
    ] = False
    topk: Annotated[
        int | None,
        typer.Option(
            "--topk",
            min=1,
            help="k of the top-k accuracy (default 5; implies --metrics).",
            rich_help_panel=EXTRAS,
        ),
    ] = None
    shift: Annotated[
        bool,
        typer.Option(
            "--shift",
            help="Causal LM: logits (N, L, C) at t predict labels (N, L) at t+1 (HF).",
            rich_help_panel=EXTRAS,
        ),
    ] = False
    strict: StrictOption = False

    @property
    def wants_metrics(self) -> bool:
        """``--topk`` implies ``--metrics``."""
        return self.metrics or self.topk is not None

    @property
    def k(self) -> int:
        return 5 if self.topk is None else self.topk


@dataclass(frozen=True)
class OutputOptions:
    """How a result is printed or written."""

    json: JsonOption = False
    path: OutputPathOption = None
    digits: DigitsOption = 4
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Show every number.",
            rich_help_panel=OUTPUT,
        ),
    ] = False
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Show every step as tables (--json: a 'steps' array).",
            rich_help_panel=OUTPUT,
        ),
    ] = False

    @property
    def document_wanted(self) -> bool:
        """Whether the JSON document is built: printed (``--json``) or written (``-o``)."""
        return self.json or self.path is not None


Handler = Callable[..., None]


def grouped(handler: Handler) -> Handler:
    """``handler`` with its option-group parameters spread out for typer.

    A parameter annotated with a dataclass becomes that dataclass's fields (each a
    typer option); the wrapper rebuilds the dataclass from them before calling
    ``handler``. Field names must be unique across a handler's groups.
    """
    hints = typing.get_type_hints(handler, include_extras=True)
    parameters: list[inspect.Parameter] = []
    groups: dict[str, tuple[type[Any], list[str]]] = {}
    for name, parameter in inspect.signature(handler).parameters.items():
        annotation = hints[name]
        if not (isinstance(annotation, type) and dataclasses.is_dataclass(annotation)):
            parameters.append(parameter.replace(annotation=annotation))
            continue
        field_hints = typing.get_type_hints(annotation, include_extras=True)
        names = [field.name for field in dataclasses.fields(annotation)]
        groups[name] = (annotation, names)
        parameters += [
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=field.default,
                annotation=field_hints[field.name],
            )
            for field in dataclasses.fields(annotation)
        ]
    seen = [parameter.name for parameter in parameters]
    assert len(seen) == len(set(seen)), f"duplicate option names in {handler.__name__}"

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        for name, (group, names) in groups.items():
            kwargs[name] = group(**{field: kwargs.pop(field) for field in names})
        handler(*args, **kwargs)

    del wrapper.__wrapped__  # typer must read the spread signature, not the handler's
    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


class KLReduction(str, Enum):
    mean = "mean"
    none = "none"


KLFilesArgument = Annotated[
    list[str],
    typer.Argument(
        metavar="REFERENCE OTHER [LABELS]",
        help="Two models' logits of one shape (JSON, CSV, NPY, NPZ, safetensors, .pt, or '-') "
        "and optional labels; for many shards, glob patterns or REF… OTHER… [LABELS…].",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class KLOptions:
    """How ``kl`` reads its inputs and what it computes besides KL(P_ref ‖ P_other)."""

    class_dim: Annotated[
        int | None,
        typer.Option(
            "--class-dim",
            "-d",
            help="Axis that holds the classes. Default: inferred from LABELS, else the last.",
            rich_help_panel=LOSS,
        ),
    ] = None
    ignore_index: Annotated[
        int,
        typer.Option(
            "--ignore-index",
            help="Label value whose positions are left out of every statistic.",
            rich_help_panel=LOSS,
        ),
    ] = -100
    log_probs: Annotated[
        bool,
        typer.Option(
            "--log-probs",
            help="The inputs are log-probabilities: KL = Σ exp(x)(x - y) as given (rows whose "
            "logsumexp is not 0 are reported).",
            rich_help_panel=LOSS,
        ),
    ] = False
    precision: Annotated[
        Precision,
        typer.Option(
            "--precision",
            help="auto: float32 exp, float64 sums (~1e-7); float64: all float64.",
            rich_help_panel=LOSS,
        ),
    ] = Precision.auto
    both_directions: Annotated[
        bool,
        typer.Option(
            "--both-directions",
            help="Also KL(P_other ‖ P_ref) and the symmetric mean.",
            rich_help_panel=EXTRAS,
        ),
    ] = False
    reduction: Annotated[
        KLReduction,
        typer.Option(
            "--reduction",
            "-r",
            help="mean: the statistics; none: also the KL per position (-o kl.npy writes it).",
            rich_help_panel=LOSS,
        ),
    ] = KLReduction.mean
    shift: Annotated[
        bool,
        typer.Option(
            "--shift",
            help="Causal LM: logits at t predict label t+1 (as for ce; needs LABELS).",
            rich_help_panel=EXTRAS,
        ),
    ] = False
    key: KeyOption = None
    labels_key: Annotated[
        str | None,
        typer.Option(
            "--labels-key", help="Array to take from the labels file.", rich_help_panel=INPUT
        ),
    ] = None
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No progress bar on stderr.", rich_help_panel=OUTPUT),
    ] = False
    strict: StrictOption = False
