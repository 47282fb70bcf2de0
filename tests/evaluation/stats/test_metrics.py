"""Tests for w2s_lens.evaluation.stats.metrics (pure numpy, fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from w2s_lens.evaluation.stats import metrics as M
from w2s_lens.evaluation.stats.paired import (
    VERDICT_BETTER,
    VERDICT_NONE,
    VERDICT_TOO_FEW,
    verdict,
    verdict_of,
)

SUMMARY_KEYS = {"steerability", "steerability_ci", "steerable_fraction", "steerable_fraction_ci"}
ROUTER_KEYS = SUMMARY_KEYS | {"accuracy", "top3_accuracy", "diff_vs_fixed", "diff_vs_fixed_ci",
                              "diff_vs_fixed_p", "majority_accuracy", "diff_vs_fixed_p_less",
                              "diff_vs_fixed_test", "diff_vs_fixed_n_nonzero",
                              "diff_vs_fixed_mde", "diff_vs_fixed_verdict"}


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
    with pytest.raises(ValueError, match="layer index out of range"):
        M.select(test, np.full(40, 6))
    with pytest.raises(ValueError, match="39 layer choices for 40 inputs"):
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
    with pytest.raises(ValueError, match="must be 'A' or 'B', got \\['C'\\]"):
        M.letter_oracle(S, ["A", "B", "C", "A"])


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
    assert set(r) == {"n", "fixed_layer", "fixed", "w2s", "oracle", "letter_oracle", "by_letter",
                      "form_oracle"}
    assert r["form_oracle"] is None
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
    assert verdict(good["diff_vs_fixed_ci"]) == VERDICT_BETTER
    assert good["diff_vs_fixed_verdict"] == verdict_of(good) == VERDICT_BETTER
    assert good["diff_vs_fixed_test"] == "sign-flip Monte-Carlo (20000 draws)"  # 60 items
    assert 0 < good["diff_vs_fixed_p"] <= 1 / 20_001 * 2 and good["diff_vs_fixed_p_less"] == 1.0
    S = np.random.default_rng(0).normal(size=(60, 5))  # the matrix _variant() drew first
    assert good["diff_vs_fixed_n_nonzero"] == int(np.sum(S.max(1) - S[:, 2] != 0)) > 40
    assert good["diff_vs_fixed_mde"] > 0 and good["majority_accuracy"] is None
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
    assert verdict(r["w2s"]["same"]["diff_vs_fixed_ci"]) == VERDICT_NONE
    same = r["w2s"]["same"]
    assert same["diff_vs_fixed_n_nonzero"] == 0 and same["diff_vs_fixed_p"] == 1.0
    assert same["diff_vs_fixed_verdict"] == VERDICT_TOO_FEW and same["diff_vs_fixed_mde"] is None
    empty = r["by_letter"]["B"]["w2s"]["same"]
    assert empty["diff_vs_fixed_p"] is None and empty["diff_vs_fixed_verdict"] == VERDICT_TOO_FEW
    assert r["by_letter"]["B"]["n"] == 0 and r["letter_oracle"]["layers"]["B"] is None
    json.dumps(r, allow_nan=False)


def test_verdict_strings() -> None:
    assert verdict([0.01, 0.3]) == "W2S beats fixed beyond the noise"
    assert verdict([-0.01, 0.3]) == "no detectable difference"
    assert verdict([0.0, 0.0]) == "no detectable difference"
    assert verdict([-0.3, -0.01]) == "W2S is worse than fixed"
    assert verdict([None, None]) == "no detectable difference"


def test_group_oracle_and_letter_oracle_as_its_special_case() -> None:
    S = np.array([[1.0, 0.0, 0.2], [0.0, 1.0, 0.3], [0.9, 0.1, 0.0], [0.2, 0.8, 0.9]])
    slopes, idx = M.group_oracle(S, ["x", "y", "x", "y"])
    assert idx == {"x": 0, "y": 1} and slopes.tolist() == [1.0, 1.0, 0.9, 0.8]
    letter_slopes, letter_idx = M.letter_oracle(S, ["A", "B", "A", "B"])
    assert letter_slopes.tolist() == slopes.tolist() and letter_idx == {"A": 0, "B": 1}
    one, one_idx = M.group_oracle(S, ["all"] * 4)  # one group: the best layer on this data
    assert one_idx == {"all": int(np.argmax(S.mean(0)))}
    assert one.mean() == pytest.approx(S.mean(0).max())
    per_item, _ = M.group_oracle(S, ["a", "b", "c", "d"])  # one item per group: the oracle
    assert per_item.tolist() == S.max(1).tolist()
    with pytest.raises(ValueError, match="3 group labels for 4 inputs"):
        M.group_oracle(S, ["a", "b", "c"])


def test_evaluate_variant_without_letters_and_with_form_groups() -> None:
    rng = np.random.default_rng(3)
    S = rng.normal(size=(16, 4))
    S[:8, 3] += 2.0  # the "longer" items steer at the last layer, the others do not
    forms = ["match-longer"] * 8 + ["match-shorter"] * 6 + ["same-length"] * 2
    r = M.evaluate_variant(S, None, fixed_idx=0, router_idx={"r": M.best_layers(S)},
                           layers=[2, 4, 6, 8], n_boot=100, form_groups=forms)
    assert r["letter_oracle"] is None and r["by_letter"] == {}
    fo = r["form_oracle"]
    assert set(fo) == SUMMARY_KEYS | {"groups", "group_sizes"}
    assert fo["groups"]["match-longer"] == 8
    assert fo["group_sizes"] == {"match-longer": 8, "match-shorter": 6, "same-length": 2}
    expected, _ = M.group_oracle(S, forms)
    assert fo["steerability"] == pytest.approx(expected.mean())
    assert r["fixed"]["steerability"] <= fo["steerability"] <= r["oracle"]["steerability"]
    json.dumps(r, allow_nan=False)
    with pytest.raises(ValueError, match="form groups"):
        M.evaluate_variant(S, None, 0, {"r": M.best_layers(S)}, form_groups=forms[:3])
    # letters given: the letter oracle as before, next to the form oracle
    both = M.evaluate_variant(S, ["A", "B"] * 8, 0, {"r": M.best_layers(S)}, n_boot=100,
                              form_groups=forms)
    assert set(both["by_letter"]) == {"A", "B"} and both["letter_oracle"] is not None


def test_evaluate_variant_majority_accuracy() -> None:
    rng = np.random.default_rng(4)
    S = rng.normal(size=(20, 3))
    train_best = [1] * 7 + [0] * 3 + [2] * 7  # a tie of 1 and 2: the earlier layer, 1
    r = M.evaluate_variant(S, ["A", "B"] * 10, fixed_idx=0,
                           router_idx={"r": np.ones(20, int)}, n_boot=100,
                           train_best_idx=train_best)
    true = M.best_layers(S)
    block = r["w2s"]["r"]
    assert block["majority_accuracy"] == pytest.approx(np.mean(true == 1))
    assert block["majority_accuracy"] == block["accuracy"]  # this router always says 1
    a_items = np.arange(20) % 2 == 0
    assert r["by_letter"]["A"]["w2s"]["r"]["majority_accuracy"] == pytest.approx(
        np.mean(M.best_layers(S[a_items]) == 1))


def test_router_block_uses_the_sign_flip_test() -> None:
    S = np.zeros((12, 2))
    S[9:, 1] = [0.5, 0.3, 0.8]  # the audit's example: 3 informative items out of 12
    r = M.evaluate_variant(S, None, fixed_idx=0, router_idx={"r": [1] * 12}, n_boot=500)
    w = r["w2s"]["r"]
    assert w["diff_vs_fixed_ci"][0] > 0  # the bootstrap interval excludes 0 ...
    assert w["diff_vs_fixed_p"] == 0.125 and w["diff_vs_fixed_n_nonzero"] == 3
    assert w["diff_vs_fixed_test"] == "sign-flip exact"
    assert verdict_of(w) == VERDICT_TOO_FEW  # ... the verdict does not follow it


def test_moved_names_have_one_import_home() -> None:
    from w2s_lens.evaluation.stats import accuracy, bootstrap, paired

    for mod, names in ((bootstrap, ("bootstrap_ci", "paired_diff_ci", "paired_diff_test")),
                       (paired, ("fdr_count", "verdict", "verdict_of", "VERDICT_BETTER",
                                 "VERDICT_NONE", "VERDICT_WORSE", "VERDICT_TOO_FEW")),
                       (accuracy, ("routing_accuracy", "topk_accuracy", "majority_accuracy"))):
        for name in names:
            assert name in mod.__all__ and name not in M.__all__, name
    assert set(M.__all__) <= set(dir(M))
