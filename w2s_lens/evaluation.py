"""The W2S evaluation: vectors, training sweep, routers, test sweeps, comparison.

The pipeline, with the test split kept out of every fitting step:

1. split the items (seeded) into train and test;
2. train CAA vectors on the TRAINING items, each in both letter orders (letter balance);
3. sweep every training input at every layer; label each with its best layer;
4. choose the fixed layer (best mean training steerability) and fit the routers on
   training embeddings → training labels / curves;
5. sweep the TEST inputs for each variant (BASE and the OOD prompts), embed them, route them,
   and score fixed vs W2S vs the per-input oracle vs the letter oracle with bootstrap CIs.

Only step 5 ever sees a test input, and nothing computed there flows back.

Example:
    >>> cfg = EvalConfig(dataset="corrigible-neutral-HHH", n_train=50, n_test=50)  # doctest: +SKIP
    >>> results = evaluate(model, items, cfg, out_dir="runs/corrigible")  # doctest: +SKIP
    >>> results["variants"]["base"]["w2s"]["logreg"]["diff_vs_fixed_ci"]  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformer_lens import HookedTransformer

from w2s_lens.artifacts import library_versions, write_json
from w2s_lens.datasets import ABItem, balanced, train_test_split
from w2s_lens.embeddings import default_layer, embed_examples, embedding_name
from w2s_lens.examples import SteeringExample
from w2s_lens.metrics import evaluate_variant, fixed_layer
from w2s_lens.prompts import DEFAULT_SYSTEM_PROMPT, VARIANTS, PromptFormatter
from w2s_lens.router import ROUTER_KINDS, LayerRouter
from w2s_lens.scales import DEFAULT_FRACTION, layer_scales
from w2s_lens.sweep import DEFAULT_MULTIPLIERS, SweepResult, run_sweep
from w2s_lens.vectors import model_name, train_caa
from w2s_lens.w2s import W2S

__all__ = ["ConfigError", "EvalConfig", "SplitExamples", "evaluate", "evaluate_examples",
           "prepare_examples"]


class ConfigError(ValueError):
    """An evaluation setting is invalid."""


@dataclass
class EvalConfig:
    """Settings of one evaluation run (all recorded in ``run.json``).

    Attributes:
        dataset: dataset name (recorded; the items are passed separately).
        variants: which test variants to sweep (``base`` and the OOD ones).
        n_train, n_test: caps on the number of training / test items (None: all).
        train_fraction, seed: the split.
        layers: layers to sweep (None: all).
        multipliers: the λ grid.
        engine, positions: see :func:`w2s_lens.sweep.run_sweep`.
        scale, fraction: multiplier scale (see :mod:`w2s_lens.scales`).
        embedding, embedding_layer: router input (see :mod:`w2s_lens.embeddings`).
        routers: router kinds to fit; ``primary_router`` is the one called "W2S" in summaries.
        both_orders: train vectors on both letter orders (default; False reproduces the paper's
            single order).
        system_prompt: the base system prompt.
        n_boot: bootstrap resamples for confidence intervals.
        batch_size: prompts per forward pass for residual caching.
    """

    dataset: str = "unknown"
    variants: tuple[str, ...] = VARIANTS
    n_train: int | None = None
    n_test: int | None = None
    train_fraction: float = 0.5
    seed: int = 0
    layers: list[int] | None = None
    multipliers: tuple[float, ...] = DEFAULT_MULTIPLIERS
    engine: str = "fast"
    positions: str = "from_last"
    scale: str = "raw"
    fraction: float = DEFAULT_FRACTION
    embedding: str = "resid-last"
    embedding_layer: int | None = None
    routers: tuple[str, ...] = ROUTER_KINDS
    primary_router: str = "logreg"
    both_orders: bool = True
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    n_boot: int = 2000
    batch_size: int = 8

    def __post_init__(self) -> None:
        for v in self.variants:
            if v not in VARIANTS:
                raise ConfigError(f"unknown variant {v!r}; choose from {VARIANTS}")
        for r in self.routers:
            if r not in ROUTER_KINDS:
                raise ConfigError(f"unknown router {r!r}; choose from {ROUTER_KINDS}")
        if self.primary_router not in self.routers:
            raise ConfigError(f"primary_router {self.primary_router!r} is not among {self.routers}")
        if "base" not in self.variants:
            raise ConfigError("variants must include 'base' (the in-distribution comparison)")


@dataclass
class SplitExamples:
    """Formatted examples of one run.

    Attributes:
        vector_train: training prompts for CAA (both letter orders when balanced).
        sweep_train: training prompts swept for router labels and the fixed layer.
        test: variant -> test prompts.
    """

    vector_train: list[SteeringExample]
    sweep_train: list[SteeringExample]
    test: dict[str, list[SteeringExample]] = field(default_factory=dict)


def prepare_examples(
    model: HookedTransformer, items: Sequence[ABItem], config: EvalConfig
) -> SplitExamples:
    """Split ``items`` and format them with the model's chat template."""
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer; use evaluate_examples with your own "
                         "SteeringExamples")
    train, test = train_test_split(items, config.train_fraction, config.seed)
    if config.n_train is not None:
        train = train[: config.n_train]
    if config.n_test is not None:
        test = test[: config.n_test]
    if not train or not test:
        raise ConfigError(f"the split left {len(train)} training and {len(test)} test items; "
                         "give more items or change train_fraction")
    fmt = PromptFormatter(model.tokenizer, system_prompt=config.system_prompt)
    vec_items = balanced(train) if config.both_orders else list(train)
    return SplitExamples(
        vector_train=fmt.format_many(vec_items, "base"),
        sweep_train=fmt.format_many(train, "base"),
        test={v: fmt.format_many(test, v) for v in config.variants},
    )


def _routing_record(ids: Sequence[str], layers: Sequence[int], fixed_idx: int,
                    oracle_idx: np.ndarray, router_idx: Mapping[str, np.ndarray]) -> dict:
    return {
        "ids": list(ids),
        "fixed_layer": int(layers[fixed_idx]),
        "oracle_layer": [int(layers[i]) for i in oracle_idx],
        "router_layer": {name: [int(layers[i]) for i in idx] for name, idx in router_idx.items()},
    }


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
        out_dir: where to write the run directory (vectors, sweeps, routers, results); the
            sweeps resume from it if interrupted. None: nothing is written.
        progress: progress bars.

    Returns:
        the ``results.json`` dict.
    """
    t0 = time.time()
    out = Path(out_dir) if out_dir is not None else None
    name = model_name(model)
    sub = (lambda s: out / s) if out is not None else (lambda s: None)

    # 1. vectors: training split only
    vectors = train_caa(model, examples.vector_train, layers=config.layers,
                        batch_size=config.batch_size, dataset=config.dataset, progress=progress)
    layers = list(vectors.layers)
    scales = layer_scales(vectors, config.scale, layers, fraction=config.fraction)
    if out is not None:
        vectors.save(out)

    emb_layer = (default_layer(model) if config.embedding_layer is None
                 else int(config.embedding_layer))
    emb_name = embedding_name(config.embedding, emb_layer)
    # the resid-last embedding comes free from the fast engine's caching pass
    capture = emb_layer if (config.embedding == "resid-last" and config.engine == "fast") \
        else None

    def sweep(exs: list[SteeringExample], where: str) -> SweepResult:
        res = run_sweep(model, vectors, exs, layers=layers, multipliers=config.multipliers,
                        engine=config.engine, positions=config.positions, layer_scale=scales,
                        out_dir=sub(where), progress=progress, desc=f"sweep {where}",
                        capture_layer=capture)
        res.metadata.update({"multiplier_scale": config.scale, "split": where})
        if out is not None:
            res.save(out / where)
        return res

    # 2. training sweep → labels, fixed layer, routers
    train_sweep = sweep(examples.sweep_train, "train")
    assert train_sweep.layers == layers  # column j of every sweep is layer layers[j]
    s_train = train_sweep.steerability
    fixed_idx = fixed_layer(s_train)

    def embed(exs: list[SteeringExample], res: SweepResult):
        if res.captured is not None:
            return res.captured
        return embed_examples(model, exs, config.embedding, emb_layer, config.batch_size)

    x_train = embed(examples.sweep_train, train_sweep)
    routers: dict[str, LayerRouter] = {}
    for kind in config.routers:
        router = LayerRouter(kind, seed=config.seed, model=name, dataset=config.dataset,
                             embedding=emb_name, layers=layers, hook=vectors.hook)
        routers[kind] = router.fit(x_train, s_train)
        if out is not None:
            W2S(model, vectors, router, config.embedding, emb_layer, scales,
                config.positions).save(out / "routers" / kind)

    # 3. test variants: nothing below feeds back into steps 1-2
    variant_results: dict[str, Any] = {}
    for variant, exs in examples.test.items():
        test_sweep = sweep(exs, variant)
        s_test = test_sweep.steerability
        x_test = embed(exs, test_sweep)
        router_idx = {k: r.predict(x_test) for k, r in routers.items()}
        router_scores = {k: r.scores(x_test) for k, r in routers.items()}
        variant_results[variant] = evaluate_variant(
            s_test, test_sweep.matching_letters, fixed_idx, router_idx, router_scores,
            layers=layers, n_boot=config.n_boot, seed=config.seed)
        if out is not None:
            write_json(out / variant / "routing.json", _routing_record(
                test_sweep.ids, layers, fixed_idx, np.argmax(s_test, axis=1), router_idx))

    base = variant_results["base"]
    fixed_mean = base["fixed"]["steerability"]
    w2s_mean = base["w2s"][config.primary_router]["steerability"]
    results = {
        "model": name,
        "dataset": config.dataset,
        "layers": layers,
        "routers": list(config.routers),
        "primary_router": config.primary_router,
        "embedding": emb_name,
        "n_train": len(examples.sweep_train),
        "n_test": len(examples.test["base"]),
        "train_best_layer_counts": {
            int(layers[i]): int(c) for i, c in zip(*np.unique(np.argmax(s_train, 1),
                                                              return_counts=True))},
        "router_cv": {k: r.cv_info_ for k, r in routers.items()},
        # a ratio only reads as "how much better" when the fixed layer steers at all
        "w2s_over_fixed": (w2s_mean / fixed_mean) if fixed_mean and fixed_mean > 0 else None,
        "variants": variant_results,
    }
    if out is not None:
        run = {
            "model": name,
            **{k: v for k, v in asdict(config).items()},
            "n_train": len(examples.sweep_train),
            "n_test": len(examples.test["base"]),
            "n_train_cap": config.n_train,
            "n_test_cap": config.n_test,
            "hook": vectors.hook,
            "hook_names": [vectors.hook_name(layer) for layer in layers],
            "multiplier_scale": config.scale,
            "layer_scale": scales,
            "vector_norms": [float(x) for x in vectors.norms()],
            "n_vector_pairs": len(examples.vector_train),
            "wall_time_s": round(time.time() - t0, 1),
            "versions": library_versions(),
        }
        write_json(out / "run.json", run)
        write_json(out / "results.json", results)
    return results


def evaluate(
    model: HookedTransformer,
    items: Sequence[ABItem],
    config: EvalConfig,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Split, format and evaluate a dataset of A/B items (see the module docstring)."""
    return evaluate_examples(model, prepare_examples(model, items, config), config, out_dir,
                             progress)
