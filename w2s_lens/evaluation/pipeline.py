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
   intervals over test items, plus the single-order and letter-oracle diagnostics.

``method="l2s"`` runs steps 3-5 with L2S's input-dependent vectors (one MLP per layer predicts
an input's vector from its prompt), ``"both"`` runs CAA and L2S side by side. Only step 5
ever sees a test input, and nothing computed there flows back.

Example:
    >>> cfg = EvalConfig(dataset="corrigible-neutral-HHH", n_train=24, n_test=24)  # doctest: +SKIP
    >>> results = evaluate(model, items, cfg, out_dir="runs/corrigible")  # doctest: +SKIP
    >>> base = results["methods"]["caa"]["variants"]["base"]  # doctest: +SKIP
    >>> base["w2s"]["logreg"]["diff_vs_fixed_ci"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformer_lens import HookedTransformer

from w2s_lens.artifacts import library_versions
from w2s_lens.data.datasets import ABItem, balanced, train_test_split
from w2s_lens.data.examples import SteeringExample
from w2s_lens.data.prompts import PromptFormatter
from w2s_lens.evaluation.config import ConfigError, EvalConfig
from w2s_lens.evaluation.metrics import evaluate_variant, fixed_layer
from w2s_lens.evaluation.rundir import RunDir
from w2s_lens.routing.bundle import W2S
from w2s_lens.routing.embeddings import default_layer, embed_examples, embedding_name
from w2s_lens.routing.routers import LayerRouter
from w2s_lens.steering.activations import ContrastActivations, contrast_residuals, hook_name
from w2s_lens.steering.l2s import L2SSteerer, prompt_features
from w2s_lens.steering.scales import layer_scales
from w2s_lens.steering.vectors import (
    InputVectors,
    SteeringVectors,
    caa_from_differences,
    model_name,
)
from w2s_lens.sweep.runner import SweepResult, run_sweep

__all__ = ["ConfigError", "EvalConfig", "SplitExamples", "evaluate", "evaluate_examples",
           "prepare_examples", "resolve_layers"]

log = logging.getLogger(__name__)


@dataclass
class SplitExamples:
    """Formatted examples of one run.

    Attributes:
        vector_train: training contrast pairs in the letter format (both letter orders when
            ``both_orders``): the CAA vectors' and L2S's training data.
        sweep_train: training prompts swept for labels and the fixed layer, in the run's
            readout (both letter orders when mirrored).
        test: variant -> test prompts, in the run's readout (both orders when mirrored).
        prompt_format: the formatter's settings (recorded in bundles), or None for examples
            that do not come from a chat template (synthetic tasks).
        test_questions: the test items' questions as plain user messages (for generations).
    """

    vector_train: list[SteeringExample]
    sweep_train: list[SteeringExample]
    test: dict[str, list[SteeringExample]] = field(default_factory=dict)
    prompt_format: dict[str, Any] | None = None
    test_questions: list[str] = field(default_factory=list)


def prepare_examples(
    model: HookedTransformer,
    items: Sequence[ABItem],
    config: EvalConfig,
    test_items: Sequence[ABItem] | None = None,
) -> SplitExamples:
    """Split ``items`` (or take a predefined ``test_items`` split) and format them.

    Example:
        >>> exs = prepare_examples(model, items, EvalConfig(n_train=8, n_test=8))  # doctest: +SKIP
        >>> len(exs.sweep_train)  # 8 items in both letter orders  # doctest: +SKIP
        16
    """
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer; use evaluate_examples with your own "
                         "SteeringExamples")
    if test_items is None:
        train, test = train_test_split(items, config.train_fraction, config.seed)
    else:  # a predefined split: letter-balanced order, so a cap keeps the balance
        train = train_test_split(items, 1.0, config.seed)[0]
        test = train_test_split(test_items, 1.0, config.seed)[0]
    if config.n_train is not None:
        train = train[: config.n_train]
    if config.n_test is not None:
        test = test[: config.n_test]
    if not train or not test:
        raise ConfigError(f"the split left {len(train)} training and {len(test)} test items; "
                          "give more items or change train_fraction")
    fmt = PromptFormatter(model.tokenizer, system_prompt=config.system_prompt)

    def shown(its: list[ABItem]) -> list[ABItem]:
        return balanced(its) if config.mirrored else its

    return SplitExamples(
        vector_train=fmt.format_many(balanced(train) if config.both_orders else train, "base"),
        sweep_train=fmt.format_many(shown(train), "base", readout=config.readout),
        test={v: fmt.format_many(shown(test), v, readout=config.readout)
              for v in config.variants},
        prompt_format=fmt.settings(),
        test_questions=[it.question for it in test],
    )


def resolve_layers(model: HookedTransformer, config: EvalConfig) -> list[int]:
    """The steered layers: ``config.layers``, or every layer but 0 (see :class:`EvalConfig`)."""
    n = model.cfg.n_layers
    layers = list(range(1, n)) if config.layers is None else list(config.layers)
    bad = [x for x in layers if not 0 <= x < n]
    if bad:
        raise ConfigError(f"EvalConfig.layers {bad} are outside this model's 0..{n - 1}")
    return layers


# --------------------------------------------------------------------------- the pieces


def _folds(units: list[str], k: int, seed: int) -> dict[str, int]:
    """Cross-fitting folds over training items (0 folds: every item in fold -1, in-sample)."""
    if k == 0:
        return {u: -1 for u in units}
    if len(units) < k:
        raise ConfigError(f"cross_fit={k} folds need at least {k} training items, got "
                          f"{len(units)}")
    order = np.random.default_rng(seed).permutation(len(units))
    return {units[i]: int(r % k) for r, i in enumerate(order)}


def _unique(seq: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(seq))


class _Context:
    """What every method shares within one evaluation."""

    def __init__(self, model: HookedTransformer, exs: SplitExamples, config: EvalConfig,
                 rd: RunDir | None, progress: bool) -> None:
        self.model, self.exs, self.config, self.rd, self.progress = model, exs, config, rd, progress
        self.layers = resolve_layers(model, config)
        self.emb_layer = (default_layer(model) if config.embedding_layer is None
                          else int(config.embedding_layer))
        self.emb_name = embedding_name(config.embedding, self.emb_layer)
        self.capture = (self.emb_layer if config.embedding == "resid-last"
                        and config.engine == "fast" else None)
        self.l2s_input = (default_layer(model) if config.l2s.input_layer is None
                          else int(config.l2s.input_layer))
        self.acts: ContrastActivations | None = None
        if config.vectors is not None:  # given vectors: they never saw the training items
            self.caa = SteeringVectors.load(config.vectors, model=model)
            missing = [x for x in self.layers if x not in self.caa.layers]
            if missing:
                raise ConfigError(f"the vectors in {config.vectors} lack layers {missing}")
        else:
            log.info("contrast pairs: one pass over %d training pairs", len(exs.vector_train))
            self.acts = contrast_residuals(
                model, exs.vector_train, self.layers, input_layer=self.l2s_input,
                batch_size=config.batch_size, progress=progress)
            self.caa = caa_from_differences(model, self.acts.diffs, exs.vector_train,
                                            self.layers, dataset=config.dataset,
                                            resid_norms=self.acts.answer_resid_norms)
        self.scales = layer_scales(self.caa, config.scale, self.layers, fraction=config.fraction)
        self.train_units = _unique([ex.unit for ex in exs.sweep_train])
        self.folds = _folds(self.train_units, config.cross_fit, config.seed)

    def sweep(self, vectors: SteeringVectors | InputVectors, exs: list[SteeringExample],
              where: str, method: str) -> SweepResult:
        folder = None if self.rd is None else self.rd.sweep_dir(where, method)
        res = run_sweep(self.model, vectors, exs, layers=self.layers,
                        multipliers=self.config.multipliers, engine=self.config.engine,
                        positions=self.config.positions, layer_scale=self.scales,
                        out_dir=folder, chunk_size=self.config.chunk_size,
                        progress=self.progress, desc=f"{method} sweep {where}",
                        capture_layer=self.capture, length_norm=self.config.length_norm,
                        max_rows=self.config.max_rows)
        res.metadata.update({"multiplier_scale": self.config.scale, "split": where,
                             "method": method})
        if self.rd is not None and folder is not None:
            self.rd.save_sweep(folder, res, exs)
        return res

    def view(self, res: SweepResult) -> SweepResult:
        """The sweep as scored: one row per item when mirrored, else one per presentation."""
        return res.mirrored() if self.config.mirrored else res

    def per_input(self, res: SweepResult, x: np.ndarray) -> np.ndarray:
        """Router inputs aligned with :meth:`view` (a mirrored item: its orders' mean)."""
        return res.unit_average(x) if self.config.mirrored else x

    def embed(self, exs: list[SteeringExample], res: SweepResult) -> np.ndarray:
        """Router inputs per presentation (captured by the fast sweep when possible)."""
        if res.captured is not None:
            return np.asarray(res.captured, dtype=np.float32)
        return embed_examples(self.model, exs, self.config.embedding, self.emb_layer,
                              self.config.batch_size)


# --------------------------------------------------------------------------- vectors per method


def _caa_train_vectors(ctx: _Context) -> InputVectors | SteeringVectors:
    """Cross-fitted CAA vectors for every training presentation."""
    exs = ctx.exs.sweep_train
    if ctx.config.cross_fit == 0 or ctx.acts is None:
        return ctx.caa
    pair_units = np.array(ctx.acts.units)
    out = torch.empty(len(exs), len(ctx.layers), ctx.model.cfg.d_model)
    for k in range(ctx.config.cross_fit):
        keep = np.array([ctx.folds.get(u, -2) != k for u in pair_units])
        vec = ctx.acts.diffs[torch.from_numpy(keep)].mean(dim=0)
        for i, ex in enumerate(exs):
            if ctx.folds[ex.unit] == k:
                out[i] = vec
    return InputVectors(out, ctx.layers, [ex.id for ex in exs],
                        metadata={**ctx.caa.metadata, "method": "caa",
                                  "cross_fit": ctx.config.cross_fit})


def _l2s_data(ctx: _Context, exs: list[SteeringExample]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, Y)`` of training presentations: prompt features and P2S targets (the pair of the
    same presentation when there is one, else the mean over the item's pairs)."""
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
                                     batch_size=ctx.config.batch_size)
    return X, Y


def _fit_l2s(ctx: _Context, X: torch.Tensor, Y: torch.Tensor, units: list[str]) -> L2SSteerer:
    cfg = ctx.config.l2s
    if cfg.input_layer != ctx.l2s_input:
        from dataclasses import replace

        cfg = replace(cfg, input_layer=ctx.l2s_input)
    steerer = L2SSteerer(cfg, model_name(ctx.model), dataset=ctx.config.dataset)
    return steerer.fit(X, Y, ctx.layers, groups=units)


def _l2s_train_vectors(ctx: _Context) -> tuple[InputVectors, L2SSteerer]:
    """Cross-fitted L2S vectors for every training presentation, and the final steerer."""
    exs = ctx.exs.sweep_train
    X, Y = _l2s_data(ctx, exs)
    units = [ex.unit for ex in exs]
    final = _fit_l2s(ctx, X, Y, units)
    if ctx.config.cross_fit == 0:
        pred = final.predict(X)
    else:
        pred = torch.empty_like(Y)
        for k in range(ctx.config.cross_fit):
            inside = torch.tensor([ctx.folds[u] == k for u in units])
            fold_model = _fit_l2s(ctx, X[~inside], Y[~inside],
                                  [u for u, f in zip(units, inside.tolist()) if not f])
            pred[inside] = fold_model.predict(X[inside])
    meta = {"model": model_name(ctx.model), "d_model": ctx.model.cfg.d_model, "method": "l2s",
            "dataset": ctx.config.dataset, "cross_fit": ctx.config.cross_fit}
    return InputVectors(pred, ctx.layers, [ex.id for ex in exs], metadata=meta), final


def _l2s_test_vectors(ctx: _Context, steerer: L2SSteerer,
                      exs: list[SteeringExample]) -> InputVectors:
    X = prompt_features(ctx.model, [ex.tokens for ex in exs], ctx.l2s_input,
                        batch_size=ctx.config.batch_size)
    meta = {"model": model_name(ctx.model), "d_model": ctx.model.cfg.d_model, "method": "l2s",
            "dataset": ctx.config.dataset}
    return InputVectors(steerer.predict(X), ctx.layers, [ex.id for ex in exs], metadata=meta)


# --------------------------------------------------------------------------- one method


def _evaluate_method(ctx: _Context, method: str) -> dict[str, Any]:
    cfg, layers, rd = ctx.config, ctx.layers, ctx.rd
    exs = ctx.exs
    steerer: SteeringVectors | L2SSteerer
    if method == "caa":
        train_vecs = _caa_train_vectors(ctx)
        steerer = ctx.caa
    else:
        train_vecs, steerer = _l2s_train_vectors(ctx)
    if rd is not None:
        steerer.save(rd.vectors_dir(method))

    # training sweep → labels, fixed layer, routers (mirrored: one row per item)
    train_pres = ctx.sweep(train_vecs, exs.sweep_train, "train", method)
    train = ctx.view(train_pres)
    x_train = ctx.per_input(train_pres, ctx.embed(exs.sweep_train, train_pres))
    s_train = train.steerability
    fixed_idx = fixed_layer(s_train)
    routers: dict[str, LayerRouter] = {}
    bundles: dict[str, W2S] = {}
    for kind in cfg.routers:
        router = LayerRouter(kind, seed=cfg.seed, model=model_name(ctx.model),
                             dataset=cfg.dataset, embedding=ctx.emb_name, layers=layers,
                             hook="resid_pre", readout=cfg.readout)
        routers[kind] = router.fit(x_train, s_train)
        bundles[kind] = W2S(ctx.model, router, steerer, cfg.embedding, ctx.emb_layer,
                            exs.prompt_format or {}, cfg.readout, cfg.mirrored, ctx.scales,
                            cfg.positions, layers[fixed_idx])
        if rd is not None:
            bundles[kind].save(rd.router_dir(method, kind))
    if cfg.generations and rd is not None and exs.test_questions:
        log.info("%s: generating for %d test prompts", method, cfg.generations)
        rd.write_generations(method, [bundles[cfg.primary_router].compare(q) for q in
                                      exs.test_questions[: cfg.generations]])

    variants: dict[str, Any] = {}
    for variant, test_exs in exs.test.items():
        vecs = ctx.caa if method == "caa" else _l2s_test_vectors(ctx, steerer, test_exs)
        pres = ctx.sweep(vecs, test_exs, variant, method)
        x_pres = ctx.embed(test_exs, pres)
        test = ctx.view(pres)
        x_test = ctx.per_input(pres, x_pres)
        if variant == "base":
            norms = (vecs.vectors.norm(dim=-1) if isinstance(vecs, InputVectors)
                     else vecs.vectors.norm(dim=-1)[None]) * torch.tensor(ctx.scales)
            vector_norms = [float(x) for x in norms.mean(dim=0)]
        s_test = test.steerability
        idx = {k: r.predict(x_test) for k, r in routers.items()}
        scores = {k: r.scores(x_test) for k, r in routers.items()}
        block = evaluate_variant(s_test, test.matching_letters, fixed_idx, idx, scores,
                                 layers=layers, n_boot=cfg.n_boot, seed=cfg.seed)
        block["n_presentations"] = len(test_exs)
        block["single_order"] = None
        if test is not pres:  # the letter-dependent diagnostic: each order on its own
            block["single_order"] = evaluate_variant(
                pres.steerability, pres.matching_letters, fixed_idx,
                {k: r.predict(x_pres) for k, r in routers.items()}, None, layers=layers,
                n_boot=cfg.n_boot, seed=cfg.seed)
        variants[variant] = block
        if rd is not None:
            rd.write_routing(rd.sweep_dir(variant, method), {
                "ids": test.ids, "fixed_layer": int(layers[fixed_idx]),
                "oracle_layer": [int(layers[i]) for i in np.argmax(s_test, axis=1)],
                "router_layer": {k: [int(layers[i]) for i in v] for k, v in idx.items()}})

    base = variants["base"]
    fixed_mean = base["fixed"]["steerability"]
    w2s_mean = base["w2s"][cfg.primary_router]["steerability"]
    counts = dict(zip(*np.unique(np.argmax(s_train, 1), return_counts=True)))
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
    }


# --------------------------------------------------------------------------- entry points


def evaluate_examples(
    model: HookedTransformer,
    examples: SplitExamples,
    config: EvalConfig,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the W2S comparison on already formatted examples (see the module docstring).

    Args:
        model: the HookedTransformer.
        examples: training and test prompts (:func:`prepare_examples`, or a synthetic task).
        config: the settings.
        out_dir: where to write the run directory (:mod:`w2s_lens.evaluation.rundir`); a rerun with the
            same settings resumes its sweeps. None: nothing is written.
        progress: progress bars.

    Returns:
        the ``results.json`` dict: ``results["methods"][method]["variants"][variant]`` holds
        fixed / W2S / oracle / letter-oracle summaries (:func:`w2s_lens.evaluation.metrics.evaluate_variant`)
        over test *items*, and ``single_order`` (each letter order on its own) when mirrored.

    Example:
        >>> res = evaluate_examples(model, exs, EvalConfig(), progress=False)  # doctest: +SKIP
    """
    t0 = time.time()
    rd = RunDir(out_dir) if out_dir is not None else None
    if rd is not None and not rd.prepare("evaluation", config.to_dict()):
        rd.write_run("evaluation", config.to_dict(), {"status": "running"})
    ctx = _Context(model, examples, config, rd, progress)
    methods = {m: _evaluate_method(ctx, m) for m in config.methods}
    name = model_name(model)
    test_units = _unique([ex.unit for ex in examples.test["base"]])
    results = {
        "model": name,
        "dataset": config.dataset,
        "readout": config.readout,
        "mirror": config.mirrored,
        "length_norm": config.length_norm if config.readout == "cloze" else False,
        "methods_run": list(config.methods),
        "layers": ctx.layers,
        "routers": list(config.routers),
        "primary_router": config.primary_router,
        "embedding": ctx.emb_name,
        "n_train": len(ctx.train_units),
        "n_test": len(test_units),
        "split_seed": config.seed,
        "cross_fit": config.cross_fit,
        "methods": methods,
    }
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
    return results


def evaluate(
    model: HookedTransformer,
    items: Sequence[ABItem],
    config: EvalConfig,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
    test_items: Sequence[ABItem] | None = None,
) -> dict[str, Any]:
    """Split, format and evaluate a dataset of A/B items (see the module docstring).

    ``test_items`` gives a predefined test split (e.g. CAA's generate/test folders); then
    ``items`` are all training items.

    Example:
        >>> results = evaluate(model, items, EvalConfig(n_train=24, n_test=24))  # doctest: +SKIP
    """
    if out_dir is not None:
        RunDir(out_dir).prepare("evaluation", config.to_dict())
    return evaluate_examples(model, prepare_examples(model, items, config, test_items), config,
                             out_dir, progress)
