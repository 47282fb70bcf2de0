"""The demo run: its sizes, the dataset (or the shipped sample offline), the torch thread
count, the real model's stage (CAA vectors and an every-layer sweep, resumable) and
:func:`run_demo`, which runs the control and the model stage in turn."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from w2s_lens.choices import DEFAULT_MODEL
from w2s_lens.data.datasets import DATASET_NAMES
from w2s_lens.data.items import ABItem, DatasetError
from w2s_lens.data.prompts import PromptFormatter
from w2s_lens.data.samples import SAMPLE_DATASET_NAME
from w2s_lens.demo.control import control_lines, run_control
from w2s_lens.demo.reading import ModelReading, read_sweep
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.context import resolve_layers
from w2s_lens.evaluation.split import load_items, prepare_examples
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.evaluation.storage.runlock import hold
from w2s_lens.models.loading import load_model
from w2s_lens.steering.pairs import pairs_from_examples
from w2s_lens.steering.scales import layer_scales
from w2s_lens.steering.vectors import SteeringVectors, train_caa
from w2s_lens.sweep.result import SweepResult
from w2s_lens.sweep.runner import run_sweep

__all__ = ["DEMO_N_TEST", "DEMO_N_TRAIN", "demo_config", "pick_threads", "resolve_dataset",
           "run_demo"]


#: Training items for the CAA vectors (both letter orders: twice as many contrast pairs).
DEMO_N_TRAIN = 6
#: Test items swept at every layer (both letter orders: twice as many presentations).
DEMO_N_TEST = 10


def _stage(n: int, text: str) -> None:
    print(f"\n{'=' * 78}\n[{n}] {text}\n{'=' * 78}", flush=True)


def demo_config(config: EvalConfig) -> EvalConfig:
    """``config`` with the demo's sizes where it leaves them open: :data:`DEMO_N_TRAIN` and
    :data:`DEMO_N_TEST` items (the layers stay open: every layer but 0).

    Example:
        >>> cfg = demo_config(EvalConfig(dataset="corrigible-neutral-HHH"))
        >>> cfg.data.n_train, cfg.data.n_test, cfg.sweep.layers
        (6, 10, None)
        >>> demo_config(EvalConfig(n_train=8, layers=(1, 2))).sweep.layers
        (1, 2)
    """
    changes: dict[str, Any] = {}
    if config.data.n_train is None:
        changes["n_train"] = DEMO_N_TRAIN
    if config.data.n_test is None:
        changes["n_test"] = DEMO_N_TEST
    return config.replace(**changes)


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
        >>> cfg.data.dataset, len(items), test  # doctest: +SKIP
        ('corrigible-neutral-HHH-sample', 100, None)
    """
    try:
        items, test_items = load_items(config)
        return config, items, test_items, None
    except DatasetError as exc:
        if config.data.dataset not in DATASET_NAMES:
            raise
        note = (f"{config.data.dataset} is not available ({exc}).\nUsing the 100-item sample "
                f"shipped with w2s-lens instead ({SAMPLE_DATASET_NAME}; pass --data-dir with "
                "the anthropics/evals files for the full dataset).")
    config = config.replace(dataset=SAMPLE_DATASET_NAME)
    items, test_items = load_items(config)
    return config, items, test_items, note


def pick_threads(candidates: Sequence[int] | None = None, repeats: int = 3,
                 size: tuple[int, int, int] = (64, 896, 4864)) -> tuple[int, dict[int, float]]:
    """Set torch's CPU thread count to the fastest of ``candidates`` (default: the current
    count and 1) on a matrix product of a 0.5B model's MLP size, and return it with the
    timings (seconds per product). On a machine shared with other jobs more threads can be
    much slower than one (their threads wait for each other); this costs well under a second.

    With a single candidate nothing is timed, the timings are empty and the thread count is
    set to that candidate.

    Example:
        >>> before = torch.get_num_threads()
        >>> n, timings = pick_threads([1, 2])
        >>> n == torch.get_num_threads() and sorted(timings) == [1, 2]
        True
        >>> pick_threads([1])
        (1, {})
        >>> torch.set_num_threads(before)
    """
    current = torch.get_num_threads()
    cands = sorted({current, 1} if candidates is None else set(candidates))
    if len(cands) == 1:
        torch.set_num_threads(cands[0])
        return cands[0], {}
    m, k, n = size
    a, b = torch.randn(m, k), torch.randn(k, n)
    timings: dict[int, float] = {}
    for t in cands:
        torch.set_num_threads(t)
        torch.mm(a, b)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        timings[t] = (time.perf_counter() - t0) / repeats
    best = min(timings, key=lambda t: timings[t])
    torch.set_num_threads(best)
    return best, timings


def _show_prompts(model, items, config: EvalConfig, n: int) -> None:
    fmt = PromptFormatter(model.tokenizer, system_prompt=config.data.system_prompt)
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


def _model_sweep(model, items: list[ABItem], test_items: list[ABItem] | None,
                 config: EvalConfig, out: Path) -> SweepResult:
    """CAA vectors and the test sweep of the model stage, in the sweep-directory layout of
    ``w2s-lens sweep`` (resumable: a rerun into ``out`` with the same settings reuses what is
    there)."""
    rd = RunDir(out)
    record = {**config.to_dict(), "split": "test", "variant": "base"}
    resuming = rd.prepare("sweep", record)
    exs = prepare_examples(model, items, config.replace(variants=("base",)), test_items)
    examples, pairs = exs.test["base"], exs.vector_train
    layers = resolve_layers(model, config)
    if not resuming:
        rd.write_run("sweep", record, {"status": "running"})
    t0 = time.time()
    if resuming and (rd.vectors_dir() / "vectors.json").is_file():
        vectors = SteeringVectors.load(rd.vectors_dir(), model=model)
    else:
        vectors = train_caa(model, pairs, layers=layers, batch_size=config.compute.batch_size,
                            dataset=config.data.dataset, progress=True)
        vectors.save(rd.vectors_dir())
    print(f"CAA vectors from {len(pairs)} contrast pairs: {time.time() - t0:.0f}s", flush=True)
    scales = layer_scales(vectors, config.sweep.scale, layers, fraction=config.sweep.fraction)
    t0 = time.time()
    sweep = config.sweep
    result = run_sweep(model, vectors, examples, layers=layers, multipliers=sweep.multipliers,
                       engine=sweep.engine, positions=sweep.positions, layer_scale=scales,
                       out_dir=rd.path, chunk_size=config.compute.chunk_size, progress=True,
                       scoring=sweep.scoring, max_rows=config.compute.max_rows)
    print(f"sweep of {len(examples)} presentations × {len(layers)} layers × "
          f"{len(config.sweep.multipliers)} multipliers: {time.time() - t0:.0f}s", flush=True)
    result.metadata.update({"multiplier_scale": config.sweep.scale, "split": "test",
                            "variant": "base"})
    rd.save_sweep(rd.path, result, examples)
    rd.write_pairs(pairs_from_examples(model, pairs))
    rd.write_run("sweep", record, {
        "model": model.cfg.model_name, "layers": layers, "layer_scale": scales,
        "n_items": len({ex.unit for ex in examples}), "n_examples": len(examples),
        "n_train_items": len({ex.unit for ex in pairs}), "n_vector_pairs": len(pairs),
        "letter_orders": 2 if config.sweep.both_orders else 1, "prompt_format": exs.prompt_format,
        "capture_layer": None})
    return result


def run_demo(config: EvalConfig, out_dir: str | os.PathLike, show: int = 2,
             control: bool = True, threads: int | None = None) -> ModelReading:
    """Run the demo (see :mod:`w2s_lens.demo`); returns the real model's reading.

    ``out_dir/control`` receives the control's run, ``out_dir/model`` the real model's sweep
    directory, with its ``report.html``. ``threads``: torch CPU threads (None: the faster of
    the current count and 1, :func:`pick_threads`).

    Example:
        >>> reading = run_demo(EvalConfig(), "runs/demo")  # doctest: +SKIP
        >>> reading.fixed_layer, reading.xv["verdict"]  # doctest: +SKIP
    """
    from w2s_lens.report.html import write_report

    out = Path(out_dir)
    t0 = time.time()
    config, items, test_items, note = resolve_dataset(demo_config(config))
    RunDir(out / "model").prepare("sweep", {**config.to_dict(), "split": "test",
                                            "variant": "base"})
    if threads is not None:
        torch.set_num_threads(threads)
    else:
        n, timings = pick_threads()
        if len(timings) > 1:
            print("torch threads: " + ", ".join(f"{t}: {s * 1e3:.0f} ms" for t, s in
                                                 timings.items()) +
                  f" per test product, so {n} (--threads sets it)")
    if control:
        _stage(1, "positive control: a hand-built model whose input families are steerable "
                  "only at their own layers")
        print("\n".join(control_lines(run_control(out / "control"))))
        print(f"({time.time() - t0:.0f}s) the pipeline finds a per-input effect when one "
              "exists: W2S should beat the fixed layer beyond the noise here.")
    _stage(2, f"the real model: {config.compute.model or DEFAULT_MODEL} on {config.data.dataset}")
    if note:
        print(note)
    data, chosen = config.data, config.sweep.layers
    layers = "every layer but 0" if chosen is None else ",".join(map(str, chosen))
    print(f"dataset {data.dataset}: {len(items) + len(test_items or [])} items; this demo "
          f"makes CAA vectors from {data.n_train} training items and sweeps {data.n_test} "
          f"test items{' in both letter orders' if config.sweep.mirror else ''} at {layers} "
          "(--n-train, --n-test and --layers change them)")
    t1 = time.time()
    compute = config.compute
    model = load_model(compute.model, device=compute.device, dtype=compute.dtype) \
        if compute.model else load_model(device=compute.device, dtype=compute.dtype)
    print(f"loaded {model.cfg.model_name} ({model.cfg.n_layers} layers, d_model="
          f"{model.cfg.d_model}) in {time.time() - t1:.0f}s")
    _show_prompts(model, items, config, show)
    with hold(out / "model"):
        result = _model_sweep(model, items, test_items, config, out / "model")
        reading = read_sweep(result, n_boot=config.statistics.n_boot, seed=config.data.seed)
        print()
        print("\n".join(reading.lines()))
        print(f"\nreport: {write_report(out / 'model').resolve()}")
    print(f"demo took {time.time() - t0:.0f}s")
    return reading
