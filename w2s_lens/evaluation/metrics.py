"""Evaluation metrics for per-input steering-layer selection (pure numpy).

Steerability of one input at one layer is the least-squares slope of the matching-answer
propensity against the steering multiplier (Tan et al. 2024). An input counts as
*steerable* when that slope is positive. This module compares three ways of picking the
layer to steer at:

* **fixed**: one layer for every input, the one with the highest mean steerability on the
  *training* split;
* **W2S**: a router predicts a layer per input (see :mod:`w2s_lens.routing.routers`);
* **oracle**: each input's own best layer on the test split (an upper bound), plus the
  *letter oracle*, one best layer for items whose matching answer is "A" and one for "B".

Confidence intervals are BCa bootstraps over inputs (``scipy.stats.bootstrap``, paired where
the comparison is paired); under mirrored evaluation an input is an item (both its letter
orders averaged), so the two orders of one item are never resampled apart.

Example:
    >>> import numpy as np
    >>> S = np.array([[0.1, 0.5, 0.2], [0.3, 0.1, 0.0], [0.0, 0.4, 0.4]])
    >>> best_layers(S).tolist()
    [1, 0, 1]
    >>> fixed_layer(S)
    1
    >>> select(S, best_layers(S)).tolist()
    [0.5, 0.3, 0.4]
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.stats

from w2s_lens.routing.labels import best_layers

__all__ = [
    "LETTERS",
    "best_layers",
    "bootstrap_ci",
    "fdr_count",
    "paired_diff_ci",
    "paired_diff_test",
    "summarize",
    "select",
    "fixed_layer",
    "letter_oracle",
    "routing_accuracy",
    "topk_accuracy",
    "evaluate_variant",
    "verdict",
    "VERDICT_BETTER",
    "VERDICT_NONE",
    "VERDICT_WORSE",
]

LETTERS = ("A", "B")
VERDICT_BETTER = "W2S beats fixed beyond the noise"
VERDICT_NONE = "no detectable difference"
VERDICT_WORSE = "W2S is worse than fixed"


def _as_2d(steerability: Any) -> np.ndarray:
    s = np.asarray(steerability, dtype=float)
    if s.ndim != 2:
        raise ValueError(f"steerability must be [n, L], got shape {s.shape}")
    return s


def _bootstrap(data: tuple[np.ndarray, ...], stat: Callable[..., Any], n_boot: int, seed: int,
               alpha: float, paired: bool) -> tuple[tuple[float, float], np.ndarray]:
    """scipy's BCa bootstrap; percentile where BCa is undefined (e.g. constant data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DegenerateDataWarning: handled below
        res = scipy.stats.bootstrap(data, stat, n_resamples=n_boot, confidence_level=1 - alpha,
                                    method="BCa", paired=paired, vectorized=True,
                                    rng=np.random.default_rng(seed))
        lo, hi = res.confidence_interval
        dist = np.asarray(res.bootstrap_distribution, dtype=float)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            lo, hi = np.quantile(dist, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi)), dist


def bootstrap_ci(
    values: Any,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    stat: Callable[..., Any] = np.mean,
) -> tuple[float, float]:
    """Bootstrap confidence interval of ``stat(values)``, resampling inputs.

    ``scipy.stats.bootstrap`` with the BCa method (bias-corrected and accelerated), falling back
    to the percentile interval where BCa is undefined (constant data). Deterministic for a
    given ``seed``. An empty input gives ``(nan, nan)``.

    Args:
        values: ``[n]`` per-input values (one per unit: mirrored letter orders are one input).
        n_boot: number of bootstrap resamples.
        seed: seed of the resampling generator.
        alpha: 1 - coverage (0.05 gives a 95% interval).
        stat: statistic, called as ``stat(samples, axis=-1)`` when it accepts ``axis``, else
            once per resample.

    Returns:
        ``(lo, hi)`` as Python floats.

    Example:
        >>> lo, hi = bootstrap_ci([0.1, 0.2, 0.3, 0.4], n_boot=500)
        >>> lo <= 0.25 <= hi
        True
    """
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        return (float("nan"), float("nan"))
    if v.size == 1 or np.ptp(v) == 0:
        x = float(stat(v))
        return (x, x)

    def vec_stat(x: np.ndarray, axis: int = -1) -> np.ndarray:
        try:
            return np.asarray(stat(x, axis=axis), dtype=float)
        except TypeError:
            return np.apply_along_axis(lambda r: float(stat(r)), axis, x)

    return _bootstrap((v,), vec_stat, n_boot, seed, alpha, paired=False)[0]


def paired_diff_ci(
    a: Any,
    b: Any,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Bootstrap CI of ``mean(a - b)``, resampling inputs jointly (``paired=True``).

    Example:
        >>> paired_diff_ci([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], n_boot=200)
        (0.0, 0.0)
    """
    return paired_diff_test(a, b, n_boot, seed, alpha)[0]


def paired_diff_test(
    a: Any,
    b: Any,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[tuple[float, float], float | None]:
    """Paired bootstrap of ``mean(a - b)``: its CI and a one-sided p-value for ``> 0``.

    The p-value is the share of bootstrap means at or below 0 (with the usual +1 correction);
    it is what :func:`fdr_count` corrects across datasets. ``None`` for empty input.

    Example:
        >>> ci, p = paired_diff_test([1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.5], n_boot=500)
        >>> ci[0] > 0, p < 0.05
        (True, True)
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in length: {a.shape} vs {b.shape}")
    d = a - b
    if d.size == 0:
        return (float("nan"), float("nan")), None
    if d.size == 1 or np.ptp(d) == 0:
        x = float(d.mean())
        return (x, x), (0.0 if x > 0 else 1.0)

    def mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x - y, axis=axis)

    ci, dist = _bootstrap((a, b), mean_diff, n_boot, seed, alpha, paired=True)
    p = (1 + int(np.sum(dist <= 0))) / (1 + dist.size)
    return ci, float(p)


def fdr_count(p_values: Sequence[float | None], q: float = 0.05) -> int:
    """How many one-sided tests stay significant after Benjamini-Hochberg FDR control at ``q``
    (``scipy.stats.false_discovery_control``); ``None`` entries are not tests.

    Example:
        >>> fdr_count([0.001, 0.02, 0.04, 0.5]), fdr_count([0.04, 0.5, 0.6])
        (2, 0)
    """
    ps = np.asarray([p for p in p_values if p is not None], dtype=float)
    if ps.size == 0:
        return 0
    return int(np.sum(scipy.stats.false_discovery_control(ps, method="bh") <= q))


def _f(x: float) -> float | None:
    """JSON-safe float: NaN becomes None."""
    x = float(x)
    return None if np.isnan(x) else x


def summarize(slopes: Any, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Mean steerability and steerable fraction, each with a bootstrap CI.

    Returns:
        ``{"steerability", "steerability_ci", "steerable_fraction", "steerable_fraction_ci"}``;
        values are JSON-safe (floats, 2-lists; ``None`` when there are no inputs).

    Example:
        >>> s = summarize([0.5, -0.1, 0.2, 0.3], n_boot=200)
        >>> round(s["steerability"], 3), s["steerable_fraction"]
        (0.225, 0.75)
    """
    v = np.asarray(slopes, dtype=float).ravel()
    if v.size == 0:
        return {
            "steerability": None,
            "steerability_ci": [None, None],
            "steerable_fraction": None,
            "steerable_fraction_ci": [None, None],
        }
    pos = (v > 0).astype(float)
    return {
        "steerability": float(v.mean()),
        "steerability_ci": [_f(x) for x in bootstrap_ci(v, n_boot=n_boot, seed=seed)],
        "steerable_fraction": float(pos.mean()),
        "steerable_fraction_ci": [_f(x) for x in bootstrap_ci(pos, n_boot=n_boot, seed=seed)],
    }


def select(steerability: Any, layer_idx: Any) -> np.ndarray:
    """Slope of each input at its chosen layer index.

    Example:
        >>> select([[1.0, 2.0], [3.0, 4.0]], [1, 0]).tolist()
        [2.0, 3.0]
    """
    s = _as_2d(steerability)
    idx = np.asarray(layer_idx, dtype=int).ravel()
    if idx.shape[0] != s.shape[0]:
        raise ValueError(f"{idx.shape[0]} layer choices for {s.shape[0]} inputs")
    if idx.size and (idx.min() < 0 or idx.max() >= s.shape[1]):
        raise ValueError(f"layer index out of range [0, {s.shape[1]})")
    return s[np.arange(s.shape[0]), idx]


def fixed_layer(train_steerability: Any) -> int:
    """Index of the layer with the highest mean steerability on the TRAINING data.

    Example:
        >>> fixed_layer([[0.0, 1.0, 0.5], [0.2, 0.6, 0.9]])
        1
    """
    s = _as_2d(train_steerability)
    if s.shape[0] == 0:
        raise ValueError("fixed_layer needs at least one training input")
    return int(np.argmax(s.mean(axis=0)))


def _letters(letters: Any, n: int) -> np.ndarray:
    arr = np.asarray([str(x) for x in letters])
    if arr.shape[0] != n:
        raise ValueError(f"{arr.shape[0]} letters for {n} inputs")
    bad = sorted(set(arr.tolist()) - set(LETTERS))
    if bad:
        raise ValueError(f"matching letters must be 'A' or 'B', got {bad}")
    return arr


def letter_oracle(steerability: Any, letters: Any) -> tuple[np.ndarray, dict[str, int | None]]:
    """One best layer (by mean) for "A"-matching items and one for "B", chosen on THIS data.

    Like the per-input oracle this is an upper bound, not a deployable method: the layers
    are picked on the same inputs they are scored on.

    Returns:
        ``(per-input slopes [n], {"A": idx, "B": idx})``; a letter with no items maps to None.

    Example:
        >>> S = [[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]
        >>> slopes, idx = letter_oracle(S, ["A", "B", "A"])
        >>> slopes.tolist(), idx
        ([1.0, 1.0, 2.0], {'A': 0, 'B': 1})
    """
    s = _as_2d(steerability)
    let = _letters(letters, s.shape[0])
    chosen = np.zeros(s.shape[0], dtype=int)
    layers: dict[str, int | None] = {}
    for letter in LETTERS:
        mask = let == letter
        if not mask.any():
            layers[letter] = None
            continue
        layers[letter] = int(np.argmax(s[mask].mean(axis=0)))
        chosen[mask] = layers[letter]
    return select(s, chosen), layers


def routing_accuracy(chosen_idx: Any, true_idx: Any) -> float | None:
    """Share of inputs whose routed layer index equals their own best layer index."""
    c = np.asarray(chosen_idx, dtype=int).ravel()
    t = np.asarray(true_idx, dtype=int).ravel()
    return float(np.mean(c == t)) if t.size else None


def topk_accuracy(scores: Any, true_idx: Any, k: int = 3) -> float | None:
    """Share of inputs whose true best layer is among the ``k`` highest router scores.

    Ties in the scores are broken towards the earlier layer (stable sort).

    Example:
        >>> topk_accuracy([[0.1, 0.5, 0.4, 0.0]], [2], k=2)
        1.0
    """
    sc = _as_2d(scores)
    t = np.asarray(true_idx, dtype=int).ravel()
    if t.size == 0:
        return None
    top = np.argsort(-sc, axis=1, kind="stable")[:, :k]
    return float(np.mean((top == t[:, None]).any(axis=1)))


def verdict(diff_ci: Sequence[float | None] | None) -> str:
    """Plain-words reading of the paired CI of mean(W2S - fixed).

    Example:
        >>> verdict([0.01, 0.2]), verdict([-0.1, 0.05]), verdict([-0.3, -0.01])
        ('W2S beats fixed beyond the noise', 'no detectable difference', 'W2S is worse than fixed')
    """
    if diff_ci is None or len(diff_ci) != 2 or any(x is None for x in diff_ci):
        return VERDICT_NONE
    lo, hi = float(diff_ci[0]), float(diff_ci[1])  # type: ignore[arg-type]
    if np.isnan(lo) or np.isnan(hi):
        return VERDICT_NONE
    if lo > 0:
        return VERDICT_BETTER
    if hi < 0:
        return VERDICT_WORSE
    return VERDICT_NONE


def _router_block(
    s: np.ndarray,
    idx: np.ndarray,
    scores: np.ndarray | None,
    fixed_slopes: np.ndarray,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    true_idx = best_layers(s) if s.shape[0] else np.zeros(0, dtype=int)
    slopes = select(s, idx)
    out = summarize(slopes, n_boot=n_boot, seed=seed)
    out["accuracy"] = routing_accuracy(idx, true_idx)
    out["top3_accuracy"] = topk_accuracy(scores, true_idx, k=3) if scores is not None else None
    if slopes.size:
        out["diff_vs_fixed"] = float(np.mean(slopes - fixed_slopes))
        ci, p = paired_diff_test(slopes, fixed_slopes, n_boot=n_boot, seed=seed)
        out["diff_vs_fixed_ci"] = [_f(x) for x in ci]
        out["diff_vs_fixed_p"] = p
    else:
        out["diff_vs_fixed"] = None
        out["diff_vs_fixed_ci"] = [None, None]
        out["diff_vs_fixed_p"] = None
    return out


def evaluate_variant(
    test_steerability: Any,
    letters: Any,
    fixed_idx: int,
    router_idx: Mapping[str, Any],
    router_scores: Mapping[str, Any] | None = None,
    layers: Sequence[int] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Score fixed, W2S routers and oracles on one test split.

    Args:
        test_steerability: ``[n, L]`` test-split slopes.
        letters: ``[n]`` matching letters ("A"/"B").
        fixed_idx: layer *index* chosen on the training split (:func:`fixed_layer`).
        router_idx: router name -> ``[n]`` chosen layer indices.
        router_scores: router name -> ``[n, L]`` scores (or None) for top-3 accuracy.
        layers: the real layer numbers of the L axis (default ``range(L)``); all layers in the
            result are reported as these numbers, never as indices.
        n_boot, seed: bootstrap settings (one seed for every CI: common random numbers).

    Returns:
        ``{"n", "fixed_layer", "fixed", "w2s": {name: ...}, "oracle", "letter_oracle",
        "by_letter": {"A": {"n", "fixed", "w2s", "oracle"}, "B": ...}}``. Each
        summary block has ``steerability(_ci)`` and ``steerable_fraction(_ci)``; each router
        block adds ``accuracy`` (routed layer == the input's own test-set best layer),
        ``top3_accuracy`` (None without scores), ``diff_vs_fixed(_ci)`` (paired bootstrap of
        mean(W2S - fixed)) and ``diff_vs_fixed_p`` (one-sided bootstrap p-value).
        ``by_letter[x]["w2s"]`` has the same per-router structure computed on that letter's
        inputs. Everything is JSON-serialisable.

    Example:
        >>> import numpy as np
        >>> S = np.array([[0.1, 0.9], [0.8, 0.2], [0.0, 0.5], [0.7, 0.1]])
        >>> r = evaluate_variant(S, ["A", "B", "A", "B"], fixed_idx=1,
        ...                      router_idx={"logreg": [1, 0, 1, 0]}, layers=[4, 8], n_boot=100)
        >>> r["fixed_layer"], r["w2s"]["logreg"]["accuracy"], r["letter_oracle"]["layers"]
        (8, 1.0, {'A': 8, 'B': 4})
    """
    s = _as_2d(test_steerability)
    n, n_layers = s.shape
    layer_numbers = list(range(n_layers)) if layers is None else [int(x) for x in layers]
    if len(layer_numbers) != n_layers:
        raise ValueError(f"{len(layer_numbers)} layer numbers for {n_layers} steerability columns")
    if not 0 <= int(fixed_idx) < n_layers:
        raise ValueError(f"fixed_idx {fixed_idx} out of range [0, {n_layers})")
    let = _letters(letters, n)
    router_scores = dict(router_scores or {})
    idx_map = {name: np.asarray(v, dtype=int).ravel() for name, v in router_idx.items()}
    score_map: dict[str, np.ndarray | None] = {}
    for name in idx_map:
        sc = router_scores.get(name)
        if sc is not None:
            sc = _as_2d(sc)
            if sc.shape != s.shape:
                raise ValueError(
                    f"router {name!r} scores have shape {sc.shape}, expected {s.shape}"
                )
        score_map[name] = sc

    fixed_slopes = s[:, int(fixed_idx)]
    oracle_slopes = select(s, best_layers(s)) if n else np.zeros(0)
    lo_slopes, lo_idx = letter_oracle(s, let) if n else (np.zeros(0), {"A": None, "B": None})

    def block(mask: np.ndarray) -> dict[str, Any]:
        sub = s[mask]
        fixed_sub = fixed_slopes[mask]
        return {
            "fixed": summarize(fixed_sub, n_boot=n_boot, seed=seed),
            "w2s": {
                name: _router_block(
                    sub,
                    idx[mask],
                    None if score_map[name] is None else score_map[name][mask],
                    fixed_sub,
                    n_boot,
                    seed,
                )
                for name, idx in idx_map.items()
            },
            "oracle": summarize(oracle_slopes[mask], n_boot=n_boot, seed=seed),
        }

    everything = np.ones(n, dtype=bool)
    main = block(everything)
    letter_layers = {k: (None if v is None else layer_numbers[v]) for k, v in lo_idx.items()}
    result: dict[str, Any] = {
        "n": int(n),
        "fixed_layer": layer_numbers[int(fixed_idx)],
        "fixed": main["fixed"],
        "w2s": main["w2s"],
        "oracle": main["oracle"],
        "letter_oracle": {
            **summarize(lo_slopes, n_boot=n_boot, seed=seed),
            "layers": letter_layers,
        },
        "by_letter": {},
    }
    for letter in LETTERS:
        mask = let == letter
        result["by_letter"][letter] = {"n": int(mask.sum()), **block(mask)}
    return result
