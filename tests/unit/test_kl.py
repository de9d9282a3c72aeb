"""kl_div against torch's recorded values, kl_logits against mpmath, and KLStats merging."""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path
from typing import Any

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lossctl import InputError, kl_div, kl_logits, kl_statistics
from lossctl.core.kl import MEAN_WARNING, KLBroadcastWarning, KLReductionMeanWarning
from lossctl.core.kl_stats import (
    DELTA_PRECISION,
    LOG_PRECISION,
    PERCENTILES,
    kl_block_stats,
    merge,
    merge_all,
)
from lossctl.core.kl_stats_io import stats_from_dict, stats_to_dict
from lossctl.core.losses import log_softmax, softmax

CASES = json.loads((Path(__file__).resolve().parents[1] / "data" / "kl_cases.json").read_text())


def dec(value: Any) -> Any:
    if isinstance(value, list):
        return [dec(v) for v in value]
    return float(value) if isinstance(value, str) else value


def close(got: Any, want: Any) -> None:
    got_a = np.asarray(got, dtype=np.float64)
    want_a = np.asarray(dec(want), dtype=np.float64)
    assert got_a.shape == want_a.shape
    np.testing.assert_array_equal(np.isnan(got_a), np.isnan(want_a))
    finite = np.isfinite(want_a)
    np.testing.assert_array_equal(got_a[~finite], want_a[~finite])
    np.testing.assert_allclose(got_a[finite], want_a[finite], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", [c for c in CASES["cases"] if c["op"] == "kl_div"], ids=str)
def test_kl_div_matches_torch(case: dict[str, Any]) -> None:
    x, y = np.asarray(dec(case["input"])), np.asarray(dec(case["target"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if case["error"] is not None:
            with pytest.raises(InputError):
                kl_div(x, y, reduction=case["reduction"], log_target=case["log_target"])
            return
        got = kl_div(x, y, reduction=case["reduction"], log_target=case["log_target"])
    close(got, case["expected"])
    means = [str(w.message) for w in caught if issubclass(w.category, KLReductionMeanWarning)]
    assert means == case["warnings"]
    broadcast = [w for w in caught if issubclass(w.category, KLBroadcastWarning)]
    assert bool(broadcast) == (x.shape != y.shape)


def test_mean_warning_text_is_torchs() -> None:
    texts = {w for c in CASES["cases"] for w in c.get("warnings", [])}
    assert texts == {MEAN_WARNING}


@pytest.mark.parametrize("case", [c for c in CASES["cases"] if c["op"] == "kl_logits"], ids=str)
def test_kl_logits_matches_torch(case: dict[str, Any]) -> None:
    close(kl_logits(dec(case["reference"]), dec(case["other"])), case["expected"])


def test_bad_reduction_and_dtype() -> None:
    with pytest.raises(InputError, match="not a valid value for reduction"):
        kl_div([0.0], [0.5], reduction="foo")
    with pytest.raises(InputError):
        kl_div(["a"], [0.5], reduction="sum")
    with pytest.raises(InputError):
        kl_logits([[1.0, 2.0]], [[1.0, 2.0, 3.0]])


# ------------------------------------------------------------------ kl_logits vs mpmath


def mp_kl(x: list[float], y: list[float]) -> Any:
    with mpmath.workdps(400):
        xs = [mpmath.mpf(v) for v in x]
        ys = [mpmath.mpf(v) for v in y]
        if any(mpmath.isnan(v) or v == mpmath.inf for v in xs + ys):
            return mpmath.nan
        if all(v == -mpmath.inf for v in xs) or all(v == -mpmath.inf for v in ys):
            return mpmath.nan  # log-softmax of an all -inf row is NaN, as in torch
        lx = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in xs if v != -mpmath.inf))
        ly = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in ys if v != -mpmath.inf))
        total = mpmath.mpf(0)
        for a, b in zip(xs, ys, strict=True):
            if a == -mpmath.inf:
                continue
            if b == -mpmath.inf:
                return mpmath.inf
            total += mpmath.exp(a - lx) * ((a - lx) - (b - ly))
        return total


def check_mp(x: list[float], y: list[float], rtol: float = 1e-12) -> None:
    got = float(kl_logits(np.asarray(x), np.asarray(y)))
    want = mp_kl(x, y)
    if mpmath.isnan(want):
        assert math.isnan(got)
    elif not mpmath.isfinite(want):
        assert got == float(want)
    elif abs(want) < 1e-300:  # 0, or the 400-digit reference's own cancellation residue
        assert 0.0 <= got < 1e-300
    else:
        assert got >= 0
        assert abs(mpmath.mpf(got) - want) <= rtol * abs(want), (x, y, got, want)


ADVERSARIAL = [
    ([1.5, -0.5, 0.25], [1.5, -0.5, 0.25]),
    ([0.1, 0.2, 0.3], [1000.1, 1000.2, 1000.3]),
    ([1e4, 0.0, -1e4], [0.0, 0.0, 0.0]),
    ([0.0, 0.0, 0.0], [1e4, 0.0, -1e4]),
    ([0.0, -1e4], [0.0, 0.0]),
    ([100.0, 0.0, 0.0], [100.0, 0.0, 1e-9]),
    ([30.0, 0.0, 0.0, 0.0], [29.0, 0.0, 0.0, 0.5]),
    ([0.0, -math.inf, 1.0], [0.0, 2.0, 1.0]),
    ([0.0, -math.inf, 1.0], [0.0, -math.inf, 1.5]),
    ([-math.inf, 0.0], [1e3, 0.0]),
    ([0.0, 3.0, 1.0], [0.0, -math.inf, 1.5]),
    ([0.0, -800.0, 1.0], [0.0, 2000.0, 1.5]),
    ([0.0, math.nan], [0.0, 1.0]),
    ([0.0, math.inf], [0.0, 1.0]),
    ([-math.inf, -math.inf], [0.0, 1.0]),
    (
        [93.23898691380805, -30.26319212168588, 10.747294194219863],
        [93.23898691381153, -30.26319212168784, 10.747294194220013],
    ),
]


@pytest.mark.parametrize(("x", "y"), ADVERSARIAL)
def test_kl_logits_adversarial(x: list[float], y: list[float]) -> None:
    check_mp(x, y)


def test_identical_is_exactly_zero() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 50)) * 30
    x[::7, 3] = -np.inf
    assert np.all(kl_logits(x, x.copy()) == 0.0)
    assert np.all(kl_logits(log_softmax(x), log_softmax(x), log_probs=True) == 0.0)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(2, 8).flatmap(
        lambda c: st.tuples(
            st.lists(st.floats(-50, 50), min_size=c, max_size=c),
            st.lists(st.floats(-1, 1), min_size=c, max_size=c),
            st.integers(-14, 1),
            st.floats(-200, 200),
        )
    )
)
def test_kl_logits_random_vs_mpmath(args: tuple[list[float], list[float], int, float]) -> None:
    x, noise, scale, shift = args
    y = [a + n * 10.0**scale + shift for a, n in zip(x, noise, strict=True)]
    check_mp(x, y, rtol=1e-11)


def test_relationships() -> None:
    rng = np.random.default_rng(7)
    ref, other = rng.normal(size=(4, 6, 9)) * 3, rng.normal(size=(4, 6, 9)) * 3
    kl = kl_logits(ref, other, class_dim=1)
    assert kl.shape == (4, 9) and np.all(kl >= 0)
    direct = kl_div(log_softmax(other, 1), softmax(ref, 1), reduction="none").sum(axis=1)
    np.testing.assert_allclose(kl, direct, rtol=1e-13, atol=1e-15)
    logp, logq = log_softmax(ref, 1), log_softmax(other, 1)
    np.testing.assert_allclose(kl_logits(logp, logq, class_dim=1, log_probs=True), kl, rtol=1e-12)
    assert np.all(kl_logits(ref, ref + 7.0, class_dim=1) <= 1e-28)


# ------------------------------------------------------------------ statistics


def random_block(seed: int, n: int = 300, c: int = 12) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, c)) * 2
    other = ref + rng.normal(size=(n, c)) * 10.0 ** rng.uniform(-6, 0, size=(n, 1))
    other[::17] = ref[::17]  # exact zeros
    ref[5, 2] = ref[5, 3]  # a tie
    labels = rng.integers(0, c, size=n)
    labels[::11] = -100
    return ref, other, labels


def test_merge_equals_whole() -> None:
    ref, other, labels = random_block(1)
    whole = kl_block_stats(ref, other, labels)
    rng = np.random.default_rng(2)
    for _ in range(5):
        cuts = np.sort(rng.choice(np.arange(1, len(ref)), size=4, replace=False))
        parts = [
            kl_block_stats(r, o, lab)
            for r, o, lab in zip(
                np.split(ref, cuts), np.split(other, cuts), np.split(labels, cuts), strict=True
            )
        ]
        rng.shuffle(parts)
        assert merge_all(parts) == whole
    assert merge(whole, kl_block_stats(ref[:0], other[:0], labels[:0])) == whole


def test_statistics_against_direct_formulas() -> None:
    ref, other, labels = random_block(4)
    stats = kl_statistics(ref, other, labels)
    keep = labels != -100
    r, o, lab = ref[keep], other[keep], labels[keep]
    kl = kl_logits(r, o)
    n = kl.size
    assert stats.positions == n
    assert stats.kl_mean() == pytest.approx(kl.mean(), rel=1e-14)
    assert stats.kl_stderr() == pytest.approx(kl.std(ddof=1) / math.sqrt(n), rel=1e-9)
    assert stats.kl.minimum == kl.min() and stats.kl.maximum == kl.max()
    for q, value in stats.kl_percentiles().items():
        want = np.percentile(kl, q)
        assert abs(value - want) <= LOG_PRECISION * want or value == want == 0.0
    same = np.argmax(r, 1) == np.argmax(o, 1)
    f = same.mean()
    assert stats.same_top1_fraction() == f
    assert stats.same_top1_stderr() == pytest.approx(same.std(ddof=1) / math.sqrt(n), rel=1e-12)
    top_r = np.argsort(-r, axis=1, kind="stable")[:, :5]
    top_o = np.argsort(-o, axis=1, kind="stable")[:, :5]
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top_r, top_o, strict=True)])
    assert stats.top5_overlap() == pytest.approx(overlap, rel=1e-14)
    nll_r = -np.take_along_axis(log_softmax(r), lab[:, None], 1)[:, 0]
    nll_o = -np.take_along_axis(log_softmax(o), lab[:, None], 1)[:, 0]
    ppl = stats.perplexities()
    assert ppl["reference"] == pytest.approx(math.exp(nll_r.mean()), rel=1e-13)
    assert ppl["other"] == pytest.approx(math.exp(nll_o.mean()), rel=1e-13)
    assert ppl["ratio"] == pytest.approx(ppl["other"] / ppl["reference"], rel=1e-13)
    mean, err = stats.mean_log_ppl_ratio()
    d = nll_o - nll_r
    assert mean == pytest.approx(d.mean(), rel=1e-9, abs=1e-16)
    assert err == pytest.approx(d.std(ddof=1) / math.sqrt(n), rel=1e-9)
    assert stats.nll_correlation() == pytest.approx(np.corrcoef(nll_r, nll_o)[0, 1], rel=1e-12)
    dp = np.exp(-nll_o) - np.exp(-nll_r)
    summary = stats.delta_p_summary()
    assert summary["mean"] == pytest.approx(dp.mean(), rel=1e-13, abs=1e-18)
    assert summary["rms"] == pytest.approx(math.sqrt(np.mean(dp * dp)), rel=1e-13)
    for q in PERCENTILES:
        assert abs(summary[f"p{q:g}"] - np.percentile(dp, q)) <= DELTA_PRECISION + 1e-15


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.just(0.0), st.floats(1e-300, 1e150)), min_size=1, max_size=60))
def test_log_histogram_percentiles(values: list[float]) -> None:
    from lossctl.core.kl_stats import Moments

    m = Moments.of(np.asarray(values))
    for q in PERCENTILES:
        want = float(np.percentile(values, q))
        got = m.percentile(q)
        assert abs(got - want) <= LOG_PRECISION * want * (1 + 1e-12) or got == want


def test_nonfinite_kl_and_nll() -> None:
    ref = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, np.nan], [1.0, 2.0, 3.0]])
    other = np.array([[0.0, -np.inf, 2.0], [0.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    stats = kl_statistics(ref, other, np.array([1, 0, 2]))
    assert math.isnan(stats.kl_mean()) and stats.kl.nan == 1 and stats.kl.posinf == 1
    assert stats.nll.nonfinite == 2 and math.isnan(stats.perplexities()["ratio"])
    assert stats.kl.minimum == 0.0 and stats.kl_percentiles()[99.9] == math.inf
    assert stats_from_dict(stats_to_dict(stats)) == stats


def test_round_trip_and_plain_types() -> None:
    ref, other, labels = random_block(5)
    for stats in (kl_statistics(ref, other, labels), kl_statistics(ref, other)):
        document = stats_to_dict(stats)
        text = json.dumps(document)

        def plain(v: Any) -> bool:
            if isinstance(v, dict):
                return all(isinstance(k, str) and plain(x) for k, x in v.items())
            if isinstance(v, list):
                return all(plain(x) for x in v)
            return isinstance(v, int | str) and not isinstance(v, bool)

        assert plain(document)
        assert stats_from_dict(json.loads(text)) == stats


BAD_EDITS = [
    lambda d: d.pop("kl"),
    lambda d: d.update(format="other"),
    lambda d: d.update(positions=-1),
    lambda d: d.update(positions=True),
    lambda d: d.update(same_top1=10**9),
    lambda d: d.update(top_overlap=10**9),
    lambda d: d.update(labelled=2),
    lambda d: d.update(extra=1),
    lambda d: d["kl"].update(sum="12.5"),
    lambda d: d["kl"].update(min="nan"),
    lambda d: d["kl"].update(min=0.5),
    lambda d: d["kl"].update(finite=d["kl"]["finite"] + 1),
    lambda d: d["kl"]["positive"].reverse(),
    lambda d: d["kl"]["positive"].append([10**9, 1]),
    lambda d: d["kl"]["positive"][0].append(1),
    lambda d: d["kl"]["positive"][0].__setitem__(1, 0),
    lambda d: d["kl"].update(squares="-1*2**0"),
    lambda d: d["nll"].update(count="3"),
    lambda d: d["delta_p"]["positive"].append([5000, 1]),
    lambda d: d["delta_p"].update(zero=1),
    lambda d: d.update(classes=0),
]


@pytest.mark.parametrize("edit", BAD_EDITS)
def test_from_dict_refuses_bad_documents(edit: Any) -> None:
    ref, other, labels = random_block(6, n=40)
    document = copy.deepcopy(stats_to_dict(kl_statistics(ref, other, labels)))
    edit(document)
    with pytest.raises(InputError):
        stats_from_dict(document)
    with pytest.raises(InputError):
        stats_from_dict([])


def test_merge_refuses_mismatches() -> None:
    ref, other, labels = random_block(8, n=20)
    with pytest.raises(InputError):
        merge(kl_statistics(ref, other, labels), kl_statistics(ref, other))
    with pytest.raises(InputError):
        merge(kl_statistics(ref, other), kl_statistics(ref[:, :5], other[:, :5]))
    with pytest.raises(InputError):
        merge_all([])
    with pytest.raises(InputError):
        kl_statistics(ref, other, np.full(20, 99))
