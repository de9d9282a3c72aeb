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
    "正如教程《NLLLoss vs CrossEntropy: 代码 + 原理 + 为什么有效》手算的那样"
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
    "trace.shift.formula": "x - max,   max = 每个位置上最大的 x",
    "trace.nll.formula": "loss_n = -logp[n, t_n],   t_n = ignore_index 处为 0",
    "trace.nll.formula.weighted": "loss_n = w[t_n]·(-logp[n, t_n]),   t_n = ignore_index 处为 0",
    "trace.reduce.formula.count": "mean = Σ_n loss_n / (计入的目标数)",
    "trace.reduce.formula.weights": "mean = Σ_n loss_n / Σ_n w[t_n]   (n 为计入的位置)",
    "trace.reduce.formula.none": "none：每个位置一个损失，不归约",
    "trace.nll.note.weighted": "取出每个位置在目标类别上的对数概率，取负，再乘以类别权重：模型对"
    "正确类别有把握时 -log p 为 0，p 越小它越大；被忽略的位置计为 0。",
    "trace.nll.input.title": "输入对数概率",
    "trace.nll.input.note": "NLL 需要对数概率：这时每个位置的 log Σ exp 为 0。",
    "trace.pick.formula": "x[n, t_n]：每个位置在其目标类别上的值",
    "trace.pick.note": "NLL 只负责取出：它不做归一化，也从不看其他类别。",
    "trace.negate.note": "对数概率 ≤ 0，所以取负后是 ≥ 0 的损失。",
    "trace.mask.formula": "loss_n = mask_n · (-x[n, t_n]),   t_n = ignore_index 处 mask_n = 0",
    "trace.mask_weight.formula": "loss_n = mask_n · w[t_n] · (-x[n, t_n]),   t_n = "
    "ignore_index 处 mask_n = 0",
    "trace.mask.note": "被忽略的位置贡献 0，且不计入。",
    "trace.mask_weight.note": "被忽略的位置贡献 0，且不计入；计入的位置按其目标类别的权重缩放。",
    "trace.check.identity": "输入看起来是对数概率（每个检查过的位置上 log Σ exp = 0），所以这就是它所来自的 logits 的交叉熵。",
    "trace.check.title": "输入不是对数概率",
    "trace.check.formula": "每个值 ≤ 0，且每个位置上 log Σ exp = 0",
    "trace.check.line": "nll 只取出并取负。在原始 logits 上，不管其他类别的值是多少，它都奖励目标处的大值，因此可能偏向错误的类别，还可能为负。请先做 "
    "log_softmax，或者使用会替你做这一步的 ce。",
    "trace.check.result": "ce 给出：cross_entropy(x, t) = nll_loss(log_softmax(x), t)",
    "trace.log.input.title": "输入概率 p",
    "trace.log.input.note.axis": "按原样给出；概率都在 [0, 1] 内，且沿该轴的和为 1。",
    "trace.log.input.note": "按原样给出；概率都在 [0, 1] 内。",
    "trace.log.formula": "log(p)，逐元素",
    "trace.log.note": "log 1 = 0，log 0 = -inf，负数的对数为 nan。",
    "trace.log.identity": "这是 softmax → log → NLL 的中间一步；log_softmax 一次完成前两步，对极小的概率更精确。",
    "trace.divide.title": "相除：softmax",
    "trace.subtract.title": "相减：log-softmax",
    "trace.x.title": "输入 x",
    "trace.gradient.nll.formula": "d loss / d x[n, c] = -s·1[c = t_n]：只在目标处非零",
    "trace.gradient.nll.formula.weighted": "d loss / d x[n, c] = -s·w[t]·1[c = t_n]：只在目标处非零",
    "trace.gradient.nll.note": "NLL 只取出目标处的输入，所以只有那一项有梯度：一步梯度下降（x - lr·grad）提高目标的对数概率，其他都不动。",
    "trace.gradient.soft.note": "每个类别都被拉向它的目标概率：梯度是 softmax(x) "
    "减去（加权的）目标，在模型给某类别的概率低于其目标份额处为负，所以梯度下降（x - lr·grad）提高这些 logits，降低其余的。",
    "trace.gradient.note": "softmax - onehot 在目标处为 p_t - 1 < 0，在其他每个类别处为 p_c > 0，所以梯度下降（x - "
    "lr·grad）把目标 logit 往上推，把其他每个 logit 往下压，幅度与它错占的概率成正比；有把握的正确答案（p_t ≈ 1）几乎不受推动。",
    "trace.gradient.none": "reduction 'none'：逐位置损失之和的梯度",
    "trace.as_given": "按原样给出。",
    "trace.kl.log_ratio": "对数比",
    "trace.kl.weighted": "p · 对数比",
    "trace.kl.per_position": "逐位置 KL",
    "trace.kl.weighted.formula": "p · (log p - log q)，p = 0 处为 0",
    "trace.stats.summary": "最小 {min} · 中位数 {median} · 最大 {max}，共 {count} 个计入的位置",
    "trace.stats.summary.one": "最小 {min} · 中位数 {median} · 最大 {max}，共 1 个计入的位置",
    "trace.stats.nan": "（{nan} 个 nan）",
    "trace.stats.worst": "最差：{header}",
    "trace.stats.predicted": "预测",
    # the trace's sentences with numbers (lossctl/trace/phrases.py)
    "trace.check.positive": "{count} 个值大于 0（对数概率 ≤ 0）",
    "trace.check.positive.one": "1 个值大于 0（对数概率 ≤ 0）",
    "trace.check.far": "检查的 {checked} 个位置中有 {count} 个的 log Σ exp 远离 0（最远的：位置 "
    "{where}）",
    "trace.check.negative": "{count} 个位置的损失为负（第一个：位置 {where}），而 -log p ≥ 0 "
    "从不会给出负值",
    "trace.check.negative.one": "1 个位置的损失为负（位置 {where}），而 -log p ≥ 0 从不会给出负值",
    "trace.check.note": "{reasons}。",
    "trace.gradient.scale.positions": "s = 1/{count}（对所有位置取平均）",
    "trace.gradient.scale.weights": "s = 1/{denominator}（mean：1 / Σ w[target]）",
    "trace.gradient.scale.count": "s = 1/{denominator}（mean：1 / {count} 个计入的目标）",
    "trace.gradient.scale.count.one": "s = 1/{denominator}（mean：1 / 1 个计入的目标）",
    "trace.gradient.ignored": "{count} 个被忽略的位置梯度为 0",
    "trace.gradient.ignored.one": "1 个被忽略的位置梯度为 0",
    "trace.input.formula": "形状 {shape}：沿轴 {axis} 有 {classes} 个类别，共 {positions} 个位置",
    "trace.input.formula.one": "形状 {shape}：沿轴 {axis} 有 {classes} 个类别，共 1 个位置",
    "trace.input.formula.shape": "形状 {shape}",
    "trace.remark.weak_positive": "为什么有效：softmax + log 会重罚信心不足的正确类别。位置 "
    "{where} 给它的目标（类别 {target}）的概率只有 p = {{p}}，所以它的 -log p 为 {{nll}}；而一个"
    "有把握的正确答案，p ≈ 1，代价 ≈ 0。",
    "trace.remark.raw_nll": "为什么要先做 softmax：直接在原始 logits 上做 nll 得到 {{raw}}，而"
    "在位置 {where}，它的项 -x[target] = {{term}} 是负的，尽管那里最大的 logit 是类别 {largest}，"
    "而不是目标 {target}。在原始 logits 上，NLL 可能奖励错误的类别，还可能为负；先做 softmax + "
    "log 之后，每一项都是 -log p ≥ 0。",
    "trace.reduce.denominator.count": "计入的目标数（{count}）",
    "trace.reduce.denominator.weights": "{count} 个计入目标的类别权重 w[t_n] 之和",
    "trace.reduce.denominator.weights.one": "1 个计入目标的类别权重 w[t_n]",
    "trace.reduce.ignored": "；{count} 个被忽略的位置不计",
    "trace.reduce.ignored.one": "；1 个被忽略的位置不计",
    "trace.reduce.mean.note": "整个输入得到一个数：逐位置损失求和，再除以{denominator}{ignored}。",
    "trace.reduce.sum.note": "不做除法{ignored}。",
    "trace.elementwise.identity": "沿轴 {axis}；减去最大值只是让 exp 更安全，其他什么都没变。",
    "trace.smoothing.note": "标签平滑，ε = {eps}，C = {classes}：目标保留 1 - ε，每个类别分到 "
    "ε/C（均匀部分）。",
    "trace.kl.p": "p = 沿类别轴的 {head}",
    "trace.kl.q": "q = 沿类别轴的 {tail}",
    "trace.kl.mean": "Σ KL / {count} 个计入的位置",
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
    "result.softmax": "softmax",
    "result.log_softmax": "log-softmax",
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
    "result.denominator.weights": "{count} 个计入{targets}的 Σ w[target]",
    "result.denominator.count": "{count} 个计入的{targets}",
    "result.target": "目标",
    "result.targets_plural": "目标",
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
    # ------------------------------------------------------------ kl, --metrics, --grad tables
    "kl.mean": "KL 均值",
    "kl.min": "最小值",
    "kl.max": "最大值",
    "kl.median": "中位数",
    "kl.symmetric": "对称 KL 均值",
    "kl.same_top1": "top-1 相同",
    "kl.overlap": "top-{k} 重合度",
    "kl.counted": "计入的位置",
    "kl.labelled": "有标签时（目标 token）",
    "kl.ppl_reference": "PPL（reference）",
    "kl.ppl_other": "PPL（other）",
    "kl.ppl_ratio": "PPL 之比",
    "kl.log_ppl_ratio": "ln(PPL_o/PPL_r) 均值",
    "kl.nll_correlation": "NLL 相关系数",
    "kl.delta_mean": "Δp 均值",
    "kl.delta_rms": "Δp 均方根",
    "kl.delta": "Δp {name}",
    "kl.per_position": "逐位置 KL，形状 {shape}",
    "kl.explain.title": "KL(reference ‖ other)，逐步计算",
    "kl.explain.class_axis": "{dim}（下面移到最后一维）",
    "kl.inputs": "输入",
    "kl.log_probabilities": "对数概率",
    "kl.logits": "logits",
    "kl.step.title": "{name}：{formula}",
    "kl.grid_caption": "行：位置；列：类别",
    "kl.reduce.mean": "均值",
    "kl.reduce.over": "计入位置数",
    "kl.shards": "分片",
    "kl.file.reference": "reference 文件",
    "kl.file.other": "other 文件",
    "kl.file.labels": "标签文件",
    "metrics.title": "指标",
    "metrics.perplexity": "困惑度",
    "metrics.mean_nll": "NLL 均值",
    "metrics.accuracy": "准确率",
    "metrics.topk_accuracy": "top-{k} 准确率",
    "metrics.topk_always": "（k ≥ {classes} 个类别：总是正确）",
    "metrics.entropy": "熵",
    "metrics.nats": "{value} nats",
    "metrics.na": "不适用",
    "metrics.na_because": "不适用（{note}）",
    "metrics.per_class": "按目标类别",
    "metrics.per_class.caption": "{total} 个目标类别中最常见的 {shown} 个",
    "metrics.column.class": "类别",
    "metrics.column.count": "数量",
    "metrics.column.mean_loss": "平均损失",
    "grad.title": "梯度 d loss / d input，形状 {shape}",
    "grad.class_axis": "类别轴 {dim}",
    "grad.shift": "--shift：最后一个位置不预测任何东西，所以它的梯度为 0",
    "grad.written": "梯度写入",
    "trace.identity.note.smoothing": "先 softmax，再取 log，再 NLL：交叉熵就是作用在 log-softmax 上的 NLL（目标按 ε "
    "做了平滑），正如教程《NLLLoss vs CrossEntropy: 代码 + 原理 + 为什么有效》手算的那样（种子示例就是它的例子）：CrossEntropy = "
    "Softmax + log + NLLLoss。",
    "merge.title": "{op}，共 {shards} 个分片",
    "merge.op.cross_entropy": "交叉熵",
    "merge.op.nll_loss": "NLL 损失",
    "merge.per_position_below": "逐位置，见下",
    "merge.per_position": "{title}，逐位置",
    "result.kind.indices": "类别索引",
    "result.kind.probabilities": "概率",
    "result.kind.none": "无",
    "result.shifted": "平移后",
    "result.shifted_value": "{shape}（位置 t 的 logits 预测标签 t+1）",
    "result.no_values": "没有值：形状 {shape} 中有 0",
    "metrics.not_perplexity": "输入不是对数概率，所以 exp(NLL 均值) 不是困惑度",
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
    # ------------------------------------------------------------ counted nouns, lists
    "noun.class": "{n} 个类别",
    "noun.class_plural": "{n} 个类别",
    "noun.position": "{n} 个位置",
    "noun.position_plural": "{n} 个位置",
    "noun.target": "{n} 个目标",
    "noun.target_plural": "{n} 个目标",
    "noun.value": "{n} 个值",
    "noun.value_plural": "{n} 个值",
    "noun.infinite_value": "{n} 个无穷值",
    "noun.infinite_value_plural": "{n} 个无穷值",
    "list.more": ", …（还有 {n} 个）",
    "list.semicolon": "；",
    "list.and": "、",
    # ------------------------------------------------------------ doctor findings
    "finding.input-kind": "输入沿类别轴 {class_dim}（{classes}）是{kind}{note}：{advice}",
    "finding.input-kind.no-classes": "输入沿类别轴 {class_dim} 有 0 个类别：没有可判断的值",
    "finding.input-kind.note": "，该轴是在没有标签时推断出的，并非 PyTorch 的类别轴 "
    "{pytorch_class_dim}",
    "finding.kind.logits": "logits（取值 {values}{lse}）",
    "finding.kind.lse": "，log-sum-exp 为 {span}，不为 0",
    "finding.kind.probabilities": "概率（每个值都在 [0, 1] 内，每个位置的和为 {span}）",
    "finding.kind.log-probabilities": "对数概率（每个值都 ≤ 0，每个位置的 log-sum-exp 为 {span}）",
    "finding.kind.none": "无从判断的数据（没有取值有限的位置）",
    "finding.advice.logits": "适合 ce / CrossEntropyLoss；若用 nll，请先做 log_softmax",
    "finding.advice.log-probabilities": "适合 nll / NLLLoss（ce 给出相同的损失：log_softmax "
    "是幂等的）",
    "finding.advice.probabilities": "若用 nll，请先取对数；ce 需要 softmax 之前的 logits",
    "finding.advice.other": "详见其余检查结果",
    "finding.double-softmax": "交叉熵收到的是概率（每个位置的和为 1），因此 softmax 被应用了"
    "两次：对 C = {classes}，无论模型学到什么，平均损失 {loss} 都不可能低于 log(1 + (C-1)/e) = "
    "{floor}；按这些概率计算，损失应为 {loss_on_probabilities}；请传入 softmax 之前的 logits"
    "（或对其取对数后使用 nll）",
    "finding.nll-on-logits": "nll 需要对数概率，却收到了 logits（{evidence}）：损失 {loss} "
    "只是目标处输入值的相反数，不是似然，而且可能为负；在这些 logits 上，交叉熵为 "
    "{loss_cross_entropy}；请使用 `lossctl ce`（F.cross_entropy），或先做 log_softmax",
    "finding.evidence.lse": "log-sum-exp 为 {low}…{high}，不为 0",
    "finding.evidence.max": "最大值达 {max}，大于 0",
    "finding.nll-on-probabilities": "nll 需要对数概率，却收到了概率（每个位置的和为 1）：损失 "
    "{loss} 是目标处概率的相反数，总在 [-1, 0] 内；取对数后为 {loss_on_log}；请先取对数"
    "（`lossctl log`、torch.log），或把 logits 交给 ce",
    "finding.ambiguous-class-axis": "类别轴有歧义：输入形状 {input_shape} 的轴 {axes} 都与目标"
    "形状 {target_shape} 相符；各轴对应的平均损失为 {losses}；请用 --class-dim 指定（PyTorch "
    "会默默使用轴 {pytorch_class_dim}{layout}）",
    "finding.axis.used": "轴 {axis}（已采用）：{loss}",
    "finding.axis.none": "轴 {axis}：不适用（目标 ≥ {classes}）",
    "finding.axis.loss": "轴 {axis}：{loss}",
    "finding.layout.permute": "：(N, L, C) 的输入需要先 .permute(0, 2, 1)",
    "finding.layout.transpose": "：(C, N) 的 logits 请传入 .T",
    "finding.target-out-of-range": "{targets} 个目标中有 {count} 个超出了 {classes} 个类别的"
    "范围（有效值：0…{last}，或 ignore_index {ignore_index}）：{positions}；{hint}（PyTorch 在 "
    "CPU 上报 'Target … is out of bounds'，在 CUDA 上触发设备端断言 device-side assert）",
    "finding.hint.padding": "如果 {value} 表示填充，请传入 --ignore-index {value}"
    "（ignore_index={value}）",
    "finding.hint.one-based": "标签看起来是从 1 开始编号的：请减 1",
    "finding.hint.other": "标签应为从 0 开始的类别索引，否则就是模型需要更多类别",
    "finding.ignore-index-is-a-class": "ignore_index {ignore_index} 同时也是一个类别"
    "（0…{last}）：等于 {ignore_index} 的 {ignored}被跳过了，但类别 {ignore_index} 仍参与其他"
    "每个位置的 softmax（ignore_index 忽略的是目标，不是类别）；如果类别 {ignore_index} 是真实"
    "的类别，请改用 -100（默认值）标记填充",
    "finding.all-ignored": "所有目标（{ignored} 个）都等于 ignore_index（{ignore_index}）：没有"
    "计入任何目标，所以平均值为 nan（0/0；PyTorch 同样返回 nan），总和为 0；请检查标签或填充"
    "掩码",
    "finding.soft-targets-not-normalized": "{positions_total} 个概率目标中有 {count} 个的和不为 "
    "1（和为 {sum_min}…{sum_max}，其中 {negative} 个含负值）：{positions}；PyTorch 会默默接受，"
    "每个位置的损失随其和成比例缩放；请把目标归一化（q / q.sum(class_dim)），或改传类别索引",
    "finding.neg-inf-at-target": "{count}在目标处的 {what} 为 -inf：那里的损失为 inf（模型给"
    "正确类别的概率为 0）：{positions}；请用很大的负数（如 torch.finfo(dtype).min）代替 -inf "
    "做掩码，或修正把目标类别也遮掉的那个掩码",
    "finding.what.logit": "logit",
    "finding.what.log-probability": "对数概率",
    "finding.neg-inf-label-smoothing": "标签平滑 {label_smoothing} 给每个类别都分了一些目标概率，"
    "所以 logits 取值为 -inf 的 {count}得到无穷大的损失：{positions}；请用很大的负数代替 -inf 做"
    "掩码，或去掉标签平滑",
    "finding.neg-inf-zero-probability": "{count}在概率目标为 0 处的 logit 为 -inf：0·(-inf) "
    "为 nan，所以损失为 nan：{positions}；请用很大的负数代替 -inf 做掩码",
    "finding.nonfinite-input": "输入含 {nan} 个 NaN 和 {posinf} 个 +inf，分布在 "
    "{total_positions} 个位置中的 {positions} 个：这些位置的 softmax、损失和梯度都是 NaN；请查出"
    "模型或预处理在哪里产生了它们（被忽略位置上的 NaN 仍会让 PyTorch 的梯度变成 NaN）",
    "finding.float16-overflow.loss": "{count}的损失超过 float16 的最大值 65504：PyTorch 以 "
    "float16 计算时那里会返回 inf；请在计算损失前把 logits 转为 float32",
    "finding.float16-overflow": "float16 输入中有 {parts}（PyTorch 以 float16 计算 float16 "
    "输入的损失，这些值会变成 inf）：请在计算损失前把 logits 转为 float32（logits.float()），"
    "Hugging Face 的模型就是这样做的",
    "finding.float16.saturated": "{values}等于 ±65504（float16 的最大值）",
    "finding.float16.span": "{positions}的 logits 跨度超过 65504，因此 x - max 在 float16 中会溢出",
    "finding.float16-precision": "float16 输入的 |x| 达到 {max_abs}，在这个量级上相邻的 "
    "float16 数相差 {spacing}：logit 的舍入会让其概率最多变化 {change}；请用 float32 计算 "
    "logits（至少最后一层）",
    "finding.change.factor": "{factor} 倍",
    "finding.kl-reduction-mean": "reduction='mean' 把总和除以全部 {elements} 个元素，而不是"
    "批大小 {batch}：这不是 KL 散度；请用 reduction='batchmean'",
    "finding.kl-input-not-log-probs": "input：{of} 行中有 {rows} 行不是对数概率（logsumexp "
    "不为 0）；kl_div 的 input 应为 log Q：请先做 log_softmax",
    "finding.kl-input-not-log-probs.probabilities": "{source}：每一行都在 [0, 1] 内且和为 1，"
    "看起来是概率，但 kl 接受的是 logits（或配合 --log-probs 的对数概率）；请传入它们的对数"
    "并加上 --log-probs",
    "finding.kl.rows-not-normalized": "{source}：{of} 行中有 {rows} 行不是对数概率（第 "
    "{first_row} 行的 logsumexp 为 {logsumexp}，不为 0）；未归一化输入的 KL 可能为负：去掉 "
    "--log-probs 以传入 logits",
    "finding.kl-target-not-normalized": "target：{of} 行中有 {rows} 行的 {kind} 之和不为 1"
    "（或含负值）：target 的每一行都必须是概率分布",
    # ------------------------------------------------------------ why a loss is not finite
    "reason.positions": "{positions} 个逐位置损失中有 {count} 个是 NaN 或无穷大",
    "reason.with_cause": "{text}：{cause}",
    "reason.loss": "损失为 {loss}",
    "reason.loss_because": "损失为 {loss}，因为{cause}",
    "reason.cause.input-has-nan": "输入含 NaN 值",
    "reason.cause.input-has-posinf": "输入含 +inf 值（整行随之变成 NaN）",
    "reason.cause.input-has-neginf": "输入含 -inf 值（若在目标类别上，损失为无穷大）",
    "reason.nan-loss-all-ignored": "损失为 {loss}，因为所有目标（{ignored} 个）都等于 "
    "ignore_index：没有目标的平均值无定义（PyTorch 同样返回 nan）",
    "reason.nan-loss-empty": "损失为 {loss}，因为输入为空：没有目标的平均值无定义",
    "reason.nan-loss-no-classes": "损失为 {loss}，因为输入有 0 个类别：概率目标的平均值除以 numel/classes = 0/0，而不是除以 {positions} 个位置（PyTorch 同样返回 nan）",
    "reason.zero-weight-sum": "损失为 {loss}，因为计入目标的类别权重之和为 0（平均值要除以这个和）",
    # ------------------------------------------------------------ warnings
    "warning.negative-log": "负数的对数为 nan：输入不是概率",
    "warning.export-nothing-drawn": "--export {path}：没有绘制任何内容（--json 只输出 JSON），"
    "未写入文件",
    "warning.kl.ambiguous-axis": "类别轴有歧义：形状 {shape} 的轴 {axes} 都与标签相符；使用轴 "
    "{axis}（用 --class-dim 指定）",
    "warning.kl.posinf": "{count} 个位置的 KL 为无穷大：reference 给出概率 > 0 的某个类别，"
    "other 模型给出的概率为 0（logit 为 -inf）",
    "warning.kl.nan": "{count} 个位置的 KL 为 NaN：这些行中有 NaN、+inf 或全为 -inf 的 logits",
    "warning.kl.nll-nonfinite": "{count} 个有标签的位置在某个模型中的 NLL 为无穷大或 NaN；困惑度"
    "和 NLL 统计量均为 NaN",
}
