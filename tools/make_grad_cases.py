"""Generate tests/data/grad_cases.json: losses and gradients computed by ``torch.autograd``.

Run once by hand (torch is not a dependency of lossctl or of its tests)::

    .venv/bin/pip install torch==2.13.0     # a local CPU wheel
    .venv/bin/python tools/make_grad_cases.py

Every case is float64. ``class_dim`` is where the classes sit in the stored input; torch is
called on the input with that axis moved to PyTorch's position (1, or 0 for 1-D), and the
gradient is taken with respect to the stored layout, so it has the input's shape. For
``reduction='none'`` the gradient is that of ``sum(loss)`` (``grad_output`` of ones).
Non-finite numbers are written as the strings ``"nan"``, ``"inf"``, ``"-inf"``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "grad_cases.json"


def encode(value: Any) -> Any:
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def torch_case(
    case_id: str,
    op: str,
    x: np.ndarray,
    target: np.ndarray,
    class_dim: int,
    **options: Any,
) -> dict[str, Any]:
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    torch_dim = 0 if x.ndim == 1 else 1
    moved = xt if class_dim == torch_dim else xt.movedim(class_dim, torch_dim)
    soft = target.shape == x.shape
    if soft:
        tt = torch.tensor(target, dtype=torch.float64)
        if class_dim != torch_dim:
            tt = tt.movedim(class_dim, torch_dim)
    else:
        tt = torch.tensor(target, dtype=torch.int64)
    kwargs: dict[str, Any] = {}
    if "weight" in options:
        kwargs["weight"] = torch.tensor(options["weight"], dtype=torch.float64)
    for name in ("ignore_index", "reduction"):
        if name in options:
            kwargs[name] = options[name]
    if op == "cross_entropy":
        if "label_smoothing" in options:
            kwargs["label_smoothing"] = options["label_smoothing"]
        loss = F.cross_entropy(moved, tt, **kwargs)
    else:
        loss = F.nll_loss(moved, tt, **kwargs)
    loss.sum().backward()  # type: ignore[no-untyped-call]
    assert xt.grad is not None
    grad = xt.grad.detach().numpy()
    loss_value = loss.detach().numpy()
    return {
        "id": case_id,
        "op": op,
        "input": encode(x.tolist()),
        "input_shape": list(x.shape),
        "target": encode(target.tolist()),
        "target_shape": list(target.shape),
        "target_kind": "probabilities" if soft else "indices",
        "class_dim": class_dim,
        "options": options,
        "loss": encode(loss_value.tolist()),
        "loss_shape": list(loss_value.shape),
        "grad": encode(grad.tolist()),
    }


def main() -> None:
    rng = np.random.default_rng(20240606)

    def logits(*shape: int, scale: float = 1.5) -> np.ndarray:
        return rng.normal(0.0, scale, size=shape)

    def labels(classes: int, *shape: int) -> np.ndarray:
        return rng.integers(0, classes, size=shape)

    def soft(shape: tuple[int, ...], axis: int) -> np.ndarray:
        raw = rng.gamma(1.0, size=shape)
        normalised: np.ndarray = raw / raw.sum(axis=axis, keepdims=True)
        return normalised

    seed_x = np.array([[1.1741, -0.4859], [-3.718, 1.5257], [0.0222, 0.5898]])
    seed_y = np.array([1, 2])
    w4 = [0.5, 2.0, 1.0, 0.25]
    cases: list[dict[str, Any]] = []
    add = cases.append

    # The article's seed: 3 classes as rows (class_dim 0), 2 positions as columns.
    for reduction in ("mean", "sum", "none"):
        add(
            torch_case(
                f"seed-ce-{reduction}", "cross_entropy", seed_x, seed_y, 0, reduction=reduction
            )
        )
        add(torch_case(f"seed-nll-{reduction}", "nll_loss", seed_x, seed_y, 0, reduction=reduction))
    add(torch_case("seed-nll-ignore-1", "nll_loss", seed_x, seed_y, 0, ignore_index=1))

    x = logits(5, 4)
    y = labels(4, 5)
    y_ign = y.copy()
    y_ign[[1, 3]] = -100
    for reduction in ("mean", "sum", "none"):
        add(torch_case(f"ce-2d-{reduction}", "cross_entropy", x, y, 1, reduction=reduction))
        add(
            torch_case(
                f"ce-2d-weight-{reduction}",
                "cross_entropy",
                x,
                y,
                1,
                weight=w4,
                reduction=reduction,
            )
        )
        add(
            torch_case(
                f"ce-2d-ignore-{reduction}", "cross_entropy", x, y_ign, 1, reduction=reduction
            )
        )
        add(
            torch_case(
                f"ce-2d-smooth-weight-ignore-{reduction}",
                "cross_entropy",
                x,
                y_ign,
                1,
                weight=w4,
                label_smoothing=0.2,
                reduction=reduction,
            )
        )
        add(
            torch_case(
                f"nll-2d-weight-ignore-{reduction}",
                "nll_loss",
                np.log(soft((5, 4), 1)),
                y_ign,
                1,
                weight=w4,
                reduction=reduction,
            )
        )
    add(torch_case("ce-2d-smooth", "cross_entropy", x, y, 1, label_smoothing=0.1))
    add(torch_case("ce-2d-ignore-index-2", "cross_entropy", x, y, 1, ignore_index=2))
    add(torch_case("ce-2d-all-ignored-mean", "cross_entropy", x, np.full(5, -100), 1))
    add(
        torch_case(
            "ce-2d-all-ignored-smooth-weight",
            "cross_entropy",
            x,
            np.full(5, -100),
            1,
            weight=w4,
            label_smoothing=0.3,
        )
    )
    add(torch_case("nll-2d-all-ignored-mean", "nll_loss", x, np.full(5, -100), 1))

    # Class axis 0 of a 1-D input (a single position with a 0-D target).
    add(torch_case("ce-1d", "cross_entropy", logits(6), np.array(4), 0))
    add(
        torch_case(
            "ce-1d-smooth-weight",
            "cross_entropy",
            logits(4),
            np.array(1),
            0,
            weight=w4,
            label_smoothing=0.25,
        )
    )

    # 3-D input, classes at PyTorch's axis 1 and last (sequence-model layout).
    x3 = logits(2, 4, 3)
    add(torch_case("ce-3d-dim1", "cross_entropy", x3, labels(4, 2, 3), 1))
    add(
        torch_case(
            "ce-3d-last-weight-smooth",
            "cross_entropy",
            x3,
            labels(3, 2, 4),
            2,
            weight=[1.0, 3.0, 0.5],
            label_smoothing=0.15,
        )
    )
    y3 = labels(3, 2, 4)
    y3[0, 1] = -100
    add(torch_case("ce-3d-last-ignore-sum", "cross_entropy", x3, y3, 2, reduction="sum"))
    add(torch_case("nll-3d-last-weight", "nll_loss", x3, y3, 2, weight=[1.0, 3.0, 0.5]))
    add(torch_case("ce-3d-dim0", "cross_entropy", logits(3, 2, 5), labels(3, 2, 5), 0))

    # Probability ("soft") targets: mean divides by N·d, weights are not normalised.
    xs = logits(4, 5)
    qs = soft((4, 5), 1)
    for reduction in ("mean", "sum", "none"):
        add(torch_case(f"ce-soft-{reduction}", "cross_entropy", xs, qs, 1, reduction=reduction))
    add(
        torch_case(
            "ce-soft-weight-smooth",
            "cross_entropy",
            xs,
            qs,
            1,
            weight=[1.0, 0.5, 2.0, 1.5, 0.1],
            label_smoothing=0.2,
        )
    )
    x3s = logits(2, 3, 4)
    add(torch_case("ce-soft-3d-last", "cross_entropy", x3s, soft((2, 3, 4), 2), 2))
    add(
        torch_case(
            "ce-soft-3d-dim1-sum", "cross_entropy", x3s, soft((2, 3, 4), 1), 1, reduction="sum"
        )
    )

    # Non-finite logits: -inf at a non-target gives 0 there; -inf at the target is an
    # infinite loss with a finite gradient; NaN in an ignored row gives NaN (log_softmax's
    # backward multiplies its softmax by 0).
    xn = logits(3, 4)
    xn[0, 2] = -np.inf
    add(torch_case("ce-neginf-nontarget", "cross_entropy", xn, np.array([0, 1, 3]), 1))
    add(torch_case("ce-neginf-target", "cross_entropy", xn, np.array([2, 1, 3]), 1))
    xnan = logits(3, 4)
    xnan[1, 1] = np.nan
    add(torch_case("ce-nan-in-ignored-row", "cross_entropy", xnan, np.array([0, -100, 3]), 1))
    add(torch_case("nll-nan-in-ignored-row", "nll_loss", xnan, np.array([0, -100, 3]), 1))

    # Zero weights: the mean divides 0 by 0.
    add(
        torch_case(
            "ce-zero-weight-sum-mean",
            "cross_entropy",
            x,
            np.array([0, 0, 0, 0, 0]),
            1,
            weight=[0.0, 1.0, 1.0, 1.0],
        )
    )

    OUT.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "about": (
            "Losses and d loss / d input from torch.autograd (float64, CPU), written by "
            "tools/make_grad_cases.py. For reduction 'none' the gradient is that of sum(loss). "
            "class_dim is the axis of the stored input that holds the classes."
        ),
        "torch_version": torch.__version__,
        "cases": cases,
    }
    OUT.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
