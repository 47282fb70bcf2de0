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
    build_estimator,
    fit_estimator,
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
    assert info["n_splits"] == ("loo" if kind == "curve" else 5)
