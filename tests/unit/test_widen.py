"""lossctl.io.widen: bfloat16 to float32, exact, in memory or through a temporary file."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from lossctl.errors import ReadError
from lossctl.io import widen


def reference(bits: np.ndarray) -> np.ndarray:
    """Each value's float32 bits by Python integers (the bfloat16 is their top half)."""
    flat = [int(b) << 16 for b in bits.reshape(-1)]
    return np.array(flat, dtype=np.uint32).reshape(bits.shape).view(np.float32)


def test_widened_values_are_the_floats_struct_reads() -> None:
    bits = np.array([0x3F80, 0xC040, 0x7F80, 0x0001, 0x8000], dtype=np.uint16)
    want = [struct.unpack("<f", struct.pack("<I", int(b) << 16))[0] for b in bits]
    assert widen.widen_bfloat16(bits).tolist() == want  # 1, -3, inf, a subnormal, -0


def test_every_bfloat16_is_widened_exactly() -> None:
    bits = np.arange(1 << 16, dtype=np.uint16)
    got = widen.widen_bfloat16(bits)
    want = reference(bits)
    assert got.view(np.uint32).tolist() == want.view(np.uint32).tolist()  # NaN payloads too


@pytest.mark.parametrize("layout", ["c", "transposed", "big-endian"])
def test_the_spilled_path_equals_the_in_memory_one(
    layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 1 << 16, (37, 53), dtype=np.uint16)
    if layout == "transposed":
        bits = bits.T  # a strided view, as torch.save writes a .t()
    elif layout == "big-endian":
        bits = bits.astype(">u2")
    in_memory = widen.widen_bfloat16(bits)
    monkeypatch.setattr(widen, "SPILL_BYTES", 64)
    monkeypatch.setattr(widen, "_BLOCK_BYTES", 5 * 4 * bits.shape[1])  # 5 rows a block
    spilled = widen.widen_bfloat16(bits)
    assert isinstance(spilled, np.memmap) and not spilled.flags.writeable
    assert spilled.shape == bits.shape
    assert spilled.view(np.uint32).tobytes() == in_memory.view(np.uint32).tobytes()
    assert in_memory.view(np.uint32).tobytes() == reference(bits).view(np.uint32).tobytes()


def test_a_full_temporary_folder_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_room() -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(widen, "SPILL_BYTES", 64)
    monkeypatch.setattr(widen.tempfile, "TemporaryFile", no_room)
    with pytest.raises(ReadError, match=r"No space left on device.*set TMPDIR"):
        widen.widen_bfloat16(np.zeros((4, 32), dtype=np.uint16), "big.safetensors")
