"""Generate tests/data/pt/: tiny ``torch.save`` files and the values torch reads from them.

Run once by hand with a Python that has torch (torch is not a dependency of lossctl or of
its tests, which read only the committed outputs)::

    /work/torchenv/bin/python tools/make_pt_fixtures.py

For every (file, key) pair the expected array is written as ``<stem>[.<key>].npy``, computed
by torch itself (``t.float().numpy()`` for bfloat16, ``t.contiguous().numpy()`` otherwise),
and listed in ``manifest.json`` with its numpy dtype. ``legacy.pt`` is the pre-1.6
(non-zip) format, which lossctl refuses.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "pt"


def expected(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        return t.detach().float().numpy()
    return t.detach().contiguous().numpy()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(4, 5, generator=g, dtype=torch.float32)
    logits[0, 0] = float("-inf")
    labels = torch.tensor([1, 0, 4, 2], dtype=torch.int64)
    base = torch.arange(30, dtype=torch.float32).reshape(5, 6) / 4
    lin = OrderedDict([("fc.weight", torch.randn(3, 2, generator=g)), ("fc.bias", torch.zeros(3))])
    lin._metadata = OrderedDict([("", {"version": 1}), ("fc", {"version": 1})])  # type: ignore[attr-defined]

    fixtures: dict[str, tuple[Any, list[tuple[str | None, torch.Tensor]]]] = {
        "logits": (logits, [(None, logits)]),
        "labels": (labels, [(None, labels)]),
        "dict": ({"logits": logits, "labels": labels}, [("logits", logits), ("labels", labels)]),
        "nested": (
            {"out": {"logits": logits, "aux": [labels, base]}, "step": 3, "name": "run"},
            [("out.logits", logits), ("out.aux.0", labels), ("out.aux.1", base)],
        ),
        "one_tensor": ({"logits": logits, "epoch": 5, "note": "only one"}, [(None, logits)]),
        "list": ([logits, labels], [("0", logits), ("1", labels)]),
        "tuple": ((labels, logits), [("0", labels), ("1", logits)]),
        "bf16": (logits.bfloat16(), [(None, logits.bfloat16())]),
        "f16": (logits.half(), [(None, logits.half())]),
        "f64": (logits.double() / 3, [(None, logits.double() / 3)]),
        "i32": (labels.int(), [(None, labels.int())]),
        "i16": (labels.short() - 3, [(None, labels.short() - 3)]),
        "i8": (labels.to(torch.int8) - 2, [(None, labels.to(torch.int8) - 2)]),
        "u8": (torch.tensor([0, 7, 255, 128], dtype=torch.uint8), []),
        "bool": (torch.tensor([[True, False], [False, True]]), []),
        "transposed": (base.t(), [(None, base.t())]),
        "slice": (base[1:4, 2:5], [(None, base[1:4, 2:5])]),
        "column": (base[:, 3], [(None, base[:, 3])]),
        "shared": ({"a": base, "b": base.t()[::2]}, [("a", base), ("b", base.t()[::2])]),
        "state_dict": (lin, [("fc.weight", lin["fc.weight"]), ("fc.bias", lin["fc.bias"])]),
        "parameter": (torch.nn.Parameter(base[0].clone()), [(None, base[0])]),
        "scalar": (torch.tensor(2.5), []),
        "empty": (torch.zeros(0, 5), []),
    }
    manifest = []
    for stem, (obj, cases) in fixtures.items():
        torch.save(obj, OUT / f"{stem}.pt")
        if not cases:
            cases = [(None, obj)]
        for key, tensor in cases:
            name = f"{stem}.{key}.npy" if key else f"{stem}.npy"
            array = expected(tensor)
            np.save(OUT / name, array, allow_pickle=False)
            manifest.append(
                {"file": f"{stem}.pt", "key": key, "expected": name, "dtype": str(array.dtype)}
            )
            check = torch.load(OUT / f"{stem}.pt", weights_only=True)  # torch reads what we expect
            if key and isinstance(check, dict) and key in check:
                check = check[key]  # a flat state-dict key such as "fc.weight"
            elif key:
                for part in key.split("."):
                    check = check[int(part)] if isinstance(check, (list, tuple)) else check[part]
            if isinstance(check, torch.Tensor):
                assert np.array_equal(expected(check), array, equal_nan=True)
    torch.save({"logits": logits}, OUT / "legacy.pt", _use_new_zipfile_serialization=False)
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(manifest)} cases, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
