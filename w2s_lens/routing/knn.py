"""The ``"knn"`` router: no linear assumption, just the steerability of similar inputs.

For an input, take its k nearest training inputs by cosine distance on the embedding, average
their steerability curves ``[L]`` (the whole training steerability matrix, not only the
best-layer labels) and steer at the layer of best mean steerability. The curve of means is the
router's score, as for ``"curve"``.

k is chosen among :data:`K_GRID` (capped by the size of the smallest training fold) by
cross-validation on the training data only: ``KFold(min(5, n))`` folds, each candidate scored
by the mean steerability, on the held-out fold, of the layer it routes each input to
(:func:`routed_steerability`: the quantity W2S is judged on). Ties go to the larger k (the
grid is searched from large to small, and the first best wins), which averages more inputs.

Example:
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.1], [1.0, -0.1], [0.1, 1.0], [-0.1, 1.0]] * 5)
    >>> S = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]] * 5)
    >>> est, info = fit_knn(X, S, seed=0)
    >>> est.predict(np.array([[2.0, 0.0]])).argmax(1).tolist(), info["cv_score"]
    ([0], 1.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from jaxtyping import Float
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KNeighborsRegressor

__all__ = ["K_GRID", "fit_knn", "knn_estimator", "routed_steerability"]

#: Candidate numbers of neighbours.
K_GRID = (1, 3, 5, 7, 9, 15)


def knn_estimator(n_neighbors: int = 5) -> KNeighborsRegressor:
    """The unfitted estimator: uniform mean over the k nearest by cosine distance.

    Example:
        >>> knn_estimator(3).get_params()["metric"]
        'cosine'
    """
    return KNeighborsRegressor(n_neighbors=n_neighbors, weights="uniform", metric="cosine",
                               algorithm="brute")


def routed_steerability(estimator: Any, X: Float[np.ndarray, "n d"],
                        S: Float[np.ndarray, "n L"]) -> float:
    """Mean of ``S[i, argmax(predicted curve of i)]``: a scikit-learn scorer (higher is better).

    Example:
        >>> import numpy as np
        >>> est = knn_estimator(1).fit(np.eye(2), np.array([[1.0, 0.0], [0.0, 2.0]]))
        >>> routed_steerability(est, np.eye(2), np.array([[1.0, 0.0], [0.0, 2.0]]))
        1.5
    """
    S = np.asarray(S, dtype=float)
    routed = np.argmax(np.asarray(estimator.predict(X)).reshape(S.shape), axis=1)
    return float(S[np.arange(S.shape[0]), routed].mean())


def fit_knn(X: Float[np.ndarray, "n d"], S: Float[np.ndarray, "n L"],
            seed: int = 0) -> tuple[KNeighborsRegressor, dict[str, Any]]:
    """Fit on training embeddings and steerability; returns the estimator and ``cv_info``.

    Example:
        >>> import numpy as np
        >>> est, info = fit_knn(np.eye(3), np.eye(3))
        >>> info["best_params"], info["grid"]
        ({'n_neighbors': 1}, [1])
    """
    n = X.shape[0]
    if n < 2:
        est = knn_estimator(1).fit(X, S)
        return est, {"n_samples": n, "n_splits": 0, "best_params": {"n_neighbors": 1},
                     "cv_score": None, "note": "a single training input: its curve is the "
                                               "prediction for every input"}
    n_splits = min(5, n)
    smallest_train_fold = n - math.ceil(n / n_splits)
    grid = sorted((k for k in K_GRID if k <= smallest_train_fold), reverse=True) or [1]
    cv = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
    search = GridSearchCV(knn_estimator(), {"n_neighbors": grid}, cv=cv,
                          scoring=routed_steerability, refit=True)
    search.fit(X, S)
    by_k = dict(zip(search.cv_results_["param_n_neighbors"],
                    search.cv_results_["mean_test_score"]))
    return search.best_estimator_, {
        "n_samples": n,
        "n_splits": n_splits,
        "best_params": {"n_neighbors": int(search.best_params_["n_neighbors"])},
        "cv_score": float(search.best_score_),
        "cv_scoring": "mean_routed_steerability",
        "grid": sorted(grid),
        "grid_scores": [float(by_k[k]) for k in sorted(grid)],
    }
