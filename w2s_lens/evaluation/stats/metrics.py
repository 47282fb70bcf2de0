"""Evaluation metrics for per-input steering-layer selection (pure numpy).

Steerability of one input at one layer is the least-squares slope of the matching-answer
propensity against the steering multiplier (Tan et al. 2024). An input counts as
*steerable* when that slope is positive. This module compares three ways of picking the
layer to steer at:

* **fixed**: one layer for every input, the one with the highest mean steerability on the
  *training* split;
* **W2S**: a router predicts a layer per input (see :mod:`w2s_lens.routing.routers`);
* **oracle**: each input's own best layer on the test split (an upper bound), plus *group
  oracles* (:func:`group_oracle`: one best layer per group of items): the *letter oracle*,
  one layer for items whose matching answer is "A" and one for "B" (meaningful on
  single-order letter rows only), and the *answer-form oracle* (e.g. the matching option
  longer / shorter, or Yes / No; for cloze rows).

Intervals are BCa bootstraps over inputs (:mod:`w2s_lens.evaluation.stats.bootstrap`); whether W2S
beats the fixed layer is the paired sign-flip test (:mod:`w2s_lens.evaluation.stats.paired`). Under
mirrored evaluation an input is an item (both its letter orders averaged).

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

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from jaxtyping import Float, Int

from w2s_lens.evaluation.stats.accuracy import majority_accuracy, routing_accuracy, topk_accuracy
from w2s_lens.evaluation.stats.bootstrap import bootstrap_ci
from w2s_lens.evaluation.stats.paired import (
    paired_comparison,
)
from w2s_lens.routing.labels import best_layers

__all__ = ["LETTERS", "summarize", "select", "fixed_layer", "group_oracle", "letter_oracle",
           "evaluate_variant"]

LETTERS = ("A", "B")


def _as_2d(steerability: Any) -> np.ndarray:
    s = np.asarray(steerability, dtype=float)
    if s.ndim != 2:
        raise ValueError(f"steerability must be [n, L], got shape {s.shape}")
    return s


def _f(x: float) -> float | None:
    """JSON-safe float: NaN becomes None."""
    x = float(x)
    return None if np.isnan(x) else x


def summarize(slopes: Float[Any, " n"], n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
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


def select(steerability: Float[Any, "n L"], layer_idx: Int[Any, " n"]) -> np.ndarray:
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


def fixed_layer(train_steerability: Float[Any, "n L"]) -> int:
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


def group_oracle(steerability: Float[Any, "n L"], labels: Sequence[Any]
                 ) -> tuple[np.ndarray, dict[str, int]]:
    """The oracle restricted to groups: one best layer (by mean) per group, chosen on THIS data.

    Like the per-input oracle this is an upper bound, not a deployable method: the layers are
    picked on the same inputs they are scored on. It sits between the best single layer and
    the per-input oracle; when it equals the per-input oracle, the per-input variation is
    all in the grouping (e.g. the matching letter, or the answer's form).

    Args:
        steerability: ``[n, L]`` slopes.
        labels: ``[n]`` group labels (compared as strings).

    Returns:
        ``(per-input slopes [n], {label: layer index})``, labels in sorted order.

    Example:
        >>> S = [[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]
        >>> slopes, idx = group_oracle(S, ["long", "short", "long"])
        >>> slopes.tolist(), idx
        ([1.0, 1.0, 2.0], {'long': 0, 'short': 1})
    """
    s = _as_2d(steerability)
    lab = np.asarray([str(x) for x in labels])
    if lab.shape[0] != s.shape[0]:
        raise ValueError(f"{lab.shape[0]} group labels for {s.shape[0]} inputs")
    chosen = np.zeros(s.shape[0], dtype=int)
    layers: dict[str, int] = {}
    for g in sorted(set(lab.tolist())):
        mask = lab == g
        layers[g] = int(np.argmax(s[mask].mean(axis=0)))
        chosen[mask] = layers[g]
    return select(s, chosen), layers


def letter_oracle(steerability: Float[Any, "n L"], letters: Sequence[str]
                  ) -> tuple[np.ndarray, dict[str, int | None]]:
    """:func:`group_oracle` over the matching letters: one best layer for "A"-matching items
    and one for "B". Meaningful on single-order letter rows only.

    Returns:
        ``(per-input slopes [n], {"A": idx, "B": idx})``; a letter with no items maps to None.

    Example:
        >>> S = [[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]
        >>> slopes, idx = letter_oracle(S, ["A", "B", "A"])
        >>> slopes.tolist(), idx
        ([1.0, 1.0, 2.0], {'A': 0, 'B': 1})
    """
    s = _as_2d(steerability)
    slopes, found = group_oracle(s, _letters(letters, s.shape[0]))
    return slopes, {letter: found.get(letter) for letter in LETTERS}


def _router_block(
    s: np.ndarray,
    idx: np.ndarray,
    scores: np.ndarray | None,
    fixed_slopes: np.ndarray,
    n_boot: int,
    seed: int,
    train_best_idx: np.ndarray | None,
) -> dict[str, Any]:
    true_idx = best_layers(s) if s.shape[0] else np.zeros(0, dtype=int)
    slopes = select(s, idx)
    out = summarize(slopes, n_boot=n_boot, seed=seed)
    out["accuracy"] = routing_accuracy(idx, true_idx)
    out["majority_accuracy"] = (None if train_best_idx is None
                                else majority_accuracy(train_best_idx, true_idx))
    out["top3_accuracy"] = topk_accuracy(scores, true_idx, k=3) if scores is not None else None
    c = paired_comparison(slopes, fixed_slopes, n_boot=n_boot, seed=seed)
    out.update({"diff_vs_fixed": c["diff"], "diff_vs_fixed_ci": c["ci"],
                "diff_vs_fixed_p": c["p"], "diff_vs_fixed_p_less": c["p_less"],
                "diff_vs_fixed_test": c["test"], "diff_vs_fixed_n_nonzero": c["n_nonzero"],
                "diff_vs_fixed_mde": c["mde"], "diff_vs_fixed_verdict": c["verdict"]})
    return out


def _group_block(s: np.ndarray, labels: Sequence[Any], layer_numbers: list[int], n_boot: int,
                 seed: int) -> dict[str, Any]:
    slopes, idx = group_oracle(s, labels)
    lab = [str(x) for x in labels]
    return {**summarize(slopes, n_boot=n_boot, seed=seed),
            "groups": {g: layer_numbers[i] for g, i in idx.items()},
            "group_sizes": {g: lab.count(g) for g in idx}}


def evaluate_variant(
    test_steerability: Float[Any, "n L"],
    letters: Sequence[str] | None,
    fixed_idx: int,
    router_idx: Mapping[str, Any],
    router_scores: Mapping[str, Any] | None = None,
    layers: Sequence[int] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    *,
    form_groups: Sequence[str] | None = None,
    train_best_idx: Int[Any, " n_train"] | None = None,
) -> dict[str, Any]:
    """Score fixed, W2S routers and oracles on one test split.

    Args:
        test_steerability: ``[n, L]`` test-split slopes.
        letters: ``[n]`` matching letters ("A"/"B") for the letter oracle and the per-letter
            blocks; None where the letter diagnostic means nothing (cloze rows, mirrored
            rows): then ``"letter_oracle"`` is None and ``"by_letter"`` is ``{}``.
        fixed_idx: layer *index* chosen on the training split (:func:`fixed_layer`).
        router_idx: router name -> ``[n]`` chosen layer indices.
        router_scores: router name -> ``[n, L]`` scores (or None) for top-3 accuracy.
        layers: the real layer numbers of the L axis (default ``range(L)``); all layers in the
            result are reported as these numbers, never as indices.
        n_boot, seed: bootstrap settings (one seed for every CI and the sign-flip draws).
        form_groups: ``[n]`` labels of the answers' form (e.g. "match-longer",
            "match-shorter", "same-length", or the Yes/No identity) for the answer-form
            oracle; None: ``"form_oracle"`` is None.
        train_best_idx: ``[n_train]`` best-layer indices of the training items, for each
            router block's ``majority_accuracy``; None: it is None.

    Returns:
        ``{"n", "fixed_layer", "fixed", "w2s": {name: ...}, "oracle", "letter_oracle",
        "form_oracle", "by_letter": {"A": {"n", "fixed", "w2s", "oracle"}, "B": ...}}``. Each
        summary block has ``steerability(_ci)`` and ``steerable_fraction(_ci)``; the letter
        oracle adds ``layers`` ({"A": layer, "B": layer}), the form oracle ``groups``
        ({label: layer}) and ``group_sizes``. Each router block adds ``accuracy`` (routed
        layer == the input's own test-set best layer), ``majority_accuracy``,
        ``top3_accuracy`` (None without scores) and the paired comparison with the fixed
        layer (:func:`w2s_lens.evaluation.stats.paired.paired_comparison`): ``diff_vs_fixed``,
        ``diff_vs_fixed_ci`` (95% paired BCa bootstrap), ``diff_vs_fixed_p`` and
        ``diff_vs_fixed_p_less`` (sign-flip one-sided p-values for > 0 and < 0),
        ``diff_vs_fixed_test`` (the test's name), ``diff_vs_fixed_n_nonzero``,
        ``diff_vs_fixed_mde`` (minimal detectable difference, 80% power, one-sided 2.5%,
        from the bootstrap standard error; None when undefined) and
        ``diff_vs_fixed_verdict``. ``by_letter[x]["w2s"]`` has the same per-router structure
        on that letter's inputs. Everything is JSON-serialisable.

    Example:
        >>> import numpy as np
        >>> S = np.array([[0.1, 0.9], [0.8, 0.2], [0.0, 0.5], [0.7, 0.1]])
        >>> r = evaluate_variant(S, ["A", "B", "A", "B"], fixed_idx=1,
        ...                      router_idx={"logreg": [1, 0, 1, 0]}, layers=[4, 8], n_boot=100)
        >>> r["fixed_layer"], r["w2s"]["logreg"]["accuracy"], r["letter_oracle"]["layers"]
        (8, 1.0, {'A': 8, 'B': 4})
        >>> r["w2s"]["logreg"]["diff_vs_fixed_verdict"]  # 2 non-zero differences
        'too few informative items'
    """
    s = _as_2d(test_steerability)
    n, n_layers = s.shape
    layer_numbers = list(range(n_layers)) if layers is None else [int(x) for x in layers]
    if len(layer_numbers) != n_layers:
        raise ValueError(f"{len(layer_numbers)} layer numbers for {n_layers} steerability columns")
    if not 0 <= int(fixed_idx) < n_layers:
        raise ValueError(f"fixed_idx {fixed_idx} out of range [0, {n_layers})")
    let = None if letters is None else _letters(letters, n)
    train_best = None if train_best_idx is None else np.asarray(train_best_idx, int).ravel()
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
                    train_best,
                )
                for name, idx in idx_map.items()
            },
            "oracle": summarize(oracle_slopes[mask], n_boot=n_boot, seed=seed),
        }

    main = block(np.ones(n, dtype=bool))
    result: dict[str, Any] = {
        "n": int(n),
        "fixed_layer": layer_numbers[int(fixed_idx)],
        "fixed": main["fixed"],
        "w2s": main["w2s"],
        "oracle": main["oracle"],
        "letter_oracle": None,
        "form_oracle": None,
        "by_letter": {},
    }
    if let is not None:
        lo_slopes, lo_idx = letter_oracle(s, let) if n else (np.zeros(0), {"A": None, "B": None})
        result["letter_oracle"] = {
            **summarize(lo_slopes, n_boot=n_boot, seed=seed),
            "layers": {k: (None if v is None else layer_numbers[v]) for k, v in lo_idx.items()},
        }
        for letter in LETTERS:
            mask = let == letter
            result["by_letter"][letter] = {"n": int(mask.sum()), **block(mask)}
    if form_groups is not None:
        if len(form_groups) != n:
            raise ValueError(f"{len(form_groups)} form groups for {n} inputs")
        result["form_oracle"] = _group_block(s, form_groups, layer_numbers, n_boot, seed)
    return result
