"""Tests for w2s_lens.evaluation.metrics (pure numpy, fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from w2s_lens.evaluation import metrics as M

SUMMARY_KEYS = {"steerability", "steerability_ci", "steerable_fraction", "steerable_fraction_ci"}
ROUTER_KEYS = SUMMARY_KEYS | {"accuracy", "top3_accuracy", "diff_vs_fixed", "diff_vs_fixed_ci",
                              "diff_vs_fixed_p"}


def test_bootstrap_ci_contains_mean_and_is_deterministic() -> None:
    v = np.random.default_rng(1).normal(0.3, 1.0, size=200)
    lo, hi = M.bootstrap_ci(v, n_boot=1000, seed=3)
    assert lo < v.mean() < hi
    assert (lo, hi) == M.bootstrap_ci(v, n_boot=1000, seed=3)
    assert (lo, hi) != M.bootstrap_ci(v, n_boot=1000, seed=4)
    # width close to the normal approximation 2 * 1.96 * sd / sqrt(n)
    assert hi - lo == pytest.approx(2 * 1.96 * v.std() / np.sqrt(v.size), rel=0.2)


def test_bootstrap_ci_custom_stat_and_empty() -> None:
    v = np.arange(11, dtype=float)
    lo, hi = M.bootstrap_ci(v, n_boot=300, stat=lambda x: float(np.median(x)))
    assert lo <= 5 <= hi
    assert all(np.isnan(M.bootstrap_ci([], n_boot=10)))


def test_paired_diff_ci() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=100)
    assert M.paired_diff_ci(a, a.copy(), n_boot=500) == (0.0, 0.0)
    lo, hi = M.paired_diff_ci(a + 0.5 + 0.05 * rng.normal(size=100), a, n_boot=500)
    assert 0 < lo < 0.5 < hi
    # pairing matters: a large shared component would swamp an unpaired comparison
    noisy = rng.normal(scale=10, size=100)
    lo, hi = M.paired_diff_ci(noisy + 0.2, noisy, n_boot=500)
    assert lo > 0
    with pytest.raises(ValueError):
        M.paired_diff_ci([1.0, 2.0], [1.0])


def test_summarize() -> None:
    s = M.summarize([0.5, -0.1, 0.2, 0.3, 0.0], n_boot=300)
    assert set(s) == SUMMARY_KEYS
    assert s["steerability"] == pytest.approx(0.18)
    assert s["steerable_fraction"] == pytest.approx(0.6)  # 0.0 is not steerable
    assert s["steerability_ci"][0] <= 0.18 <= s["steerability_ci"][1]
    assert 0 <= s["steerable_fraction_ci"][0] <= 0.6 <= s["steerable_fraction_ci"][1] <= 1
    empty = M.summarize([])
    assert empty["steerability"] is None and empty["steerability_ci"] == [None, None]


def test_select_fixed_and_oracle_dominates_fixed() -> None:
    rng = np.random.default_rng(2)
    train, test = rng.normal(size=(50, 6)), rng.normal(size=(40, 6))
    f = M.fixed_layer(train)
    assert f == int(np.argmax(train.mean(0)))
    oracle = M.select(test, M.best_layers(test))
    fixed = M.select(test, np.full(40, f))
    assert np.all(oracle >= fixed)
    assert np.all(oracle == test.max(1))
    with pytest.raises(ValueError):
        M.select(test, np.full(40, 6))
    with pytest.raises(ValueError):
        M.select(test, np.zeros(39, dtype=int))


def test_letter_oracle() -> None:
    S = np.array([[1.0, 0.0, 0.2], [0.0, 1.0, 0.3], [0.9, 0.1, 0.0], [0.2, 0.8, 0.9]])
    slopes, idx = M.letter_oracle(S, ["A", "B", "A", "B"])
    # B items: mean curve [0.1, 0.9, 0.6] -> index 1, even though item 3 alone prefers 2
    assert idx == {"A": 0, "B": 1}
    assert slopes.tolist() == [1.0, 1.0, 0.9, 0.8]
    per_input = M.select(S, M.best_layers(S))
    assert np.all(slopes <= per_input)
    # letter oracle >= fixed on the same data, for every single fixed layer (on average)
    assert slopes.mean() >= S.mean(0).max()
    _, idx = M.letter_oracle(S[:1], ["A"])
    assert idx == {"A": 0, "B": None}
    with pytest.raises(ValueError):
        M.letter_oracle(S, ["A", "B", "C", "A"])


def test_topk_accuracy() -> None:
    scores = np.array([[0.1, 0.5, 0.3, 0.2], [0.9, 0.05, 0.03, 0.02]])
    assert M.topk_accuracy(scores, [2, 3], k=3) == 0.5
    assert M.topk_accuracy(scores, [2, 3], k=1) == 0.0


def _variant(n: int = 60, L: int = 5, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    S = rng.normal(size=(n, L))
    letters = np.where(rng.random(n) < 0.5, "A", "B")
    true = M.best_layers(S)
    perfect_scores = np.eye(L)[true]
    return M.evaluate_variant(
        S,
        letters,
        fixed_idx=2,
        router_idx={"oracle_like": true, "const0": np.zeros(n, dtype=int)},
        router_scores={"oracle_like": perfect_scores, "const0": None},
        layers=[3, 6, 9, 12, 15],
        n_boot=200,
        seed=0,
    )


def test_evaluate_variant_schema() -> None:
    r = _variant()
    assert set(r) == {"n", "fixed_layer", "fixed", "w2s", "oracle", "letter_oracle", "by_letter"}
    assert r["n"] == 60
    assert r["fixed_layer"] == 9  # a real layer number, not index 2
    assert set(r["fixed"]) == SUMMARY_KEYS and set(r["oracle"]) == SUMMARY_KEYS
    assert set(r["letter_oracle"]) == SUMMARY_KEYS | {"layers"}
    assert set(r["letter_oracle"]["layers"]) == {"A", "B"}
    assert set(r["letter_oracle"]["layers"].values()) <= {3, 6, 9, 12, 15}
    assert set(r["w2s"]) == {"oracle_like", "const0"}
    for block in r["w2s"].values():
        assert set(block) == ROUTER_KEYS
    good = r["w2s"]["oracle_like"]
    assert good["accuracy"] == 1.0 and good["top3_accuracy"] == 1.0
    assert good["steerability"] == pytest.approx(r["oracle"]["steerability"])
    assert good["diff_vs_fixed_ci"][0] > 0
    assert M.verdict(good["diff_vs_fixed_ci"]) == M.VERDICT_BETTER
    assert r["w2s"]["const0"]["top3_accuracy"] is None
    assert set(r["by_letter"]) == {"A", "B"}
    assert r["by_letter"]["A"]["n"] + r["by_letter"]["B"]["n"] == 60
    for sub in r["by_letter"].values():
        assert set(sub) == {"n", "fixed", "w2s", "oracle"}
        assert set(sub["w2s"]) == {"oracle_like", "const0"}
    json.dumps(r, allow_nan=False)  # JSON-serialisable, no NaN
    assert r == _variant()  # deterministic


def test_evaluate_variant_fixed_router_equals_fixed() -> None:
    rng = np.random.default_rng(5)
    S = rng.normal(size=(30, 3))
    r = M.evaluate_variant(
        S, ["A"] * 30, fixed_idx=1, router_idx={"same": np.ones(30, int)}, n_boot=100
    )
    assert r["w2s"]["same"]["diff_vs_fixed"] == 0.0
    assert r["w2s"]["same"]["diff_vs_fixed_ci"] == [0.0, 0.0]
    assert M.verdict(r["w2s"]["same"]["diff_vs_fixed_ci"]) == M.VERDICT_NONE
    assert r["by_letter"]["B"]["n"] == 0 and r["letter_oracle"]["layers"]["B"] is None
    json.dumps(r, allow_nan=False)


def test_verdict_strings() -> None:
    assert M.verdict([0.01, 0.3]) == "W2S beats fixed beyond the noise"
    assert M.verdict([-0.01, 0.3]) == "no detectable difference"
    assert M.verdict([0.0, 0.0]) == "no detectable difference"
    assert M.verdict([-0.3, -0.01]) == "W2S is worse than fixed"
    assert M.verdict([None, None]) == "no detectable difference"
