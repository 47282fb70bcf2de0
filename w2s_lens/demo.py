"""``w2s-lens demo``: the story of the toolkit in one run.

1. **The positive control** (seconds): a hand-built model whose input families can each be
   steered only at their own layer. The unchanged pipeline must find those layers, and W2S
   must beat the best fixed layer beyond the noise.
2. **A real model on a dataset where it steers**: the embedded Qwen2.5-Coder-0.5B on
   corrigible-neutral-HHH (from ``--data-dir``/``$W2S_DATA_DIR``, or downloaded when online;
   offline without a copy, the 100-item sample shipped with w2s-lens,
   ``corrigible-neutral-HHH-sample``, and the demo says so). To stay within minutes on a CPU it
   steers a grid of layers (:data:`DEMO_LAYERS`) and takes 24 training and 24 test items
   (:func:`demo_config`; explicit settings win). It prints a few prompts with the model's
   answer probabilities, the evaluation table, the fixed layer's effect with its interval,
   where the behaviour is encoded (best-layer counts over the test items), the W2S verdict
   with its interval (and the minimal detectable difference when the results carry one), and
   writes an HTML report.

Example:
    >>> run_demo(EvalConfig(dataset="corrigible-neutral-HHH", variants=("base",)),
    ...          "runs/demo")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from w2s_lens.choices import DEFAULT_MODEL
from w2s_lens.data.datasets import DATASET_NAMES
from w2s_lens.data.items import ABItem, DatasetError
from w2s_lens.data.prompts import PromptFormatter
from w2s_lens.data.samples import SAMPLE_DATASET_NAME
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.pipeline import evaluate, evaluate_examples
from w2s_lens.evaluation.split import SplitExamples, load_items
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.models.loading import load_model
from w2s_lens.report.tables.summary import fmt_ci, ratio_line, results_table

__all__ = ["DEMO_LAYERS", "DEMO_N_TEST", "DEMO_N_TRAIN", "demo_config", "model_summary",
           "resolve_dataset", "run_control", "run_demo"]

log = logging.getLogger(__name__)

#: The layers the demo steers on the default model (24 layers): a grid around the middle,
#: where CAA steers corrigible-neutral-HHH on Qwen2.5-Coder-0.5B (about layer 15).
DEMO_LAYERS: tuple[int, ...] = (3, 7, 11, 13, 15, 17, 19, 23)
DEMO_N_TRAIN = 24
DEMO_N_TEST = 24


def _stage(n: int, text: str) -> None:
    print(f"\n{'=' * 78}\n[{n}] {text}\n{'=' * 78}", flush=True)


def run_control(out_dir: str | os.PathLike | None = None, seed: int = 0) -> dict[str, Any]:
    """The synthetic positive control through the unchanged pipeline (a few seconds).

    Example:
        >>> res = run_control()  # doctest: +SKIP
        >>> res["methods"]["caa"]["w2s_over_fixed"] > 1  # doctest: +SKIP
    """
    from w2s_lens.controls.synthetic import build_control

    control = build_control("positive", seed=seed)
    train = control.make_examples(36, seed=seed + 1, both_orders=True)
    test = control.make_examples(36, seed=seed + 2, both_orders=True)
    cfg = EvalConfig(dataset="synthetic-positive", variants=("base",), routers=("logreg",),
                     layers=tuple(sorted(set(range(1, control.n_layers)))), n_boot=2000,
                     seed=seed)
    res = evaluate_examples(control.model, SplitExamples(train, train, {"base": test}), cfg,
                            out_dir, progress=False).to_dict()
    res["constructed_layers"] = list(control.family_layers)
    return res


def demo_config(config: EvalConfig) -> EvalConfig:
    """``config`` with the demo's sizes where it leaves them open: :data:`DEMO_N_TRAIN` and
    :data:`DEMO_N_TEST` items, and :data:`DEMO_LAYERS` on the default model (any other model:
    every layer).

    Example:
        >>> cfg = demo_config(EvalConfig(dataset="corrigible-neutral-HHH"))
        >>> cfg.n_train, cfg.n_test, cfg.layers
        (24, 24, (3, 7, 11, 13, 15, 17, 19, 23))
        >>> demo_config(EvalConfig(n_train=8, layers=(1, 2))).layers
        (1, 2)
    """
    changes: dict[str, Any] = {}
    if config.n_train is None:
        changes["n_train"] = DEMO_N_TRAIN
    if config.n_test is None:
        changes["n_test"] = DEMO_N_TEST
    if config.layers is None and config.model in (None, DEFAULT_MODEL):
        changes["layers"] = DEMO_LAYERS
    return replace(config, **changes)


def resolve_dataset(
    config: EvalConfig,
) -> tuple[EvalConfig, list[ABItem], list[ABItem] | None, str | None]:
    """``(config, items, test items, note)``: the dataset asked for, or, when a known dataset
    (:data:`~w2s_lens.data.datasets.DATASET_NAMES`) cannot be had (no ``--data-dir``, no
    ``$W2S_DATA_DIR``, no cached copy, no network), the shipped
    ``corrigible-neutral-HHH-sample``, with ``note`` saying why. Other failures (a bad file, an
    unknown name) propagate.

    Example:
        >>> cfg, items, test, note = resolve_dataset(
        ...     EvalConfig(dataset="corrigible-neutral-HHH"))  # offline, no copy  # doctest: +SKIP
        >>> cfg.dataset, len(items), test  # doctest: +SKIP
        ('corrigible-neutral-HHH-sample', 100, None)
    """
    try:
        items, test_items = load_items(config)
        return config, items, test_items, None
    except DatasetError as exc:
        if config.dataset not in DATASET_NAMES:
            raise
        note = (f"{config.dataset} is not available ({exc}).\nUsing the 100-item sample "
                f"shipped with w2s-lens instead ({SAMPLE_DATASET_NAME}; pass --data-dir with "
                "the anthropics/evals files for the full dataset).")
    config = replace(config, dataset=SAMPLE_DATASET_NAME)
    items, test_items = load_items(config)
    return config, items, test_items, note


def _show_prompts(model, items, config: EvalConfig, n: int) -> None:
    fmt = PromptFormatter(model.tokenizer, system_prompt=config.system_prompt)
    for item in items[:n]:
        ex = fmt.format(item)
        with torch.inference_mode():
            logits = model(torch.tensor([ex.tokens], device=model.cfg.device))[0, -1].float()
        probs = torch.softmax(logits, -1)
        a, b = fmt.letter_token_ids["A"], fmt.letter_token_ids["B"]
        print("-" * 78)
        print(ex.text[-600:])
        print(f"--> P(A)={probs[a]:.3f}  P(B)={probs[b]:.3f}  matching behaviour: "
              f"{item.matching}")


def _reading(ci: Any) -> str:
    lo, hi = (ci or [None, None])[:2]
    if lo is None or hi is None:
        return "no interval"
    return "excludes 0" if lo > 0 or hi < 0 else "includes 0"


def _counts(layers: Any) -> str:
    return ", ".join(f"layer {k}: {v}" for k, v in sorted(Counter(layers).items(),
                                                         key=lambda kv: (-kv[1], kv[0])))


def model_summary(results: Mapping[str, Any],
                  routing: Mapping[str, Mapping[str, Any] | None] | None = None) -> list[str]:
    """The demo's reading of a run, per method on the base variant: the fixed layer's effect
    with its interval, where the behaviour is encoded (best-layer counts over the test items
    from ``routing[method]``, the base test sweep's ``routing.json``, and over the training
    items), and the W2S verdict with its interval and, when present, the minimal detectable
    difference (``diff_vs_fixed_mde``).

    Example:
        >>> lines = model_summary(RunDir("runs/demo/model").read_results())  # doctest: +SKIP
    """
    primary = results["primary_router"]
    lines = []
    for method, block in results["methods"].items():
        r = block["variants"]["base"]
        f, w = r["fixed"], r["w2s"][primary]
        ci = f["steerability_ci"]
        lines.append(f"{method}: fixed layer {r['fixed_layer']} (the best mean layer on the "
                     f"training items): steerability {fmt_ci(f['steerability'], ci)} on "
                     f"{r['n']} test items; the 95% interval {_reading(ci)}")
        rec = (routing or {}).get(method)
        if rec and rec.get("oracle_layer"):
            lines.append(f"  behaviour encoded at (best layer per test item, "
                         f"{len(rec['oracle_layer'])} items): {_counts(rec['oracle_layer'])}")
        train = block.get("train_best_layer_counts") or {}
        if train:
            lines.append("  best layer per training item (cross-fitted): " + _counts(
                Counter({int(k): int(v) for k, v in train.items()}).elements()))
        d = w.get("diff_vs_fixed_ci")
        verdict = w.get("diff_vs_fixed_verdict") or f"the interval {_reading(d)}"
        mde = w.get("diff_vs_fixed_mde")
        lines.append(f"  W2S ({primary} router) − fixed: {fmt_ci(w.get('diff_vs_fixed'), d)}: "
                     f"{verdict}" + ("" if mde is None else
                                     f"; minimal detectable difference {mde:.3f}"))
    return lines


def run_demo(config: EvalConfig, out_dir: str | os.PathLike, show: int = 2,
             control: bool = True) -> dict[str, Any]:
    """Run the demo (see the module docstring); returns the real model's results.

    ``out_dir/control`` receives the control's run, ``out_dir/model`` the real one, with its
    ``report.html``.

    Example:
        >>> res = run_demo(EvalConfig(), "runs/demo")  # doctest: +SKIP
    """
    from w2s_lens.report.html import write_report

    out = Path(out_dir)
    t0 = time.time()
    config, items, test_items, note = resolve_dataset(demo_config(config))
    rd = RunDir(out / "model")
    rd.prepare("evaluation", config.to_dict())
    if control:
        _stage(1, "positive control: a hand-built model whose input families are steerable "
                  "only at their own layers")
        res = run_control(out / "control")
        print(results_table(res))
        print(f"constructed best layers per family: {res['constructed_layers']}; training "
              f"best-layer counts: {res['methods']['caa']['train_best_layer_counts']}")
        print(f"({time.time() - t0:.0f}s) W2S should beat the fixed layer beyond the noise "
              "here: the pipeline finds a per-input effect when one exists.")
    _stage(2, f"the real model: {config.model or DEFAULT_MODEL} on {config.dataset}")
    if note:
        print(note)
    layers = "every layer but 0" if config.layers is None else ",".join(map(str, config.layers))
    print(f"dataset {config.dataset}: {len(items) + len(test_items or [])} items; this demo "
          f"uses {config.n_train} training and {config.n_test} test items"
          f"{' (both letter orders)' if config.mirror else ''} and steers layers {layers} "
          "(--n-train, --n-test and --layers change them)")
    model = load_model(config.model, device=config.device, dtype=config.dtype) \
        if config.model else load_model(device=config.device, dtype=config.dtype)
    print(f"loaded {model.cfg.model_name} ({model.cfg.n_layers} layers, d_model="
          f"{model.cfg.d_model}) at {time.time() - t0:.0f}s")
    _show_prompts(model, items, config, show)
    results = evaluate(model, items, config, out / "model", test_items=test_items).to_dict()
    print(results_table(results))
    print()
    routing = {m: rd.read_routing(rd.sweep_dir("base", m)) for m in results["methods"]}
    print("\n".join(model_summary(results, routing)))
    print(f"\nreport: {write_report(out / 'model').resolve()}")
    print(f"demo took {time.time() - t0:.0f}s")
    print(ratio_line(results))
    return results
