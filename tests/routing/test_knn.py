"""The k-nearest-neighbour router: cosine neighbours, mean steerability, k cross-validated."""

from __future__ import annotations

import numpy as np
import pytest

from w2s_lens.routing.estimators import fit_estimator
from w2s_lens.routing.knn import knn_estimator, routed_steerability
from w2s_lens.routing.labels import best_layers


def xor_clusters(n: int, seed: int, L: int = 3, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Four angular clusters in the first two dimensions; opposite clusters share a best layer
    (0 for the x axis, 2 for the y axis): no linear boundary separates them."""
    rng = np.random.default_rng(seed)
    angle = rng.integers(0, 4, size=n)  # 0°, 90°, 180°, 270°
    X = 0.15 * rng.normal(size=(n, d))
    X[:, 0] += np.cos(angle * np.pi / 2)
    X[:, 1] += np.sin(angle * np.pi / 2)
    best = np.where(angle % 2 == 0, 0, L - 1)
    S = 1.0 - 0.4 * np.abs(np.arange(L)[None, :] - best[:, None]) + 0.05 * rng.normal(size=(n, L))
    return X, S


def fit_knn(X: np.ndarray, S: np.ndarray, seed: int = 0):
    fitted = fit_estimator("knn", X, S, seed=seed)
    return fitted.estimator, fitted.cv_info


def test_recovers_a_structure_no_linear_router_can() -> None:
    X, S = xor_clusters(160, seed=0)
    Xt, St = xor_clusters(100, seed=1)
    est, info = fit_knn(X, S, seed=0)
    knn_acc = float(np.mean(est.predict(Xt).argmax(1) == best_layers(St)))
    linear = fit_estimator("logreg", X, S, seed=0).estimator
    linear_acc = float(np.mean(linear.predict(Xt) == best_layers(St)))
    assert knn_acc > 0.95, info
    assert linear_acc < 0.8  # the same data defeats a linear boundary
    assert info["cv_scoring"] == "mean_routed_steerability" and info["n_splits"] == 5
    assert info["best_params"]["n_neighbors"] in info["grid"]


def test_fails_when_the_embedding_says_nothing() -> None:
    X, S = xor_clusters(160, seed=0)
    Xt, St = xor_clusters(100, seed=1)
    shuffled = S[np.random.default_rng(5).permutation(len(S))]
    est, _ = fit_knn(X, shuffled, seed=0)
    acc = float(np.mean(est.predict(Xt).argmax(1) == best_layers(St)))
    assert acc < 0.7, acc  # two best layers: chance is 0.5


def test_routes_by_mean_steerability_not_by_majority_label() -> None:
    X = np.array([[1.0, 0.0], [1.0, 0.1], [1.0, -0.1]])
    S = np.array([[1.0, 0.9], [1.0, 0.9], [0.0, 3.0]])  # labels 0, 0, 1
    est = knn_estimator(3).fit(X, S)
    curve = est.predict(np.array([[1.0, 0.0]]))
    assert np.allclose(curve, S.mean(0)[None])
    assert int(curve.argmax()) == 1  # a majority vote would say 0


def test_neighbours_are_cosine_neighbours() -> None:
    X, S = xor_clusters(60, seed=0)
    est, _ = fit_knn(X, S, seed=0)
    Xt, _ = xor_clusters(20, seed=1)
    assert np.array_equal(est.predict(7.0 * Xt), est.predict(Xt))  # scale does not matter


def test_k_is_capped_by_the_training_folds_and_ties_go_to_the_larger_k() -> None:
    rng = np.random.default_rng(0)
    X = np.concatenate([[1.0, 0.0] + 0.01 * rng.normal(size=(4, 2)),
                        [0.0, 1.0] + 0.01 * rng.normal(size=(4, 2))])
    S = np.repeat([[1.0, 0.0], [0.0, 1.0]], 4, axis=0)
    _, info = fit_knn(X, S, seed=0)
    # 8 inputs in 5 folds: the smallest training fold holds 6, so k <= 6 (searched large first)
    assert info["grid"] == [6, 5, 3, 1]
    # k=1 and k=3 route every held-out input right (score 1.0); the larger wins the tie
    scores = dict(zip(info["grid"], info["grid_scores"]))
    assert scores[1] == scores[3] == 1.0 and scores[5] < 1.0 and scores[6] < 1.0
    assert info["best_params"]["n_neighbors"] == 3 and info["cv_score"] == 1.0
    _, one = fit_knn(X[:1], S[:1])
    assert one["best_params"] == {"n_neighbors": 1} and one["n_splits"] == 0


def test_routed_steerability_scores_the_routed_layer() -> None:
    est = knn_estimator(1).fit(np.eye(2), np.array([[0.0, 1.0], [1.0, 0.0]]))
    S = np.array([[5.0, -1.0], [2.0, 4.0]])
    # routed to layer 1 for the first input and layer 0 for the second
    assert routed_steerability(est, np.eye(2), S) == pytest.approx((-1.0 + 2.0) / 2)
