"""The W2S evaluation: vectors, cross-fitted training sweeps, routers, test sweeps, comparison.

The pipeline, with the test split kept out of every fitting step:

1. split the items (seeded, deduplicated, stratified by letter) into train and test;
2. one forward pass over the TRAINING contrast pairs (each item in both letter orders) gives
   the per-pair contrasts: their mean is the CAA vector set, and they are L2S's targets;
3. sweep every training input at every layer, each with vectors fitted *without* it
   (``cross_fit`` folds), and label it with its best layer; mirrored (the default for the
   letter readout), an item's propensity is the mean over its two letter orders;
4. choose the fixed layer (best mean training steerability) and fit the routers on training
   embeddings → training labels / curves;
5. sweep the TEST inputs for each variant (BASE and the OOD prompts) with vectors from all
   training items, route them, and score fixed vs W2S vs the per-input oracle, with bootstrap
   intervals over test items, plus the diagnostics the readout allows (the letter oracle on
   single-order letter rows, each letter order on its own when mirrored, the answer-form
   oracle of :mod:`w2s_lens.evaluation.forms` and the answer-form router on cloze rows, the
   training majority layer);
6. the headroom diagnostics (:mod:`w2s_lens.evaluation.headroom.run`): two more sweeps of
   the base test items with vectors from disjoint halves of the training items (retest
   agreement, cross-validated oracle), and the learning curve from the sweeps already made.

``method="l2s"`` runs steps 3-6 with L2S's input-dependent vectors (one MLP per layer predicts
an input's vector from its prompt), ``"both"`` runs CAA and L2S side by side. Only steps 5
and 6 ever see a test input, and nothing computed there flows back.

Example:
    >>> cfg = EvalConfig(dataset="corrigible-neutral-HHH", n_train=24, n_test=24)  # doctest: +SKIP
    >>> result = evaluate(model, items, cfg, out_dir="runs/corrigible")  # doctest: +SKIP
    >>> result.comparison("caa", "base", "logreg").diff_ci  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from transformer_lens import HookedTransformer

from w2s_lens.artifacts.provenance import library_versions
from w2s_lens.choices import Readout, RouterView
from w2s_lens.data.examples import SteeringExample
from w2s_lens.data.items import ABItem
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.context import EvalContext, unique
from w2s_lens.evaluation.cost import log_cost
from w2s_lens.evaluation.forms import row_forms
from w2s_lens.evaluation.headroom.run import RETEST_SPLITS, form_router_block, method_headroom
from w2s_lens.evaluation.method_vectors import (
    caa_train_vectors,
    l2s_test_vectors,
    l2s_train_vectors,
)
from w2s_lens.evaluation.results.evidence import read_evidence, variant_evidence
from w2s_lens.evaluation.results.item_table import ITEMS_FILE, item_rows, write_items
from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.evaluation.split import SplitExamples, items_dataset, prepare_examples
from w2s_lens.evaluation.stats.metrics import evaluate_variant, fixed_layer
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.evaluation.storage.runlock import hold
from w2s_lens.routing.bundle import W2S
from w2s_lens.routing.labels import best_layers
from w2s_lens.routing.routers import LayerRouter
from w2s_lens.routing.views import split_router_name, view_embedding_name
from w2s_lens.steering.activations import hook_name
from w2s_lens.steering.l2s.steerer import L2SSteerer
from w2s_lens.steering.vectors import SteeringVectors, model_name
from w2s_lens.sweep.result import SweepResult

__all__ = ["evaluate", "evaluate_examples"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- one method


def _score_variant(ctx: EvalContext, pres: SweepResult, test_exs: list[SteeringExample],
                   routers: dict[str, LayerRouter], fixed_idx: int,
                   train_best: np.ndarray, variant: str | None = None
                   ) -> tuple[dict[str, Any], dict[str, Any], SweepResult, dict[str, np.ndarray]]:
    """Fixed vs W2S vs oracles on one test sweep, with the diagnostics its readout allows:
    the letter oracle on single-order letter rows only (a mirrored row has no one letter),
    the form oracle on cloze rows, and each letter order on its own when mirrored.

    Returns:
        the variant's results block, its ``routing.json`` record, the scored view of the sweep
        and the router inputs (view -> array) aligned with it.
    """
    cfg, layers = ctx.config, ctx.layers
    x_pres = ctx.views(test_exs, pres, variant)
    test = ctx.view(pres)
    x_test = {v: ctx.per_input(pres, x) for v, x in x_pres.items()}

    def route(xs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: r.predict(xs[split_router_name(k)[1]]) for k, r in routers.items()}

    idx = route(x_test)
    scores = {k: r.scores(x_test[split_router_name(k)[1]]) for k, r in routers.items()}
    cloze = Readout(cfg.sweep.readout).scores_options
    letters = test.matching_letters if not cloze and test is pres else None
    forms = row_forms(test_exs, test.units, ctx.model.tokenizer) if cloze else None
    block = evaluate_variant(test.steerability, letters, fixed_idx, idx, scores, layers=layers,
                             n_boot=cfg.statistics.n_boot, seed=cfg.data.seed, form_groups=forms,
                             train_best_idx=train_best)
    block["n_presentations"] = len(test_exs)
    block["single_order"] = None
    if test is not pres:  # the letter-dependent diagnostic: each order on its own
        block["single_order"] = evaluate_variant(
            pres.steerability, pres.matching_letters, fixed_idx, route(x_pres), None,
            layers=layers, n_boot=cfg.statistics.n_boot, seed=cfg.data.seed,
            train_best_idx=train_best)
    return block, {
        "ids": test.ids, "fixed_layer": int(layers[fixed_idx]),
        "oracle_layer": [int(layers[i]) for i in np.argmax(test.steerability, axis=1)],
        "router_layer": {k: [int(layers[i]) for i in v] for k, v in idx.items()}}, test, x_test


def _evaluate_method(ctx: EvalContext, method: str) -> dict[str, Any]:
    cfg, layers, rd = ctx.config, ctx.layers, ctx.rd
    exs = ctx.exs
    steerer: SteeringVectors | L2SSteerer
    if method == "caa":
        train_vecs = caa_train_vectors(ctx)
        steerer = ctx.caa
    else:
        train_vecs, steerer = l2s_train_vectors(ctx)
    if rd is not None:
        steerer.save(rd.vectors_dir(method))

    # training sweep → labels, fixed layer, routers (mirrored: one row per item)
    train_pres = ctx.sweep(train_vecs, exs.sweep_train, "train", method)
    train = ctx.view(train_pres)
    x_train = {v: ctx.per_input(train_pres, x)
               for v, x in ctx.views(exs.sweep_train, train_pres, "train").items()}
    s_train = train.steerability
    fixed_idx = fixed_layer(s_train)
    train_best = best_layers(s_train)  # the cross-fitted training labels
    routers: dict[str, LayerRouter] = {}
    bundles: dict[str, W2S] = {}
    for name in cfg.router_names:
        kind, view = split_router_name(name)
        router = LayerRouter(kind, seed=cfg.data.seed, model=model_name(ctx.model),
                             dataset=cfg.data.dataset, layers=layers, hook="resid_pre",
                             embedding=view_embedding_name(view, ctx.emb_name),
                             readout=cfg.sweep.readout)
        routers[name] = router.fit(x_train[view], s_train)
        if RouterView(view).needs_options:  # a bundle routes new prompts, without options
            continue
        bundles[kind] = W2S(model=ctx.model, router=router, steerer=steerer,
                            embedding=cfg.routing.embedding, embedding_layer=ctx.emb_layer,
                            prompt_format=exs.prompt_format, readout=cfg.sweep.readout,
                            mirror=cfg.mirrored, layer_scale=ctx.scales,
                            positions=cfg.sweep.positions, fixed_layer=layers[fixed_idx])
        if rd is not None:
            bundles[kind].save(rd.router_dir(method, kind))
    if cfg.statistics.generations and rd is not None and exs.test_questions and bundles:
        log.info("%s: generating for %d test prompts", method, cfg.statistics.generations)
        w2s = bundles.get(cfg.routing.primary_router) or next(iter(bundles.values()))
        rd.write_generations(method, [w2s.compare(q) for q in
                                      exs.test_questions[: cfg.statistics.generations]])

    variants: dict[str, Any] = {}
    for variant, test_exs in exs.test.items():
        vecs = ctx.caa if method == "caa" else l2s_test_vectors(ctx, steerer, test_exs)
        pres = ctx.sweep(vecs, test_exs, variant, method)
        variants[variant], routing, view, x_view = _score_variant(
            ctx, pres, test_exs, routers, fixed_idx, train_best, variant)
        if variant == "base":
            vector_norms, base_view, x_base = ctx.vector_norms(vecs), view, x_view
        form = form_router_block(ctx, train, view, test_exs, fixed_idx, train_best)
        if form is not None:  # cloze: a router that sees only the answers' form (from BASE)
            variants[variant]["form_router"] = form
        if rd is not None:
            rd.write_routing(rd.sweep_dir(variant, method), routing)
    # is there a per-input layer to learn? retest halves, cross-validated oracle, learning curve
    headroom = method_headroom(ctx, method, train, x_train, base_view, x_base)

    for variant in variants:  # OOD variants: per view, headroom not measured there
        if variant != "base":
            variants[variant]["reading"] = variant_evidence(
                {"variants": variants}, variant, cfg.routing.primary_router,
                cfg.routing.router_inputs)
    base = variants["base"]
    fixed_mean = base["fixed"]["steerability"]
    w2s_mean = base["w2s"][cfg.primary_name]["steerability"]
    counts = dict(zip(*np.unique(train_best, return_counts=True)))
    return {
        "fixed_layer": int(layers[fixed_idx]),
        "train_fixed_steerability": float(s_train[:, fixed_idx].mean()),
        "train_best_layer_counts": {int(layers[i]): int(c) for i, c in counts.items()},
        "router_cv": {k: r.cv_info_ for k, r in routers.items()},
        # mean norm per layer of the vectors the base test inputs were steered with (λ = 1):
        # L2S's per-input vectors need not have CAA's norm
        "vector_norms": vector_norms,
        # a ratio only reads as "how much better" when the fixed layer steers at all
        "w2s_over_fixed": (w2s_mean / fixed_mean) if fixed_mean and fixed_mean > 0 else None,
        "variants": variants,
        "headroom": headroom,
        "reading": read_evidence(headroom, base["w2s"], fixed_mean, cfg.routing.primary_router,
                                 cfg.routing.router_inputs, base.get("n")),
    }


# --------------------------------------------------------------------------- entry points


def evaluate_examples(
    model: HookedTransformer,
    examples: SplitExamples,
    config: EvalConfig,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Run the W2S comparison on already formatted examples (see the module docstring).

    Args:
        model: the HookedTransformer.
        examples: training and test prompts (:func:`prepare_examples`, or a synthetic task).
        config: the settings.
        out_dir: where to write the run directory (:mod:`w2s_lens.evaluation.storage.rundir`); a
            rerun with the same settings resumes its sweeps. None: nothing is written.
        progress: progress bars.

    Returns:
        the typed result (:class:`~w2s_lens.evaluation.results.typed.EvaluationResult`, the
        content of ``results.json``; read back from the run directory when ``out_dir`` is
        given, so its ``path`` is set): ``result.methods[method].variants[variant]`` holds
        fixed / W2S / oracle summaries over test *items*
        (:func:`w2s_lens.evaluation.stats.metrics.evaluate_variant`), with the diagnostics the
        readout allows: the letter oracle on single-order letter rows, the form oracle
        (:mod:`w2s_lens.evaluation.forms`) on cloze rows, and ``single_order`` (each letter
        order on its own, with its letter oracle) when mirrored.

    Example:
        >>> res = evaluate_examples(model, exs, EvalConfig(), progress=False)  # doctest: +SKIP
    """
    if out_dir is None:
        return EvaluationResult.from_dict(
            _evaluate_examples(model, examples, config, None, progress))
    with hold(out_dir):  # one writer per run directory (re-entrant in this process)
        rd = RunDir(out_dir)
        _evaluate_examples(model, examples, config, rd, progress)
        return EvaluationResult.load(rd.path)


def _evaluate_examples(model: HookedTransformer, examples: SplitExamples, config: EvalConfig,
                       rd: RunDir | None, progress: bool) -> dict[str, Any]:
    t0 = time.time()
    if rd is not None and not rd.prepare("evaluation", config.to_dict()):
        rd.write_run("evaluation", config.to_dict(), {"status": "running"})
    ctx = EvalContext(model, examples, config, rd, progress)
    log_cost(ctx)  # one line: the sweeps' forward-equivalents and a timed estimate
    methods = {m: _evaluate_method(ctx, m) for m in config.methods}
    name = model_name(model)
    test_units = unique([ex.unit for ex in examples.test["base"]])
    results = {
        "model": name,
        "dataset": config.data.dataset,
        "readout": config.sweep.readout,
        "mirror": config.mirrored,
        "length_norm": config.length_norm,
        "scoring": config.sweep.scoring if Readout(config.sweep.readout).scores_options else None,
        "positions": config.sweep.positions,
        "list_options": config.sweep.list_options,
        "scale": config.sweep.scale,
        "fraction": config.sweep.fraction if config.sweep.scale == "relative" else None,
        "methods_run": list(config.methods),
        "layers": ctx.layers,
        "routers": list(config.routing.routers),
        "router_inputs": list(config.routing.router_inputs),
        "primary_router": config.routing.primary_router,
        "embedding": ctx.emb_name,
        "n_train": len(ctx.train_units),
        "n_test": len(test_units),
        "split_seed": config.data.seed,
        "cross_fit": config.statistics.cross_fit,
        "methods": methods,
    }
    if ctx.view_costs:  # what the router views cost per sweep (unsteered passes only)
        results["view_costs"] = ctx.view_costs
    if rd is not None:
        rd.write_run("evaluation", config.to_dict(), {
            "model": name,
            "n_layers": model.cfg.n_layers,
            "d_model": model.cfg.d_model,
            "dtype": str(model.cfg.dtype).replace("torch.", ""),
            "device": str(model.cfg.device),
            "layers": ctx.layers,
            "hook_names": [hook_name(layer) for layer in ctx.layers],
            "layer_scale": ctx.scales,
            "vector_norms": [float(x) for x in ctx.caa.norms()],
            "embedding": ctx.emb_name,
            "l2s_input_layer": ctx.l2s_input if "l2s" in config.methods else None,
            "n_train_items": len(ctx.train_units),
            "n_test_items": len(test_units),
            "n_vector_pairs": len(examples.vector_train),
            "train_items": ctx.train_units,
            "test_items": test_units,
            "prompt_format": examples.prompt_format,
            "wall_time_s": round(time.time() - t0, 1),
            "versions": library_versions(),
        })
        rd.write_results(results)
        sweeps = ["train", *config.data.variants, *RETEST_SPLITS]  # not an older run's folders
        write_items(rd.path / ITEMS_FILE, [row for m in config.methods
                                           for row in item_rows(rd, m, config.mirrored, sweeps)])
    return results


def evaluate(
    model: HookedTransformer,
    items: Sequence[ABItem],
    config: EvalConfig,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
    test_items: Sequence[ABItem] | None = None,
) -> EvaluationResult:
    """Split, format and evaluate a dataset of A/B items (see the module docstring).

    ``test_items`` gives a predefined test split (e.g. CAA's generate/test folders); then
    ``items`` are all training items.
    With ``config.data.dataset`` left at its default, the run is labelled with the items' own
    dataset name when they share one (:func:`items_dataset`).

    Example:
        >>> result = evaluate(model, items, EvalConfig(n_train=24, n_test=24))  # doctest: +SKIP
        >>> result.to_pandas()  # one row per method × variant × router  # doctest: +SKIP
    """
    config = items_dataset(config, [*items, *(test_items or [])])
    if out_dir is not None:
        RunDir(out_dir).prepare("evaluation", config.to_dict())
    return evaluate_examples(model, prepare_examples(model, items, config, test_items), config,
                             out_dir, progress)
