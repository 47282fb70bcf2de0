"""The headroom diagnostics inside every evaluation: is there a per-input layer to learn?

For each method, :func:`method_headroom` adds to ``results["methods"][method]["headroom"]``:

* ``retest``: the TRAINING items are split into two disjoint, seeded, letter-balanced halves
  (both orders of an item together); the method's vectors are fitted on each half (CAA: the
  mean of the already computed contrasts of the half's pairs, no new forward pass; L2S: one
  steerer per half, as for the cross-fitting folds), and the base test items (at most
  ``EvalConfig.statistics.retest_max_items``, a seeded letter-balanced subset) are swept with
  each, into ``RUN/<method>/retest-1`` and ``retest-2`` (resumable like every sweep). The two
  ``[n_items, L]`` steerability matrices (mirrored like the main sweep) give
  :func:`~w2s_lens.evaluation.headroom.diagnostics.retest_agreement`; with given vectors (no
  training
  contrasts) CAA's retest is ``{"skipped": reason}``;
* ``xv``: :func:`~w2s_lens.evaluation.headroom.diagnostics.cross_validated_oracle` on the same
  matrices,
  its fixed layers as layer numbers;
* ``learning_curve``: :func:`~w2s_lens.evaluation.headroom.diagnostics.learning_curve` from the
  sweeps
  already made (cross-fitted training slopes and embeddings vs the base test ones), for every
  router kind of the run (the primary one first), no extra forward pass.

On cloze runs :func:`form_router_block` scores a "router" that sees only the answers' form
(:func:`~w2s_lens.evaluation.headroom.diagnostics.form_router`) like the W2S routers.

Only training items are ever fitted on: the halves, the vectors and the learning curve's
subsets come from the training split; test items are only swept and scored.

Example:
    >>> h = method_headroom(ctx, "caa", train_view, x_train, base, x_base)  # doctest: +SKIP
    >>> h["retest"]["kappa"], h["xv"]["verdict"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from w2s_lens.choices import Readout, RouterView
from w2s_lens.data.examples import SteeringExample
from w2s_lens.evaluation.context import EvalContext, unique
from w2s_lens.evaluation.forms import row_forms
from w2s_lens.evaluation.headroom.diagnostics import (
    cross_validated_oracle,
    form_router,
    learning_curve,
    learning_sizes,
    nested_subsets,
    retest_agreement,
)
from w2s_lens.evaluation.method_vectors import fit_l2s, l2s_data, l2s_test_vectors
from w2s_lens.evaluation.stats.metrics import evaluate_variant
from w2s_lens.evaluation.storage.rundir import RETEST_PREFIX
from w2s_lens.routing.views import router_name
from w2s_lens.steering.vectors import InputVectors, SteeringVectors, caa_from_differences
from w2s_lens.sweep.result import SweepResult

__all__ = ["LEARNING_NOTE", "RETEST_SPLITS", "form_router_block", "half_vectors",
           "learning_block", "method_headroom", "retest_block", "retest_units",
           "training_halves", "unit_strata"]

#: The sweep folders of the two retest halves (``RUN/<method>/<name>``).
RETEST_SPLITS = (f"{RETEST_PREFIX}1", f"{RETEST_PREFIX}2")
#: What the learning curve varies, and what it does not.
LEARNING_NOTE = ("vectors from the full training set; only the fixed layer and the routers see "
                 "fewer items (no extra forward pass)")
#: Repeats (seeds) of every learning-curve size below the full training set.
LEARNING_REPEATS = 3


def unit_strata(examples: Sequence[SteeringExample], units: Sequence[str]) -> list[str]:
    """The stratum of each item in ``units``: the matching letter of its first presentation
    (how the split stratifies; both orders of a mirrored item are one unit).

    Example:
        >>> ex = SteeringExample("d:0", "t", (1,), matching_token_id=2, non_matching_token_id=3,
        ...                      matching_letter="B")
        >>> unit_strata([ex], ["d:0"])
        ['B']
    """
    first: dict[str, str] = {}
    for ex in examples:
        first.setdefault(ex.unit, ex.matching_letter)
    return [first[u] for u in units]


def retest_units(examples: Sequence[SteeringExample], cap: int | None, seed: int) -> list[str]:
    """The test items the retest sweeps: all of them, or a seeded letter-balanced ``cap`` of
    them (in their original order).

    Example:
        >>> exs = [SteeringExample(f"d:{i}", "t", (1,), matching_token_id=2,
        ...        non_matching_token_id=3, matching_letter="AB"[i % 2]) for i in range(6)]
        >>> len(retest_units(exs, 4, seed=0)), retest_units(exs, None, seed=0)[:2]
        (4, ['d:0', 'd:1'])
    """
    units = unique([ex.unit for ex in examples])
    if cap is None or cap >= len(units):
        return units
    keep = nested_subsets(unit_strata(examples, units), [cap], seed)[0]
    return [units[i] for i in keep]


def training_halves(units: Sequence[str], strata: Sequence[Any], seed: int
                    ) -> tuple[list[str], list[str]]:
    """Two disjoint halves of the training items, seeded and balanced over ``strata``.

    Example:
        >>> a, b = training_halves(["u0", "u1", "u2", "u3"], ["A", "B", "A", "B"], seed=0)
        >>> len(a), len(b), set(a) & set(b)
        (2, 2, set())
    """
    first = set(nested_subsets(strata, [len(units) // 2], seed)[0].tolist())
    return ([u for i, u in enumerate(units) if i in first],
            [u for i, u in enumerate(units) if i not in first])


def half_vectors(ctx: EvalContext, method: str, half: Sequence[str],
                 exs: list[SteeringExample]) -> SteeringVectors | InputVectors:
    """The vectors ``exs`` are steered with when only the training items ``half`` fit them:
    CAA, the mean contrast of the half's pairs (``ctx.acts``, no new forward pass); L2S, a
    steerer fitted on the half's presentations.

    Example:
        >>> vecs = half_vectors(ctx, "caa", halves[0], ctx.exs.test["base"])  # doctest: +SKIP
    """
    acts, keep = ctx.acts, set(half)
    assert acts is not None  # the caller skips the retest for given vectors
    if method == "caa":
        rows = [i for i, u in enumerate(acts.units) if u in keep]
        return caa_from_differences(ctx.model, acts.diffs[torch.tensor(rows)],
                                    [ctx.exs.vector_train[i] for i in rows], ctx.layers,
                                    dataset=ctx.config.data.dataset,
                                    resid_norms=acts.answer_resid_norms)
    train = ctx.exs.sweep_train
    X, Y = l2s_data(ctx, train)
    inside = torch.tensor([ex.unit in keep for ex in train])
    steerer = fit_l2s(ctx, X[inside], Y[inside], [ex.unit for ex in train if ex.unit in keep])
    return l2s_test_vectors(ctx, steerer, exs)


def retest_block(ctx: EvalContext, method: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(retest, xv)`` of one method (see the module docstring), or ``{"skipped": reason}``
    for both when the retest is off or cannot run.

    Example:
        >>> retest, xv = retest_block(ctx, "caa")  # doctest: +SKIP
    """
    cfg, layers = ctx.config, ctx.layers
    reason = None
    if not cfg.statistics.retest:
        reason = "the retest is off (EvalConfig.statistics.retest=False, --no-retest)"
    elif ctx.acts is None:
        reason = ("given vectors (--vectors): there are no training contrasts to split into "
                  "two halves")
    elif len(ctx.train_units) < 2:
        reason = "fewer than 2 training items: no two halves"
    if reason is not None:
        return {"skipped": reason}, {"skipped": reason}
    train_exs = ctx.exs.sweep_train
    halves = training_halves(ctx.train_units, unit_strata(train_exs, ctx.train_units),
                             cfg.data.seed)
    keep = set(retest_units(ctx.exs.test["base"], cfg.statistics.retest_max_items, cfg.data.seed))
    exs = [ex for ex in ctx.exs.test["base"] if ex.unit in keep]
    views: list[SweepResult] = [
        ctx.view(ctx.sweep(half_vectors(ctx, method, half, exs), exs, where, method))
        for half, where in zip(halves, RETEST_SPLITS)]
    if views[0].ids != views[1].ids:
        raise RuntimeError("the two retest sweeps list different items")
    s1, s2 = views[0].steerability, views[1].steerability
    retest = {**retest_agreement(s1, s2), "n_items": int(s1.shape[0]),
              "half_sizes": [len(h) for h in halves], "layers": list(layers),
              "splits": list(RETEST_SPLITS)}
    xv = cross_validated_oracle(s1, s2, n_boot=cfg.statistics.n_boot, seed=cfg.data.seed)
    xv["xv_fixed_layers"] = [None if i is None else int(layers[i])
                             for i in xv["xv_fixed_layers"]]
    return retest, xv


def learning_block(ctx: EvalContext, train: SweepResult, x_train: dict[str, np.ndarray],
                   test: SweepResult, x_test: dict[str, np.ndarray]) -> dict[str, Any]:
    """The learning curve from the sweeps already made: every router kind (primary first) on
    the question view, and the primary kind on every other view (rows named like the routers,
    e.g. ``logreg@options``): ``{"rows", "sizes", "strata", "note"}``.

    Example:
        >>> learning_block(ctx, train_view, x_train, base_view, x_base)["sizes"]  # doctest: +SKIP
        [12, 24]
    """
    cfg = ctx.config
    primary = cfg.routing.primary_router
    kinds = [primary, *(k for k in cfg.routing.routers if k != primary)]
    sizes = learning_sizes(train.steerability.shape[0])
    strata = unit_strata(ctx.exs.sweep_train, train.units)
    rows = []
    for view in cfg.routing.router_inputs:
        view_kinds = kinds if RouterView(view) is RouterView.QUESTION else kinds[:1]
        for row in learning_curve(train.steerability, x_train[view], test.steerability,
                                  x_test[view], view_kinds, strata=strata, sizes=sizes,
                                  repeats=LEARNING_REPEATS, seed=cfg.data.seed,
                                  n_boot=cfg.statistics.n_boot):
            rows.append({**row, "router": router_name(row["router"], view)})
    return {"rows": rows, "sizes": sizes, "repeats": LEARNING_REPEATS,
            "strata": "matching letter", "note": LEARNING_NOTE}


def form_router_block(ctx: EvalContext, train: SweepResult, test: SweepResult,
                      test_exs: list[SteeringExample], fixed_idx: int,
                      train_best: np.ndarray) -> dict[str, Any] | None:
    """The answer-form router on a cloze test sweep (None on letter runs), scored like a W2S
    router (:func:`~w2s_lens.evaluation.stats.metrics.evaluate_variant`'s router block: accuracy,
    ``diff_vs_fixed`` with the sign-flip test and MDE), plus ``groups`` ({form: layer}) and
    ``fallback`` (test forms unseen in training, routed to the fixed layer).

    Example:
        >>> block = form_router_block(ctx, train, base, exs, 1, best)  # doctest: +SKIP
        >>> block["groups"]  # doctest: +SKIP
        {'match-longer': 3, 'same-length': 1}
    """
    cfg, layers, tok = ctx.config, ctx.layers, ctx.model.tokenizer
    if not Readout(cfg.sweep.readout).scores_options:
        return None
    train_forms = row_forms(ctx.exs.sweep_train, train.units, tok)
    test_forms = row_forms(test_exs, test.units, tok)
    idx, groups = form_router(train.steerability, train_forms, test_forms, fixed_idx)
    block = evaluate_variant(test.steerability, None, fixed_idx, {"form_router": idx},
                             layers=layers, n_boot=cfg.statistics.n_boot, seed=cfg.data.seed,
                             train_best_idx=train_best)["w2s"]["form_router"]
    block["groups"] = {g: int(layers[i]) for g, i in groups.items()}
    block["fallback"] = sorted(set(test_forms) - set(groups))
    return block


def method_headroom(ctx: EvalContext, method: str, train: SweepResult,
                    x_train: dict[str, np.ndarray], test: SweepResult,
                    x_test: dict[str, np.ndarray]) -> dict[str, Any]:
    """``{"retest", "xv", "learning_curve"}`` of one method (see the module docstring).

    Example:
        >>> method_headroom(ctx, "caa", train_view, x_train, base_view, x_base)  # doctest: +SKIP
    """
    retest, xv = retest_block(ctx, method)
    return {"retest": retest, "xv": xv,
            "learning_curve": learning_block(ctx, train, x_train, test, x_test)}
