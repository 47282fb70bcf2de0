"""The estimator of each router kind: fixed structure, cross-validation on training data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from w2s_lens.routing.estimators import (
    CLASSIFIER_KINDS,
    CURVE_KINDS,
    GRIDS,
    build_estimator,
    fit_estimator,
    grid_is_current,
    tuning_grid,
)

KINDS = CLASSIFIER_KINDS + CURVE_KINDS


def test_every_kind_has_a_fixed_structure() -> None:
    steps = {kind: [type(s) for _, s in getattr(build_estimator(kind), "steps", [])]
             for kind in KINDS}
    assert steps["logreg"] == [StandardScaler, LogisticRegression]
    assert steps["mlp"] == [StandardScaler, MLPClassifier]
    assert steps["curve"] == [StandardScaler, RidgeCV]
    assert isinstance(build_estimator("knn"), KNeighborsRegressor)
    assert build_estimator("mlp", seed=7)[-1].random_state == 7
    with pytest.raises(ValueError, match="forest"):
        build_estimator("forest")
    with pytest.raises(ValueError, match="forest"):
        fit_estimator("forest", np.zeros((2, 2)), np.zeros((2, 2)))


@pytest.mark.parametrize("kind", KINDS)
def test_agreeing_labels(kind: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 3))
    S = np.tile([0.0, 1.0, 0.5], (10, 1)) + 0.01 * rng.normal(size=(10, 3))
    fitted = fit_estimator(kind, X, S, seed=0)
    if kind in CLASSIFIER_KINDS:  # a classifier is replaced by the constant layer
        assert fitted.estimator is None and fitted.constant == 1
        assert "one best layer" in fitted.cv_info["note"]
    else:  # a curve model still predicts a curve, peaked at the same layer
        assert fitted.constant is None
        assert fitted.estimator.predict(X).argmax(1).tolist() == [1] * 10


@pytest.mark.parametrize("kind", KINDS)
def test_cv_info_describes_the_training_data(kind: str) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 4))
    S = np.stack([X[:, 0], -X[:, 0], 0.1 * X[:, 1]], axis=1)
    info = fit_estimator(kind, X, S, seed=0).cv_info
    assert info["n_samples"] == 40
    assert set(info) >= {"n_splits", "best_params", "cv_score"}
    assert info["n_splits"] == 5
    assert info["best_params"] and len(info["grid"]) >= 4
    assert info["at_grid_edge"] == (info["grid"].index(next(iter(
        info["best_params"].values()))) in (0, len(info["grid"]) - 1))
    assert len(info["grid_scores"]) == len(info["grid"])
    best = info["grid_scores"][info["grid"].index(next(iter(info["best_params"].values())))]
    assert info["within_one_se"] == sum(s >= best - info["score_se"]
                                        for s in info["grid_scores"])
    assert 1 <= info["within_one_se"] <= len(info["grid"])


def test_a_clear_signal_is_not_read_as_a_flat_grid() -> None:
    """With separable labels the strongest penalties (C = 1e-5: near-uniform probabilities)
    score far below the chosen C, so not every grid value lies within one standard error."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(80, 3))
    S = np.stack([X[:, 0], -X[:, 0]], axis=1)
    info = fit_estimator("logreg", X, S, seed=0).cv_info
    assert info["score_se"] > 0
    assert info["within_one_se"] < len(info["grid"])


@pytest.mark.parametrize("kind", KINDS)
def test_a_one_item_class_never_disables_tuning(kind: str) -> None:
    """A best layer that labels a single training input used to skip cross-validation (no
    stratified folds keep every class): the default C = 1.0 was fitted untuned."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 6))
    labels = np.where(X[:, 0] > 0, 0, 1)
    labels[7] = 2  # layer 2 is best for one input only
    S = np.eye(3)[labels] + 0.01 * rng.normal(size=(60, 3))
    info = fit_estimator(kind, X, S, seed=0).cv_info
    assert info["n_splits"] == 5
    assert info["cv_score"] is not None and np.isfinite(info["cv_score"])
    assert "note" not in info


def test_grids_reach_past_the_edges_chosen_so_far() -> None:
    """C = 0.01, ridge alpha = 1e4 and k = 15 were grid edges in the powered study; MLP
    alpha = 100 on every view of the fair study's first cloze row."""
    assert min(GRIDS["logreg"][1]) <= 1e-5 and max(GRIDS["logreg"][1]) >= 10
    assert max(GRIDS["mlp"][1]) >= 1e4 and min(GRIDS["mlp"][1]) <= 1e-6
    assert max(a[0] for a in GRIDS["curve"][1]) >= 1e6
    assert tuning_grid("knn", 200)[1][0] == 160 and 1 in tuning_grid("knn", 200)[1]


def test_a_recorded_grid_is_current_only_when_it_is_todays() -> None:
    rng = np.random.default_rng(0)
    X, S = rng.normal(size=(20, 3)), rng.normal(size=(20, 4))
    for kind in ("logreg", "mlp", "curve", "knn"):
        info = fit_estimator(kind, X, S).cv_info
        assert grid_is_current(kind, info["grid"], info["n_samples"]), kind
        assert not grid_is_current(kind, info["grid"][1:], info["n_samples"]), kind
    assert not grid_is_current("knn", tuning_grid("knn", 20)[1], 200)  # k capped by other n
    assert grid_is_current("logreg", None, None)  # a constant router: nothing was tuned
