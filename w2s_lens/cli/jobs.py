"""End-to-end jobs from settings: what each ``w2s-lens`` command runs, one call per command.

Every job checks its preconditions (the output directory, the dataset) *before* loading a
model or writing anything, so a refused run costs seconds and damages nothing; then it loads
the items and the model and calls the library (:func:`w2s_lens.evaluation.pipeline.evaluate`,
:func:`w2s_lens.sweep.runner.run_sweep`, :class:`w2s_lens.routing.bundle.W2S`, ...).

Example:
    >>> from w2s_lens.evaluation.config import EvalConfig
    >>> result = run_evaluation(EvalConfig(dataset="corrigible-neutral-HHH",
    ...                                     data_dir="../shared/data/mwe", n_train=24,
    ...                                     n_test=24), "runs/corrigible")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from w2s_lens.choices import Engine
from w2s_lens.data.datasets import load_dataset, load_prompts
from w2s_lens.data.items import DatasetError
from w2s_lens.data.prompts import PromptFormatter
from w2s_lens.data.splits import balanced, train_test_split
from w2s_lens.evaluation.advice import Advice, advise
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.config_parts import ConfigError
from w2s_lens.evaluation.context import resolve_layers, swept_vectors
from w2s_lens.evaluation.cost import sweep_cost
from w2s_lens.evaluation.pipeline import evaluate
from w2s_lens.evaluation.refit import refit_routers
from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.evaluation.split import load_items, prepare_examples
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.evaluation.storage.runlock import hold
from w2s_lens.models.loading import load_model
from w2s_lens.routing.bundle import W2S
from w2s_lens.routing.embeddings import (
    default_layer,
    embed_examples,
    embedding_kind,
    embedding_name,
)
from w2s_lens.routing.routers import LayerRouter
from w2s_lens.steering.pairs import pairs_from_examples
from w2s_lens.steering.scales import layer_scales
from w2s_lens.steering.vectors import SteeringVectors, train_caa
from w2s_lens.sweep.result import SweepResult
from w2s_lens.sweep.runner import run_sweep

__all__ = ["advise_job", "generate_job", "refit_job", "run_evaluation", "run_sweep_job",
           "train_router_job", "vectors_from_pairs_job"]

log = logging.getLogger(__name__)


def _model(name: str | None, config: EvalConfig | None = None, **kw: Any):
    device = kw.get("device", config.compute.device if config else "auto")
    dtype = kw.get("dtype", config.compute.dtype if config else "float32")
    return load_model(name, device=device, dtype=dtype) if name else load_model(
        device=device, dtype=dtype)


def run_evaluation(config: EvalConfig, out_dir: str | os.PathLike, progress: bool = True,
                   model: Any = None) -> EvaluationResult:
    """``w2s-lens evaluate``: check the output, load data and model, run the comparison.

    Args:
        config: the settings (``config.compute.model``: the model to load; default the
            embedded one).
        out_dir: the run directory (resumed when it holds this run already).
        progress: progress bars.
        model: an already loaded model (skips loading).
    """
    RunDir(out_dir).prepare("evaluation", config.to_dict())
    with hold(out_dir):  # refuse a second process before the model loads
        items, test_items = load_items(config)
        model = model if model is not None else _model(config.compute.model, config)
        return evaluate(model, items, config, out_dir, progress, test_items=test_items)


def refit_job(run_dir: str | os.PathLike, routers: Sequence[str] | None = None,
              data_dir: str | None = None, model: Any = None, device: str | None = None,
              dtype: str | None = None) -> EvaluationResult:
    """``w2s-lens refit``: tune a finished run's routers again from its ``items.csv``
    (:func:`w2s_lens.evaluation.refit.refit_routers`), with its items loaded from
    ``data_dir`` (default: the run's) and formatted with its settings.

    Args:
        run_dir: the finished run (``results.json``, ``run.json``, ``items.csv``).
        routers: router names; None: those tuned on an older grid.
        data_dir: where the run's dataset lives (the run records none when it was given on
            another machine).
        model: an already loaded model (default: load the run's).
        device, dtype: where and in which precision to load it (default: the run's).

    Example:
        >>> r = refit_job("runs/corrigible", ["mlp"])  # doctest: +SKIP
    """
    folder = Path(run_dir)
    for name in ("results.json", "run.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} does not exist: refit needs a finished "
                                    "run (results.json, run.json and items.csv)")
    config = EvalConfig.from_dict(dict(RunDir(folder).read_run()["config"]))
    if data_dir is not None:
        config = config.replace(data_dir=data_dir)
        given = Path(data_dir) / config.data.dataset  # a dataset file the run recorded by name
        if config.data.dataset.endswith((".jsonl", ".json")) and given.is_file():
            config = config.replace(dataset=str(given))
    with hold(folder):
        try:
            items, test_items = load_items(config)
        except DatasetError as err:
            raise DatasetError(f"{err} (the data of the run in {folder}: give their folder "
                               "with --data-dir)") from err
        if model is None:
            kw = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
            model = _model(config.compute.model, config, **kw)
        examples = prepare_examples(model, items, config, test_items)
        return refit_routers(model, examples, folder, routers)


def run_sweep_job(
    config: EvalConfig,
    out_dir: str | os.PathLike,
    split: str = "test",
    variant: str = "base",
    progress: bool = True,
) -> SweepResult:
    """``w2s-lens sweep``: CAA vectors from the training split (or ``config.sweep.vectors``) and a
    layer × multiplier sweep of one split, in the sweep-directory layout of
    :mod:`w2s_lens.evaluation.storage.rundir`. A rerun resumes, reusing the vectors it already has.

    Example:
        >>> res = run_sweep_job(EvalConfig(dataset="default", n_train=8, n_test=4),
        ...                     "runs/sweep")  # doctest: +SKIP
    """
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    if variant not in config.data.variants and variant != "base":
        raise ConfigError(f"variant {variant!r} is not one of {config.data.variants}")
    with hold(out_dir):  # one writer per run directory
        return _sweep_job(config, RunDir(out_dir), split, variant, progress)


def _sweep_job(config: EvalConfig, rd: RunDir, split: str, variant: str,
               progress: bool) -> SweepResult:
    record = {**config.to_dict(), "split": split, "variant": variant}
    resuming = rd.prepare("sweep", record)
    external = (SteeringVectors.load(config.sweep.vectors)
                if config.sweep.vectors is not None else None)
    t0 = time.time()
    items, test_items = load_items(config)
    model = _model(config.compute.model, config)
    if external is not None:
        external.check_model(model)
    if test_items is None:
        train, test = train_test_split(items, config.data.train_fraction, config.data.seed)
    else:
        train, test = items, test_items
    train = train[: config.data.n_train] if config.data.n_train is not None else train
    test = test[: config.data.n_test] if config.data.n_test is not None else test
    chosen = train if split == "train" else test
    if not train or not chosen:
        raise ConfigError(f"the split left {len(train)} training and {len(test)} test items")
    fmt = PromptFormatter(model.tokenizer, system_prompt=config.data.system_prompt,
                          list_options=config.sweep.list_options)
    pairs = fmt.format_many(balanced(train) if config.sweep.both_orders else train, "base")
    shown = balanced(chosen) if config.mirrored else chosen
    examples = fmt.format_many(shown, variant, readout=config.sweep.readout)
    layers = resolve_layers(model, config)
    if external is not None:  # refuse a swept layer the vectors lack, before anything runs
        external = swept_vectors(external, layers, str(config.sweep.vectors))
    if not resuming:
        rd.write_run("sweep", record, {"status": "running"})
    if external is not None:
        vectors = external
    elif resuming and (rd.vectors_dir() / "vectors.json").is_file():
        log.info("resuming: reusing the vectors in %s", rd.vectors_dir())
        vectors = SteeringVectors.load(rd.vectors_dir(), model=model)
    else:
        vectors = train_caa(model, pairs, layers=layers, batch_size=config.compute.batch_size,
                            dataset=config.data.dataset, progress=progress)
        vectors.save(rd.vectors_dir())
    scales = layer_scales(vectors, config.sweep.scale, layers, fraction=config.sweep.fraction)
    capture = default_layer(model) if Engine(config.sweep.engine).captures else None
    cost = sweep_cost(model, vectors, scales, layers, examples, config, rd.path, split)
    log.info("%s", cost.text)  # one line before the sweep: its forward-equivalents, timed
    if cost.warning:
        log.warning("%s", cost.warning)
    sweep = config.sweep
    result = run_sweep(model, vectors, examples, layers=layers, multipliers=sweep.multipliers,
                       engine=sweep.engine, positions=sweep.positions, layer_scale=scales,
                       out_dir=rd.path, chunk_size=config.compute.chunk_size, progress=progress,
                       capture_layer=capture, scoring=sweep.scoring,
                       max_rows=config.compute.max_rows)
    result.metadata.update({"multiplier_scale": config.sweep.scale, "split": split,
                            "variant": variant})
    rd.save_sweep(rd.path, result, examples)
    rd.write_pairs(pairs_from_examples(model, pairs))
    rd.write_run("sweep", record, {
        "model": model.cfg.model_name, "layers": layers, "layer_scale": scales,
        "n_items": len(chosen), "n_examples": len(examples), "n_train_items": len(train),
        "n_vector_pairs": len(pairs), "letter_orders": 2 if config.sweep.both_orders else 1,
        "prompt_format": fmt.settings(), "capture_layer": capture,
        "wall_time_s": round(time.time() - t0, 1)})
    return result


def advise_job(config: EvalConfig, verify: int = 0, progress: bool = True,
               advise_on: str | os.PathLike | None = None) -> Advice:
    """``w2s-lens advise``: load the items and the model, split the items as ``evaluate``
    does, CAA vectors from the training split (or ``config.sweep.vectors``), and first-order layer
    advice on the test split (:func:`w2s_lens.evaluation.advice.advise`); ``verify`` test
    items are swept for real.

    ``advise_on``: a file of A/B items to advise on instead of the test split; then every
    dataset item (the training split of a predefined split) whose question is not among them
    trains the vectors.

    Example:
        >>> adv = advise_job(EvalConfig(dataset="corrigible-neutral-HHH", n_train=48,
        ...                             n_test=24, readout="cloze"), verify=8)  # doctest: +SKIP
    """
    if verify < 0:
        raise ConfigError(f"--verify must be 0 or a positive count, got {verify}")
    items, test_items = load_items(config)
    if advise_on is not None:
        test_items = load_dataset(advise_on)
        asked = {it.question.strip().lower() for it in test_items}
        kept = [it for it in items if it.question.strip().lower() not in asked]
        if len(kept) < len(items):
            log.info("advise: %d dataset item(s) share a question with %s; left out of the "
                     "vectors' training items", len(items) - len(kept), advise_on)
        items = kept
        if not items:
            raise ConfigError(f"no dataset items are left to train the vectors on: every "
                              f"question is in {advise_on}")
    model = _model(config.compute.model, config)
    return advise(model, items, config, test_items, verify=verify, progress=progress)


def train_router_job(
    sweep_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    kind: str = "logreg",
    embedding: str = "resid-last",
    embedding_layer: int | None = None,
    device: str = "auto",
    dtype: str | None = None,
    allow_test_split: bool = False,
) -> W2S:
    """``w2s-lens train-router``: fit a router on a training-split sweep directory and save a
    W2S bundle (mirrored sweeps give one row per item, as in the evaluation).

    A sweep of the test split is refused unless ``allow_test_split`` (a router fitted on test
    items makes those items useless for judging it); a sweep that does not record its split
    is fitted with a warning.

    Example:
        >>> w2s = train_router_job("runs/sweep-train", "runs/router")  # doctest: +SKIP
    """
    rd = RunDir(sweep_dir)
    run = rd.read_run()
    if run.get("kind") != "sweep":
        raise ConfigError(f"{sweep_dir} is not a `w2s-lens sweep` directory")
    config = EvalConfig.from_dict({k: v for k, v in run["config"].items()
                                   if k not in ("split", "variant")})
    split = run["config"].get("split")
    if split is None:
        log.warning("%s does not record which split it swept; routers should be fitted on a "
                    "training split (w2s-lens sweep --split train)", sweep_dir)
    elif split != "train" and not allow_test_split:
        raise ConfigError(f"{sweep_dir} is a sweep of the {split!r} split; fit routers on a "
                          "training sweep (w2s-lens sweep --split train ...), or pass "
                          "--allow-test-split to fit on it anyway (its items then cannot "
                          "judge the router)")
    elif split != "train":
        log.warning("%s is a sweep of the %r split: its items cannot judge this router",
                    sweep_dir, split)
    out = RunDir(out_dir)
    if out.path.exists() and (not out.path.is_dir() or any(out.path.iterdir())):
        raise ConfigError(f"--out {out.path} exists and is not an empty directory")
    model = load_model(run["derived"]["model"], device=device,
                       dtype=dtype if dtype is not None else config.compute.dtype)
    result, examples = rd.load_sweep(rd.path)
    vectors = SteeringVectors.load(rd.vectors_dir(), model=model)
    layer = default_layer(model) if embedding_layer is None else int(embedding_layer)
    if (embedding_kind(embedding).captured_in_sweep and result.captured is not None
            and layer == run["derived"].get("capture_layer")):
        x_pres = result.captured
    else:
        x_pres = embed_examples(model, examples, embedding, layer)
    mirrored = result.mirrored()
    x = result.unit_average(x_pres)
    router = LayerRouter(kind, seed=config.data.seed, model=model.cfg.model_name,
                         dataset=config.data.dataset, embedding=embedding_name(embedding, layer),
                         layers=result.layers, hook=vectors.hook,
                         readout=config.sweep.readout).fit(x, mirrored.steerability)
    fixed = int(result.layers[int(mirrored.steerability.mean(0).argmax())])
    w2s = W2S(model=model, router=router, steerer=vectors, embedding=embedding,
              embedding_layer=layer, prompt_format=run["derived"]["prompt_format"],
              readout=config.sweep.readout, mirror=config.mirrored,
              layer_scale=run["derived"]["layer_scale"], positions=config.sweep.positions,
              fixed_layer=fixed)
    w2s.save(out.path)
    return w2s


def vectors_from_pairs_job(pairs_path: str | os.PathLike, out_dir: str | os.PathLike,
                           model_name: str | None = None, layers: Sequence[int] | None = None,
                           device: str = "auto", dtype: str = "float32",
                           batch_size: int = 8) -> SteeringVectors:
    """``w2s-lens vectors --pairs FILE``: CAA vectors from custom contrast pairs.

    Example:
        >>> vecs = vectors_from_pairs_job("pairs.jsonl", "runs/vecs")  # doctest: +SKIP
    """
    from w2s_lens.steering.pairs import load_pairs, train_caa_from_pairs

    out = Path(out_dir)
    if (out / "vectors.json").exists() or (out.exists() and not out.is_dir()):
        raise ConfigError(f"--out {out} already holds vectors or is a file; choose another")
    load_pairs(pairs_path)  # a broken file fails here, before the model loads
    model = load_model(model_name, device=device, dtype=dtype) if model_name else load_model(
        device=device, dtype=dtype)
    vectors = train_caa_from_pairs(model, pairs_path, layers=layers, batch_size=batch_size,
                                   progress=True)
    vectors.save(out)
    return vectors


def generate_job(bundle_dir: str | os.PathLike, prompts: Sequence[str] = (),
                 dataset: str | None = None, n: int = 3, multiplier: float = 1.0,
                 max_new_tokens: int = 40, model_name: str | None = None,
                 device: str = "auto", dtype: str = "float32",
                 data_dir: str | None = None) -> list[dict[str, Any]]:
    """``w2s-lens generate``: unsteered, fixed-layer and routed continuations of each prompt
    (given, or the first ``n`` of a dataset: open-ended prompts, or A/B questions).

    Example:
        >>> rows = generate_job("runs/demo/caa/routers/logreg", ["Hi"])  # doctest: +SKIP
    """
    from w2s_lens.artifacts.json_files import read_json

    texts = list(prompts)
    if dataset is not None:
        try:
            texts += [p.prompt for p in load_prompts(dataset, data_dir, limit=n)]
        except Exception:  # an A/B file: its questions, with their choices
            texts += [it.question for it in load_dataset(dataset, data_dir, limit=n)]
    if not texts:
        raise ConfigError("give --prompt or --dataset")
    meta = read_json(Path(bundle_dir) / "w2s.json")
    model = load_model(model_name or meta["model"], device=device, dtype=dtype)
    w2s = W2S.load(bundle_dir, model)
    return [w2s.compare(t, multiplier, max_new_tokens) for t in texts]
