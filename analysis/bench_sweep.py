"""Benchmark: the fast sweep engine against the naive reference, on a real model.

Cases (``--cases``, default all):

``letter``
    both engines sweep the same letter-readout inputs with 7 multipliers; per-(input, layer)
    times, the speed-up, max |fast − naive| propensity, each engine's peak resident memory
    (every run is its own subprocess), and the fast all-layer sweep as a multiple of one plain
    forward pass over the same inputs (the floor: a sweep has to read every prompt once).
``cloze``
    the same for the cloze readout (the option texts scored as continuations, several suffix
    rows per input).
``input``
    per-input vectors (:class:`~w2s_lens.steering.vectors.InputVectors`, as L2S and cross-fitting
    use; here the CAA vectors scaled by a random factor per input and layer): fast vs naive,
    and the fast engine's time against per-layer vectors.
``mirrored``
    the study's default: every input in both letter orders (one *item*, two presentations
    sharing everything up to the ``Choices:`` block). The fast all-layer sweep of the
    ``--n-inputs`` items (both orders) against one plain forward pass of one presentation per
    item (full logits included): ``mirrored_item_forwards``, the number of plain forward
    passes one mirrored item's all-layer sweep costs (CPU time).
``first_order``
    the first-order steerability (:mod:`w2s_lens.sweep.first_order`: one forward and one
    backward pass of the steered rows, prefix once without gradients) against the fast sweep
    of all layers and of a 7-layer grid and the naive loop, both readouts, on the same
    ``--n-inputs`` inputs (naive: ``--naive-inputs`` x ``--naive-layers``, per input·layer,
    scaled to all layers): CPU time per input, the ratios, the first-order cost in plain
    forward passes of the prompt, and how close the estimate is to the sweep's OLS slope
    (mean |gap| / mean |slope|; derivative, end-point slope and cubic-corrected slope, per-input
    Spearman across layers, best-layer agreement). Ends with ``first_order_speedup`` (all
    layers, fast sweep / first order, cloze, CPU time).
``prompt``
    steering every prompt position (``positions="prompt"``, the ``prompt-only`` ablation), cloze
    readout: fast vs naive on the same inputs, and the fast engine steering the prompt against
    steering from the last prompt token on (``prompt_cost``: how many times the usual sweep's
    CPU time). Steering the prompt, the fast engine runs each input's prompt once per (layer,
    multiplier) and its option rows attend to it.
``batching``
    cross-input batching of the fast engine (``max_rows`` None vs ``--max-rows``): per
    (input, layer) time and max |Δ| against ``max_rows=None``, judged at 1e-5 and 1e-4 (rows
    of several inputs share a batch with padded prefixes, so float32 rounding differs a little;
    the engines agree to 1e-3 by test).

The naive engine makes one full forward pass per steered run (about 18 s per (input, layer) on
Qwen2.5-Coder-0.5B on one busy CPU core), so it runs on ``--naive-inputs`` inputs and
``--naive-layers`` layers and the speed-up is computed per (input, layer). Every subprocess
runs with ``--threads`` torch threads (default 1, and ``OMP_NUM_THREADS`` set to match); it
records wall time and the process's CPU time, and speed-ups are computed on CPU time, which a
busy shared machine disturbs much less than wall time (single-threaded, CPU time is the time
the work takes on a free core, up to cache contention). The report, with the machine's load
average before and after, is printed and written to ``--out`` (default
``analysis/results/bench_<model>.txt``).

Usage:
    python analysis/bench_sweep.py --model smollm2-135m-instruct --n-inputs 16 --repeats 3
    python analysis/bench_sweep.py --model qwen2.5-coder-0.5b-instruct --n-inputs 8 \\
        --naive-inputs 2 --naive-layers 14 --repeats 2
    python analysis/bench_sweep.py --cases first_order --n-inputs 2 --naive-inputs 1 \\
        --naive-layers 15 --repeats 1   # SmolLM2: ~10 min CPU (~13 subprocesses)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

CASES = ("letter", "cloze", "input", "mirrored", "prompt", "batching", "first_order")
RESULTS = Path(__file__).resolve().parent / "results"


def _setup(args, readout: str):
    from w2s_lens.data.datasets import load_dataset
    from w2s_lens.data.prompts import PromptFormatter
    from w2s_lens.data.splits import balanced, train_test_split
    from w2s_lens.models.loading import load_model
    from w2s_lens.steering.vectors import train_caa

    model = load_model(args.model)
    items = load_dataset(args.dataset, data_dir=args.data_dir)
    train, test = train_test_split(items, 0.5, 0)
    fmt = PromptFormatter(model.tokenizer)
    vectors = train_caa(model, fmt.format_many(balanced(train[: args.n_train])))
    chosen = test[: args.n_total]
    if getattr(args, "mirror", "no") == "yes":  # both letter orders, adjacent (as evaluate)
        chosen = balanced(chosen)
    examples = fmt.format_many(chosen, readout=readout)
    return model, vectors, examples


def _input_vectors(vectors, examples):
    """Per-(input, layer) vectors: the CAA vector times a seeded factor in [0.5, 1.5]."""
    import torch

    from w2s_lens.steering.vectors import InputVectors

    gen = torch.Generator().manual_seed(0)
    factor = 0.5 + torch.rand(len(examples), len(vectors.layers), 1, generator=gen)
    return InputVectors(vectors.vectors[None] * factor, vectors.layers,
                        [ex.id for ex in examples], vectors.hook, dict(vectors.metadata))


#: the study's 7-layer grid on the 24-layer Qwen2.5-Coder-0.5B (analysis/powered_study.py)
GRID_24 = (3, 7, 11, 15, 17, 19, 23)


def _layers(spec: str, n_layers: int) -> list[int]:
    if spec == "all":
        return list(range(n_layers))
    if spec == "grid":  # the study's grid, or 7 layers spread the same way
        if n_layers == 24:
            return list(GRID_24)
        return sorted({round(x * (n_layers - 1) / 23) for x in GRID_24})
    return [int(x) for x in spec.split(",")]


def worker(args) -> None:
    """Run one engine (or the forward floor) in this process and print a JSON line."""
    import numpy as np
    import torch

    from w2s_lens.sweep.runner import run_sweep

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    model, vectors, examples = _setup(args, args.readout)
    if args.vec == "input":
        vectors = _input_vectors(vectors, examples)
        vectors.vectors = vectors.vectors[: args.n]
        vectors.ids = vectors.ids[: args.n]
    examples = examples[: args.n]
    layers = _layers(args.layers, model.cfg.n_layers)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    max_rows = None if args.max_rows in ("", "none") else int(args.max_rows)
    times, cpu, prop = [], [], None
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        if args.worker == "forward":
            with torch.inference_mode():
                for ex in examples:
                    model(torch.tensor([ex.tokens]))
        elif args.worker == "first":
            from w2s_lens.sweep.first_order import first_order

            fo = first_order(model, vectors, examples, layers=layers,
                             curvature=args.curvature == "yes")
            prop = (np.stack([fo.gradient, fo.endpoint_slope, fo.cubic_slope])
                    if args.curvature == "yes" else fo.gradient[None])
        else:
            res = run_sweep(model, vectors, examples, layers=layers, engine=args.engine,
                            progress=False, max_rows=max_rows, positions=args.positions)
            prop = res.propensity
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    out = {"times": times, "cpu_times": cpu, "layers": layers, "n_inputs": len(examples),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "rss_before_mb": base_rss / 1024,
           "mean_tokens": float(np.mean([len(e.tokens) for e in examples])),
           "mean_cont": float(np.mean([sum(map(len, e.continuations)) for e in examples]))}
    if prop is not None:
        np.save(args.dump, prop)
    print("RESULT " + json.dumps(out), flush=True)


class Bench:
    """Runs workers as subprocesses and keeps the report lines."""

    def __init__(self, args) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="w2s-bench-"))
        self.lines: list[str] = []
        self.n = 0
        self.speedups: dict[str, float] = {}

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)

    def run(self, mode: str, n: int, layers: str = "all", repeats: int = 1,
            engine: str = "fast", readout: str = "letter", vec: str = "layer",
            max_rows: str = "none", mirror: str = "no", curvature: str = "no",
            positions: str = "from_last") -> dict:
        import numpy as np

        a = self.args
        self.n += 1
        dump = self.tmp / f"{self.n}.npy"
        cmd = [sys.executable, __file__, "--worker", mode, "--model", a.model, "--dataset",
               a.dataset, "--data-dir", a.data_dir, "--n-train", str(a.n_train), "--n-total",
               str(a.n_inputs), "--n", str(n), "--layers", layers, "--repeats", str(repeats),
               "--engine", engine, "--readout", readout, "--vec", vec, "--max-rows", max_rows,
               "--mirror", mirror, "--curvature", curvature, "--positions", positions,
               "--threads", str(a.threads), "--dump", str(dump)]
        env = {**os.environ, "OMP_NUM_THREADS": str(a.threads),
               "MKL_NUM_THREADS": str(a.threads)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                out = json.loads(line[7:])
                out["median"] = statistics.median(out["times"])
                out["cpu"] = statistics.median(out["cpu_times"])
                out["per_il"] = out["median"] / (out["n_inputs"] * len(out["layers"]))
                out["per_il_cpu"] = out["cpu"] / (out["n_inputs"] * len(out["layers"]))
                out["prop"] = np.load(dump) if dump.exists() else None
                return out
        raise RuntimeError(f"{mode}/{engine}/{readout}/{vec} worker failed:\n"
                           f"{proc.stderr[-3000:]}")

    def compare(self, name: str, fast: dict, naive: dict) -> None:
        """Speed-up per (input, layer) and max |fast − naive| (``fast`` run on the same inputs
        as ``naive``, every layer)."""
        import numpy as np

        cols = [fast["layers"].index(layer) for layer in naive["layers"]]
        diff = float(np.abs(fast["prop"][: naive["n_inputs"], cols] - naive["prop"]).max())
        self.speedups[name] = naive["per_il_cpu"] / fast["per_il_cpu"]
        shown = naive["layers"] if len(naive["layers"]) < 8 else f"{len(naive['layers'])} layers"
        self.say(f"[{name}] fast : {fast['n_inputs']} inputs x {len(fast['layers'])} layers, "
                 f"median {fast['median']:.2f}s wall of {_r(fast['times'])}, {fast['cpu']:.2f}s "
                 f"CPU -> {_il(fast)} per input·layer; peak RSS {fast['peak_rss_mb']:.0f} MB "
                 f"(model loaded: {fast['rss_before_mb']:.0f} MB)")
        self.say(f"[{name}] naive: {naive['n_inputs']} inputs x layers {shown}, median "
                 f"{naive['median']:.2f}s wall, {naive['cpu']:.2f}s CPU -> {_il(naive)} per "
                 f"input·layer; peak RSS {naive['peak_rss_mb']:.0f} MB")
        self.say(f"[{name}] speedup={naive['per_il_cpu'] / fast['per_il_cpu']:.1f}x CPU time "
                 f"({naive['per_il'] / fast['per_il']:.1f}x wall); max |fast - naive| "
                 f"propensity = {diff:.2e} ({'OK' if diff <= 1e-3 else 'FAIL'} at 1e-3)")


def first_order_case(b: Bench, readout: str, naive: dict | None) -> None:
    """First order against the fast sweep (all layers, grid) and the naive loop, on the same
    ``--n-inputs`` inputs (naive: its own subset, per input·layer scaled to all layers)."""
    import numpy as np
    from scipy.stats import spearmanr

    from w2s_lens.sweep.readouts import slopes

    a, tag = b.args, f"[first_order/{readout}]"
    n, kw = a.n_inputs, {"readout": readout, "repeats": a.repeats}
    runs = {"first order, all layers": b.run("first", n, "all", **kw),
            "first order, 7-layer grid": b.run("first", n, "grid", **kw),
            "fast sweep, all layers": b.run("sweep", n, "all", **kw),
            "fast sweep, 7-layer grid": b.run("sweep", n, "grid", **kw)}
    fwd = b.run("forward", n, **kw)
    if naive is None:
        naive = b.run("sweep", a.naive_inputs, a.naive_layers, engine="naive", readout=readout)
    fo, fast = runs["first order, all layers"], runs["fast sweep, all layers"]
    n_layers = len(fo["layers"])
    b.say(f"{tag} {n} inputs: prompts mean {fo['mean_tokens']:.0f} tokens"
          + (f", options {fo['mean_cont']:.0f} tokens together" if readout == "cloze" else "")
          + f"; {n_layers} layers; grid {runs['first order, 7-layer grid']['layers']}")
    for name, r in runs.items():
        b.say(f"{tag} {name}: {1000 * r['cpu'] / n:.0f} ms CPU per input "
              f"({1000 * r['median'] / n:.0f} ms wall) = {r['cpu'] / fwd['cpu']:.2f} plain "
              f"forwards of the prompt; peak RSS {r['peak_rss_mb']:.0f} MB")
    naive_cpu = naive["per_il_cpu"] * n_layers
    b.say(f"{tag} naive loop, all layers (from {naive['n_inputs']} inputs x "
          f"{len(naive['layers'])} layers): {naive_cpu:.1f} s CPU per input")
    grid = runs["first order, 7-layer grid"]
    ratios = {"fast all-layer sweep": fast["cpu"] / fo["cpu"],
              "fast 7-layer sweep (vs first order on the grid)":
                  runs["fast sweep, 7-layer grid"]["cpu"] / grid["cpu"],
              "naive loop, all layers": naive_cpu * n / fo["cpu"]}
    for name, x in ratios.items():
        b.say(f"{tag} speedup vs {name}: {x:.1f}x CPU time")
    b.say(f"{tag} (wall: {fast['median'] / fo['median']:.1f}x the fast all-layer sweep)")
    if readout == "cloze":
        b.speedups["first_order"] = ratios["fast all-layer sweep"]
    curv = b.run("first", n, "all", readout=readout, curvature="yes")
    ols = slopes(fast["prop"], [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
    scale = float(np.abs(ols).mean())
    gaps = ", ".join(f"{name} {float(np.abs(est - ols).mean()) / scale:.3f}" for name, est in
                     zip(("derivative", "end-point slope", "cubic-corrected"), curv["prop"]))
    rho = [spearmanr(g, o)[0] for g, o in zip(fo["prop"][0], ols)]
    agree = float(np.mean(fo["prop"][0].argmax(1) == ols.argmax(1)))
    b.say(f"{tag} vs the sweep's OLS slope (all layers): mean |gap| / mean |slope| {gaps}; "
          f"per-input Spearman across layers median {np.nanmedian(rho):.3f}; best layer "
          f"agrees on {agree:.0%}; the curvature run (+2 steered runs per layer) costs "
          f"{curv['cpu'] / n:.2f} s CPU per input")


def _il(res: dict) -> str:
    return f"{1000 * res['per_il_cpu']:.1f} ms CPU ({1000 * res['per_il']:.1f} ms wall)"


def _r(times: list[float]) -> str:
    return "[" + ", ".join(f"{t:.2f}" for t in times) + "]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--dataset", default="corrigible-neutral-HHH")
    p.add_argument("--data-dir", default=os.environ.get("W2S_DATA_DIR") or str(
        Path(__file__).resolve().parents[2] / "shared" / "data" / "mwe"))
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated, from " +
                   ",".join(CASES))
    p.add_argument("--n-inputs", type=int, default=16, help="inputs of the fast engine")
    p.add_argument("--n-train", type=int, default=16, help="training items of the vectors")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of the fast engine")
    p.add_argument("--naive-inputs", type=int, default=4, help="inputs of the naive engine")
    p.add_argument("--naive-layers", default="14", help="layers of the naive engine ('all' "
                   "or comma-separated)")
    p.add_argument("--max-rows", default="256,1024,4096", help="batching case: row budgets")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="report file (default: "
                   "analysis/results/bench_<model without -instruct>.txt)")
    for name in ("worker", "layers", "n", "n-total", "engine", "readout", "vec", "dump",
                 "mirror", "curvature", "positions"):
        p.add_argument(f"--{name}", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.n, args.n_total, args.repeats = int(args.n), int(args.n_total), int(args.repeats)
        worker(args)
        return

    import numpy as np

    cases = [c for c in args.cases.split(",") if c]
    bad = sorted(set(cases) - set(CASES))
    if bad:
        p.error(f"unknown case(s) {bad}; choose from {CASES}")
    b = Bench(args)
    t0 = time.time()
    b.say(f"model={args.model} dataset={args.dataset} fast inputs={args.n_inputs} naive "
          f"inputs={args.naive_inputs} naive layers={args.naive_layers} multipliers=7 "
          f"threads={args.threads} cases={','.join(cases)}")
    b.say(f"machine: {os.cpu_count()} CPUs, load average before "
          f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min)")
    # speed-ups compare both engines on the same (naive) inputs: cloze continuations vary a
    # lot in length, so per-(input, layer) costs of different inputs are not comparable
    sub, naive_of = {}, {}
    for case, kw in (("letter", {}), ("cloze", {"readout": "cloze"}),
                     ("input", {"vec": "input"})):
        if case in cases or (case == "letter" and "input" in cases):
            sub[case] = b.run("sweep", args.naive_inputs, repeats=args.repeats, **kw)
        if case in cases:
            naive = b.run("sweep", args.naive_inputs, args.naive_layers, engine="naive", **kw)
            if case != "input":
                naive_of[case] = naive
            extra = (f" + options of {sub[case]['mean_cont']:.0f} tokens together"
                     if case == "cloze" else "")
            b.say(f"[{case}] prompts: mean {sub[case]['mean_tokens']:.0f} tokens{extra}")
            b.compare(case, sub[case], naive)
    if "input" in cases:
        b.say(f"[input] fast with per-input vectors / per-layer vectors (same inputs): "
              f"{sub['input']['per_il_cpu'] / sub['letter']['per_il_cpu']:.2f}x the CPU time "
              f"({sub['input']['per_il'] / sub['letter']['per_il']:.2f}x wall)")
    if "prompt" in cases:
        kw = {"readout": "cloze", "positions": "prompt"}
        fast = b.run("sweep", args.naive_inputs, repeats=args.repeats, **kw)
        naive = b.run("sweep", args.naive_inputs, args.naive_layers, engine="naive", **kw)
        b.say(f"[prompt] prompts: mean {fast['mean_tokens']:.0f} tokens + options of "
              f"{fast['mean_cont']:.0f} tokens together; every prompt token steered")
        b.compare("prompt", fast, naive)
        usual = sub.get("cloze") or b.run("sweep", args.naive_inputs, repeats=args.repeats,
                                          readout="cloze")
        b.say(f"[prompt] fast, steering the prompt / steering from the last prompt token on "
              f"(same inputs, all layers): {fast['cpu'] / usual['cpu']:.2f}x the CPU time "
              f"({fast['median'] / usual['median']:.2f}x wall)")
        b.speedups["prompt_cost"] = fast["cpu"] / usual["cpu"]
    fast_letter = None
    if "letter" in cases or "batching" in cases:
        fast_letter = b.run("sweep", args.n_inputs, repeats=args.repeats)
        b.say(f"[all-layer sweep] fast, {args.n_inputs} letter inputs (mean "
              f"{fast_letter['mean_tokens']:.0f} tokens) x {len(fast_letter['layers'])} "
              f"layers: {_il(fast_letter)} per input·layer, peak RSS "
              f"{fast_letter['peak_rss_mb']:.0f} MB")
    if "letter" in cases:
        fwd = b.run("forward", args.n_inputs, repeats=args.repeats)
        b.say(f"[all-layer sweep] one plain forward pass over the same {args.n_inputs} inputs: "
              f"median {fwd['median']:.2f}s wall, {fwd['cpu']:.2f}s CPU; fast sweep of all "
              f"layers = {fast_letter['cpu'] / fwd['cpu']:.1f}x one forward pass (CPU time; "
              f"{fast_letter['median'] / fwd['median']:.1f}x wall)")
    forwards = None
    if "mirrored" in cases:
        n = args.n_inputs
        mir = b.run("sweep", 2 * n, repeats=args.repeats, mirror="yes")
        one = b.run("forward", n, repeats=args.repeats)
        forwards = mir["cpu"] / one["cpu"]
        b.say(f"[mirrored] fast all-layer sweep of {n} items x 2 letter orders (mean "
              f"{mir['mean_tokens']:.0f} tokens) x {len(mir['layers'])} layers: median "
              f"{mir['median']:.2f}s wall, {mir['cpu']:.2f}s CPU, peak RSS "
              f"{mir['peak_rss_mb']:.0f} MB (model loaded: {mir['rss_before_mb']:.0f} MB)")
        b.say(f"[mirrored] one plain forward pass of one presentation per item: median "
              f"{one['median']:.2f}s wall, {one['cpu']:.2f}s CPU; a mirrored item's all-layer "
              f"sweep = {forwards:.2f} plain forward passes (CPU time; "
              f"{mir['median'] / one['median']:.2f}x wall)")
    if "batching" in cases:
        b.say(f"[batching] max_rows=None: {_il(fast_letter)} per input·layer (median of "
              f"{args.repeats})")
        for rows in [x for x in args.max_rows.split(",") if x]:
            res = b.run("sweep", args.n_inputs, repeats=args.repeats, max_rows=rows)
            diff = float(np.abs(res["prop"] - fast_letter["prop"]).max())
            b.say(f"[batching] max_rows={rows}: {_il(res)} per input·layer "
                  f"({fast_letter['per_il_cpu'] / res['per_il_cpu']:.2f}x faster than None in "
                  f"CPU time), peak RSS "
                  f"{res['peak_rss_mb']:.0f} MB; max |Δ| vs None = {diff:.1e} "
                  f"({'within' if diff <= 1e-5 else 'ABOVE'} 1e-5, "
                  f"{'within' if diff <= 1e-4 else 'ABOVE'} 1e-4; |propensity| up to "
                  f"{float(np.abs(fast_letter['prop']).max()):.2f})")
    if "first_order" in cases:
        for readout in ("letter", "cloze"):
            first_order_case(b, readout, naive_of.get(readout))
    b.say(f"load average after {'/'.join(f'{x:.2f}' for x in os.getloadavg())}; total "
          f"{time.time() - t0:.0f}s")
    # the last lines, for scripts: the two ratios the issue tracks
    if forwards is not None:
        b.say(f"mirrored_item_forwards={forwards:.2f}")
    if "cloze" in cases:
        b.say(f"cloze_speedup={b.speedups['cloze']:.1f}")
    if "prompt" in cases:
        b.say(f"prompt_cost={b.speedups['prompt_cost']:.2f}")
    if "first_order" in cases:
        b.say(f"first_order_speedup={b.speedups['first_order']:.1f}")
    out = Path(args.out) if args.out else (
        RESULTS / f"bench_{args.model.removesuffix('-instruct')}.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(b.lines) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
