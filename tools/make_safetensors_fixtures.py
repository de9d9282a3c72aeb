"""Generate tests/data/safetensors/ and tests/data/foreign/: files made the way users make them.

Run by hand with a Python that has torch, safetensors, pandas and pyarrow (none of them is a
dependency of lossctl or of its tests)::

    /work/torchenv/bin/python tools/make_safetensors_fixtures.py

safetensors/: ``safetensors.torch.save_file`` files with named float32, bfloat16 and float16
logits beside int64 labels, a one-tensor file, a file of the other integer dtypes, bool, a
scalar and an empty tensor, and a ``safetensors.numpy.save_file`` float64 file.  Each
tensor's expected values are saved as ``<file stem>.<tensor name>.npy``, computed by torch
(``t.float().numpy()`` for bfloat16, ``t.numpy()`` otherwise).

foreign/: a Parquet and a Feather v2 file written by pandas, a Feather v1 file written by
pyarrow, an HDF5 signature followed by a few bytes (h5py is not needed), a pickle, a GGUF
header, and a legacy (non-zip) ``torch.save`` file under ``.ckpt`` and ``.pt``.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.feather
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
OUT = DATA / "safetensors"
FOREIGN = DATA / "foreign"


def expected(stem: str, tensors: dict[str, torch.Tensor]) -> None:
    for name, tensor in tensors.items():
        value = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
        np.save(OUT / f"{stem}.{name}.npy", value)


def write_torch(stem: str, tensors: dict[str, torch.Tensor]) -> None:
    save_torch(tensors, str(OUT / f"{stem}.safetensors"), metadata={"format": "pt"})
    expected(stem, tensors)


def safetensors_fixtures() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    logits = torch.randn(4, 5) * 4
    logits[1, 2] = float("-inf")
    labels = torch.tensor([0, 4, 2, 1], dtype=torch.int64)
    write_torch("logits_f32", {"logits": logits, "labels": labels})
    write_torch("logits_f16", {"logits": logits.half(), "labels": labels})
    special = torch.tensor([float("nan"), float("inf"), -0.0, 1e-40, 3.0e38, -1.5])
    bf16 = torch.cat([(torch.randn(5, 6) * 8), special[None, :]]).to(torch.bfloat16)
    write_torch("logits_bf16", {"logits": bf16, "labels": torch.tensor([0, 5, 3, 1, 2, 4])})
    write_torch("single", {"logits": torch.randn(3, 4)})
    write_torch(
        "mixed",
        {
            "i32": torch.tensor([[1, -2], [3, 2**31 - 1]], dtype=torch.int32),
            "i16": torch.tensor([-(2**15), 7], dtype=torch.int16),
            "i8": torch.tensor([-128, 127, 0], dtype=torch.int8),
            "u8": torch.tensor([0, 255], dtype=torch.uint8),
            "mask": torch.tensor([True, False, True]),
            "scalar": torch.tensor(2.5, dtype=torch.float64),
            "empty": torch.zeros(0, 5),
        },
    )
    arrays = {"logits": np.random.default_rng(0).normal(size=(2, 3))}
    save_numpy(arrays, str(OUT / "numpy_f64.safetensors"))
    np.save(OUT / "numpy_f64.logits.npy", arrays["logits"])


def foreign_fixtures() -> None:
    FOREIGN.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"a": [0.5, 1.5], "b": [2.0, -1.0]})
    frame.to_parquet(FOREIGN / "table.parquet")
    frame.to_feather(FOREIGN / "table.feather")
    pyarrow.feather.write_feather(frame, str(FOREIGN / "table_v1.feather"), version=1)
    (FOREIGN / "table.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(24)))
    (FOREIGN / "array.pkl").write_bytes(pickle.dumps([[0.5, 1.5]], protocol=4))
    gguf = b"GGUF" + struct.pack("<IQQ", 3, 0, 0)  # version 3, no tensors, no metadata
    (FOREIGN / "model.gguf").write_bytes(gguf)
    for name in ("legacy.ckpt", "legacy.pt"):
        torch.save(torch.zeros(2), FOREIGN / name, _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    safetensors_fixtures()
    foreign_fixtures()
