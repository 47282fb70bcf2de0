"""``w2s-lens demo``: the story of the toolkit in one run, in a few minutes on a CPU.

1. **The positive control** (seconds): a hand-built model whose input families can each be
   steered only at their own layer. The unchanged pipeline (:func:`run_control`: cross-fitted
   training sweep, router, test sweep) must find those layers, and W2S must beat the best
   fixed layer beyond the noise.
2. **A real model on a dataset where it steers**: the embedded Qwen2.5-Coder-0.5B on
   corrigible-neutral-HHH (from ``--data-dir``/``$W2S_DATA_DIR``, or downloaded when online;
   offline without a copy, the 100-item sample shipped with w2s-lens,
   ``corrigible-neutral-HHH-sample``, and the demo says so). CAA vectors from
   :data:`DEMO_N_TRAIN` training items (both letter orders), then a real sweep (the fast
   engine, every multiplier) of :data:`DEMO_N_TEST` test items in both letter orders at
   **every layer** (:func:`demo_config`; ``--n-train``, ``--n-test`` and ``--layers`` win).
   With the letter readout the sweep's cost is mostly the prompt's own forward pass, so all 23
   layers cost about 1.2x four of them, and 1.6x the first-order estimate
   (:mod:`w2s_lens.sweep.first_order`) of the same items: the demo measures instead of
   estimating. :func:`read_sweep` turns the sweep into the demo's reading
   (:class:`ModelReading`): where the behaviour is encoded (the mean steerability of every
   layer with its interval, each item's best layer), the fixed layer's effect with its
   interval, and what per-input routing could gain (the oracle − fixed, in-sample as an
   upper bound and cross-validated across the two letter orders). No router is trained on
   the real model here: ``w2s-lens evaluate`` does that (and costs an order of magnitude more).
   The sweep directory (``out/model``) gets an HTML report.

Before the model stage the demo picks the torch thread count (:func:`pick_threads`) unless
``threads`` is given: on a machine shared with other jobs, two threads measured 3-4x slower
than one (analysis/results/demo_wall_times.md).

Example:
    >>> run_demo(EvalConfig(dataset="corrigible-neutral-HHH"), "runs/demo")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from w2s_lens.choices import DEFAULT_MODEL
from w2s_lens.data.datasets import DATASET_NAMES
from w2s_lens.data.items import ABItem, DatasetError
from w2s_lens.data.prompts import PromptFormatter
from w2s_lens.data.samples import SAMPLE_DATASET_NAME
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.context import resolve_layers
from w2s_lens.evaluation.headroom.diagnostics import cross_validated_oracle
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.evaluation.split import SplitExamples, load_items, prepare_examples
from w2s_lens.evaluation.stats.bootstrap import bootstrap_ci
from w2s_lens.evaluation.stats.paired import paired_comparison
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.evaluation.storage.runlock import hold
from w2s_lens.models.loading import load_model
from w2s_lens.report.tables.summary import fmt_ci
from w2s_lens.steering.pairs import pairs_from_examples
from w2s_lens.steering.scales import layer_scales
from w2s_lens.steering.vectors import SteeringVectors, train_caa
from w2s_lens.sweep.result import SweepResult
from w2s_lens.sweep.runner import run_sweep

__all__ = ["DEMO_N_TEST", "DEMO_N_TRAIN", "ControlRun", "ModelReading", "control_lines",
           "demo_config", "pick_threads", "read_sweep", "resolve_dataset", "run_control",
           "run_demo"]

log = logging.getLogger(__name__)

#: Training items for the CAA vectors (both letter orders: twice as many contrast pairs).
DEMO_N_TRAIN = 6
#: Test items swept at every layer (both letter orders: twice as many presentations).
DEMO_N_TEST = 10


def _stage(n: int, text: str) -> None:
    print(f"\n{'=' * 78}\n[{n}] {text}\n{'=' * 78}", flush=True)


@dataclass(frozen=True)
class ControlRun:
    """The positive control's run (:func:`run_control`).

    Attributes:
        result: what the unchanged pipeline returned (written to ``results.json`` when the
            control ran into a directory).
        constructed_layers: each input family's built-in layer, in family order.
    """

    result: EvaluationResult
    constructed_layers: tuple[int, ...]


def run_control(out_dir: str | os.PathLike | None = None, seed: int = 0) -> ControlRun:
    """The synthetic positive control through the unchanged pipeline (a few seconds): its
    typed result and the layers the control was built with (:class:`ControlRun`).

    Example:
        >>> run = run_control()  # doctest: +SKIP
        >>> run.result.comparison().verdict, run.constructed_layers  # doctest: +SKIP
        ('W2S beats fixed beyond the noise', (1, 2, 3))
    """
    from w2s_lens.controls.synthetic import build_control

    control = build_control("positive", seed=seed)
    train = control.make_examples(36, seed=seed + 1, both_orders=True)
    test = control.make_examples(36, seed=seed + 2, both_orders=True)
    cfg = EvalConfig(dataset="synthetic-positive", variants=("base",), routers=("logreg",),
                     layers=tuple(sorted(set(range(1, control.n_layers)))), n_boot=2000,
                     seed=seed)
    result = evaluate_examples(control.model, SplitExamples(train, train, {"base": test}), cfg,
                               out_dir, progress=False)
    return ControlRun(result, tuple(int(x) for x in control.family_layers))


def _counts(layers: Any) -> str:
    return ", ".join(f"L{k}: {v}" for k, v in sorted(Counter(layers).items(),
                                                     key=lambda kv: (-kv[1], kv[0])))


def _signed(x: float | None) -> str:
    return "–" if x is None else f"{x:+.3f}"


def control_lines(run: ControlRun) -> list[str]:
    """The control's reading, from its typed result: the constructed layers against the
    layers found (each training item's best layer), and W2S against the fixed layer.

    Example:
        >>> print("\\n".join(control_lines(run_control())))  # doctest: +SKIP
    """
    r = run.result
    m = r.methods["caa"]
    v = m.variants["base"]
    c = r.comparison("caa")
    found = Counter({int(k): int(n) for k, n in (m.train_best_layer_counts or {}).items()})
    fixed = v.fixed.steerability if v.fixed else None
    oracle = v.oracle.steerability if v.oracle else None
    return [
        f"built: each input family steerable only at its own layer, layers "
        f"{sorted(set(run.constructed_layers))}; found (best layer per training "
        f"item): {_counts(found.elements())}",
        f"steerability on {v.n} test items: fixed layer {v.fixed_layer} "
        f"{_signed(fixed)}, W2S ({r.primary_router} router) {_signed(c.steerability)}, oracle "
        f"{_signed(oracle)}",
        f"W2S − fixed: {fmt_ci(c.diff, c.diff_ci)}: {c.verdict_text()}",
    ]


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


@dataclass(frozen=True)
class ModelReading:
    """The demo's reading of one mirrored sweep of the test items.

    Attributes:
        layers: the swept layers. n: test items (units).
        layer_mean, layer_ci: ``[L]`` mean steerability (both letter orders averaged) and
            ``[L, 2]`` 95% BCa intervals over items.
        best_layers: each item's best layer (mirrored steerability).
        fixed_layer: the best layer by the mean over every item (in-sample).
        fixed_effect, fixed_effect_ci: the fixed layer's steerability, **cross-validated**
            across letter orders where there are two (the layer chosen on one order's mean,
            scored on the other's, both directions averaged), else in-sample at
            ``fixed_layer``; ``fixed_layers_xv``: the layers chosen on each order.
        propensity_at: ``{λ: mean propensity}`` at ``fixed_layer`` for the grid's ends and 0.
        oracle_gain: in-sample oracle − fixed (the paired comparison of
            :func:`~w2s_lens.evaluation.stats.paired.paired_comparison`): each item's best layer
            chosen and scored on the same numbers, an **upper bound** (noise counts as gain).
        xv: :func:`~w2s_lens.evaluation.headroom.diagnostics.cross_validated_oracle` across
            the two letter orders (each item's layer chosen on one order and scored on the
            other), or None with one order.
    """

    layers: tuple[int, ...]
    n: int
    layer_mean: np.ndarray
    layer_ci: np.ndarray
    best_layers: tuple[int, ...]
    fixed_layer: int
    fixed_effect: float
    fixed_effect_ci: tuple[float, float]
    fixed_layers_xv: tuple[int, int] | None
    propensity_at: dict[float, float]
    oracle_gain: dict[str, Any]
    xv: dict[str, Any] | None

    def lines(self) -> list[str]:
        """The reading as the demo prints it."""
        top = int(np.argmax(self.layer_mean))
        out = ["where the behaviour is steerable: mean steerability per layer (slope of "
               "logit(matching) − logit(other) per unit λ), 95% interval over "
               f"{self.n} items:"]
        cells = [f"L{layer:<2} {fmt_ci(mu, ci):>24}{' <- best' if j == top else ''}"
                 for j, (layer, mu, ci) in enumerate(zip(self.layers, self.layer_mean,
                                                         self.layer_ci.tolist()))]
        half = (len(cells) + 1) // 2
        for i in range(half):
            right = cells[i + half] if i + half < len(cells) else ""
            out.append(f"  {cells[i]:<38}{right}")
        out.append(f"best layer per item: {_counts(self.best_layers)}")
        held = self.fixed_layers_xv is not None
        where = (f"layer {self.fixed_layer}; cross-validated across the letter orders (chosen "
                 f"on one, scored on the other: layers {self.fixed_layers_xv[0]}, "
                 f"{self.fixed_layers_xv[1]})" if held
                 else f"layer {self.fixed_layer} (in-sample: one letter order)")
        lo, hi = self.fixed_effect_ci
        out.append(f"steering effect at the fixed {where}: {fmt_ci(self.fixed_effect, [lo, hi])}"
                   f", the interval {'excludes' if lo > 0 or hi < 0 else 'includes'} 0")
        if self.propensity_at:
            out.append(f"  mean logit(matching) − logit(other) at layer {self.fixed_layer}: " +
                       ", ".join(f"{v:+.2f} at λ={lam:+g}"
                                 for lam, v in self.propensity_at.items()))
        g = self.oracle_gain
        if set(self.best_layers) == {self.fixed_layer}:
            out.append(f"what per-input routing could gain: nothing on these {self.n} items: "
                       f"every item's best layer is the fixed layer {self.fixed_layer} (oracle "
                       "− fixed = 0)")
        else:
            out.append(f"what per-input routing could gain, oracle − fixed (each item at its "
                       f"own best layer): {fmt_ci(g['diff'], g['ci'])} in-sample, an upper "
                       "bound (the same numbers choose and score, so noise counts as gain)")
        if self.xv is not None:
            x = self.xv
            out.append(f"  cross-validated across the letter orders: {fmt_ci(x['diff'], x['ci'])}"
                       f", p={x['p']:.3g}: {x['verdict']}" if x["p"] is not None else
                       f"  cross-validated across the letter orders: {x['verdict']}")
        out.append("  (no router is trained here; `w2s-lens evaluate` trains one and tests it)")
        return out


def _orders(result: SweepResult) -> tuple[np.ndarray, np.ndarray] | None:
    """``[n, L]`` steerability of each unit's first and second presentation, when every unit
    has exactly two (both letter orders), else None."""
    rows: dict[str, list[int]] = {}
    for i, u in enumerate(result.units):
        rows.setdefault(u, []).append(i)
    if not rows or any(len(r) != 2 for r in rows.values()):
        return None
    s = result.steerability
    return (s[[r[0] for r in rows.values()]], s[[r[1] for r in rows.values()]])


def read_sweep(result: SweepResult, n_boot: int = 2000, seed: int = 0) -> ModelReading:
    """The demo's reading (:class:`ModelReading`) of a sweep of the test items.

    Example:
        >>> r = SweepResult(np.array([[[0.0, 1.0], [0.0, 2.0]]] * 4), [3, 5], [-1.0, 1.0],
        ...                 ["a", "a~swap", "b", "b~swap"], ["A", "B", "A", "B"])
        >>> read = read_sweep(r, n_boot=200)
        >>> read.fixed_layer, read.fixed_layers_xv, read.fixed_effect, read.best_layers
        (5, (5, 5), 1.0, (5, 5))
    """
    mir = result.mirrored()
    m = np.asarray(mir.steerability, dtype=float)
    layers = tuple(int(x) for x in mir.layers)
    ci = np.array([bootstrap_ci(m[:, j], n_boot=n_boot, seed=seed) for j in range(len(layers))])
    fixed = int(np.argmax(m.mean(axis=0)))
    rows = np.arange(len(m))
    gain = paired_comparison(m[rows, m.argmax(axis=1)], m[:, fixed], n_boot=n_boot, seed=seed,
                             names=("the oracle", "the fixed layer"))
    orders = _orders(result)
    xv = None
    xv_layers = None
    per_item = m[:, fixed]
    if orders is not None:
        a, b = orders
        xv = cross_validated_oracle(a, b, n_boot=n_boot, seed=seed)
        f1, f2 = xv["xv_fixed_layers"]
        xv_layers = (layers[f1], layers[f2])
        per_item = 0.5 * (b[:, f1] + a[:, f2])
    lo, hi = bootstrap_ci(per_item, n_boot=n_boot, seed=seed)
    mults = list(mir.multipliers)
    show = sorted({min(mults), max(mults), *([0.0] if 0.0 in mults else [])})
    prop = np.asarray(mir.propensity)[:, fixed, :].mean(axis=0)
    return ModelReading(
        layers=layers, n=len(m), layer_mean=m.mean(axis=0), layer_ci=ci,
        best_layers=tuple(layers[i] for i in m.argmax(axis=1)), fixed_layer=layers[fixed],
        fixed_effect=float(per_item.mean()), fixed_effect_ci=(float(lo), float(hi)),
        fixed_layers_xv=xv_layers,
        propensity_at={float(x): float(prop[mults.index(x)]) for x in show},
        oracle_gain=gain, xv=xv)


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
    """Run the demo (see the module docstring); returns the real model's reading.

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
