"""Every command-line option, declared once, and option groups that commands share.

A group is a ``NamedTuple`` whose fields carry their typer declaration
(``Annotated[type, typer.Option(...)]``) and default (a NamedTuple, not a frozen
dataclass: defining one costs 0.1 ms at import instead of 1.3 ms, and start-up counts).
:func:`grouped` turns a handler that takes groups (``def ce(files, target:
TargetOptions, …)``) into the flat signature typer reads, and hands the handler typed
objects back, so ``ce`` and ``nll`` share one declaration and nothing travels as a
string-keyed dict.

No ``from __future__ import annotations`` here: the groups' annotations are evaluated
once, at import, instead of compiled from strings by ``NamedTuple`` and again by
``typing.get_type_hints`` whenever the app is built (3 ms of start-up).
"""

import functools
import inspect
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple

import typer

if TYPE_CHECKING:
    from lossctl.core.kl_run import KLSpec

LOSS = "Loss"
INPUT = "Input"
OUTPUT = "Output"
EXTRAS = "Extras"


def option(panel: str, *names: str, **settings: Any) -> Any:
    """``typer.Option(*names, **settings)`` shown in the ``--help`` panel ``panel``."""
    return typer.Option(*names, rich_help_panel=panel, **settings)


# Choices are Literal types (typer lists them in --help and refuses others), the same
# strings the core and the readers take, so a handler passes them on unconverted.
Reduction = Literal["mean", "sum", "none"]
Precision = Literal["auto", "float64"]
Header = Literal["auto", "yes", "no"]
LossName = Literal["ce", "nll"]
KLReduction = Literal["mean", "none"]


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
    option(LOSS, "--dim", "-d", help="Axis to normalise over (default: the last)."),
]
KeyOption = Annotated[
    str | None,
    option(INPUT, "--key", help="Array in an NPZ or JSON object (or FILE:KEY)."),
]
HeaderOption = Annotated[
    Header,
    option(
        INPUT,
        "--header",
        help="CSV: is the first line column names? (auto: names, or pandas' 0,1,…)",
    ),
]
JsonOption = Annotated[
    bool,
    option(OUTPUT, "--json", help="Print one JSON document only."),
]
OutputPathOption = Annotated[
    str | None,
    option(
        OUTPUT,
        "--output",
        "-o",
        callback=check_output_option,
        help="Also write the result to FILE: .npy the array, else the --json document.",
    ),
]
DigitsOption = Annotated[
    int,
    option(OUTPUT, "--digits", min=0, max=17, help="Decimal places in tables."),
]
StrictOption = Annotated[
    bool,
    option(EXTRAS, "--strict", help="Exit with status 1 when there is any warning (for CI)."),
]
LabelsKeyOption = Annotated[
    str | None, option(INPUT, "--labels-key", help="Array to take from the labels file.")
]
QuietOption = Annotated[bool, option(OUTPUT, "--quiet", "-q", help="No progress bar on stderr.")]
SchedulerOption = Annotated[
    str | None,
    option(
        INPUT,
        "--scheduler",
        envvar="DASK_SCHEDULER_ADDRESS",
        show_envvar=True,
        help="Dask cluster: tcp://HOST:PORT or local:N (the dask extra).",
    ),
]
LabelSmoothingOption = Annotated[
    float,
    option(LOSS, "--label-smoothing", help="Smoothing ε in [0, 1]."),
]


class TargetOptions(NamedTuple):
    """How the labels are read and matched to the input (ce, nll, doctor)."""

    class_dim: Annotated[
        int | None,
        option(
            LOSS, "--class-dim", "-d", help="The class axis (default: inferred from the shapes)."
        ),
    ] = None
    ignore_index: Annotated[
        int,
        option(LOSS, "--ignore-index", help="Target value that is skipped."),
    ] = -100
    weight: Annotated[
        str | None,
        option(LOSS, "--weight", "-w", help="Class weights: a file or 1,2,0.5."),
    ] = None
    key: KeyOption = None
    header: HeaderOption = "auto"
    labels_key: LabelsKeyOption = None


class LossOptions(NamedTuple):
    """How ``ce`` / ``nll`` reduce and compute, and where many shards come from."""

    reduction: Annotated[
        Reduction,
        option(LOSS, "--reduction", "-r", help="mean, sum, or none (per position)."),
    ] = "mean"
    precision: Annotated[
        Precision,
        option(
            LOSS,
            "--precision",
            help="auto: float32 exp, float64 sums (5e-7); float64: all float64.",
        ),
    ] = "auto"
    manifest: Annotated[
        str | None,
        option(INPUT, "--manifest", help="File of 'INPUT LABELS' lines."),
    ] = None
    quiet: QuietOption = False
    scheduler: SchedulerOption = None


class ElementwiseOptions(NamedTuple):
    """How ``softmax`` / ``log-softmax`` / ``log`` compute their result."""

    precision: Annotated[
        Precision,
        option(
            LOSS,
            "--precision",
            help="auto: the result keeps the input's float dtype (float16, float32 or float64; "
            "integers give float64); float16/float32 use float32 exp with float64 sums (a few "
            "ulps); float64: a float64 result, every step in float64. --json is always float64.",
        ),
    ] = "auto"


class SmoothingOptions(NamedTuple):
    """``--label-smoothing`` (cross-entropy only)."""

    label_smoothing: LabelSmoothingOption = 0.0


class ExtraOptions(NamedTuple):
    """What ``ce`` / ``nll`` compute besides the loss."""

    grad: Annotated[
        bool,
        option(EXTRAS, "--grad", help="Also give d loss / d input, as torch.autograd does."),
    ] = False
    metrics: Annotated[
        bool,
        option(
            EXTRAS,
            "--metrics",
            help="Also perplexity, accuracy, top-k accuracy, entropy, per-class table.",
        ),
    ] = False
    topk: Annotated[
        int | None,
        option(
            EXTRAS, "--topk", min=1, help="k of the top-k accuracy (default 5; implies --metrics)."
        ),
    ] = None
    shift: Annotated[
        bool,
        option(
            EXTRAS,
            "--shift",
            help="Causal LM: logits (N, L, C) at t predict labels (N, L) at t+1 (HF).",
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


class OutputOptions(NamedTuple):
    """How a result is printed or written."""

    json: JsonOption = False
    path: OutputPathOption = None
    digits: DigitsOption = 4
    full: Annotated[
        bool,
        option(OUTPUT, "--full", help="Show every number."),
    ] = False
    explain: Annotated[
        bool,
        option(OUTPUT, "--explain", help="Show every step as tables (--json: a 'steps' array)."),
    ] = False

    @property
    def document_wanted(self) -> bool:
        """Whether the JSON document is built: printed (``--json``) or written (``-o``)."""
        return self.json or self.path is not None


Handler = Callable[..., None]


def is_group(annotation: object) -> bool:
    """Whether ``annotation`` is an option group (a NamedTuple class)."""
    return (
        isinstance(annotation, type)
        and issubclass(annotation, tuple)
        and hasattr(annotation, "_fields")
    )


def group_parameters(group: type[Any]) -> list[inspect.Parameter]:
    """The fields of the option group ``group`` as keyword-only parameters for typer."""
    hints = typing.get_type_hints(group, include_extras=True)
    defaults = group._field_defaults
    return [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=defaults.get(name, inspect.Parameter.empty),
            annotation=hints[name],
        )
        for name in group._fields
    ]


def grouped(handler: Handler) -> Handler:
    """``handler`` with its option-group parameters spread out for typer.

    A parameter annotated with a group becomes that group's fields (each a typer
    option); the wrapper rebuilds the group from them before calling ``handler``.
    Field names must be unique across a handler's groups.
    """
    hints = typing.get_type_hints(handler, include_extras=True)
    parameters: list[inspect.Parameter] = []
    groups: dict[str, tuple[type[Any], tuple[str, ...]]] = {}
    for name, parameter in inspect.signature(handler).parameters.items():
        annotation = hints[name]
        if not is_group(annotation):
            parameters.append(parameter.replace(annotation=annotation))
            continue
        groups[name] = (annotation, annotation._fields)
        parameters += group_parameters(annotation)
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


KLFilesArgument = Annotated[
    list[str],
    typer.Argument(
        metavar="REFERENCE OTHER [LABELS]",
        help="Two models' logits of one shape (JSON, CSV, NPY, NPZ, safetensors, .pt, or '-') "
        "and optional labels; for many shards, glob patterns or REF… OTHER… [LABELS…].",
        show_default=False,
    ),
]


class KLOptions(NamedTuple):
    """How ``kl`` reads its inputs and what it computes besides KL(P_ref ‖ P_other)."""

    class_dim: Annotated[
        int | None,
        option(
            LOSS,
            "--class-dim",
            "-d",
            help="Axis that holds the classes. Default: inferred from LABELS, else the last.",
        ),
    ] = None
    ignore_index: Annotated[
        int,
        option(
            LOSS,
            "--ignore-index",
            help="Label value whose positions are left out of every statistic.",
        ),
    ] = -100
    log_probs: Annotated[
        bool,
        option(
            LOSS,
            "--log-probs",
            help="The inputs are log-probabilities: KL = Σ exp(x)(x - y) as given.",
        ),
    ] = False
    precision: Annotated[
        Precision,
        option(
            LOSS,
            "--precision",
            help="auto: float32 exp, float64 sums (~1e-7); float64: all float64.",
        ),
    ] = "auto"
    both_directions: Annotated[
        bool,
        option(
            EXTRAS, "--both-directions", help="Also KL(P_other ‖ P_ref) and the symmetric mean."
        ),
    ] = False
    reduction: Annotated[
        KLReduction,
        option(
            LOSS,
            "--reduction",
            "-r",
            help="mean: the statistics; none: also the KL per position (-o kl.npy writes it).",
        ),
    ] = "mean"
    shift: Annotated[
        bool,
        option(
            EXTRAS,
            "--shift",
            help="Causal LM: logits at t predict label t+1 (as for ce; needs LABELS).",
        ),
    ] = False
    key: KeyOption = None
    labels_key: LabelsKeyOption = None
    quiet: QuietOption = False
    strict: StrictOption = False
    scheduler: SchedulerOption = None

    def spec(self) -> "KLSpec":
        """The core's spec of these options."""
        from lossctl.core.kl_run import KLSpec

        return KLSpec(
            class_dim=self.class_dim,
            log_probs=self.log_probs,
            ignore_index=self.ignore_index,
            both_directions=self.both_directions,
            per_position=self.reduction == "none",
            shift=self.shift,
            precision=self.precision,
        )
