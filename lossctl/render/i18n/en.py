"""The English catalogue: every message id and its text (the default language).

Ids are grouped by where the text appears: ``trace.*`` (the ``--explain`` steps'
titles and notes, as :mod:`lossctl.trace` writes them), ``legend.*`` and ``axis.*``
(how to read a grid), ``result.*`` (the result tables), ``doctor.*`` and ``finding.*``
(``lossctl doctor``). ``{name}`` marks a field filled in by the renderer.
"""

from __future__ import annotations

from lossctl.trace import phrases

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
    "trace.shift.formula": "x - max,   max = the largest x of each position",
    "trace.nll.formula": "loss_n = -logp[n, t_n],   0 where t_n = ignore_index",
    "trace.nll.formula.weighted": "loss_n = w[t_n]·(-logp[n, t_n]),   0 where t_n = ignore_index",
    "trace.reduce.formula.count": "mean = Σ_n loss_n / (number of counted targets)",
    "trace.reduce.formula.weights": "mean = Σ_n loss_n / Σ_n w[t_n]   (counted n)",
    "trace.reduce.formula.none": "none: one loss per position, no reduction",
    "trace.nll.note.weighted": "Pick each position's log-probability at its target class and "
    "negate it, times the class weight: -log p is 0 when the model is sure of the right class "
    "and grows as p shrinks; ignored positions count 0.",
    "trace.nll.input.title": "Input log-probabilities",
    "trace.nll.input.note": "NLL expects log-probabilities: each position's log Σ exp is then 0.",
    "trace.pick.formula": "x[n, t_n]: each position's value at its target class",
    "trace.pick.note": "NLL only picks: it does not normalise, and never looks at the other "
    "classes.",
    "trace.negate.note": "A log-probability is ≤ 0, so its negation is a loss ≥ 0.",
    "trace.mask.formula": "loss_n = mask_n · (-x[n, t_n]),   mask_n = 0 where t_n = ignore_index",
    "trace.mask_weight.formula": "loss_n = mask_n · w[t_n] · (-x[n, t_n]),   mask_n = 0 where "
    "t_n = ignore_index",
    "trace.mask.note": "Ignored positions contribute 0 and are not counted.",
    "trace.mask_weight.note": "Ignored positions contribute 0 and are not counted; counted "
    "ones are scaled by the weight of their target class.",
    "trace.check.identity": "The input looks like log-probabilities (log Σ exp = 0 at every "
    "checked position), so this is the cross-entropy of the logits it came from.",
    "trace.check.title": "The input is not log-probabilities",
    "trace.check.formula": "every value ≤ 0 and log Σ exp = 0 at each position",
    "trace.check.line": "nll only picks and negates. On raw logits it rewards a large value at "
    "the target whatever the other classes hold, so it can favour the wrong class and go "
    "negative. Take log_softmax first, or use ce, which does.",
    "trace.check.result": "ce gives: cross_entropy(x, t) = nll_loss(log_softmax(x), t)",
    "trace.log.input.title": "Input probabilities p",
    "trace.log.input.note.axis": "As given; probabilities are in [0, 1] and sum to 1 along the "
    "axis.",
    "trace.log.input.note": "As given; probabilities are in [0, 1].",
    "trace.log.formula": "log(p), elementwise",
    "trace.log.note": "log 1 = 0, log 0 = -inf, and the log of a negative number is nan.",
    "trace.log.identity": "The middle step of softmax → log → NLL; log_softmax does both at "
    "once, more accurately for tiny probabilities.",
    "trace.divide.title": "Divide: softmax",
    "trace.subtract.title": "Subtract: log-softmax",
    "trace.x.title": "Input x",
    "trace.gradient.nll.formula": "d loss / d x[n, c] = -s·1[c = t_n]: nonzero only at the target",
    "trace.gradient.nll.formula.weighted": "d loss / d x[n, c] = -s·w[t]·1[c = t_n]: nonzero "
    "only at the target",
    "trace.gradient.nll.note": "NLL only picks the input at the target, so only that entry has "
    "a gradient: a step of gradient descent (x - lr·grad) raises the target's log-probability, "
    "and nothing else moves.",
    "trace.gradient.soft.note": "Each class is pulled towards its target probability: the "
    "gradient is softmax(x) minus the (weighted) targets, negative where the model gives a "
    "class less than its target share, so gradient descent (x - lr·grad) raises those logits "
    "and lowers the others.",
    "trace.gradient.note": "softmax - onehot is p_t - 1 < 0 at the target and p_c > 0 at every "
    "other class, so gradient descent (x - lr·grad) pushes the target logit up and every other "
    "logit down, each in proportion to the probability it wrongly holds; a confident right "
    "answer (p_t ≈ 1) gets almost no push.",
    "trace.gradient.none": "reduction 'none': the gradient of the sum of the per-position losses",
    "trace.as_given": "As given.",
    "trace.kl.log_ratio": "log ratio",
    "trace.kl.weighted": "p · log ratio",
    "trace.kl.per_position": "KL per position",
    "trace.kl.weighted.formula": "p · (log p - log q), 0 where p = 0",
    "trace.stats.summary": "min {min} · median {median} · max {max} over {count} counted positions",
    "trace.stats.summary.one": "min {min} · median {median} · max {max} over 1 counted position",
    "trace.stats.nan": " ({nan} nan)",
    "trace.stats.worst": "worst: {header}",
    "trace.stats.predicted": "predicted",
    # the trace's sentences with numbers (lossctl/trace/phrases.py)
    **phrases.ENGLISH,
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
    # ------------------------------------------------------------ kl, --metrics, --grad tables
    "kl.mean": "KL mean",
    "kl.min": "min",
    "kl.max": "max",
    "kl.median": "median",
    "kl.symmetric": "symmetric mean",
    "kl.same_top1": "same top-1",
    "kl.overlap": "top-{k} overlap",
    "kl.counted": "counted positions",
    "kl.labelled": "with labels (target token)",
    "kl.ppl_reference": "PPL reference",
    "kl.ppl_other": "PPL other",
    "kl.ppl_ratio": "PPL ratio",
    "kl.log_ppl_ratio": "mean ln(PPL_o/PPL_r)",
    "kl.nll_correlation": "NLL correlation",
    "kl.delta_mean": "Δp mean",
    "kl.delta_rms": "Δp RMS",
    "kl.delta": "Δp {name}",
    "kl.per_position": "KL per position, shape {shape}",
    "kl.explain.title": "KL(reference ‖ other), step by step",
    "kl.explain.class_axis": "{dim} (moved last below)",
    "kl.inputs": "inputs",
    "kl.log_probabilities": "log-probabilities",
    "kl.logits": "logits",
    "kl.step.title": "{name}: {formula}",
    "kl.grid_caption": "rows: positions; columns: classes",
    "kl.reduce.mean": "mean",
    "kl.reduce.over": "over",
    "kl.shards": "shards",
    "kl.file.reference": "reference file",
    "kl.file.other": "other file",
    "kl.file.labels": "labels file",
    "metrics.title": "metrics",
    "metrics.perplexity": "perplexity",
    "metrics.mean_nll": "mean NLL",
    "metrics.accuracy": "accuracy",
    "metrics.topk_accuracy": "top-{k} accuracy",
    "metrics.topk_always": " (k ≥ {classes} classes: always right)",
    "metrics.entropy": "entropy",
    "metrics.nats": "{value} nats",
    "metrics.na": "n/a",
    "metrics.na_because": "n/a ({note})",
    "metrics.per_class": "per target class",
    "metrics.per_class.caption": "the {shown} most frequent of {total} target classes",
    "metrics.column.class": "class",
    "metrics.column.count": "count",
    "metrics.column.mean_loss": "mean loss",
    "grad.title": "gradient d loss / d input, shape {shape}",
    "grad.class_axis": "class axis {dim}",
    "grad.shift": "--shift: the last position predicts nothing, so its gradient is 0",
    "grad.written": "gradient written to",
    "trace.identity.note.smoothing": "Softmax, then log, then NLL: cross-entropy is NLL "
    "applied to log-softmax, with the targets smoothed by ε, as the tutorial “NLLLoss vs "
    "CrossEntropy: code + principle + why it works” works out by hand (the seed example is its "
    "example): CrossEntropy = Softmax + log + NLLLoss.",
    "merge.title": "{op} over {shards} shards",
    "merge.op.cross_entropy": "cross entropy",
    "merge.op.nll_loss": "nll loss",
    "merge.per_position_below": "per position, below",
    "merge.per_position": "{title}, per position",
    "result.kind.indices": "indices",
    "result.kind.probabilities": "probabilities",
    "result.kind.none": "none",
    "result.shifted": "shifted",
    "result.shifted_value": "{shape} (logits at t predict label t+1)",
    "result.no_values": "no values: the shape {shape} has a 0",
    "metrics.not_perplexity": "the input is not log-probabilities, so exp(mean NLL) is not a "
    "perplexity",
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
    # ------------------------------------------------------------ counted nouns, lists
    "noun.class": "{n} class",
    "noun.class_plural": "{n} classes",
    "noun.position": "{n} position",
    "noun.position_plural": "{n} positions",
    "noun.target": "{n} target",
    "noun.target_plural": "{n} targets",
    "noun.value": "{n} value",
    "noun.value_plural": "{n} values",
    "noun.infinite_value": "{n} infinite value",
    "noun.infinite_value_plural": "{n} infinite values",
    "list.more": ", … ({n} more)",
    "list.semicolon": "; ",
    "list.and": " and ",
    # ------------------------------------------------------------ doctor findings
    "finding.input-kind": "the input holds {kind} along class axis {class_dim} ({classes}){note}: "
    "{advice}",
    "finding.input-kind.no-classes": "the input has 0 classes along class axis {class_dim}: no "
    "value to judge",
    "finding.input-kind.note": ", not PyTorch's class axis {pytorch_class_dim} (found without "
    "labels)",
    "finding.kind.logits": "logits (values {values}{lse})",
    "finding.kind.lse": ", log-sum-exp {span}, not 0",
    "finding.kind.probabilities": "probabilities (every value in [0, 1], each position sums to "
    "{span})",
    "finding.kind.log-probabilities": "log-probabilities (every value ≤ 0, each position's "
    "log-sum-exp is {span})",
    "finding.kind.none": "nothing to judge (no finite positions)",
    "finding.advice.logits": "right for ce / CrossEntropyLoss; for nll, apply log_softmax first",
    "finding.advice.log-probabilities": "right for nll / NLLLoss (ce gives the same loss: "
    "log_softmax is idempotent)",
    "finding.advice.probabilities": "take the log for nll; ce wants the logits from before the "
    "softmax",
    "finding.advice.other": "see the other findings",
    "finding.double-softmax": "cross-entropy was given probabilities (each position sums to 1), "
    "so softmax is applied twice: the mean loss {loss} can never go below log(1 + (C-1)/e) = "
    "{floor} for C = {classes}, whatever the model learns; on these probabilities the loss is "
    "{loss_on_probabilities}; pass the logits from before the softmax (or use nll on their log)",
    "finding.nll-on-logits": "nll expects log-probabilities but was given logits ({evidence}): "
    "the loss {loss} is just minus the input at the targets, not a likelihood, and can be "
    "negative; cross-entropy on these logits gives {loss_cross_entropy}; use `lossctl ce` "
    "(F.cross_entropy), or apply log_softmax first",
    "finding.evidence.lse": "log-sum-exp {low}…{high}, not 0",
    "finding.evidence.max": "values up to {max}, above 0",
    "finding.nll-on-probabilities": "nll expects log-probabilities but was given probabilities "
    "(each position sums to 1): the loss {loss} is minus the probability at the targets, always "
    "in [-1, 0]; on their log it is {loss_on_log}; take the log first (`lossctl log`, "
    "torch.log) or give ce the logits",
    "finding.ambiguous-class-axis": "the class axis is ambiguous: axes {axes} of input shape "
    "{input_shape} all fit target shape {target_shape}; the mean loss with each is {losses}; "
    "pass --class-dim to choose (PyTorch silently uses axis {pytorch_class_dim}{layout})",
    "finding.axis.used": "axis {axis} (used): {loss}",
    "finding.axis.none": "axis {axis}: n/a (targets ≥ {classes})",
    "finding.axis.loss": "axis {axis}: {loss}",
    "finding.layout.permute": ": an (N, L, C) input needs .permute(0, 2, 1) first",
    "finding.layout.transpose": ": for (C, N) logits pass .T",
    "finding.target-out-of-range": "{count} of {targets} targets are out of range for {classes} "
    "classes (valid: 0…{last}, or ignore_index {ignore_index}): {positions}; {hint} (PyTorch: "
    "'Target … is out of bounds' on CPU, a device-side assert on CUDA)",
    "finding.hint.padding": "if {value} marks padding, pass --ignore-index {value} "
    "(ignore_index={value})",
    "finding.hint.one-based": "the labels look 1-based: subtract 1",
    "finding.hint.other": "the labels need the classes' 0-based indices, or the model more classes",
    "finding.ignore-index-is-a-class": "ignore_index {ignore_index} is also a class "
    "(0…{last}): {ignored} equal to {ignore_index} skipped, yet class {ignore_index} still "
    "takes part in every other position's softmax (ignore_index ignores targets, not classes); "
    "if class {ignore_index} is real, mark padding with -100 (the default) instead",
    "finding.all-ignored": "every target ({ignored}) equals ignore_index ({ignore_index}): "
    "nothing is counted, so the mean is nan (0/0; PyTorch returns nan too) and the sum is 0; "
    "check the labels or the padding mask",
    "finding.soft-targets-not-normalized": "{count} of {positions_total} probability targets "
    "do not sum to 1 (sums {sum_min}…{sum_max}, {negative} with negative values): {positions}; "
    "PyTorch accepts them silently and each position's loss scales with its sum; normalise the "
    "targets (q / q.sum(class_dim)) or pass class indices",
    "finding.neg-inf-at-target": "{count} with a -inf {what} at the target: the loss there is "
    "inf (the model gives the right class probability 0): {positions}; mask with a large "
    "negative number (e.g. torch.finfo(dtype).min) instead of -inf, or fix the mask that "
    "removed the target class",
    "finding.what.logit": "logit",
    "finding.what.log-probability": "log-probability",
    "finding.neg-inf-label-smoothing": "label smoothing {label_smoothing} gives every class some "
    "target probability, so {count} holding -inf logits get an infinite loss: {positions}; mask "
    "with a large negative number instead of -inf, or drop label smoothing",
    "finding.neg-inf-zero-probability": "{count} with a -inf logit where the probability target "
    "is 0: 0·(-inf) is nan, so the loss is nan: {positions}; mask with a large negative number "
    "instead of -inf",
    "finding.nonfinite-input": "the input holds {nan} NaN and {posinf} +inf values, in "
    "{positions} of {total_positions} positions: softmax, the loss and the gradient of those "
    "positions are NaN; find where the model or the preprocessing produced them (a NaN in an "
    "ignored position still makes PyTorch's gradient NaN)",
    "finding.float16-overflow.loss": "{count} with a loss above 65504, the float16 maximum: "
    "PyTorch computing in float16 returns inf there; cast the logits to float32 before the loss",
    "finding.float16-overflow": "the float16 input holds {parts} (PyTorch computes a float16 "
    "loss in float16, where these become inf): cast the logits to float32 before the loss "
    "(logits.float()), as Hugging Face models do",
    "finding.float16.saturated": "{values} at ±65504 (the float16 maximum)",
    "finding.float16.span": "{positions} whose logits span more than 65504, so x - max "
    "overflows in float16",
    "finding.float16-precision": "the float16 input reaches |x| = {max_abs}, where float16 "
    "numbers are {spacing} apart: rounding a logit there changes its probability by up to "
    "{change}; compute the logits (at least the last layer) in float32",
    "finding.change.factor": "a factor of {factor}",
    "finding.kl-reduction-mean": "reduction='mean' divides the sum by all {elements} elements, "
    "not by the batch size {batch}: that is not the KL divergence; use reduction='batchmean'",
    "finding.kl-input-not-log-probs": "input: {rows} of {of} rows are not log-probabilities "
    "(logsumexp not 0); kl_div wants log Q as input: apply log_softmax first",
    "finding.kl-input-not-log-probs.probabilities": "{source}: every row is in [0, 1] and sums "
    "to 1: these look like probabilities, but kl takes logits (or log-probabilities with "
    "--log-probs); pass their log with --log-probs",
    "finding.kl.rows-not-normalized": "{source}: {rows} of {of} rows are not log-probabilities "
    "(logsumexp {logsumexp} at row {first_row}, not 0); KL of unnormalised inputs can be "
    "negative: drop --log-probs to pass logits",
    "finding.kl-target-not-normalized": "target: {rows} of {of} rows of {kind} do not sum to 1 "
    "(or are negative): the target must be a probability distribution per row",
    # ------------------------------------------------------------ why a loss is not finite
    "reason.positions": "{count} of {positions} per-position losses are NaN or infinite",
    "reason.with_cause": "{text}: {cause}",
    "reason.loss": "the loss is {loss}",
    "reason.loss_because": "the loss is {loss} because {cause}",
    "reason.cause.input-has-nan": "the input holds NaN values",
    "reason.cause.input-has-posinf": "the input holds +inf values (a whole row then becomes NaN)",
    "reason.cause.input-has-neginf": "the input holds -inf values (at a target class, the loss "
    "is infinite)",
    "reason.nan-loss-all-ignored": "the loss is {loss} because every target ({ignored}) equals "
    "ignore_index: the mean of no targets is undefined (PyTorch returns nan too)",
    "reason.nan-loss-empty": "the loss is {loss} because the input is empty: the mean of no "
    "targets is undefined",
    "reason.nan-loss-no-classes": "the loss is {loss} because the input has 0 classes: the mean "
    "of probability targets divides by numel/classes = 0/0, not by the {positions} positions "
    "(PyTorch returns nan too)",
    "reason.zero-weight-sum": "the loss is {loss} because the class weights of the counted "
    "targets sum to 0 (the mean divides by that sum)",
    # ------------------------------------------------------------ warnings
    "warning.negative-log": "log of negative numbers is nan: the input is not probabilities",
    "warning.export-nothing-drawn": "--export {path}: nothing was drawn (--json prints JSON "
    "only), no file written",
    "warning.kl.ambiguous-axis": "the class axis is ambiguous: axes {axes} of shape {shape} all "
    "fit the labels; using axis {axis} (pass --class-dim to choose)",
    "warning.kl.posinf": "{count} positions have infinite KL: the other model gives probability "
    "0 (a -inf logit) to a class the reference gives probability > 0",
    "warning.kl.nan": "{count} positions have NaN KL: NaN, +inf or all -inf logits in their rows",
    "warning.kl.nll-nonfinite": "{count} labelled positions have an infinite or NaN NLL in one "
    "model; perplexities and NLL statistics are NaN",
}
