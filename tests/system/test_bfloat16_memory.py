"""Large bfloat16 tensors stream: ``lossctl ce`` on a bfloat16 safetensors dump gives the loss
of the same values as a float32 ``.npy`` (bfloat16 to float32 is exact), in a process whose
peak RSS stays far below the float32 copy the old reader made (issue #10)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from tests.helpers import lossctl_command, peak_rss_mib

ROWS, CLASSES = 6144, 8192  # 96 MiB of bfloat16, 192 MiB as float32


def write_bf16_safetensors(path: Path, bits: np.ndarray) -> None:
    """The published format: an 8-byte length, the JSON header, the raw little-endian data."""
    header = {
        "logits": {"dtype": "BF16", "shape": list(bits.shape), "data_offsets": [0, bits.nbytes]}
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        for block in np.array_split(bits, 16):
            handle.write(block.astype("<u2").tobytes())


def test_a_large_bfloat16_dump_streams_in_bounded_memory(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    wide = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float32, (ROWS, CLASSES))
    bits = np.empty((ROWS, CLASSES), dtype=np.uint16)
    for start in range(0, ROWS, 512):
        block = rng.normal(0, 3, (512, CLASSES)).astype(np.float32)
        top = (block.view(np.uint32) >> 16).astype(np.uint16)  # truncated to bfloat16
        bits[start : start + 512] = top
        wide[start : start + 512] = (top.astype(np.uint32) << 16).view(np.float32)
    wide.flush()
    del wide
    write_bf16_safetensors(tmp_path / "x.safetensors", bits)
    del bits
    np.save(tmp_path / "y.npy", rng.integers(0, CLASSES, ROWS))

    float32_mib = ROWS * CLASSES * 4 / 2**20
    peak, run = peak_rss_mib(
        lossctl_command("ce", str(tmp_path / "x.safetensors"), str(tmp_path / "y.npy"), "--json")
    )
    assert run.code == 0, run.err
    _, reference = peak_rss_mib(
        lossctl_command("ce", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--json")
    )
    assert json.loads(run.out)["loss"] == json.loads(reference.out)["loss"]
    assert peak < float32_mib / 2, f"peak {peak:.0f} MiB for a {float32_mib:.0f} MiB float32 copy"
    assert not list(tmp_path.glob("tmp*")), "the temporary float32 file is never named"
