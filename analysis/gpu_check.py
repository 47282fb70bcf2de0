"""GPU check: the fast sweep engine against the naive one on random-weight models with the
shapes of Qwen2.5-0.5B, Qwen2.5-7B and Llama-2-7B, in bfloat16 on CUDA. Nothing is downloaded.

For each shape this builds a ``HookedTransformer`` with the real layer count, widths, heads
(grouped-query attention where the real model has it), vocabulary, rotary base, RMSNorm and
gated SiLU MLP, with random weights and random token prompts, and random steering vectors whose
norm at each layer is ``--vector-scale`` times the typical residual norm there. Then:

1. **fp32 reference** (TF32 off): the naive engine sweeps ``--check-inputs`` inputs at
   ``--check-layers`` layers in float32; the fast engine must match it to 1e-3 relative to the
   largest |propensity| (the tests' 1e-3, scaled because random weights give large logits).
2. **bfloat16**: the model is cast to bf16 and both engines sweep the same inputs again. In
   bf16 every stored activation is rounded to 8 significant bits, so neither engine can match
   the fp32 values closely, and two different but equivalent orders of computation (cached
   prefix + suffix rows vs one full forward pass) round differently. The tolerance is therefore
   measured, not guessed: the fast engine passes when its error against the fp32 reference is
   at most twice the naive engine's own bf16 error against it (plus 1e-3 of the scale), i.e.
   the fast engine is no less accurate than the reference implementation at this precision.
   The steering effect (largest change of propensity from λ=−1.5 to λ=1.5) is printed next to
   it, and the tolerance must stay below a quarter of it (else the check is reported as
   inconclusive): a wrong layer, position or vector changes propensities by about the effect.
3. **timing** (bf16): per (input, layer) time of both engines, the speed-up, the fast
   all-layer sweep of one input in plain forward passes of that input, and the fast engine with
   cross-input batching (``--max-rows``).

Usage (a few minutes on one H100/H200; Llama-2-7B's random weights take ~13 GB in bf16, and
the fp32 reference phase holds a 7B model in fp32, ~27-30 GB):
    python analysis/gpu_check.py
    python analysis/gpu_check.py --shapes llama-2-7b --readouts letter --out gpu_check.json
    python analysis/gpu_check.py --device cpu --shapes tiny      # the CPU smoke version
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from w2s_lens.choices import DEFAULT_MULTIPLIERS
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.vectors import SteeringVectors
from w2s_lens.sweep.runner import run_sweep

warnings.filterwarnings("ignore", category=DeprecationWarning)

#: Architecture of each checked model (config.json of the released checkpoints), and its
#: published parameter count (embedding counted once where input and output embeddings are
#: tied). ``tiny`` is the CPU smoke version.
SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": dict(n_layers=24, d_model=896, n_heads=14, n_key_value_heads=2, d_head=64,
                         d_mlp=4864, d_vocab=151936, rotary_base=1_000_000.0, eps=1e-6,
                         tied_embeddings=True, published_params=0.49e9),
    "qwen2.5-7b": dict(n_layers=28, d_model=3584, n_heads=28, n_key_value_heads=4, d_head=128,
                       d_mlp=18944, d_vocab=152064, rotary_base=1_000_000.0, eps=1e-6,
                       tied_embeddings=False, published_params=7.61e9),
    "llama-2-7b": dict(n_layers=32, d_model=4096, n_heads=32, n_key_value_heads=None,
                       d_head=128, d_mlp=11008, d_vocab=32000, rotary_base=10_000.0, eps=1e-5,
                       tied_embeddings=False, published_params=6.74e9),
    "tiny": dict(n_layers=4, d_model=64, n_heads=4, n_key_value_heads=2, d_head=16, d_mlp=128,
                 d_vocab=512, rotary_base=10_000.0, eps=1e-6, tied_embeddings=False,
                 published_params=None),
}
BIG = ("qwen2.5-0.5b", "qwen2.5-7b", "llama-2-7b")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def make_config(shape: str, device: str, dtype: torch.dtype,
                n_ctx: int = 1024) -> HookedTransformerConfig:
    """The HookedTransformerConfig of ``shape`` (rotary, RMSNorm, gated SiLU MLP).

    Example:
        >>> make_config("llama-2-7b", "cpu", torch.bfloat16).n_layers
        32
    """
    s = SHAPES[shape]
    return HookedTransformerConfig(
        n_layers=s["n_layers"], d_model=s["d_model"], n_heads=s["n_heads"],
        n_key_value_heads=s["n_key_value_heads"], d_head=s["d_head"], d_mlp=s["d_mlp"],
        d_vocab=s["d_vocab"], n_ctx=n_ctx, act_fn="silu", normalization_type="RMS",
        final_rms=True, positional_embedding_type="rotary", rotary_dim=s["d_head"],
        rotary_base=s["rotary_base"], eps=s["eps"], gated_mlp=True,
        default_prepend_bos=False, dtype=dtype, device=device,
        model_name=f"random-{shape}", seed=0)


def count_params(shape: str) -> int:
    """Parameters of ``shape`` as the released model counts them, from a meta-device build
    (no memory; TransformerLens's separate unembedding dropped where the model ties it).

    Example:
        >>> round(count_params("llama-2-7b") / 1e9, 2)
        6.74
    """
    with torch.device("meta"):
        model = HookedTransformer(make_config(shape, "meta", torch.bfloat16),
                                  move_to_device=False)
    n = sum(p.numel() for p in model.parameters())
    if SHAPES[shape]["tied_embeddings"]:
        n -= model.unembed.W_U.numel() + model.unembed.b_U.numel()
    return n


def build_model(shape: str, device: str, dtype: torch.dtype, seed: int = 0) -> HookedTransformer:
    """A random-weight model of ``shape``, initialised directly on ``device``.

    Example:
        >>> build_model("tiny", "cpu", torch.float32).cfg.n_key_value_heads
        2
    """
    torch.manual_seed(seed)
    with torch.device(device):
        model = HookedTransformer(make_config(shape, device, dtype))
    model.eval()
    return model


def random_examples(model: HookedTransformer, n: int, length: int, readout: str,
                    seed: int = 0) -> list[SteeringExample]:
    """``n`` random-token prompts of ``length`` ± 16 tokens (letter: two answer tokens;
    cloze: two continuations of 2-5 tokens)."""
    rng = np.random.default_rng(seed)
    vocab = model.cfg.d_vocab
    out = []
    for i in range(n):
        size = max(2, length + int(rng.integers(-16, 17)))
        toks = tuple(int(t) for t in rng.integers(0, vocab, size=size))
        letter = "AB"[i % 2]
        if readout == "letter":
            a, b = (int(x) for x in rng.choice(vocab, size=2, replace=False))
            out.append(SteeringExample(f"rand:{i}", "", toks, a, b, letter))
        else:
            m = tuple(int(t) for t in rng.integers(0, vocab, size=int(rng.integers(2, 6))))
            k = tuple(int(t) for t in rng.integers(0, vocab, size=int(rng.integers(2, 6))))
            out.append(SteeringExample(f"rand:{i}", "", toks, matching_letter=letter,
                                       matching_continuation=m, non_matching_continuation=k))
    return out


@torch.inference_mode()
def random_vectors(model: HookedTransformer, examples: Sequence[SteeringExample],
                   scale: float, seed: int = 0) -> SteeringVectors:
    """Random unit directions, one per layer, scaled to ``scale`` × the mean norm of
    ``resid_pre`` at the examples' last prompt tokens."""
    norms = torch.zeros(model.cfg.n_layers)

    def grab(act, hook):
        norms[int(hook.name.split(".")[1])] += act[0, -1].float().norm().cpu()

    hooks = [(f"blocks.{b}.hook_resid_pre", grab) for b in range(model.cfg.n_layers)]
    for ex in examples:
        with model.hooks(fwd_hooks=hooks):
            model(torch.tensor([ex.tokens], device=model.cfg.device), return_type=None)
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(model.cfg.n_layers, model.cfg.d_model, generator=gen)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    vecs = dirs * (scale * norms / len(examples))[:, None]
    return SteeringVectors(vecs, list(range(model.cfg.n_layers)), "resid_pre",
                           {"model": model.cfg.model_name, "d_model": model.cfg.d_model})


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str, repeats: int = 1) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls of ``fn`` (after one warm-up call) and its result."""
    out = fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def _sweep(model, vectors, examples, layers, engine, max_rows=None) -> np.ndarray:
    return run_sweep(model, vectors, examples, layers=layers, multipliers=DEFAULT_MULTIPLIERS,
                     engine=engine, progress=False, max_rows=max_rows).propensity


def check_layers(n_layers: int, k: int) -> list[int]:
    """``k`` layers spread from early to last (e.g. 1, middle, last)."""
    return sorted({int(round(x)) for x in np.linspace(1, n_layers - 1, k)})


def check_shape(shape: str, device: str = "cuda", dtype: str = "bfloat16",
                readouts: Sequence[str] = ("letter", "cloze"), check_inputs: int = 2,
                n_check_layers: int = 3, time_inputs: int = 4, prompt_len: int = 128,
                vector_scale: float = 0.25, max_rows: int | None = 1024, repeats: int = 3,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Steps 1-3 of the module docstring for one shape; one result dict per readout.

    Example:
        >>> res = check_shape("tiny", "cpu", readouts=("letter",), log=lambda s: None)
        >>> res["letter"]["ok"]
        True
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t_build = time.perf_counter()
    model = build_model(shape, device, torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{shape}: built random fp32 weights on {device} in "
        f"{time.perf_counter() - t_build:.1f}s ({n_params / 1e9:.3f}B parameters)")
    layers = check_layers(model.cfg.n_layers, n_check_layers)
    cases = {}
    for readout in readouts:
        exs = random_examples(model, max(check_inputs, time_inputs), prompt_len, readout)
        vecs = random_vectors(model, exs[:check_inputs], vector_scale)
        ref = _sweep(model, vecs, exs[:check_inputs], layers, "naive")
        fast32 = _sweep(model, vecs, exs[:check_inputs], layers, "fast")
        cases[readout] = (exs, vecs, ref, fast32)
    model.to(DTYPES[dtype])
    results: dict[str, Any] = {}
    for readout, (exs, vecs, ref, fast32) in cases.items():
        r = _compare(model, exs, vecs, ref, fast32, layers, check_inputs)
        r.update(_timing(model, exs, vecs, device, time_inputs, max_rows, repeats))
        results[readout] = r
        _report(log, shape, readout, dtype, layers, r)
    del model, cases
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return results


def _compare(model, exs, vecs, ref, fast32, layers, n) -> dict[str, Any]:
    fast = _sweep(model, vecs, exs[:n], layers, "fast")
    naive = _sweep(model, vecs, exs[:n], layers, "naive")
    scale = max(1.0, float(np.abs(ref).max()))
    err_fast = float(np.abs(fast - ref).max())
    err_naive = float(np.abs(naive - ref).max())
    fp32_diff = float(np.abs(fast32 - ref).max())
    tol = 2 * err_naive + 1e-3 * scale
    effect = float(np.abs(ref[..., -1] - ref[..., 0]).max())
    return {"layers": layers, "fp32_max_diff": fp32_diff, "fp32_tol": 1e-3 * scale,
            "max_diff": float(np.abs(fast - naive).max()), "err_fast": err_fast,
            "err_naive": err_naive, "tol": tol, "effect": effect, "scale": scale,
            # a tolerance near the steering effect could not tell a wrong layer from noise
            "conclusive": bool(tol < effect / 4),
            "ok": bool(fp32_diff <= 1e-3 * scale and err_fast <= tol and tol < effect / 4)}


def _timing(model, exs, vecs, device, n, max_rows, repeats) -> dict[str, Any]:
    one_layer = [model.cfg.n_layers // 2]
    every = list(range(model.cfg.n_layers))
    t_naive, _ = timed(lambda: _sweep(model, vecs, exs[:n], one_layer, "naive"), device, 1)
    t_fast, _ = timed(lambda: _sweep(model, vecs, exs[:n], every, "fast"), device, repeats)
    t_rows, _ = (timed(lambda: _sweep(model, vecs, exs[:n], every, "fast", max_rows), device,
                       repeats) if max_rows else (None, None))
    t_one, _ = timed(lambda: _sweep(model, vecs, exs[:1], every, "fast"), device, repeats)
    tokens = torch.tensor([exs[0].tokens], device=model.cfg.device)

    def forward():
        with torch.inference_mode():
            return model(tokens)

    t_fwd, _ = timed(forward, device, repeats)
    per_naive, per_fast = t_naive / n, t_fast / (n * len(every))
    return {"naive_per_il_s": per_naive, "fast_per_il_s": per_fast,
            "speedup": per_naive / per_fast, "max_rows": max_rows,
            "fast_rows_per_il_s": None if t_rows is None else t_rows / (n * len(every)),
            "sweep_one_input_s": t_one, "forward_one_input_s": t_fwd,
            "sweep_in_forwards": t_one / t_fwd, "time_inputs": n}


def _verdict(r: dict[str, Any]) -> str:
    if r["fp32_max_diff"] > r["fp32_tol"] or r["err_fast"] > r["tol"]:
        return "FAIL"
    if not r["conclusive"]:
        return ("INCONCLUSIVE (tolerance above a quarter of the steering effect: raise "
                "--vector-scale)")
    return "OK"


def _report(log, shape, readout, dtype, layers, r) -> None:
    rows = (f"; with max_rows={r['max_rows']}: {1000 * r['fast_rows_per_il_s']:.2f} ms"
            if r["fast_rows_per_il_s"] is not None else "")
    log(f"{shape} {readout}: fp32 fast vs naive {r['fp32_max_diff']:.2e} (tol "
        f"{r['fp32_tol']:.1e}); {dtype} |fast - naive| {r['max_diff']:.2e}, error vs fp32: "
        f"fast {r['err_fast']:.2e}, naive {r['err_naive']:.2e} (tol {r['tol']:.2e}; steering "
        f"effect up to {r['effect']:.2f}, |propensity| up to {r['scale']:.1f}, layers {layers})"
        f" -> {_verdict(r)}")
    log(f"{shape} {readout}: per input·layer naive {1000 * r['naive_per_il_s']:.1f} ms, fast "
        f"{1000 * r['fast_per_il_s']:.2f} ms ({r['time_inputs']} inputs, all layers){rows}; "
        f"speed-up {r['speedup']:.0f}x; all-layer sweep of one input "
        f"{r['sweep_one_input_s']:.3f}s = {r['sweep_in_forwards']:.1f} plain forward passes "
        f"({r['forward_one_input_s'] * 1000:.1f} ms each)")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", choices=list(DTYPES), default="bfloat16")
    p.add_argument("--shapes", default=",".join(BIG),
                   help=f"comma-separated, from {','.join(SHAPES)}")
    p.add_argument("--readouts", default="letter,cloze")
    p.add_argument("--check-inputs", type=int, default=2)
    p.add_argument("--check-layers", type=int, default=3)
    p.add_argument("--time-inputs", type=int, default=4)
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--vector-scale", type=float, default=0.25)
    p.add_argument("--max-rows", type=int, default=1024, help="0: skip the batching timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    args = p.parse_args(argv)
    shapes = [s for s in args.shapes.split(",") if s]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        p.error(f"unknown shape(s) {unknown}; choose from {list(SHAPES)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("no CUDA device; use --device cpu --shapes tiny for the CPU version")
    if args.device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}", flush=True)
    t0 = time.perf_counter()
    results = {}
    for shape in shapes:
        results[shape] = check_shape(
            shape, args.device, args.dtype, [r for r in args.readouts.split(",") if r],
            args.check_inputs, args.check_layers, args.time_inputs, args.prompt_len,
            args.vector_scale, args.max_rows or None, args.repeats,
            log=lambda s: print(s, flush=True))
    ok = all(r["ok"] for res in results.values() for r in res.values())
    print(f"{'ALL OK' if ok else 'SOME CHECKS FAILED'} in {time.perf_counter() - t0:.0f}s")
    if args.out:
        from w2s_lens.artifacts.json_files import write_json
        from w2s_lens.artifacts.provenance import stamp

        write_json(args.out, stamp({"args": vars(args), "results": results}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
