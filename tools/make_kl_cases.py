"""Write tests/data/kl_cases.json: torch.nn.functional.kl_div reference values (float64, CPU).

Run from the project root with the torch venv (torch is never a lossctl dependency)::

    /work/torchenv/bin/python tools/make_kl_cases.py

Inputs are exactly representable decimals or dyadic numbers; non-finite numbers are written as
the strings "nan", "inf" and "-inf". Each case records the warnings torch emitted. The
"kl_logits" cases are F.kl_div(log_softmax(other), log_softmax(ref), log_target=True,
reduction='none').sum(-1) in float64.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "kl_cases.json"
INF, NAN = math.inf, math.nan


def enc(value: Any) -> Any:
    if isinstance(value, list):
        return [enc(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def t(values: Any) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def kl_case(name: str, x: Any, y: Any, reduction: str, log_target: bool) -> dict[str, Any]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out: Any = F.kl_div(t(x), t(y), reduction=reduction, log_target=log_target).tolist()
            error = None
        except RuntimeError as exc:
            out, error = None, str(exc)
    return {
        "id": f"{name}-{reduction}-{'logt' if log_target else 'prob'}",
        "op": "kl_div",
        "input": enc(x),
        "target": enc(y),
        "reduction": reduction,
        "log_target": log_target,
        "expected": enc(out),
        "error": error,
        "warnings": [str(w.message) for w in caught],
    }


def main() -> None:
    probs = [[0.25, 0.5, 0.25], [0.125, 0.625, 0.25]]
    logps = [[-1.5, -0.25, -2.0], [-0.5, -1.0, -3.0]]
    shapes = {
        "0d": (-0.75, 0.5),
        "1d": ([-1.25, -0.5, -2.0], [0.25, 0.5, 0.25]),
        "2d": (logps, probs),
        "3d": ([logps, [[-0.125, -3.5, -1.0], [-2.25, -0.75, -0.5]]], [probs, probs[::-1]]),
        "zeros": ([[-1.0, -2.0, -0.5], [-3.0, -0.25, -1.5]], [[0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]),
        "ninf_input": (
            [[-INF, -0.5, -1.0], [-1.0, -INF, -0.5]],
            [[0.0, 0.5, 0.5], [0.5, 0.25, 0.25]],
        ),
        "nan": ([[NAN, -0.5], [-1.0, -2.0]], [[0.5, 0.5], [0.5, NAN]]),
        "neg_target": ([-1.0, -0.5], [-0.25, 1.25]),
        "inf_target": ([-1.0, INF, -INF], [INF, 0.5, -INF]),
        "empty": ([], []),
        "broadcast": ([-1.0, -0.5], [[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]]),
    }
    cases = []
    for name, (x, y) in shapes.items():
        for reduction in ("none", "sum", "mean", "batchmean"):
            for log_target in (False, True):
                cases.append(kl_case(name, x, y, reduction, log_target))
    cases.append(kl_case("mismatch", [[-1.0, -0.5, -2.0]], [[0.5, 0.5]], "sum", False))
    logit_pairs = {
        "random": (
            [[0.5, -1.25, 2.0, 0.0], [3.0, 3.0, -2.5, 1.0]],
            [[0.25, -1.0, 2.5, 0.125], [2.0, 3.5, -2.0, 1.0]],
        ),
        "identical": ([[1.5, -0.5, 0.25]], [[1.5, -0.5, 0.25]]),
        "shifted": ([[1.0, 2.0, 3.0]], [[1001.0, 1002.0, 1003.0]]),
        "far": ([[10000.0, 0.0, -10000.0]], [[0.0, 0.0, 0.0]]),
        "confident": ([[30.0, 0.0, 0.0, 0.0]], [[29.0, 0.0, 0.0, 0.5]]),
        "q_zero": ([[0.0, 1.0, 2.0]], [[0.0, -INF, 2.0]]),
    }
    for name, (ref, other) in logit_pairs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = (
                F.kl_div(
                    F.log_softmax(t(other), -1),
                    F.log_softmax(t(ref), -1),
                    log_target=True,
                    reduction="none",
                )
                .sum(-1)
                .tolist()
            )
        cases.append(
            {
                "id": f"logits-{name}",
                "op": "kl_logits",
                "reference": enc(ref),
                "other": enc(other),
                "expected": enc(value),
            }
        )
    document = {
        "about": __doc__.split("\n\n")[0],
        "torch_version": torch.__version__,
        "cases": cases,
    }
    lines = ",\n  ".join(json.dumps(case) for case in cases)
    head = json.dumps({k: v for k, v in document.items() if k != "cases"})[:-1]
    OUT.write_text(f'{head}, "cases": [\n  {lines}\n]}}\n')
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
