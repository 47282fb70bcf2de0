"""Is there a per-input layer to learn? Retest stability, the cross-validated oracle and the
learning curve: the measurements :mod:`w2s_lens.evaluation.results.evidence` reads.

* the **retest**: two sweeps of the same test items with vectors fitted on disjoint halves of
  the training items; how far they agree on each item's best layer (agreement, chance, κ).
  Forward passes are deterministic, so this is robustness to re-estimating the vector;
* the **cross-validated oracle**: each item's layer chosen under one half and scored under the
  other, against a fixed layer chosen the same way: the headroom a router could have, free of
  the in-sample oracle's max-over-noise bias;
* the **learning curve**: W2S − fixed as the number of training items grows.

Pure numpy on steerability matrices ``[n_items, n_layers]``; the learning curve fits routers
(:mod:`w2s_lens.routing.routers`) on nested subsets of the training items' sweeps, so it needs
no extra forward passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.stats

from w2s_lens.evaluation.stats.paired import paired_comparison
from w2s_lens.routing.labels import best_layers
from w2s_lens.routing.routers import make_router

__all__ = [
    "cross_validated_oracle",
    "xv_scores",
    "form_router",
    "learning_curve",
    "learning_sizes",
    "nested_subsets",
    "retest_agreement",
]


#: How the cross-validated comparison's verdict names its two sides.
XV_NAMES = ("the cross-validated oracle", "the cross-validated fixed layer")


def _pair(s1: Any, s2: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(s1, dtype=float), np.asarray(s2, dtype=float)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"the two sweeps must both be [n, L] of one shape; got {a.shape}, "
                         f"{b.shape}")
    return a, b


def retest_agreement(s1: Any, s2: Any) -> dict[str, Any]:
    """How far two sweeps of the same items agree on each item's best layer.

    Args:
        s1, s2: ``[n, L]`` steerability of the same test items under vectors fitted on two
            disjoint halves of the training items.

    Returns:
        ``{"n", "agreement", "chance", "kappa", "within_one", "rank_correlation", "matrix"}``:
        the share of items whose best layer is the same in both; its chance level
        ``Σ_l p₁(l)·p₂(l)`` from the two marginal distributions of best layers; Cohen's κ
        ``(agreement − chance) / (1 − chance)`` (None when chance is 1: one layer wins
        everywhere in both, so agreement is certain and says nothing); the share within one
        position on the layer grid; the median over items of the Spearman correlation of the
        two layer curves (items whose curve is constant in either sweep are left out; None if
        all are); and the ``[L, L]`` count matrix of (best under half 1, best under half 2).

    Example:
        >>> r = retest_agreement([[1, 0], [0, 1], [1, 0]], [[1, 0], [0, 1], [0, 1]])
        >>> [round(r[k], 3) for k in ("agreement", "chance", "kappa")], r["matrix"]
        ([0.667, 0.444, 0.4], [[1, 1], [0, 1]])
    """
    a, b = _pair(s1, s2)
    n, n_layers = a.shape
    if n == 0:
        return {"n": 0, "agreement": None, "chance": None, "kappa": None, "within_one": None,
                "rank_correlation": None, "matrix": np.zeros((n_layers, n_layers), int).tolist()}
    b1, b2 = best_layers(a), best_layers(b)
    agreement = float(np.mean(b1 == b2))
    p1 = np.bincount(b1, minlength=n_layers) / n
    p2 = np.bincount(b2, minlength=n_layers) / n
    chance = float(np.sum(p1 * p2))
    kappa = None if chance >= 1.0 else (agreement - chance) / (1.0 - chance)
    rhos = [scipy.stats.spearmanr(x, y).statistic for x, y in zip(a, b)
            if np.ptp(x) > 0 and np.ptp(y) > 0]
    matrix = np.zeros((n_layers, n_layers), dtype=int)
    np.add.at(matrix, (b1, b2), 1)
    return {
        "n": int(n),
        "agreement": agreement,
        "chance": chance,
        "kappa": None if kappa is None else float(kappa),
        "within_one": float(np.mean(np.abs(b1 - b2) <= 1)),
        "rank_correlation": float(np.median(rhos)) if rhos else None,
        "matrix": matrix.tolist(),
    }


def xv_scores(s1: Any, s2: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Per item, the cross-validated oracle's and fixed layer's steerability (what
    :func:`cross_validated_oracle` compares), and the two fixed layers (indices along L).

    Each item's layer is chosen under one half's sweep and scored under the other's, both
    directions averaged; the fixed layer is chosen by the mean over items under one half and
    scored under the other, likewise.

    Example:
        >>> oracle, fixed, layers = xv_scores([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]])
        >>> oracle.tolist(), fixed.tolist(), layers
        ([1.0, 1.0], [1.0, 0.0], (0, 0))
    """
    a, b = _pair(s1, s2)
    rows = np.arange(a.shape[0])
    oracle = 0.5 * (b[rows, best_layers(a)] + a[rows, best_layers(b)])
    f1, f2 = int(np.argmax(a.mean(axis=0))), int(np.argmax(b.mean(axis=0)))
    return oracle, 0.5 * (b[:, f1] + a[:, f2]), (f1, f2)


def cross_validated_oracle(
    s1: Any, s2: Any, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """The gain a perfect router could have, free of the in-sample oracle's max-over-noise bias.

    Each item's layer is chosen under one half's sweep and scored under the other's (both
    directions, averaged); the **cross-validated fixed layer** is one layer chosen by the mean
    over items under one half and scored under the other (both directions, averaged). Their
    per-item difference is compared with the paired test of :mod:`w2s_lens.evaluation.stats.paired`
    (exact sign-flip p-values, bootstrap interval, minimal detectable difference).

    Returns:
        ``{"n", "xv_oracle", "xv_fixed", "xv_fixed_layers", "diff", ...paired test keys}``, the
        layers as indices along the L axis (half 1 → scored on 2, half 2 → scored on 1).

    Example:
        >>> s1 = [[1.0, 0.0], [0.0, 1.0]] * 4
        >>> r = cross_validated_oracle(s1, s1, n_boot=200)
        >>> r["xv_oracle"], r["xv_fixed"], r["diff"]
        (1.0, 0.5, 0.5)
    """
    a, b = _pair(s1, s2)
    n = a.shape[0]
    if n == 0:
        return {"n": 0, "xv_oracle": None, "xv_fixed": None, "xv_fixed_layers": [None, None],
                **paired_comparison(np.zeros(0), np.zeros(0), n_boot=n_boot, seed=seed)}
    oracle, fixed, (f1, f2) = xv_scores(a, b)
    return {
        "n": int(n),
        "xv_oracle": float(oracle.mean()),
        "xv_fixed": float(fixed.mean()),
        "xv_fixed_layers": [f1, f2],
        **paired_comparison(oracle, fixed, n_boot=n_boot, seed=seed, names=XV_NAMES),
    }


def learning_sizes(n_train: int, smallest: int = 12) -> list[int]:
    """Nested training sizes for the learning curve: ``smallest``, doubling, then all.

    Example:
        >>> learning_sizes(100), learning_sizes(24), learning_sizes(8)
        ([12, 24, 48, 96, 100], [12, 24], [8])
    """
    if n_train <= smallest:
        return [int(n_train)] if n_train > 0 else []
    sizes, k = [], smallest
    while k < n_train:
        sizes.append(k)
        k *= 2
    return [*sizes, int(n_train)]


def nested_subsets(
    strata: Sequence[Any], sizes: Sequence[int], seed: int
) -> list[np.ndarray]:
    """Nested index subsets, one per size, each balanced over ``strata`` (e.g. the matching
    letter) as far as the counts allow: one seeded order, interleaved across strata, cut at each
    size, so a smaller subset is always inside a larger one.

    Example:
        >>> subs = nested_subsets(["A", "B"] * 4, [2, 4, 8], seed=0)
        >>> [len(s) for s in subs], set(subs[0]) <= set(subs[1]) <= set(subs[2])
        ([2, 4, 8], True)
    """
    labels = np.asarray([str(x) for x in strata])
    rng = np.random.default_rng(seed)
    queues = [list(rng.permutation(np.flatnonzero(labels == g))) for g in np.unique(labels)]
    order: list[int] = []
    while any(queues):
        for q in queues:
            if q:
                order.append(int(q.pop(0)))
    return [np.sort(np.asarray(order[: int(k)], dtype=int)) for k in sizes]


def learning_curve(
    train_steerability: Any,
    train_embeddings: Any,
    test_steerability: Any,
    test_embeddings: Any,
    kinds: Sequence[str],
    strata: Sequence[Any] | None = None,
    sizes: Sequence[int] | None = None,
    repeats: int = 3,
    seed: int = 0,
    n_boot: int = 2000,
) -> list[dict[str, Any]]:
    """W2S − fixed on the same test items as the number of training items grows.

    For each size, a nested subset of the training items (balanced over ``strata``) refits the
    fixed layer and each router; both are scored on all test items. Only the fixed layer and
    the routers see fewer items: the steering vectors and the sweeps stay those of the full
    training set, so no forward pass is repeated. Sizes below the full set are repeated with
    ``repeats`` seeds, and the per-item difference is averaged over repeats before the paired
    test.

    Returns:
        one row per (size, router kind): ``{"n_train", "router", "repeats", "accuracy",
        "majority_accuracy", "diff", ...paired test keys}``.

    Example:
        >>> import numpy as np
        >>> S = np.array([[1.0, 0.0], [0.0, 1.0]] * 12)
        >>> X = np.array([[1.0, 0.0], [0.0, 1.0]] * 12)
        >>> rows = learning_curve(S, X, S, X, ["logreg"], sizes=[4, 24], n_boot=200)
        >>> [r["n_train"] for r in rows], rows[-1]["accuracy"]
        ([4, 24], 1.0)
    """
    tr_s, te_s = np.asarray(train_steerability, float), np.asarray(test_steerability, float)
    tr_x, te_x = np.asarray(train_embeddings, float), np.asarray(test_embeddings, float)
    n_train = tr_s.shape[0]
    sizes = learning_sizes(n_train) if sizes is None else [int(k) for k in sizes]
    strata = ["all"] * n_train if strata is None else list(strata)
    test_best = best_layers(te_s) if te_s.shape[0] else np.zeros(0, dtype=int)
    rows: list[dict[str, Any]] = []
    for k in sizes:
        if not 0 < k <= n_train:
            raise ValueError(f"learning-curve size {k} outside 1..{n_train} training items")
        n_rep = 1 if k == n_train else max(1, int(repeats))
        subsets = [nested_subsets(strata, [k], seed + r)[0] for r in range(n_rep)]
        for kind in kinds:
            w2s, fixed, acc, maj = [], [], [], []
            for r, idx in enumerate(subsets):
                sub = tr_s[idx]
                f = int(np.argmax(sub.mean(axis=0)))
                router = make_router(kind, seed=seed + r).fit(tr_x[idx], sub)
                chosen = router.predict(te_x)
                w2s.append(te_s[np.arange(te_s.shape[0]), chosen])
                fixed.append(te_s[:, f])
                acc.append(float(np.mean(chosen == test_best)))
                maj.append(float(np.mean(np.bincount(best_layers(sub)).argmax() == test_best)))
            rows.append({
                "n_train": int(k), "router": kind, "repeats": n_rep,
                "accuracy": float(np.mean(acc)), "majority_accuracy": float(np.mean(maj)),
                **paired_comparison(np.mean(w2s, axis=0), np.mean(fixed, axis=0),
                                    n_boot=n_boot, seed=seed),
            })
    return rows


def form_router(
    train_steerability: Any, train_forms: Sequence[Any], test_forms: Sequence[Any],
    fallback_idx: int,
) -> tuple[np.ndarray, dict[str, int]]:
    """A "router" that sees only the answers' form (the cloze analog of the letter oracle, but
    fitted on the TRAINING items): per form group, the layer with the best mean training
    steerability; a test form unseen in training gets ``fallback_idx`` (the fixed layer).

    Returns:
        ``(chosen layer index per test row [n_test], {form: layer index})``.

    Example:
        >>> idx, groups = form_router([[1.0, 0.0], [0.0, 1.0]], ["match-yes", "match-no"],
        ...                           ["match-no", "match-yes", "same-length"], fallback_idx=0)
        >>> idx.tolist(), groups
        ([1, 0, 0], {'match-no': 1, 'match-yes': 0})
    """
    s = np.asarray(train_steerability, dtype=float)
    train = np.asarray([str(x) for x in train_forms])
    if s.ndim != 2 or train.shape[0] != s.shape[0]:
        raise ValueError(f"{train.shape[0]} training forms for steerability of shape {s.shape}")
    groups = {g: int(np.argmax(s[train == g].mean(axis=0))) for g in sorted(set(train.tolist()))}
    chosen = np.asarray([groups.get(str(f), int(fallback_idx)) for f in test_forms], dtype=int)
    return chosen, groups
