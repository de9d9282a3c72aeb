"""``lossctl kl`` end to end: statistics against a float64 NumPy reference, adversarial inputs,
shards and merge, streamed = in memory, per-position output, doctor findings, errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from lossctl.cli.app import app
from lossctl.core.kl_stats import DELTA_PRECISION, LOG_PRECISION
from tests.conftest import ROOT
from tests.helpers import float32_kl_bound

runner = CliRunner()
EXAMPLE = ROOT / "examples" / "kl"
QS = ("0.1", "1", "5", "10", "90", "95", "99", "99.9")


def invoke(*args: str | Path) -> Any:
    return runner.invoke(app, ["kl", *map(str, args)])


def document(*args: str | Path) -> dict[str, Any]:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def num(value: Any) -> float:
    return float(value)


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))


def reference_kl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Σ p (log p - log q) in float64, 0 where p = 0 (the textbook formula)."""
    lp, lq = log_softmax(x), log_softmax(y)
    p = np.exp(lp)
    with np.errstate(invalid="ignore"):
        terms = np.where(p == 0, 0.0, p * (lp - lq))
    return np.asarray(terms.sum(axis=-1))


def top_sets(x: np.ndarray, k: int) -> list[set[int]]:
    return [set(np.argsort(-row, kind="stable")[:k].tolist()) for row in x]


def save(tmp: Path, name: str, array: np.ndarray) -> Path:
    path = tmp / name
    np.save(path, array)
    return path


def random_pair(seed: int, shape: tuple[int, ...] = (6, 40, 17), scale: float = 0.4) -> Any:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 2, size=shape)
    y = x + rng.normal(0, scale, size=shape)
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    return x, y, labels


U = 2.0**-24


def float32_bound(x: np.ndarray, y: np.ndarray) -> float:
    """kl_fast32's relative bound at its largest over the rows."""
    return float(np.max(float32_kl_bound(x, y)))


def check_against_reference(
    doc: dict[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    labels: Any,
    kl_rel: float = 0.0,
    nll_rel: float = 0.0,
) -> None:
    """The document against a float64 reference; ``kl_rel`` / ``nll_rel`` bound the relative
    error of every per-position KL / NLL (0: the float64 path, ~1e-12; pytest's abs=1e-12
    stays where it was the default), and the derived
    tolerances follow from them (std: 1-Lipschitz in the RMS of the changes; a cosine moves
    by at most 2x the relative change of its vectors; d exp(-nll) = exp(-nll) d nll)."""
    rows_x, rows_y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    kl = reference_kl(rows_x, rows_y)
    n = kl.size
    assert doc["count"] == n
    rms = math.sqrt(np.mean(kl * kl))
    assert num(doc["kl"]["mean"]) == pytest.approx(kl.mean(), rel=1e-12 + kl_rel)
    stderr = kl.std(ddof=1) / math.sqrt(n)
    assert num(doc["kl"]["stderr"]) == pytest.approx(
        stderr, rel=1e-9, abs=1e-12 + 2 * kl_rel * rms / math.sqrt(n - 1)
    )
    assert num(doc["kl"]["min"]) == pytest.approx(kl.min(), rel=1e-10 + kl_rel)
    assert num(doc["kl"]["max"]) == pytest.approx(kl.max(), rel=1e-10 + kl_rel)
    within = LOG_PRECISION * 1.01 + 2 * kl_rel
    for q in QS:
        want = np.percentile(kl, float(q))
        assert num(doc["kl"]["percentiles"][q]) == pytest.approx(want, rel=within)
    assert num(doc["kl"]["median"]) == pytest.approx(np.median(kl), rel=within)
    same = np.argmax(rows_x, 1) == np.argmax(rows_y, 1)
    assert doc["same_top1"]["fraction"] == pytest.approx(same.mean(), abs=0)
    assert doc["same_top1"]["stderr"] == pytest.approx(same.std(ddof=1) / math.sqrt(same.size))
    k = min(5, x.shape[-1])
    overlap = [len(a & b) for a, b in zip(top_sets(rows_x, k), top_sets(rows_y, k), strict=True)]
    assert doc["top5_overlap"] == pytest.approx(np.mean(overlap) / k, rel=1e-14)
    if labels is None:
        assert "perplexity" not in doc
        return
    t = labels.reshape(-1)
    nll_r = -log_softmax(rows_x)[np.arange(t.size), t]
    nll_o = -log_softmax(rows_y)[np.arange(t.size), t]
    ppl = doc["perplexity"]
    mean_r, mean_o = nll_r.mean(), nll_o.mean()
    assert ppl["reference"] == pytest.approx(math.exp(mean_r), rel=1e-12 + 1.01 * nll_rel * mean_r)
    assert ppl["other"] == pytest.approx(math.exp(mean_o), rel=1e-12 + 1.01 * nll_rel * mean_o)
    shift = nll_rel * (mean_r + mean_o)  # bound on the change of mean(nll_o - nll_r)
    assert ppl["ratio"] == pytest.approx(math.exp(mean_o - mean_r), rel=1e-12 + 1.01 * shift)
    d = nll_o - nll_r
    assert doc["log_ppl_ratio"]["mean"] == pytest.approx(d.mean(), rel=1e-10, abs=1e-12 + shift)
    moved = nll_rel * math.sqrt(np.mean((nll_r + nll_o) ** 2))  # RMS of the changes of d
    assert doc["log_ppl_ratio"]["stderr"] == pytest.approx(
        d.std(ddof=1) / math.sqrt(d.size), rel=1e-6, abs=1e-12 + 2 * moved / math.sqrt(d.size - 1)
    )
    spread = nll_rel * (
        math.sqrt(np.mean(nll_r**2)) / nll_r.std() + math.sqrt(np.mean(nll_o**2)) / nll_o.std()
    )
    correlation = np.corrcoef(nll_r, nll_o)[0, 1]
    assert doc["nll_correlation"] == pytest.approx(
        correlation, rel=1e-10, abs=1e-12 + 2.02 * spread
    )
    dp = np.exp(-nll_o) - np.exp(-nll_r)
    dp_moved = 2 * nll_rel / math.e  # |d exp(-nll)| <= exp(-nll) nll nll_rel <= nll_rel / e
    assert doc["delta_p"]["mean"] == pytest.approx(dp.mean(), rel=1e-10, abs=1e-15 + dp_moved)
    assert doc["delta_p"]["rms"] == pytest.approx(
        np.sqrt(np.mean(dp * dp)), rel=1e-12, abs=1e-12 + dp_moved
    )
    for q in QS:
        want = np.percentile(dp, float(q))
        assert num(doc["delta_p"]["percentiles"][q]) == pytest.approx(
            want, abs=DELTA_PRECISION + dp_moved
        )


@pytest.mark.parametrize("precision", ["auto", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_inputs_match_a_float64_reference(tmp_path: Path, seed: int, precision: str) -> None:
    """float32 files: --precision float64 within 1e-12; auto (float32 exp) within the bound
    of lossctl.core.kl_fast32 for the KL and 5 u for the NLLs."""
    x, y, labels = random_pair(seed)
    doc = document(
        save(tmp_path, "r.npy", x.astype(np.float32)),
        save(tmp_path, "o.npy", y.astype(np.float32)),
        save(tmp_path, "l.npy", labels),
        "--both-directions",
        "--precision",
        precision,
    )
    x32, y32 = x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64)
    rows_x, rows_y = x32.reshape(-1, 17), y32.reshape(-1, 17)
    forward_rel = float32_bound(rows_x, rows_y) if precision == "auto" else 0.0
    back_rel = float32_bound(rows_y, rows_x) if precision == "auto" else 0.0
    nll_rel = 5 * U if precision == "auto" else 0.0
    check_against_reference(doc, x32, y32, labels, forward_rel, nll_rel)
    back = reference_kl(rows_y, rows_x)
    assert doc["reverse_kl"]["mean"] == pytest.approx(back.mean(), rel=1e-12 + back_rel)
    forward = reference_kl(rows_x, rows_y)
    want = (forward.mean() + back.mean()) / 2
    assert doc["symmetric_kl"]["mean"] == pytest.approx(
        want, rel=1e-12 + max(forward_rel, back_rel)
    )
    if precision == "auto":  # within the bound, but not the float64 path's bits
        assert num(doc["kl"]["mean"]) != pytest.approx(forward.mean(), rel=1e-14)


def test_without_labels_and_class_axis_first(tmp_path: Path) -> None:
    x, y, _ = random_pair(3, (30, 9))
    doc = document(save(tmp_path, "r.npy", x.T), save(tmp_path, "o.npy", y.T), "--class-dim", "0")
    assert doc["class_dim"] == 0 and doc["shape"] == [9, 30]
    check_against_reference(doc, x, y, None)


def test_identical_inputs_give_zero_everywhere(tmp_path: Path) -> None:
    x, _, labels = random_pair(4)
    r = save(tmp_path, "r.npy", x)
    doc = document(r, r, save(tmp_path, "l.npy", labels), "--both-directions")
    kl = doc["kl"]
    assert kl["mean"] == kl["stderr"] == kl["min"] == kl["max"] == kl["median"] == 0.0
    assert set(kl["percentiles"].values()) == {0.0}
    assert doc["reverse_kl"]["mean"] == 0.0 and doc["symmetric_kl"]["mean"] == 0.0
    assert doc["same_top1"]["fraction"] == 1.0 and doc["top5_overlap"] == 1.0
    assert doc["perplexity"]["ratio"] == 1.0 and doc["log_ppl_ratio"]["mean"] == 0.0
    assert doc["delta_p"]["mean"] == 0.0 and doc["delta_p"]["rms"] == 0.0


def test_one_hot_like_and_huge_logits(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    x = np.full((50, 8), -40.0)
    x[np.arange(50), rng.integers(0, 8, 50)] = 40.0
    y = x + rng.normal(0, 1.0, size=x.shape)
    check_against_reference(
        document(save(tmp_path, "r.npy", x), save(tmp_path, "o.npy", y)), x, y, None
    )
    huge = x * 1e12  # logits of 4e13: differences still exact in float64
    other = huge[:, ::-1].copy()
    doc = document(save(tmp_path, "hr.npy", huge), save(tmp_path, "ho.npy", other))
    kl = reference_kl(huge, other)
    assert num(doc["kl"]["mean"]) == pytest.approx(kl.mean(), rel=1e-12)
    assert num(doc["kl"]["min"]) >= 0


def test_minus_inf_logits(tmp_path: Path) -> None:
    x = np.array([[0.0, 1.0, -np.inf], [0.0, 1.0, 2.0], [3.0, -np.inf, 1.0]])
    y = np.array([[0.5, 1.0, 0.0], [0.0, -np.inf, 2.0], [3.0, 0.0, 1.0]])
    result = invoke(save(tmp_path, "r.npy", x), save(tmp_path, "o.npy", y), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kl"]["max"] == "inf" and doc["kl"]["mean"] == "inf" and doc["kl"]["inf"] == 1
    assert num(doc["kl"]["min"]) == pytest.approx(min(reference_kl(x[[0, 2]], y[[0, 2]])))
    assert "1 positions have infinite KL" in result.stderr


def test_shards_and_merge_equal_the_whole(tmp_path: Path) -> None:
    x, y, labels = random_pair(6, (9, 25, 11))
    whole = document(
        save(tmp_path, "r.npy", x), save(tmp_path, "o.npy", y), save(tmp_path, "l.npy", labels)
    )
    parts = []
    for i, rows in enumerate(np.array_split(np.arange(9), 3)):
        for name, array in (("ref", x), ("oth", y), ("lab", labels)):
            save(tmp_path, f"{name}-{i}.npy", array[rows])
        parts.append(
            document(
                tmp_path / f"ref-{i}.npy", tmp_path / f"oth-{i}.npy", tmp_path / f"lab-{i}.npy"
            )
        )
        (tmp_path / f"part-{i}.json").write_text(json.dumps(parts[-1]))
    # shards named out of order on the command line still pair by name
    sharded = document(
        *(tmp_path / f"ref-{i}.npy" for i in (2, 0, 1)),
        *(tmp_path / f"oth-{i}.npy" for i in (0, 1, 2)),
        *(tmp_path / f"lab-{i}.npy" for i in (1, 2, 0)),
    )
    merged = runner.invoke(app, ["merge", *(str(tmp_path / f"part-{i}.json") for i in range(3))])
    merged_doc = runner.invoke(
        app, ["merge", "--json", *(str(tmp_path / f"part-{i}.json") for i in range(3))]
    )
    assert merged.exit_code == 0 and "over 3 shards" in merged.stdout
    merged_json = json.loads(merged_doc.stdout)
    for doc in (sharded, merged_json):
        assert doc["state"] == whole["state"]
        for key in ("kl", "same_top1", "top5_overlap", "perplexity", "log_ppl_ratio", "delta_p"):
            assert doc[key] == whole[key], key
        assert doc["shards"] == 3 and doc["count"] == whole["count"]


def test_merge_refuses_kl_with_ce(tmp_path: Path) -> None:
    x, y, labels = random_pair(7, (4, 5))
    kl_doc = document(save(tmp_path, "r.npy", x), save(tmp_path, "o.npy", y))
    ce = runner.invoke(
        app, ["ce", str(tmp_path / "r.npy"), str(save(tmp_path, "l.npy", labels)), "--json"]
    )
    (tmp_path / "kl.json").write_text(json.dumps(kl_doc))
    (tmp_path / "ce.json").write_text(ce.stdout)
    result = runner.invoke(app, ["merge", str(tmp_path / "kl.json"), str(tmp_path / "ce.json")])
    assert result.exit_code == 1
    assert "kl documents merge only with kl documents" in result.stderr


def test_streamed_npy_equals_in_memory_json(tmp_path: Path) -> None:
    x, y, labels = random_pair(8, (5, 30, 7))
    for name, array in (("r", x), ("o", y), ("l", labels)):
        (tmp_path / f"{name}.json").write_text(json.dumps(array.tolist()))
    from_json = document(*(tmp_path / f"{n}.json" for n in "rol"))
    from_npy = document(
        save(tmp_path, "r.npy", x), save(tmp_path, "o.npy", y), save(tmp_path, "l.npy", labels)
    )
    for doc in (from_json, from_npy):
        del doc["inputs"]
    assert from_json == from_npy


def test_reduction_none_writes_the_per_position_kl(tmp_path: Path) -> None:
    x, y, _ = random_pair(9, (3, 10, 6))
    out = tmp_path / "kl.npy"
    result = invoke(
        save(tmp_path, "r.npy", x), save(tmp_path, "o.npy", y), "--reduction", "none", "-o", out
    )
    assert result.exit_code == 0, result.output
    values = np.load(out)
    assert values.shape == (3, 10)
    np.testing.assert_allclose(values, reference_kl(x, y), rtol=1e-12, atol=1e-300)
    doc = document(tmp_path / "r.npy", tmp_path / "o.npy", "-r", "none")
    np.testing.assert_allclose(np.asarray(doc["per_position"]), values, rtol=0)


def test_shift_drops_the_last_logit_and_the_first_label(tmp_path: Path) -> None:
    x, y, labels = random_pair(10, (2, 12, 7))
    doc = document(
        save(tmp_path, "r.npy", x),
        save(tmp_path, "o.npy", y),
        save(tmp_path, "l.npy", labels),
        "--shift",
    )
    check_against_reference(doc, x[:, :-1], y[:, :-1], labels[:, 1:])
    assert doc["shift"] is True


def test_ignore_index_leaves_positions_out(tmp_path: Path) -> None:
    x, y, labels = random_pair(11, (40, 6))
    labels[::4] = -100
    doc = document(
        save(tmp_path, "r.npy", x), save(tmp_path, "o.npy", y), save(tmp_path, "l.npy", labels)
    )
    keep = labels != -100
    check_against_reference(doc, x[keep], y[keep], labels[keep])
    assert doc["ignored"] == 10 and doc["positions"] == 40


def test_json_schema() -> None:
    doc = document(EXAMPLE / "reference.json", EXAMPLE / "other.json", EXAMPLE / "labels.json")
    assert set(doc) == {
        "op", "direction", "count", "classes", "kl", "same_top1", "top5_overlap", "top_k",
        "perplexity", "log_ppl_ratio", "nll_correlation", "nll_nonfinite", "delta_p", "shape",
        "class_dim", "positions", "ignored", "log_probs", "ignore_index", "labelled", "shift",
        "inputs", "state", "warnings", "findings",
    }  # fmt: skip
    assert set(doc["kl"]) == {
        "mean", "stderr", "min", "max", "median", "percentiles", "percentile_precision", "nan",
        "inf",
    }  # fmt: skip
    assert list(doc["kl"]["percentiles"]) == list(QS)
    assert set(doc["same_top1"]) == {"fraction", "stderr"}
    assert set(doc["perplexity"]) == {"reference", "other", "ratio"}
    assert set(doc["state"]) == {"forward", "reverse"} and doc["state"]["reverse"] is None


def test_table_and_explain() -> None:
    files = (EXAMPLE / "reference.json", EXAMPLE / "other.json", EXAMPLE / "labels.json")
    table = invoke(*files)
    assert table.exit_code == 0
    assert "KL mean" in table.stdout and "PPL ratio" in table.stdout
    explained = invoke(*files, "--explain")
    assert explained.exit_code == 0
    for title in (
        "p: p = softmax",
        "q: q = softmax",
        "log ratio",
        "p · log ratio",
        "KL per position",
    ):
        assert title in explained.stdout
    steps = document(*files, "--explain")["steps"]
    assert [s["name"] for s in steps][-2:] == ["KL per position", "mean"]
    assert steps[-1]["values"] == pytest.approx(document(*files)["kl"]["mean"], rel=1e-12)


def test_doctor_findings(tmp_path: Path) -> None:
    x, y, _ = random_pair(12, (20, 5))
    r, o = save(tmp_path, "r.npy", x), save(tmp_path, "o.npy", y)
    result = invoke(r, o, "--log-probs", "--json")
    codes = [f["code"] for f in json.loads(result.stdout)["findings"]]
    assert codes == ["kl-target-not-normalized", "kl-input-not-log-probs"]
    assert result.stderr.count("lossctl: warning:") == 2
    fine = invoke(
        save(tmp_path, "lr.npy", log_softmax(x)),
        save(tmp_path, "lo.npy", log_softmax(y)),
        "--log-probs",
        "--json",
    )
    assert json.loads(fine.stdout)["findings"] == [] and fine.stderr == ""
    assert json.loads(fine.stdout)["kl"]["mean"] == pytest.approx(
        reference_kl(x, y).mean(), rel=1e-12
    )
    p = np.exp(log_softmax(x))
    probs = invoke(save(tmp_path, "p.npy", p), o, "--strict")
    assert probs.exit_code == 1 and "look like probabilities" in probs.stderr


def test_errors_are_one_line(tmp_path: Path) -> None:
    r = save(tmp_path, "r.npy", np.zeros((3, 4)))
    o = save(tmp_path, "o.npy", np.zeros((3, 5)))
    result = invoke(r, o)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "shape [3, 4] and other shape [3, 5]" in result.stderr
    bad = invoke(r, r, save(tmp_path, "l.npy", np.array([0, 1, 9])))
    assert bad.exit_code == 1 and "out of bounds" in bad.stderr and "l.npy" in bad.stderr
    assert invoke(r).exit_code == 2


def test_bounded_memory_on_two_memory_mapped_files(large_tmp: Path) -> None:
    """Two 150 MB float32 .npy files in a child process whose peak RSS stays far below them."""
    rows, classes = 37_500, 1000
    rng = np.random.default_rng(13)
    for name in ("ref", "oth"):
        path = large_tmp / f"{name}.npy"  # removed when the test ends
        out = np.lib.format.open_memmap(path, "w+", np.float32, (rows, classes))
        for start in range(0, rows, 2500):
            out[start : start + 2500] = rng.normal(size=(2500, classes)).astype(np.float32)
        out.flush()
        del out
    np.save(large_tmp / "lab.npy", rng.integers(0, classes, rows))
    total_mb = 2 * rows * classes * 4 / 2**20
    probe = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True)\n"
        "assert p.returncode == 0, p.stderr\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    args = [str(large_tmp / f) for f in ("ref.npy", "oth.npy", "lab.npy")]
    proc = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-m", "lossctl", "kl", *args, "--json", "-q"],
        capture_output=True,
        timeout=600,
        check=True,
    )
    peak_mb = int(proc.stdout) / 1024  # Linux: kilobytes
    # measured 94 MB (interpreter, NumPy, rich, units of 8 blocks of 1 MiB) for 286 MB of inputs
    assert peak_mb < 160, f"peak RSS {peak_mb:.0f} MB for {total_mb:.0f} MB of inputs"
