"""The scikit-learn estimator behind each router kind, and how it is fitted.

* ``"logreg"``: ``StandardScaler`` → multinomial ``LogisticRegression`` on the best-layer labels;
* ``"mlp"``: ``StandardScaler`` → one-hidden-layer ``MLPClassifier`` on the same labels;
* ``"curve"``: ``StandardScaler`` → ``RidgeCV`` predicting the whole steerability curve ``[L]``;
* ``"knn"``: cosine k-nearest neighbours averaging the training steerability curves
  (:mod:`w2s_lens.routing.knn`).

Hyper-parameters are chosen by cross-validation on the training data only: ``GridSearchCV``
with stratified folds and log-loss for the classifiers, efficient leave-one-out ``RidgeCV`` for
the curve, k-fold mean routed steerability for ``knn``. The classifiers use
``min(5, smallest class count)`` folds, so every training fold holds every class; when a class
has a single member no such folds exist and the default hyper-parameters are used (said so in
``cv_info["note"]``). A classifier whose training labels all agree is replaced by that constant
layer.

Example:
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(30, 3))
    >>> S = np.stack([X[:, 0], -X[:, 0]], axis=1)
    >>> fitted = fit_estimator("logreg", X, S, seed=0)
    >>> fitted.constant is None, fitted.cv_info["cv_scoring"]
    (True, 'neg_log_loss')
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jaxtyping import Float
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from w2s_lens.routing.knn import fit_knn, knn_estimator
from w2s_lens.routing.labels import best_layers

__all__ = ["CLASSIFIER_KINDS", "CURVE_KINDS", "ESTIMATOR_KINDS", "LOGREG_GRID", "MLP_GRID",
           "RIDGE_ALPHAS", "Fitted", "build_estimator", "fit_estimator"]

#: Kinds that classify the best layer; their scores are class probabilities.
CLASSIFIER_KINDS = ("logreg", "mlp")
#: Kinds that predict the steerability curve ``[L]``; the router steers at its argmax.
CURVE_KINDS = ("curve", "knn")
#: Every kind with an estimator (``w2s_lens.choices.ROUTER_KINDS`` names those offered).
ESTIMATOR_KINDS = CLASSIFIER_KINDS + CURVE_KINDS

LOGREG_GRID = {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]}
MLP_GRID = {"mlpclassifier__alpha": [1e-3, 1e-1, 1.0]}
RIDGE_ALPHAS = tuple(np.logspace(-2, 4, 13).tolist())


@dataclass
class Fitted:
    """A fitted estimator (None for a constant router), the constant layer index, and how
    the hyper-parameters were chosen."""

    estimator: BaseEstimator | None
    constant: int | None = None
    cv_info: dict[str, Any] = field(default_factory=dict)


def build_estimator(kind: str, seed: int = 0) -> BaseEstimator:
    """The unfitted estimator of ``kind`` with its default hyper-parameters.

    The structure (which steps, which classes) is fixed here, in code: loading a saved
    router rebuilds it from this and sets only learned arrays and hyper-parameter values.

    Example:
        >>> [name for name, _ in build_estimator("curve").steps]
        ['standardscaler', 'ridgecv']
    """
    if kind == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    if kind == "mlp":
        return make_pipeline(StandardScaler(), MLPClassifier(
            hidden_layer_sizes=(64,), max_iter=500, random_state=seed, tol=1e-4))
    if kind == "curve":
        return make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    if kind == "knn":
        return knn_estimator()
    raise ValueError(f"unknown router kind {kind!r}")


def fit_estimator(kind: str, X: Float[np.ndarray, "n d"], S: Float[np.ndarray, "n L"],
                  seed: int = 0) -> Fitted:
    """Fit the estimator of ``kind`` on training embeddings ``X`` and steerability ``S``.

    Example:
        >>> import numpy as np
        >>> fit_estimator("mlp", np.eye(4), np.array([[0.0, 1.0]] * 4)).constant
        1
    """
    n = X.shape[0]
    if kind == "curve":
        est = build_estimator(kind, seed)
        est.fit(X, S)
        return Fitted(est, None, {"n_samples": n, "n_splits": "loo",
                                  "best_params": {"alpha": float(est[-1].alpha_)},
                                  "cv_score": None})
    if kind == "knn":
        est, info = fit_knn(X, S, seed)
        return Fitted(est, None, info)
    if kind not in CLASSIFIER_KINDS:
        raise ValueError(f"unknown router kind {kind!r}")
    return _fit_classifier(kind, X, best_layers(S), seed)


def _folds(y: np.ndarray, seed: int) -> StratifiedKFold | None:
    """Stratified folds in which every training fold holds every class, or None."""
    _, counts = np.unique(y, return_counts=True)
    k = min(5, int(counts.min()))
    if k < 2:
        return None
    return StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)


def _fit_classifier(kind: str, X: np.ndarray, y: np.ndarray, seed: int) -> Fitted:
    n = X.shape[0]
    classes = np.unique(y)
    if classes.size == 1:
        return Fitted(None, int(classes[0]), {
            "n_samples": n, "n_splits": 0, "best_params": {}, "cv_score": None,
            "note": "all training inputs share one best layer"})
    est = build_estimator(kind, seed)
    grid = LOGREG_GRID if kind == "logreg" else MLP_GRID
    cv = _folds(y, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        warnings.filterwarnings("ignore", message=".*test scores are non-finite.*")
        if cv is None:
            est.fit(X, y)
            return Fitted(est, None, {
                "n_samples": n, "n_splits": 0, "best_params": {}, "cv_score": None,
                "note": "a best layer is the label of a single training input, so no folds "
                        "keep every class: no cross-validation, default hyper-parameters"})
        # log-loss, not accuracy: when several settings classify every fold perfectly,
        # accuracy ties and the strongest regularisation would win by list order
        search = GridSearchCV(est, grid, cv=cv, scoring="neg_log_loss", error_score=np.nan,
                              refit=True)
        search.fit(X, y)
    score = search.best_score_
    return Fitted(search.best_estimator_, None, {
        "n_samples": n,
        "n_splits": int(cv.get_n_splits()),
        "best_params": {k.split("__")[-1]: v for k, v in search.best_params_.items()},
        "cv_score": None if not np.isfinite(score) else float(score),
        "cv_scoring": "neg_log_loss",
    })
