"""Headroom diagnostics: retest agreement, the cross-validated oracle, the learning curve."""

import numpy as np
import pytest

from w2s_lens.evaluation.headroom.diagnostics import (
    cross_validated_oracle,
    learning_curve,
    learning_sizes,
    nested_subsets,
    retest_agreement,
)


def _stable(n: int, n_layers: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two sweeps of items with a real per-item best layer, plus independent estimate noise."""
    rng = np.random.default_rng(seed)
    best = rng.integers(0, n_layers, n)
    base = np.zeros((n, n_layers))
    base[np.arange(n), best] = 1.0
    return (base + noise * rng.normal(size=base.shape),
            base + noise * rng.normal(size=base.shape))


def _flat(n: int, n_layers: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Every layer equally good: the two sweeps differ only by estimate noise."""
    rng = np.random.default_rng(seed)
    base = np.ones((n, n_layers))
    return (base + noise * rng.normal(size=base.shape),
            base + noise * rng.normal(size=base.shape))


def test_agreement_of_identical_sweeps_is_perfect() -> None:
    s1, _ = _stable(40, 5, 0.05, seed=0)
    r = retest_agreement(s1, s1)
    assert r["agreement"] == 1.0 and r["kappa"] == pytest.approx(1.0)
    assert r["within_one"] == 1.0 and r["rank_correlation"] == pytest.approx(1.0)
    assert np.trace(np.array(r["matrix"])) == 40


def test_stable_best_layers_agree_and_noise_does_not() -> None:
    stable = retest_agreement(*_stable(200, 5, 0.1, seed=1))
    flat = retest_agreement(*_flat(200, 5, 0.1, seed=1))
    assert stable["kappa"] > 0.9
    assert abs(flat["kappa"]) < 0.15
    assert flat["agreement"] == pytest.approx(flat["chance"], abs=0.08)
    assert stable["rank_correlation"] > 0.3 > abs(flat["rank_correlation"])


def test_kappa_is_undefined_when_one_layer_wins_everywhere() -> None:
    s = np.tile([0.0, 1.0, 0.0], (6, 1))
    r = retest_agreement(s, s)
    assert r["chance"] == 1.0 and r["kappa"] is None and r["agreement"] == 1.0


def test_retest_refuses_mismatched_sweeps() -> None:
    with pytest.raises(ValueError, match="one shape"):
        retest_agreement(np.zeros((3, 2)), np.zeros((4, 2)))


def test_cross_validated_oracle_separates_stable_from_flat() -> None:
    stable = cross_validated_oracle(*_stable(60, 5, 0.1, seed=2), n_boot=500)
    flat = cross_validated_oracle(*_flat(60, 5, 0.1, seed=2), n_boot=500)
    assert stable["diff"] > 0.5 and stable["p"] < 0.001
    assert stable["ci"][0] > 0
    # noise alone: the in-sample oracle gains, the cross-validated one does not
    in_sample = np.max(_flat(60, 5, 0.1, seed=2)[0], axis=1).mean() - 1.0
    assert in_sample > 0.05
    assert abs(flat["diff"]) < 0.05 and flat["p"] > 0.025


def test_cross_validated_fixed_layer_is_scored_on_the_other_half() -> None:
    s1 = np.array([[1.0, 0.0], [1.0, 0.0]])
    s2 = np.array([[0.0, 1.0], [0.0, 1.0]])
    r = cross_validated_oracle(s1, s2, n_boot=100)
    # half 1 picks layer 0, scored 0 under half 2, and vice versa: both directions score 0
    assert r["xv_fixed_layers"] == [0, 1] and r["xv_fixed"] == 0.0 and r["xv_oracle"] == 0.0


def test_learning_sizes_and_nested_subsets() -> None:
    assert learning_sizes(50) == [12, 24, 48, 50] and learning_sizes(0) == []
    subs = nested_subsets(["A"] * 10 + ["B"] * 10, [4, 10, 20], seed=3)
    assert [len(s) for s in subs] == [4, 10, 20]
    assert set(subs[0]) < set(subs[1]) < set(subs[2])
    letters = np.array(["A"] * 10 + ["B"] * 10)
    assert (letters[subs[0]] == "A").sum() == 2 and (letters[subs[1]] == "A").sum() == 5


def _learnable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings that say which of two layers an item prefers."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, n)
    S = np.zeros((n, 3))
    S[np.arange(n), group] = 1.0
    S[:, 2] = 0.6
    X = np.eye(2)[group] + 0.3 * rng.normal(size=(n, 2))
    return S, X


def test_learning_curve_rises_where_the_embedding_carries_the_layer() -> None:
    S, X = _learnable(96, seed=4)
    St, Xt = _learnable(60, seed=5)
    rows = learning_curve(S, X, St, Xt, ["logreg", "knn"], sizes=[4, 96], repeats=3,
                          n_boot=300)
    last = {r["router"]: r for r in rows if r["n_train"] == 96}
    for kind in ("logreg", "knn"):
        assert last[kind]["accuracy"] > 0.9 > last[kind]["majority_accuracy"]
        assert last[kind]["diff"] > 0.3 and last[kind]["p"] < 0.01
    assert {r["repeats"] for r in rows if r["n_train"] == 4} == {3}


def test_learning_curve_is_flat_when_the_embedding_says_nothing() -> None:
    S, _ = _learnable(96, seed=6)
    St, _ = _learnable(60, seed=7)
    rng = np.random.default_rng(8)
    rows = learning_curve(S, rng.normal(size=(96, 2)), St, rng.normal(size=(60, 2)),
                          ["logreg"], sizes=[24, 96], n_boot=300)
    assert [r["n_train"] for r in rows] == [24, 96]
    for r in rows:
        assert r["accuracy"] < 0.75 and r["p"] > 0.025


def test_learning_curve_refuses_impossible_sizes() -> None:
    S, X = _learnable(10, seed=9)
    with pytest.raises(ValueError, match="outside"):
        learning_curve(S, X, S, X, ["logreg"], sizes=[20])
