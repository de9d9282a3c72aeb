"""Generate tests/data/stream/: one small logits tensor in every format, as users save them.

Run by hand with a Python that has torch and safetensors (neither is a dependency of
lossctl or of its tests)::

    /work/torchenv/bin/python tools/make_stream_fixtures.py

The same float32 logits (2 positions x 3 classes, values exact in float32) are written with
``np.save`` (``x.npy``), ``np.savez`` (``x.npz:logits``), ``torch.save`` of a dict
(``x.pt:logits``), ``safetensors.torch.save_file`` (``x.safetensors:logits``), ``json.dump``
of ``tolist()`` (``x.json``) and pandas-free ``np.savetxt`` (``x.csv``); ``y.json`` holds
the labels. The tests read them from files, FIFOs and ``<(cat FILE)`` and compare the losses,
and ``loss.json`` records ``torch.nn.functional.cross_entropy`` of them in float32 and
float64 for reference.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "stream"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    logits = np.array([[1.5, -2.0, 0.25], [3.0, 0.5, -1.0]], dtype=np.float32)
    labels = [2, 0]
    tensor = torch.from_numpy(logits)
    np.save(OUT / "x.npy", logits)
    np.savez(OUT / "x.npz", logits=logits)
    torch.save({"logits": tensor}, OUT / "x.pt")
    save_file({"logits": tensor}, str(OUT / "x.safetensors"))
    (OUT / "x.json").write_text(json.dumps(logits.tolist()) + "\n")
    np.savetxt(OUT / "x.csv", logits, delimiter=",", fmt="%.9g")
    (OUT / "y.json").write_text(json.dumps(labels) + "\n")
    target = torch.tensor(labels)
    losses = {  # float32 for the binary files, float64 for the text ones (read as float64)
        "float32": torch.nn.functional.cross_entropy(tensor, target).item(),
        "float64": torch.nn.functional.cross_entropy(tensor.double(), target).item(),
    }
    (OUT / "loss.json").write_text(json.dumps(losses) + "\n")


if __name__ == "__main__":
    main()
