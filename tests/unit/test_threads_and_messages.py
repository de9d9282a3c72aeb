"""A thread that cannot start falls back to one thread; --shift messages say the real count."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lossctl.core import kernels
from lossctl.core.metrics import causal_shift
from lossctl.errors import InputError


def test_a_thread_that_cannot_start_falls_back_to_one(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 8))
    t = rng.integers(0, 8, size=5000)
    expected = kernels.nll_of_logits(x, t, workers=1, block_bytes=4096)
    start = threading.Thread.start

    def refuse(self: threading.Thread) -> None:
        if self.name.startswith("lossctl-kernel"):
            raise RuntimeError("can't start new thread")
        start(self)

    monkeypatch.setattr(kernels, "_pools", {})
    monkeypatch.setattr(threading.Thread, "start", refuse)
    got = kernels.nll_of_logits(x, t, workers=2, block_bytes=4096)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("positions", [0, 1])
def test_shift_with_too_few_positions_says_how_many(positions: int) -> None:
    with pytest.raises(InputError, match=f"with {positions},"):
        causal_shift(np.zeros((2, positions, 3)), np.zeros((2, positions), dtype=int), None)
