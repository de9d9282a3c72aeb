"""The blocked cross-entropy kernel: accuracy, special values, layouts, memmaps, determinism."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import tracemalloc
from pathlib import Path

import mpmath
import numpy as np
import numpy.typing as npt
import pytest

from lossctl import cross_entropy, loss_result
from lossctl.core import losses as core
from lossctl.core.kernels import nll_of_logits

F32_RTOL = 5e-7
F64_RTOL = 1e-12


def reference(x: npt.ArrayLike, t: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """core's float64 path on the same values: ``log1p(tail) - (x_t - m)`` per row."""
    rows = np.asarray(x, dtype=np.float64)
    rows = rows.reshape(-1, rows.shape[-1])
    stats = core.row_stats(rows)
    idx = np.asarray(t).reshape(-1)
    with np.errstate(invalid="ignore"):
        return stats.log_norm - stats.shifted[np.arange(rows.shape[0]), idx]


def max_rel_error(got: npt.ArrayLike, want: npt.ArrayLike) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    diff = np.abs(got - want)
    scale = np.where(want == 0.0, 1.0, np.abs(want))
    rel = np.where((want == 0.0) & (diff > 0.0), np.inf, diff / scale)
    return float(np.max(rel, initial=0.0))


def logits(shape: tuple[int, ...], scale: float, dtype: npt.DTypeLike, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale).astype(dtype)


def targets(count: int, classes: int, seed: int = 1) -> npt.NDArray[np.intp]:
    return np.random.default_rng(seed).integers(0, classes, count).astype(np.intp)


# ---- accuracy against float64 ---------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (9, 7), (300, 1000), (17, 8193), (6, 50257)])
@pytest.mark.parametrize("scale", [1.0, 4.0, 30.0])
def test_float32_and_float64_match_the_float64_reference(
    shape: tuple[int, int], scale: float
) -> None:
    t = targets(shape[0], shape[1])
    x32 = logits(shape, scale, np.float32)
    want = reference(x32, t)
    assert max_rel_error(nll_of_logits(x32, t), want) <= F32_RTOL
    assert max_rel_error(nll_of_logits(x32, t, precision="float64"), want) <= F64_RTOL
    x64 = logits(shape, scale, np.float64)
    want64 = reference(x64, t)
    assert max_rel_error(nll_of_logits(x64, t), want64) <= F64_RTOL
    assert max_rel_error(nll_of_logits(x64, t, precision="float64"), want64) <= F64_RTOL


@pytest.mark.parametrize("classes", [50257, 128256])
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_float32_large_vocabulary_stays_within_5e7(classes: int, scale: float) -> None:
    x = logits((24, classes), scale, np.float32, seed=classes)
    x[:4] -= x[:4].max(axis=1, keepdims=True)  # rows whose target may be the maximum
    t = targets(24, classes, seed=3)
    t[:4] = np.argmax(x[:4], axis=1)
    assert max_rel_error(nll_of_logits(x, t), reference(x, t)) <= F32_RTOL


def test_float16_and_integer_inputs() -> None:
    x16 = logits((40, 600), 3.0, np.float16)
    t = targets(40, 600)
    assert max_rel_error(nll_of_logits(x16, t), reference(x16, t)) <= F32_RTOL
    xi = np.random.default_rng(2).integers(-20, 20, (40, 600))
    np.testing.assert_allclose(nll_of_logits(xi, t), reference(xi, t), rtol=F64_RTOL)


# ---- confident predictions against mpmath ---------------------------------------------------


def exact_nll(row: npt.NDArray[np.floating], target: int) -> float:
    """-log softmax(row)[target] to 40 digits, summing equal values once."""
    mpmath.mp.dps = 40
    values, counts = np.unique(np.asarray(row, dtype=np.float64), return_counts=True)
    lse = mpmath.log(
        mpmath.fsum(
            int(n) * mpmath.exp(mpmath.mpf(float(v))) for v, n in zip(values, counts, strict=True)
        )
    )
    return float(lse - mpmath.mpf(float(row[target])))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("precision", ["auto", "float64"])
def test_confident_predictions_against_mpmath(dtype: type, precision: str) -> None:
    classes = 50257
    rows, want = [], []
    for value in (20, 30, 60, 100):
        for hot in (0, 5, 8, classes - 1):
            row = np.zeros(classes, dtype=dtype)
            row[hot] = value
            exact = float(mpmath.log1p((classes - 1) * mpmath.exp(-value)))
            rows.append(row)
            want.append(exact)
    x = np.stack(rows)
    t = np.array([np.argmax(r) for r in rows])
    got = nll_of_logits(x, t, precision=precision)  # type: ignore[arg-type]
    rtol = F32_RTOL if dtype == np.float32 and precision == "auto" else F64_RTOL
    errors = [max_rel_error(g, w) for g, w in zip(got, want, strict=True)]
    assert max(errors) <= rtol, errors
    assert got[0] == pytest.approx(1.0357997185876725e-4, rel=rtol)
    # The same rows with the target elsewhere: v + log1p((C-1)·e^-v).
    other = (t + 1) % classes
    got_other = nll_of_logits(x, other, precision=precision)  # type: ignore[arg-type]
    for g, row, o in zip(got_other, x, other, strict=True):
        assert g == pytest.approx(exact_nll(row, int(o)), rel=rtol)


@pytest.mark.parametrize("precision", ["auto", "float64"])
def test_confident_rows_of_inexact_float32_values(precision: str) -> None:
    """Tail logits 0.1f and a max of 20.3f: x - m is not exact in float32."""
    classes = 50257
    x = np.full((3, classes), np.float32(0.1), dtype=np.float32)
    x[0, 7], x[1, 0], x[2, classes - 1] = np.float32(20.3), np.float32(-3.7), np.float32(85.5)
    t = np.array([7, 0, classes - 1])
    got = nll_of_logits(x, t, precision=precision)  # type: ignore[arg-type]
    rtol = F32_RTOL if precision == "auto" else F64_RTOL
    for g, row, i in zip(got, x, t, strict=True):
        assert g == pytest.approx(exact_nll(row, int(i)), rel=rtol)


# ---- special values --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_nan_and_infinities_follow_core(dtype: type) -> None:
    inf, nan = np.inf, np.nan
    x = np.array(
        [
            [1.0, -inf, 0.0, 2.0],  # -inf at a non-target: fine
            [1.0, -inf, 0.0, 2.0],  # -inf at the target: inf
            [-inf, -inf, -inf, -inf],  # no finite maximum: NaN
            [inf, 0.0, 1.0, 2.0],  # +inf anywhere: NaN
            [0.0, 1.0, inf, 2.0],
            [nan, 0.0, 1.0, 2.0],  # NaN anywhere: NaN
            [0.0, 1.0, 2.0, nan],
            [3.0, -inf, -inf, -inf],  # only the maximum is finite: 0
            [0.5, 0.25, 0.125, 2.0],
        ],
        dtype=dtype,
    )
    t = np.array([0, 1, 0, 1, 3, 1, 0, 0, 2])
    want = reference(x, t)
    for precision in ("auto", "float64"):
        got = nll_of_logits(x, t, precision=precision)  # type: ignore[arg-type]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=F32_RTOL)
    assert np.isinf(want[1]) and np.isnan(want[2:7]).all() and want[7] == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tied_maxima_remove_one_term_only(dtype: type) -> None:
    classes = 50257
    x = np.zeros((4, classes), dtype=dtype)
    x[0, [3, 9]] = 25.0  # exact tie: loss log(2 + (C-2)·e^-25)
    x[1, [0, classes - 1]] = 25.0
    x[2, 1], x[2, 2] = 1e-8, 2e-8  # exp rounds these to the same float32 as exp(0)
    x[3, :] = 7.0  # every class tied: log(C)
    t = np.array([9, 0, 1, 5])
    want = [
        float(mpmath.log(2 + (classes - 2) * mpmath.exp(-25))),
        float(mpmath.log(2 + (classes - 2) * mpmath.exp(-25))),
        exact_nll(x[2], 1),
        float(mpmath.log(classes)),
    ]
    for precision in ("auto", "float64"):
        got = nll_of_logits(x, t, precision=precision)  # type: ignore[arg-type]
        rtol = F32_RTOL if dtype == np.float32 and precision == "auto" else F64_RTOL
        assert max_rel_error(got, want) <= rtol


def test_huge_and_tiny_logits_fall_back_to_float64() -> None:
    x = np.array(
        [
            [1e4, 0.0, -1e4],
            [200.0, 199.0, 150.0],  # max above float32 exp's range
            [0.0, -120.0, -130.0],  # tail only in float32 exp's underflow range
            [-200.0, -201.0, -202.0],  # everything underflows in float32
            [3e38, -3e38, 0.0],
        ],
        dtype=np.float32,
    )
    t = np.array([1, 0, 0, 1, 1])
    want = reference(x, t)
    np.testing.assert_allclose(nll_of_logits(x, t), want, rtol=F64_RTOL)
    assert nll_of_logits(x[:1], [2])[0] == 20000.0
    x64 = x.astype(np.float64) * np.array([[1.0], [5.0], [8.0], [5.0], [1.0]])
    np.testing.assert_allclose(nll_of_logits(x64, t), reference(x64, t), rtol=F64_RTOL)


# ---- layouts, memmaps ------------------------------------------------------------------------


def test_non_contiguous_views_give_bit_identical_results() -> None:
    base = logits((300, 257), 3.0, np.float32)
    t = targets(257, 300)
    moved = np.moveaxis(base, 0, 1)  # (257, 300) with the classes strided
    want = nll_of_logits(np.ascontiguousarray(moved), t)
    assert np.array_equal(nll_of_logits(moved, t, block_bytes=4096), want)
    assert np.array_equal(nll_of_logits(np.asfortranarray(moved), t), want)
    sliced = base[::2, ::-3]
    ts = targets(sliced.shape[0], sliced.shape[1])
    assert np.array_equal(nll_of_logits(sliced, ts), nll_of_logits(sliced.copy(), ts))


def test_class_axis_in_the_middle_is_gathered_blockwise() -> None:
    x = logits((4, 50, 3, 7), 2.0, np.float32)  # (N, C, H, W), classes at axis 1
    t = np.random.default_rng(4).integers(0, 50, (4, 3, 7))
    moved = np.moveaxis(x, 1, -1)  # (N, H, W, C): no (M, C) view exists
    want = nll_of_logits(np.ascontiguousarray(moved), t)
    got = nll_of_logits(moved, t, block_bytes=50 * 4 * 5)
    assert got.shape == (4, 3, 7)
    assert np.array_equal(got, want)
    per = cross_entropy(x, t, class_dim=1, reduction="none")
    np.testing.assert_allclose(per, reference(moved, t).reshape(4, 3, 7), rtol=F32_RTOL)


@pytest.mark.parametrize("mode", ["r", "r+", "c"])
def test_memmapped_npy_gives_the_in_memory_result(tmp_path: Path, mode: str) -> None:
    x = logits((1000, 777), 3.0, np.float32)
    t = targets(1000, 777)
    path = tmp_path / "logits.npy"
    np.save(path, x)
    mapped = np.load(path, mmap_mode=mode)  # type: ignore[call-overload]
    assert isinstance(mapped, np.memmap)
    want = nll_of_logits(x, t)
    assert np.array_equal(nll_of_logits(mapped, t, block_bytes=1 << 16), want)
    assert np.array_equal(nll_of_logits(mapped[100:900:3], t[100:900:3]), want[100:900:3])
    got = cross_entropy(mapped, t, class_dim=1, reduction="none")
    assert np.array_equal(got, want)
    np.testing.assert_array_equal(mapped, x)  # the mapping is intact after the releases


def test_memmap_pages_are_released_while_reading(large_tmp: Path) -> None:
    """Peak RSS of a child reading a 256 MiB memmap grows by far less than the file."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to read the peak RSS")
    path = large_tmp / "big.npy"  # removed when the test ends
    rows, classes = 2048, 32768
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, classes))
    for r0 in range(0, rows, 256):
        out[r0 : r0 + 256] = np.float32(r0 % 7) - np.arange(classes, dtype=np.float32) % 5
    out.flush()
    del out
    script = textwrap.dedent(
        f"""
        import numpy as np
        from lossctl.core.kernels import nll_of_logits

        def hwm():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

        x = np.load({str(path)!r}, mmap_mode="r")
        t = np.zeros(x.shape[0], dtype=np.intp)
        nll_of_logits(x[:2], t[:2])
        before = hwm()
        losses = nll_of_logits(x, t)
        assert np.isfinite(losses).all()
        print(hwm() - before)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    grown = int(proc.stdout.strip())
    assert grown < 64 << 20, f"peak RSS grew by {grown / 2**20:.0f} MiB on a 256 MiB file"


def test_extra_memory_is_bounded_by_the_blocks() -> None:
    x = logits((512, 32768), 1.0, np.float32)  # 64 MiB
    t = targets(512, 32768)
    nll_of_logits(x[:4], t[:4])  # warm the thread pool
    for precision in ("auto", "float64"):
        tracemalloc.start()
        nll_of_logits(x, t, precision=precision)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 16 << 20, f"{precision}: {peak / 2**20:.1f} MiB"


# ---- determinism, block boundaries -----------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_identical_across_runs_workers_and_block_sizes(dtype: type) -> None:
    x = logits((203, 3001), 4.0, dtype)
    t = targets(203, 3001)
    want = nll_of_logits(x, t, workers=1, block_bytes=1)
    for workers in (1, 2, 3):
        for block_bytes in (1, 3001 * 4 * 7, 1 << 20, 1 << 30):
            for _ in range(2):
                got = nll_of_logits(x, t, workers=workers, block_bytes=block_bytes)
                assert np.array_equal(got, want)
    for i in (0, 101, 202):  # a row alone gives the same bits as inside a block
        assert np.array_equal(nll_of_logits(x[i : i + 1], t[i : i + 1]), want[i : i + 1])


def test_concurrent_callers_share_the_pool() -> None:
    x = logits((64, 5000), 2.0, np.float32)
    t = targets(64, 5000)
    want = nll_of_logits(x, t)
    results: list[np.ndarray] = []

    def call() -> None:
        results.append(nll_of_logits(x, t, workers=2, block_bytes=1 << 16))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(np.array_equal(r, want) for r in results)


@pytest.mark.parametrize(("rows", "classes"), [(0, 5), (1, 1), (1, 9), (7, 1), (33, 10), (64, 10)])
def test_block_boundaries(rows: int, classes: int) -> None:
    x = logits((rows, classes), 3.0, np.float32)
    t = targets(rows, classes)
    want = reference(x, t) if rows else np.empty(0)
    for block_bytes in (1, classes * 4 * 8, 1 << 20):
        got = nll_of_logits(x, t, block_bytes=block_bytes)
        assert got.shape == (rows,) and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=F32_RTOL)
    if classes == 1:
        assert (nll_of_logits(x, t) == 0.0).all()


def test_refusals() -> None:
    x = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="precision"):
        nll_of_logits(x, [0, 1], precision="float16")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="real numbers"):
        nll_of_logits(x.astype(complex), [0, 1])
    with pytest.raises(TypeError, match="integers"):
        nll_of_logits(x, [0.0, 1.0])
    with pytest.raises(ValueError, match="2 targets for"):
        nll_of_logits(x[:1], [0, 1])
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        nll_of_logits(x, [0, 3])
    with pytest.raises(ValueError, match="0 classes"):
        nll_of_logits(np.zeros((2, 0)), [0, 0])


# ---- through core ----------------------------------------------------------------------------


def test_core_routes_cross_entropy_through_the_kernel() -> None:
    x = logits((64, 2000), 3.0, np.float32)
    t = targets(64, 2000)
    t[::5] = -100
    exact = cross_entropy(x.astype(np.float64), t, class_dim=1)
    got = cross_entropy(x, t, class_dim=1)
    assert got == pytest.approx(exact, rel=F32_RTOL)
    assert cross_entropy(x, t, class_dim=1, precision="float64") == pytest.approx(
        exact, rel=F64_RTOL
    )
    x[0, 3] = np.nan  # an ignored row's NaN does not leak
    result = loss_result("cross_entropy", x, t, class_dim=1, reduction="sum")
    assert np.isfinite(result.total) and result.ignored == 13
    with pytest.raises(core.InputError, match="precision"):
        cross_entropy(x, t, class_dim=1, precision="half")  # type: ignore[arg-type]
