"""The English catalogue: every message id and its text (the default language).

Ids are grouped by where the text appears: ``trace.*`` (the ``--explain`` steps'
titles and notes, as :mod:`lossctl.trace` writes them), ``legend.*`` and ``axis.*``
(how to read a grid), ``result.*`` (the result tables), ``doctor.*`` and ``finding.*``
(``lossctl doctor``). ``{name}`` marks a field filled in by the renderer.
"""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    # ------------------------------------------------------------ the --explain trace
    "trace.input.title": "Input logits",
    "trace.input.note": "Raw scores (logits), one per class at each position: the larger, the "
    "more the model favours that class. They are not probabilities yet.",
    "trace.shift.title": "Max-shift",
    "trace.shift.note": "Subtract each position's largest value: exp(x - max) ≤ 1 cannot "
    "overflow, and the probabilities do not change (exp(-max) cancels in the division).",
    "trace.exp.title": "Exponentiate and sum",
    "trace.exp.note": "exp makes every value positive and Σ adds them up per position; the max's "
    "term is exactly 1, so 1 ≤ Σ ≤ classes, and lse = log Σ_c exp(x_c) without overflow.",
    "trace.softmax.title": "Softmax",
    "trace.softmax.note": "Each exp divided by its position's Σ: probabilities, each in [0, 1], "
    "that sum to 1 at every position (the bars draw them).",
    "trace.log_softmax.title": "Log of the softmax = log-softmax",
    "trace.log_softmax.note": "The log of each probability: 0 for a certain class, more negative "
    "the less likely it is. Computed as (x - max) - log Σ, not log(softmax): tiny probabilities "
    "keep exact logs.",
    "trace.nll.title": "NLL: pick the target, negate",
    "trace.nll.note": "Pick each position's log-probability at its target class and negate it: "
    "-log p is 0 when the model is sure of the right class and grows as p shrinks; ignored "
    "positions count 0.",
    "trace.reduce.mean": "Reduction: mean",
    "trace.reduce.sum": "Reduction: sum",
    "trace.reduce.none": "Reduction: none",
    "trace.reduce.none.note": "The per-position losses of the previous step are the result.",
    "trace.identity.title": "What this showed",
    "trace.identity.note": "Softmax, then log, then NLL: cross-entropy is NLL applied to "
    "log-softmax, as the tutorial “NLLLoss vs CrossEntropy: code + principle + why it works” "
    "works out by hand (the seed example is its example): CrossEntropy = Softmax + log + "
    "NLLLoss.",
    "trace.pick.title": "Pick",
    "trace.negate.title": "Negate",
    "trace.log.title": "Log",
    "trace.gradient.title": "Gradient",
    "trace.losses.title": "Per-position losses",
    "trace.mask.title": "Mask",
    "trace.mask_weight.title": "Mask and weight",
    "trace.column.target": "target",
    "trace.column.loss": "loss",
    "trace.column.mask": "mask",
    # ------------------------------------------------------------ how to read a grid
    "axis.class": "class",
    "axis.position": "position",
    "legend.axis": "{name} (axis {axis})",
    "legend.rows": "rows: {axes}",
    "legend.columns": "columns: {axes}",
    "legend.target": "* = target class",
    "legend.ignored": "( ) = ignored position",
    "legend.elided": "… = elided (--full shows all)",
    # ------------------------------------------------------------ result tables
    "result.cross_entropy": "cross-entropy",
    "result.nll_loss": "NLL loss",
    "result.softmax": "softmax",
    "result.log_softmax": "log-softmax",
    "result.log": "log",
    "result.loss": "loss",
    "result.reduction": "reduction",
    "result.input_shape": "input shape",
    "result.class_axis": "class axis",
    "result.class_axis_value": "{axis} ({classes} classes)",
    "result.targets": "targets",
    "result.counted": "counted",
    "result.ignored": "ignored",
    "result.sum": "sum",
    "result.denominator": "denominator",
    "result.denominator.no_classes": "numel/classes = 0/0 with 0 classes (PyTorch: nan)",
    "result.denominator.positions": "{count} positions (probability targets: N·d1·…·dk)",
    "result.denominator.weights": "Σ w[target] over {count} counted {targets}",
    "result.denominator.count": "{count} counted {targets}",
    "result.target": "target",
    "result.targets_plural": "targets",
    "result.input_file": "input file",
    "result.target_file": "target file",
    "result.weight_file": "weight file",
    "result.per_position": "{title} per position, shape {shape}",
    "result.shape": "shape",
    "result.axis": "axis",
    "result.elementwise": "elementwise",
    "result.axis_of": "{dim} (of {ndim})",
    "result.grid_elementwise": "{title}, elementwise",
    "result.grid_along": "{title} along axis {dim}",
    "result.grid_caption": "rows: axis {rows}; columns: axis {columns}",
    # ------------------------------------------------------------ doctor
    "doctor.info": "info",
    "doctor.warning": "warning",
    "doctor.error": "error",
    "doctor.none": "doctor: no problems found",
    "doctor.summary": "doctor: {parts}",
    "doctor.errors": "{n} error",
    "doctor.errors_plural": "{n} errors",
    "doctor.warnings": "{n} warning",
    "doctor.warnings_plural": "{n} warnings",
}
