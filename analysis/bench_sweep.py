"""Benchmark: the fast sweep engine against the naive reference, on a real model.

Both engines sweep the same inputs, layers and 7 multipliers; the script checks that they
agree (max |Δ propensity|), and prints per-(input, layer) times, the speed-up, each engine's
peak resident memory (each engine runs in its own subprocess) and the sweep's cost as a
multiple of one plain forward pass over the same inputs (the floor no sweep can beat by much:
it has to read every prompt once).

The naive engine makes one full forward pass per steered run, so on a 0.5B model on two CPU
cores it costs about 12 s per (input, layer). ``--naive-layers`` runs it on a subset of layers
and the speed-up is computed per (input, layer); ``--naive-layers all`` runs every layer.

Usage:
    python analysis/bench_sweep.py --model smollm2-135m-instruct --n-inputs 16 --repeats 3
    python analysis/bench_sweep.py --model qwen2.5-coder-0.5b-instruct --naive-layers 4,14
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

warnings.filterwarnings("ignore", category=DeprecationWarning)


def _setup(args):
    from w2s_lens.datasets import balanced, load_dataset, train_test_split
    from w2s_lens.models import load_model
    from w2s_lens.prompts import PromptFormatter
    from w2s_lens.vectors import train_caa

    model = load_model(args.model)
    items = load_dataset(args.dataset, data_dir=args.data_dir)
    train, test = train_test_split(items, 0.5, 0)
    fmt = PromptFormatter(model.tokenizer)
    vectors = train_caa(model, fmt.format_many(balanced(train[: args.n_train])))
    return model, vectors, fmt.format_many(test[: args.n_inputs])


def _layers(spec: str, n_layers: int) -> list[int]:
    return list(range(n_layers)) if spec == "all" else [int(x) for x in spec.split(",")]


def worker(args) -> None:
    """Run one engine (or the forward floor) and print a JSON line."""
    import numpy as np
    import torch

    from w2s_lens.sweep import run_sweep

    model, vectors, examples = _setup(args)
    layers = _layers(args.layers, model.cfg.n_layers)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, prop = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        if args.worker == "forward":
            with torch.inference_mode():
                for ex in examples:
                    model(torch.tensor([ex.tokens]))
        else:
            res = run_sweep(model, vectors, examples, layers=layers, engine=args.worker,
                            progress=False)
            prop = res.propensity
        times.append(time.perf_counter() - t0)
    out = {"engine": args.worker, "times": times, "layers": layers,
           "n_inputs": len(examples),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "rss_before_mb": base_rss / 1024,
           "mean_tokens": float(np.mean([len(e.tokens) for e in examples]))}
    if prop is not None:
        path = Path(args.dump)
        np.save(path, prop)
        out["dump"] = str(path)
    print("RESULT " + json.dumps(out), flush=True)


def run_worker(args, engine: str, layers: str, repeats: int, dump: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", engine, "--model", args.model, "--dataset",
           args.dataset, "--n-inputs", str(args.n_inputs), "--n-train", str(args.n_train),
           "--layers", layers, "--repeats", str(repeats), "--dump", dump]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{engine} worker failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--dataset", default="corrigible-neutral-HHH")
    p.add_argument("--data-dir", default=os.environ.get("W2S_DATA_DIR") or str(
        Path(__file__).resolve().parents[2] / "shared" / "data" / "mwe"))
    p.add_argument("--n-inputs", type=int, default=16)
    p.add_argument("--n-train", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of the fast engine")
    p.add_argument("--naive-layers", default="all",
                   help="layers for the naive engine ('all' or comma-separated)")
    p.add_argument("--naive-repeats", type=int, default=1)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--layers", default="all", help=argparse.SUPPRESS)
    p.add_argument("--dump", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    import numpy as np

    tmp = Path(tempfile.mkdtemp(prefix="w2s-bench-"))
    print(f"model={args.model} dataset={args.dataset} inputs={args.n_inputs} "
          f"multipliers=7 threads={os.environ.get('OMP_NUM_THREADS', 'default')}", flush=True)
    fast = run_worker(args, "fast", "all", args.repeats, str(tmp / "fast.npy"))
    naive = run_worker(args, "naive", args.naive_layers, args.naive_repeats,
                       str(tmp / "naive.npy"))
    fwd = run_worker(args, "forward", "all", args.repeats, "")
    n_layers = len(fast["layers"])
    fast_prop = np.load(fast["dump"])
    naive_prop = np.load(naive["dump"])
    cols = [fast["layers"].index(layer) for layer in naive["layers"]]
    diff = float(np.abs(fast_prop[:, cols] - naive_prop).max())
    f_med = statistics.median(fast["times"])
    n_med = statistics.median(naive["times"])
    fw_med = statistics.median(fwd["times"])
    per_fast = f_med / (args.n_inputs * n_layers)
    per_naive = n_med / (args.n_inputs * len(naive["layers"]))
    print(f"mean prompt length: {fast['mean_tokens']:.0f} tokens")
    print(f"fast : {n_layers} layers, median {f_med:.2f}s of {fast['times']} "
          f"-> {1000 * per_fast:.1f} ms per input·layer; peak RSS {fast['peak_rss_mb']:.0f} MB "
          f"(model loaded: {fast['rss_before_mb']:.0f} MB)")
    shown = naive["layers"] if len(naive["layers"]) < 8 else ""
    print(f"naive: {len(naive['layers'])} layers {shown} median {n_med:.2f}s -> "
          f"{1000 * per_naive:.1f} ms per input·layer; peak RSS {naive['peak_rss_mb']:.0f} MB")
    print(f"one plain forward pass over the same inputs: median {fw_med:.2f}s")
    print(f"fast sweep of all layers = {f_med / fw_med:.1f}x one forward pass")
    print(f"agreement: max |fast - naive| propensity = {diff:.2e} "
          f"({'OK' if diff <= 1e-3 else 'FAIL'} at 1e-3)")
    print(f"speedup={per_naive / per_fast:.1f}")


if __name__ == "__main__":
    main()
