"""The ``"knn"`` router: no linear assumption, just the steerability of similar inputs.

For an input, take its k nearest training inputs by cosine distance on the embedding, average
their steerability curves ``[L]`` (the whole training steerability matrix, not only the
best-layer labels) and steer at the layer of best mean steerability. The curve of means is the
router's score, as for ``"curve"``.

k is chosen among :data:`K_GRID` and larger values up to the smallest training fold
(:func:`w2s_lens.routing.estimators.tuning_grid`) by cross-validation on the training data only
(:func:`w2s_lens.routing.estimators.fit_estimator`): ``KFold(min(5, n))`` folds, each candidate
scored by the mean steerability, on the held-out fold, of the layer it routes each input to
(:func:`routed_steerability`: the quantity W2S is judged on). Ties go to the larger k (the
grid is searched from large to small, and the first best wins), which averages more inputs.

Example:
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.1], [1.0, -0.1], [0.1, 1.0], [-0.1, 1.0]] * 5)
    >>> S = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]] * 5)
    >>> est = knn_estimator(3).fit(X, S)
    >>> est.predict(np.array([[2.0, 0.0]])).argmax(1).tolist(), routed_steerability(est, X, S)
    ([0], 1.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jaxtyping import Float
from sklearn.neighbors import KNeighborsRegressor

__all__ = ["K_GRID", "knn_estimator", "routed_steerability"]

#: Candidate numbers of neighbours (extended up to the smallest training fold when tuning).
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
