"""The Simplified Chinese catalogue (``--lang zh``): ids of :mod:`.en`, translated.

An id missing here is printed in English (see ``tests/unit/test_i18n.py`` for the list
of what is translated). ``finding.<code>`` entries translate ``lossctl doctor``
messages; their fields are filled by :mod:`lossctl.render.messages`.
"""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    # ------------------------------------------------------------ the --explain trace
    "trace.input.title": "输入 logits",
    "trace.input.note": "原始分数（logits）：每个位置上每个类别一个，越大表示模型越偏向该类别。"
    "它们还不是概率。",
    "trace.shift.title": "减去最大值",
    "trace.shift.note": "每个位置减去其最大值：exp(x - max) ≤ 1，不会溢出，概率也不变"
    "（exp(-max) 在除法中约掉）。",
    "trace.exp.title": "取指数并求和",
    "trace.exp.note": "exp 使每个值为正，Σ 按位置求和；最大值那一项恰为 1，所以 1 ≤ Σ ≤ 类别数，"
    "且 lse = log Σ_c exp(x_c) 不会溢出。",
    "trace.softmax.title": "Softmax",
    "trace.softmax.note": "每个 exp 除以其位置的 Σ：得到概率，每个都在 [0, 1] 内，"
    "每个位置的和为 1（条形图画出了它们）。",
    "trace.log_softmax.title": "对 softmax 取对数 = log-softmax",
    "trace.log_softmax.note": "每个概率的对数：确定的类别为 0，越不可能越负。按 (x - max) - log Σ "
    "计算，而不是 log(softmax)：极小的概率也有精确的对数。",
    "trace.nll.title": "NLL：取出目标，取负",
    "trace.nll.note": "取出每个位置在目标类别上的对数概率并取负：模型对正确类别有把握时 -log p 为 0，"
    "p 越小它越大；被忽略的位置计为 0。",
    "trace.reduce.mean": "归约：mean（平均）",
    "trace.reduce.sum": "归约：sum（求和）",
    "trace.reduce.none": "归约：none（不归约）",
    "trace.reduce.none.note": "上一步的逐位置损失就是结果。",
    "trace.identity.title": "这说明了什么",
    "trace.identity.note": "先 softmax，再取 log，再 NLL：交叉熵就是作用在 log-softmax 上的 NLL，"
    "正如教程《NLLLoss vs CrossEntropy: code + principle + why it works》手算的那样"
    "（种子示例就是它的例子）：CrossEntropy = Softmax + log + NLLLoss。",
    "trace.pick.title": "取出",
    "trace.negate.title": "取负",
    "trace.log.title": "对数",
    "trace.gradient.title": "梯度",
    "trace.losses.title": "逐位置损失",
    "trace.mask.title": "掩码",
    "trace.mask_weight.title": "掩码与权重",
    "trace.column.target": "目标",
    "trace.column.loss": "损失",
    "trace.column.mask": "掩码",
    # ------------------------------------------------------------ how to read a grid
    "axis.class": "类别",
    "axis.position": "位置",
    "legend.axis": "{name}（轴 {axis}）",
    "legend.rows": "行：{axes}",
    "legend.columns": "列：{axes}",
    "legend.target": "* = 目标类别",
    "legend.ignored": "( ) = 被忽略的位置",
    "legend.elided": "… = 已省略（--full 显示全部）",
    # ------------------------------------------------------------ result tables
    "result.cross_entropy": "交叉熵",
    "result.nll_loss": "NLL 损失",
    "result.log": "对数",
    "result.loss": "损失",
    "result.reduction": "归约",
    "result.input_shape": "输入形状",
    "result.class_axis": "类别轴",
    "result.class_axis_value": "{axis}（{classes} 个类别）",
    "result.targets": "目标",
    "result.counted": "计入",
    "result.ignored": "忽略",
    "result.sum": "总和",
    "result.denominator": "分母",
    "result.denominator.no_classes": "numel/classes = 0/0，0 个类别（PyTorch 同为 nan）",
    "result.denominator.positions": "{count} 个位置（概率目标：N·d1·…·dk）",
    "result.denominator.weights": "{count} 个计入目标的 Σ w[target]",
    "result.denominator.count": "{count} 个计入的目标",
    "result.input_file": "输入文件",
    "result.target_file": "目标文件",
    "result.weight_file": "权重文件",
    "result.per_position": "逐位置{title}，形状 {shape}",
    "result.shape": "形状",
    "result.axis": "轴",
    "result.elementwise": "逐元素",
    "result.axis_of": "{dim}（共 {ndim} 个轴）",
    "result.grid_elementwise": "{title}，逐元素",
    "result.grid_along": "沿轴 {dim} 的 {title}",
    "result.grid_caption": "行：轴 {rows}；列：轴 {columns}",
    # ------------------------------------------------------------ doctor
    "doctor.info": "信息",
    "doctor.warning": "警告",
    "doctor.error": "错误",
    "doctor.none": "doctor：未发现问题",
    "doctor.summary": "doctor：{parts}",
    "doctor.errors": "{n} 个错误",
    "doctor.errors_plural": "{n} 个错误",
    "doctor.warnings": "{n} 个警告",
    "doctor.warnings_plural": "{n} 个警告",
    # ------------------------------------------------------------ doctor findings
    "finding.input-kind": "输入沿类别轴 {class_dim}（{classes} 个类别）是{kind}：{advice}",
    "finding.double-softmax": "交叉熵收到的是概率（每个位置和为 1），softmax 被应用了两次："
    "对 C = {classes}，平均损失 {loss} 永远不会低于 log(1 + (C-1)/e) = {floor}，无论模型学到什么；"
    "在这些概率上损失为 {loss_on_probabilities}；请传入 softmax 之前的 logits（或对其 log 使用 nll）",
    "finding.nll-on-logits": "nll 需要对数概率，却收到了 logits（{evidence}）：损失 {loss} "
    "只是目标处输入的相反数，不是似然，而且可能为负；在这些 logits 上交叉熵为 {loss_cross_entropy}；"
    "请使用 `lossctl ce`（F.cross_entropy），或先做 log_softmax",
    "finding.nll-on-probabilities": "nll 需要对数概率，却收到了概率（每个位置和为 1）：损失 {loss} "
    "是目标处概率的相反数，总在 [-1, 0] 内；在其对数上为 {loss_on_log}；请先取对数"
    "（`lossctl log`、torch.log），或把 logits 交给 ce",
    "finding.target-out-of-range": "{targets} 个目标中有 {count} 个超出 {classes} 个类别的范围"
    "（有效：0…{last}，或 ignore_index {ignore_index}）：{positions}；{hint}"
    "（PyTorch：CPU 上报 'Target … is out of bounds'，CUDA 上是 device-side assert）",
    "finding.kind.logits": "logits（取值 {values}{lse}）",
    "finding.kind.lse": "，log-sum-exp {span}，不为 0",
    "finding.kind.probabilities": "概率（每个值在 [0, 1] 内，每个位置的和为 {span}）",
    "finding.kind.log-probabilities": "对数概率（每个值 ≤ 0，每个位置的 log-sum-exp 为 {span}）",
    "finding.advice.logits": "适合 ce / CrossEntropyLoss；若用 nll，请先做 log_softmax",
    "finding.advice.log-probabilities": "适合 nll / NLLLoss（ce 给出相同的损失：log_softmax 是幂等的）",
    "finding.advice.probabilities": "用 nll 请先取对数；ce 需要 softmax 之前的 logits",
    "finding.hint.padding": "如果 {value} 表示填充，请传入 --ignore-index {value}（ignore_index={value}）",
    "finding.hint.one-based": "标签看起来是从 1 开始的：请减 1",
    "finding.hint.other": "标签需要类别从 0 开始的索引，或者模型需要更多类别",
    "finding.evidence.lse": "log-sum-exp {low}…{high}，不为 0",
    "finding.evidence.max": "最大值 {max}，大于 0",
}
