"""How often a router picks each input's own best layer, and the baseline it has to beat.

Layer indices throughout (positions on the L axis of a steerability matrix, not layer
numbers). Ties go to the earlier layer everywhere, as in
:func:`w2s_lens.routing.labels.best_layers`.

Example:
    >>> routing_accuracy([1, 2, 2], [1, 2, 0]), majority_accuracy([2, 0, 2], [2, 2, 1, 0])
    (0.6666666666666666, 0.5)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jaxtyping import Float, Int

__all__ = ["majority_accuracy", "routing_accuracy", "topk_accuracy"]


def routing_accuracy(chosen_idx: Int[Any, " n"], true_idx: Int[Any, " n"]) -> float | None:
    """Share of inputs whose routed layer index equals their own best layer index.

    Example:
        >>> routing_accuracy([1, 2, 2], [1, 2, 0])
        0.6666666666666666
    """
    c = np.asarray(chosen_idx, dtype=int).ravel()
    t = np.asarray(true_idx, dtype=int).ravel()
    return float(np.mean(c == t)) if t.size else None


def majority_accuracy(train_best_idx: Int[Any, " n_train"], true_idx: Int[Any, " n"]
                      ) -> float | None:
    """Accuracy of always predicting the training items' most common best layer (ties to the
    earlier layer): the baseline a router's accuracy has to beat. None without training or
    test items.

    Example:
        >>> majority_accuracy([2, 0, 2, 0, 1], [0, 0, 2])
        0.6666666666666666
    """
    tr = np.asarray(train_best_idx, dtype=int).ravel()
    t = np.asarray(true_idx, dtype=int).ravel()
    if tr.size == 0 or t.size == 0:
        return None
    if tr.min() < 0:
        raise ValueError("train_best_idx holds negative layer indices")
    return float(np.mean(t == int(np.argmax(np.bincount(tr)))))


def topk_accuracy(scores: Float[Any, "n L"], true_idx: Int[Any, " n"], k: int = 3
                  ) -> float | None:
    """Share of inputs whose true best layer is among the ``k`` highest router scores.

    Ties in the scores are broken towards the earlier layer (stable sort).

    Example:
        >>> topk_accuracy([[0.1, 0.5, 0.4, 0.0]], [2], k=2)
        1.0
    """
    sc = np.asarray(scores, dtype=float)
    if sc.ndim != 2:
        raise ValueError(f"scores must be [n, L], got shape {sc.shape}")
    t = np.asarray(true_idx, dtype=int).ravel()
    if t.size == 0:
        return None
    top = np.argsort(-sc, axis=1, kind="stable")[:, :k]
    return float(np.mean((top == t[:, None]).any(axis=1)))
