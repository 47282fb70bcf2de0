"""The scikit-learn estimator behind each router kind, and how it is tuned.

* ``"logreg"``: ``StandardScaler`` → multinomial ``LogisticRegression`` on the best-layer labels;
* ``"mlp"``: ``StandardScaler`` → one-hidden-layer ``MLPClassifier`` on the same labels;
* ``"curve"``: ``StandardScaler`` → ridge regression predicting the whole steerability curve
  ``[L]``;
* ``"knn"``: cosine k-nearest neighbours averaging the training steerability curves
  (:mod:`w2s_lens.routing.knn`).

**Tuning never falls back.** Every kind's hyper-parameter is chosen by ``GridSearchCV`` on the
training data only, with the same folds for every kind: plain shuffled ``KFold(min(5, n))``
(no stratification, so a best layer that labels a single training input cannot disable the
search: a training fold without it simply never predicts it). The classifiers are searched
through :class:`CurveClassifier`, which fits on the best-layer labels of a fold and gives
probabilities over all L layers (0 for a layer the fold never saw), scored by the held-out
log-likelihood of the best layers, smoothed (:func:`best_layer_log_likelihood`: with accuracy,
several settings that classify every fold perfectly would tie and the strongest penalty would
win by list order); the curve kinds are scored by the mean steerability, on the held-out
fold, of the layer each input is routed to (:func:`~w2s_lens.routing.knn.routed_steerability`).
The chosen value is then refitted on all training inputs in the plain pipeline of
:func:`build_estimator`. The grids (:data:`GRIDS`) run from the strongest
regularisation to the weakest, so ties go to the simpler model, and reach well past where the
data have chosen so far (C from 1e-5, ridge α to 1e6, k up to the size of the smallest
cross-validation training fold: 160 of 200 training inputs with 5 folds).
``cv_info`` records the grid, the chosen value, whether it sits at an edge of the grid
(``at_grid_edge``), how many grid values score within one standard error (over folds) of
the chosen one (``within_one_se``, with ``score_se``: when it counts the whole grid the data
could not choose, and a value at an edge is where the tie-break by order put it), the
cross-validated score of every value (``cv_scoring`` names it:
``"neg_log_loss"`` for the classifiers is the smoothed held-out log-likelihood of the best
layers above, not scikit-learn's scorer of that name; ``"mean_routed_steerability"`` for the
curve kinds) and the number of splits (never
0 for two or more training inputs). A classifier whose training labels all agree is replaced by
that constant layer (said in ``cv_info["note"]``).

Example:
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(30, 3))
    >>> S = np.stack([X[:, 0], -X[:, 0]], axis=1)
    >>> fitted = fit_estimator("logreg", X, S, seed=0)
    >>> fitted.constant is None, fitted.cv_info["cv_scoring"], fitted.cv_info["n_splits"]
    (True, 'neg_log_loss', 5)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jaxtyping import Float
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from w2s_lens.choices import ROUTER_KINDS, RouterKind
from w2s_lens.routing.knn import K_GRID, knn_estimator, routed_steerability
from w2s_lens.routing.labels import best_layers

__all__ = ["CLASSIFIER_KINDS", "CURVE_KINDS", "ESTIMATOR_KINDS", "GRIDS", "LOGREG_GRID",
           "MLP_GRID", "RIDGE_ALPHAS", "CurveClassifier", "Fitted", "best_layer_log_likelihood",
           "build_estimator", "fit_estimator", "grid_is_current", "tuning_grid"]

#: Kinds that classify the best layer; their scores are class probabilities.
CLASSIFIER_KINDS = tuple(k.value for k in RouterKind if k.classifies)
#: Kinds that predict the steerability curve ``[L]``; the router steers at its argmax.
CURVE_KINDS = tuple(k.value for k in RouterKind if not k.classifies)
#: Every kind with an estimator: the members of :class:`~w2s_lens.choices.RouterKind`.
ESTIMATOR_KINDS = CLASSIFIER_KINDS + CURVE_KINDS

#: Inverse regularisation of the logistic regression, strongest regularisation first.
LOGREG_GRID = {"logisticregression__C": [float(c) for c in np.logspace(-5, 2, 8)]}
#: L2 penalty of the MLP, strongest first (1e4 and 1e-6 added after the fair study's first
#: cloze row chose 100, the old strongest, on every view).
MLP_GRID = {"mlpclassifier__alpha": [1e4, 1e3, 100.0, 1.0, 1e-2, 1e-4, 1e-6]}
#: Ridge penalties of the curve router, strongest first.
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(6, -2, 9))
#: kind -> (the searched step parameter, its grid in search order); knn's grid is capped by
#: the size of the smallest training fold (:func:`tuning_grid`).
GRIDS: dict[str, tuple[str, list[Any]]] = {
    "logreg": ("logisticregression__C", LOGREG_GRID["logisticregression__C"]),
    "mlp": ("mlpclassifier__alpha", MLP_GRID["mlpclassifier__alpha"]),
    "curve": ("ridgecv__alphas", [[a] for a in RIDGE_ALPHAS]),
    "knn": ("n_neighbors", sorted(K_GRID, reverse=True)),
}
#: Share of uniform probability mixed into a fold's predicted probabilities when scoring, so
#: a held-out input whose best layer the fold never saw costs log(SMOOTHING / L), not −∞ (the
#: same for every candidate value: it does not change which one wins, it keeps the score
#: readable).
SMOOTHING = 0.01


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
    try:
        member = RouterKind(kind)
    except ValueError:
        raise ValueError(f"unknown router kind {kind!r}") from None
    return _BUILDERS[member](seed)


#: One builder per :class:`~w2s_lens.choices.RouterKind` (each takes the seed).
_BUILDERS: dict[RouterKind, Callable[[int], BaseEstimator]] = {
    RouterKind.LOGREG: lambda seed: make_pipeline(StandardScaler(),
                                                  LogisticRegression(max_iter=2000)),
    RouterKind.MLP: lambda seed: make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(64,), max_iter=500, random_state=seed, tol=1e-4)),
    RouterKind.CURVE: lambda seed: make_pipeline(StandardScaler(),
                                                 RidgeCV(alphas=RIDGE_ALPHAS)),
    RouterKind.KNN: lambda seed: knn_estimator(),
}
# every kind has one builder and one tuning grid
assert set(_BUILDERS) == set(RouterKind) and set(GRIDS) == set(ROUTER_KINDS)


class CurveClassifier(BaseEstimator):
    """A classifier seen as a curve predictor, for tuning: ``fit(X, S)`` fits ``estimator`` on
    the best-layer labels of ``S [n, L]``; ``predict(X)`` is the one-hot ``[n, L]`` curve of the
    predicted layer, ``predict_proba(X)`` the ``[n, L]`` probabilities (0 for a layer the
    training labels never name). A fold whose labels all agree predicts that layer.

    Example:
        >>> import numpy as np
        >>> S = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]] * 3)
        >>> est = CurveClassifier(build_estimator("logreg")).fit(np.eye(6), S)
        >>> est.predict(np.eye(6)[:2]).tolist()
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """

    def __init__(self, estimator: BaseEstimator) -> None:
        self.estimator = estimator

    def fit(self, X: Float[np.ndarray, "n d"], S: Float[np.ndarray, "n L"]) -> CurveClassifier:
        y = best_layers(S)
        self.n_layers_ = int(np.asarray(S).shape[1])
        self.constant_ = int(y[0]) if np.unique(y).size == 1 else None
        self.estimator_ = None if self.constant_ is not None else clone(self.estimator).fit(X, y)
        return self

    def predict(self, X: Float[np.ndarray, "n d"]) -> Float[np.ndarray, "n L"]:
        n = np.asarray(X).shape[0]
        layer = (np.full(n, self.constant_) if self.estimator_ is None
                 else np.asarray(self.estimator_.predict(X), dtype=int))
        out = np.zeros((n, self.n_layers_))
        out[np.arange(n), layer] = 1.0
        return out

    def predict_proba(self, X: Float[np.ndarray, "n d"]) -> Float[np.ndarray, "n L"]:
        if self.estimator_ is None:
            return self.predict(X)
        out = np.zeros((np.asarray(X).shape[0], self.n_layers_))
        out[:, np.asarray(self.estimator_.classes_, dtype=int)] = self.estimator_.predict_proba(X)
        return out


def best_layer_log_likelihood(estimator: CurveClassifier, X: Float[np.ndarray, "n d"],
                              S: Float[np.ndarray, "n L"]) -> float:
    """Mean log-probability of each input's best layer (a scikit-learn scorer, higher is
    better), the probabilities mixed with :data:`SMOOTHING` of a uniform distribution over the
    L layers.

    Example:
        >>> import numpy as np
        >>> S = np.array([[1.0, 0.0], [0.0, 1.0]] * 4)
        >>> est = CurveClassifier(build_estimator("logreg")).fit(np.eye(8)[:, :2] * 5, S)
        >>> bool(best_layer_log_likelihood(est, np.eye(8)[:, :2] * 5, S) > np.log(0.5))
        True
    """
    S = np.asarray(S)
    p = estimator.predict_proba(X)[np.arange(S.shape[0]), best_layers(S)]
    return float(np.mean(np.log((1.0 - SMOOTHING) * p + SMOOTHING / S.shape[1])))


def tuning_grid(kind: str, n: int) -> tuple[str, list[Any]]:
    """``(parameter, values in search order)`` searched for ``kind`` on ``n`` training inputs:
    :data:`GRIDS`, with knn's k capped by the smallest training fold of ``KFold(min(5, n))``
    and extended up to it.

    Example:
        >>> tuning_grid("knn", 20)[1]
        [16, 15, 9, 7, 5, 3, 1]
    """
    name, values = GRIDS[kind]
    if kind != "knn":
        return name, list(values)
    cap = n - -(-n // min(5, n))  # n minus the largest held-out fold
    ks = sorted({k for k in (*values, 25, 50, 100, 200) if k <= cap} | {max(cap, 1)},
                reverse=True)
    return name, ks


def grid_is_current(kind: str, grid: Sequence[Any] | None, n: int | None) -> bool:
    """Whether ``grid``, as a router's ``cv_info["grid"]`` recorded it when it was tuned on
    ``n`` inputs, is the grid :func:`tuning_grid` searches today. A router that was not tuned
    (no grid or no inputs recorded: a constant router) counts as current.

    A finished run whose routers were tuned on another grid is recomputed, not read back
    (:func:`w2s_lens.cli.table.finished_results`): the sweeps resume, the routers are tuned
    again.

    Example:
        >>> grid_is_current("mlp", [100.0, 1.0, 0.01, 0.0001], 200)  # the MLP grid until 2026-12-07
        False
        >>> grid_is_current("knn", tuning_grid("knn", 20)[1], 20), grid_is_current("mlp", [], 5)
        (True, True)
    """
    if not grid or not n:
        return True
    return [_plain(v) for v in grid] == [_plain(v) for v in tuning_grid(kind, int(n))[1]]


def _searched(kind: str, seed: int) -> BaseEstimator:
    est = build_estimator(kind, seed)
    return CurveClassifier(est) if kind in CLASSIFIER_KINDS else est


def _param(kind: str, name: str) -> str:
    return f"estimator__{name}" if kind in CLASSIFIER_KINDS else name


def _copy(value: Any) -> Any:
    """A fresh copy of a grid value (RidgeCV writes into a one-element ``alphas`` list)."""
    return list(value) if isinstance(value, list) else value


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return _plain(value[0]) if len(value) == 1 else [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def fit_estimator(kind: str, X: Float[np.ndarray, "n d"], S: Float[np.ndarray, "n L"],
                  seed: int = 0) -> Fitted:
    """Tune and fit the estimator of ``kind`` on training embeddings ``X`` and steerability
    ``S`` (see the module docstring).

    Example:
        >>> import numpy as np
        >>> fit_estimator("mlp", np.eye(4), np.array([[0.0, 1.0]] * 4)).constant
        1
    """
    if kind not in ESTIMATOR_KINDS:
        raise ValueError(f"unknown router kind {kind!r}")
    X, S = np.asarray(X, dtype=float), np.asarray(S, dtype=float)
    n = X.shape[0]
    y = best_layers(S)
    if kind in CLASSIFIER_KINDS and np.unique(y).size == 1:
        return Fitted(None, int(y[0]), {
            "n_samples": n, "n_splits": 0, "best_params": {}, "cv_score": None,
            "note": "all training inputs share one best layer"})
    name, grid = tuning_grid(kind, n)
    short = {"ridgecv__alphas": "alpha"}.get(name, name.split("__")[-1])
    if n < 2:  # a curve kind on one input (a classifier's one label is a constant above)
        est = build_estimator(kind, seed)
        params = {"n_neighbors": 1} if kind == "knn" else {}
        est.set_params(**params).fit(X, S)
        return Fitted(est, None, {"n_samples": n, "n_splits": 0, "grid": [], "cv_score": None,
                                  "best_params": params, "at_grid_edge": None,
                                  "note": "a single training input: nothing to tune"})
    cv = KFold(n_splits=min(5, n), shuffle=True, random_state=seed)
    classifier = kind in CLASSIFIER_KINDS
    search = GridSearchCV(_searched(kind, seed), {_param(kind, name): grid}, cv=cv,
                          scoring=best_layer_log_likelihood if classifier
                          else routed_steerability, error_score="raise", refit=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, S)
        best = search.best_params_[_param(kind, name)]
        est = build_estimator(kind, seed).set_params(**{name: _copy(best)})
        est.fit(X, y if kind in CLASSIFIER_KINDS else S)
    i = grid.index(best)
    scores = np.asarray(search.cv_results_["mean_test_score"], dtype=float)
    k = int(cv.get_n_splits())
    se = float(search.cv_results_["std_test_score"][i]) / np.sqrt(k)
    return Fitted(est, None, {
        "n_samples": n,
        "n_splits": k,
        "best_params": {short: _plain(best)},
        "grid": [_plain(v) for v in grid],
        "grid_scores": [float(s) for s in scores],
        "at_grid_edge": bool(i in (0, len(grid) - 1)),
        "score_se": se,
        "within_one_se": int((scores >= scores[i] - se).sum()),
        "cv_score": float(search.best_score_),
        "cv_scoring": "neg_log_loss" if classifier else "mean_routed_steerability",
    })
