"""The vectors each method steers with: cross-fitted CAA, and L2S's fitted networks.

Training presentations are steered with vectors fitted *without* their own item
(``EvalConfig.statistics.cross_fit`` folds, :func:`w2s_lens.evaluation.context.folds`); test
inputs with vectors fitted on all training items (CAA: :attr:`EvalContext.caa`; L2S: the final
steerer's prediction from the test prompt).

Example:
    >>> train_vecs = caa_train_vectors(ctx)  # doctest: +SKIP
    >>> l2s_vecs, steerer = l2s_train_vectors(ctx)  # doctest: +SKIP
    >>> test_vecs = l2s_test_vectors(ctx, steerer, ctx.exs.test["base"])  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from w2s_lens.data.examples import SteeringExample
from w2s_lens.evaluation.context import EvalContext
from w2s_lens.steering.l2s.steerer import L2SSteerer, prompt_features
from w2s_lens.steering.vectors import InputVectors, SteeringVectors, model_name

__all__ = ["caa_train_vectors", "fit_l2s", "l2s_data", "l2s_test_vectors", "l2s_train_vectors"]


def caa_train_vectors(ctx: EvalContext) -> InputVectors | SteeringVectors:
    """Cross-fitted CAA vectors for every training presentation (the shared CAA vectors when
    in-sample or when the vectors were given).

    Example:
        >>> caa_train_vectors(ctx).vectors.shape  # doctest: +SKIP
        torch.Size([48, 3, 32])
    """
    exs = ctx.exs.sweep_train
    if ctx.config.statistics.cross_fit == 0 or ctx.acts is None:
        return ctx.caa
    pair_units = np.array(ctx.acts.units)
    out = torch.empty(len(exs), len(ctx.layers), ctx.model.cfg.d_model)
    for k in range(ctx.config.statistics.cross_fit):
        keep = np.array([ctx.folds.get(u, -2) != k for u in pair_units])
        vec = ctx.acts.diffs[torch.from_numpy(keep)].mean(dim=0)
        for i, ex in enumerate(exs):
            if ctx.folds[ex.unit] == k:
                out[i] = vec
    return InputVectors(out, ctx.layers, [ex.id for ex in exs],
                        metadata={**ctx.caa.metadata, "method": "caa",
                                  "cross_fit": ctx.config.statistics.cross_fit})


def l2s_data(ctx: EvalContext, exs: list[SteeringExample]
             ) -> tuple[Float[Tensor, "n d_in"], Float[Tensor, "n layer d_model"]]:
    """``(X, Y)`` of training presentations: prompt features and P2S targets (the pair of the
    same presentation when there is one, else the mean over the item's pairs).

    Example:
        >>> X, Y = l2s_data(ctx, ctx.exs.sweep_train)  # doctest: +SKIP
    """
    acts, vec = ctx.acts, ctx.exs.vector_train
    assert acts is not None  # L2S always computes the contrasts
    by_id = {ex.id: i for i, ex in enumerate(vec)}
    by_unit: dict[str, list[int]] = {}
    for i, u in enumerate(acts.units):
        by_unit.setdefault(u, []).append(i)
    X = torch.empty(len(exs), acts.prompt_resid.shape[1])
    Y = torch.empty(len(exs), *acts.diffs.shape[1:])
    missing = []
    for i, ex in enumerate(exs):
        j = by_id.get(ex.id)
        if j is not None and vec[j].tokens == ex.tokens:
            X[i] = acts.prompt_resid[j]
            Y[i] = acts.diffs[j]
        else:
            missing.append(i)
            Y[i] = acts.diffs[by_unit[ex.unit]].mean(dim=0)
    if missing:
        X[missing] = prompt_features(ctx.model, [exs[i].tokens for i in missing], ctx.l2s_input,
                                     batch_size=ctx.config.compute.batch_size)
    return X, Y


def fit_l2s(ctx: EvalContext, X: Float[Tensor, "n d_in"], Y: Float[Tensor, "n layer d_model"],
            units: list[str]) -> L2SSteerer:
    """One L2S steerer fitted on ``(X, Y)`` (validation split grouped by ``units``).

    Example:
        >>> steerer = fit_l2s(ctx, X, Y, [ex.unit for ex in ctx.exs.sweep_train])  # doctest: +SKIP
    """
    cfg = ctx.config.l2s
    if cfg.input_layer != ctx.l2s_input:
        cfg = replace(cfg, input_layer=ctx.l2s_input)
    steerer = L2SSteerer(cfg, model_name(ctx.model), dataset=ctx.config.data.dataset)
    return steerer.fit(X, Y, ctx.layers, groups=units)


def l2s_train_vectors(ctx: EvalContext) -> tuple[InputVectors, L2SSteerer]:
    """Cross-fitted L2S vectors for every training presentation, and the final steerer.

    Example:
        >>> vecs, steerer = l2s_train_vectors(ctx)  # doctest: +SKIP
    """
    exs = ctx.exs.sweep_train
    X, Y = l2s_data(ctx, exs)
    units = [ex.unit for ex in exs]
    final = fit_l2s(ctx, X, Y, units)
    if ctx.config.statistics.cross_fit == 0:
        pred = final.predict(X)
    else:
        pred = torch.empty_like(Y)
        for k in range(ctx.config.statistics.cross_fit):
            inside = torch.tensor([ctx.folds[u] == k for u in units])
            fold_model = fit_l2s(ctx, X[~inside], Y[~inside],
                                 [u for u, f in zip(units, inside.tolist()) if not f])
            pred[inside] = fold_model.predict(X[inside])
    meta = {"model": model_name(ctx.model), "d_model": ctx.model.cfg.d_model, "method": "l2s",
            "dataset": ctx.config.data.dataset, "cross_fit": ctx.config.statistics.cross_fit}
    return InputVectors(pred, ctx.layers, [ex.id for ex in exs], metadata=meta), final


def l2s_test_vectors(ctx: EvalContext, steerer: L2SSteerer,
                     exs: list[SteeringExample]) -> InputVectors:
    """The final steerer's vectors for test presentations ``exs``.

    Example:
        >>> l2s_test_vectors(ctx, steerer, ctx.exs.test["base"]).ids[:1]  # doctest: +SKIP
        ['synthetic:0']
    """
    X = prompt_features(ctx.model, [ex.tokens for ex in exs], ctx.l2s_input,
                        batch_size=ctx.config.compute.batch_size)
    meta = {"model": model_name(ctx.model), "d_model": ctx.model.cfg.d_model, "method": "l2s",
            "dataset": ctx.config.data.dataset}
    return InputVectors(steerer.predict(X), ctx.layers, [ex.id for ex in exs], metadata=meta)
