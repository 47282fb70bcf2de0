"""The ``w2s-lens`` command line.

Subcommands:
    demo          load the embedded model and dataset, show a few prompts with the model's
                  A/B probabilities, run a small W2S evaluation and write an HTML report
    check-model   compare the HookedTransformer with the transformers model
    sweep         train CAA vectors and sweep layers × multipliers for test inputs
    train-router  fit a router on a sweep directory
    evaluate      the whole W2S comparison (vectors, train sweep, routers, test variants)
    generate      steer a generation at the layer a router picks
    report        write a self-contained HTML report for a run or sweep directory

Run ``w2s-lens SUBCOMMAND --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser"]


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") \
            from exc


def _layers(text: str) -> list[int] | None:
    if text == "all":
        return None
    try:
        layers = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected 'all' or comma-separated layers, got "
                                         f"{text!r}") from exc
    if not layers or layers[0] < 0:
        raise argparse.ArgumentTypeError(f"layers must be non-negative integers, got {text!r}")
    return layers


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _add_common(p: argparse.ArgumentParser, model_default: str | None = None) -> None:
    from w2s_lens.models import DEFAULT_MODEL

    p.add_argument("--model", default=model_default or DEFAULT_MODEL,
                   help="embedded model name or a Hugging Face model id (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice)")


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="default",
                   help="dataset name (e.g. corrigible-neutral-HHH), a .jsonl path, or "
                        "'default' for the embedded sycophancy set (default: %(default)s)")
    p.add_argument("--data-dir", default=None,
                   help="folder in the anthropics/evals layout (default: $W2S_DATA_DIR)")


def _add_sweep_opts(p: argparse.ArgumentParser) -> None:
    from w2s_lens.sweep import DEFAULT_MULTIPLIERS

    p.add_argument("--n-train", type=int, default=None, help="cap on training items")
    p.add_argument("--n-test", type=int, default=None, help="cap on test items")
    p.add_argument("--seed", type=int, default=0, help="split seed (default: %(default)s)")
    p.add_argument("--train-fraction", type=float, default=0.5)
    p.add_argument("--layers", type=_layers, default=None,
                   help="'all' or comma-separated layers (default: all)")
    p.add_argument("--multipliers", type=_floats, default=list(DEFAULT_MULTIPLIERS),
                   help="comma-separated λ values (default: -1.5,-1,-0.5,0,0.5,1,1.5); write "
                        "--multipliers=-1,0,1 so the leading minus is not read as an option")
    p.add_argument("--engine", choices=["fast", "naive"], default="fast")
    p.add_argument("--positions", choices=["from_last", "all"], default="from_last",
                   help="steer from the last prompt token on, or at all tokens")
    p.add_argument("--scale", choices=["raw", "relative"], default="raw",
                   help="multiplier scale: raw (the paper's) or relative to the residual norm")
    p.add_argument("--fraction", type=float, default=None,
                   help="for --scale relative: share of the residual norm that λ=1 adds")
    p.add_argument("--single-order", action="store_true",
                   help="train vectors on one letter order only (the paper's setup; risks an "
                        "A-vs-B artifact)")
    p.add_argument("--batch-size", type=int, default=8)


def _setup_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def _load_items(args: argparse.Namespace):
    from w2s_lens.datasets import DEFAULT_DATASET_NAME, load_dataset, load_default_dataset

    if args.dataset in ("default", DEFAULT_DATASET_NAME):
        return DEFAULT_DATASET_NAME, load_default_dataset()
    items = load_dataset(args.dataset, data_dir=args.data_dir)
    return items[0].dataset if items else args.dataset, items


def _eval_config(args: argparse.Namespace, dataset: str, variants: Sequence[str]):
    from w2s_lens.evaluation import EvalConfig
    from w2s_lens.scales import DEFAULT_FRACTION

    return EvalConfig(
        dataset=dataset, variants=tuple(variants), n_train=args.n_train, n_test=args.n_test,
        train_fraction=args.train_fraction, seed=args.seed, layers=args.layers,
        multipliers=tuple(args.multipliers), engine=args.engine, positions=args.positions,
        scale=args.scale,
        fraction=DEFAULT_FRACTION if args.fraction is None else args.fraction,
        embedding=getattr(args, "embedding", "resid-last"),
        embedding_layer=getattr(args, "embedding_layer", None),
        routers=tuple(getattr(args, "routers", ("logreg", "mlp", "curve"))),
        primary_router=getattr(args, "routers", ["logreg"])[0],
        both_orders=not args.single_order, n_boot=getattr(args, "n_boot", 2000),
        batch_size=args.batch_size)


def _print_table(results: dict) -> None:
    primary = results["primary_router"]
    print(f"\n{results['model']} · {results['dataset']} · n_train={results['n_train']} "
          f"n_test={results['n_test']} · router={primary} · embedding={results['embedding']}")
    head = f"{'variant':9} {'fixed L':>7} {'fixed':>22} {'W2S':>22} {'oracle':>8} " \
           f"{'letter-or.':>10} {'acc':>5}  W2S-fixed [95% CI]"
    print(head)
    print("-" * len(head))
    from w2s_lens.metrics import verdict

    for v, r in results["variants"].items():
        f, w, o, lo = r["fixed"], r["w2s"][primary], r["oracle"], r["letter_oracle"]

        def ci(block):
            a, b = block["steerability_ci"]
            return f"{block['steerability']:+.3f} [{a:+.3f},{b:+.3f}]"

        d0, d1 = w["diff_vs_fixed_ci"]
        acc = w["accuracy"]
        print(f"{v:9} {r['fixed_layer']:>7} {ci(f):>22} {ci(w):>22} {o['steerability']:>+8.3f} "
              f"{lo['steerability']:>+10.3f} {acc if acc is None else round(acc, 2)!s:>5}  "
              f"{w['diff_vs_fixed']:+.3f} [{d0:+.3f},{d1:+.3f}] {verdict([d0, d1])}")


def _print_ratio(results: dict) -> None:
    ratio = results["w2s_over_fixed"]
    if ratio is None:
        print("(the fixed layer's mean steerability is not positive, so the ratio is "
              "undefined: compare W2S - fixed and its interval above)")
    print(f"w2s_over_fixed={'nan' if ratio is None else f'{ratio:.4f}'}")


# ----------------------------------------------------------------------------- commands


def cmd_check_model(args: argparse.Namespace) -> int:
    """`w2s-lens check-model`: TransformerLens vs transformers log-probabilities."""
    from w2s_lens.models import check_model

    diff = check_model(args.model)
    print(f"max_abs_logprob_diff={diff:.3e}")
    return 0 if diff <= args.tolerance else 1


def _show_prompts(model, items, n: int) -> None:
    import torch

    from w2s_lens.prompts import PromptFormatter

    fmt = PromptFormatter(model.tokenizer)
    for item in items[:n]:
        ex = fmt.format(item)
        with torch.inference_mode():
            logits = model(torch.tensor([ex.tokens]), attention_mask=torch.ones(
                1, len(ex.tokens), dtype=torch.long))[0, -1]
        probs = torch.softmax(logits.float(), -1)
        a, b = fmt.letter_token_ids["A"], fmt.letter_token_ids["B"]
        print("=" * 78)
        print(ex.text[-700:] if len(ex.text) > 700 else ex.text)
        print(f"--> P(A)={probs[a]:.3f}  P(B)={probs[b]:.3f}  matching behaviour: "
              f"{item.matching}")


def cmd_demo(args: argparse.Namespace) -> int:
    """`w2s-lens demo`: the embedded defaults end to end, ending with an HTML report."""
    from w2s_lens.evaluation import evaluate
    from w2s_lens.models import load_model
    from w2s_lens.report import write_report

    t0 = time.time()
    _eval_config(args, args.dataset, args.variants)  # check the settings before any download
    dataset, items = _load_items(args)
    config = _eval_config(args, dataset, args.variants)
    model = load_model(args.model)
    print(f"loaded {args.model} ({model.cfg.n_layers} layers, d_model={model.cfg.d_model}) "
          f"in {time.time() - t0:.1f}s")
    print(f"dataset {dataset}: {len(items)} items")
    _show_prompts(model, items, args.show)
    results = evaluate(model, items, config, out_dir=args.out)
    _print_table(results)
    path = write_report(args.out)
    print(f"\nreport: {Path(path).resolve()}")
    _print_ratio(results)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """`w2s-lens evaluate`: the whole W2S comparison for one dataset."""
    from w2s_lens.evaluation import evaluate
    from w2s_lens.models import load_model

    _eval_config(args, args.dataset, args.variants)  # check the settings before any download
    dataset, items = _load_items(args)  # fails fast on a bad dataset
    config = _eval_config(args, dataset, args.variants)
    model = load_model(args.model)
    results = evaluate(model, items, config, out_dir=args.out)
    _print_table(results)
    if args.report:
        from w2s_lens.report import write_report

        print(f"report: {Path(write_report(args.out)).resolve()}")
    _print_ratio(results)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """`w2s-lens sweep`: CAA vectors and a layer × multiplier sweep, in the documented format."""
    from w2s_lens.artifacts import library_versions, write_json
    from w2s_lens.datasets import balanced, train_test_split
    from w2s_lens.models import load_model
    from w2s_lens.prompts import PromptFormatter
    from w2s_lens.scales import DEFAULT_FRACTION, layer_scales
    from w2s_lens.sweep import run_sweep
    from w2s_lens.vectors import train_caa

    t0 = time.time()
    out = Path(args.out)
    dataset, items = _load_items(args)
    model = load_model(args.model)
    train, test = train_test_split(items, args.train_fraction, args.seed)
    train = train[: args.n_train] if args.n_train else train
    test = test[: args.n_test] if args.n_test else test
    if args.split == "train":
        test = train
    fmt = PromptFormatter(model.tokenizer)
    pairs = fmt.format_many(train if args.single_order else balanced(train), "base")
    examples = fmt.format_many(test, args.variant)
    vectors = train_caa(model, pairs, layers=args.layers, batch_size=args.batch_size,
                        dataset=dataset, progress=True)
    vectors.save(out)
    scales = layer_scales(vectors, args.scale, fraction=DEFAULT_FRACTION
                          if args.fraction is None else args.fraction)
    result = run_sweep(model, vectors, examples, multipliers=args.multipliers,
                       engine=args.engine, positions=args.positions, layer_scale=scales,
                       out_dir=out)
    result.metadata.update({"multiplier_scale": args.scale, "split": args.split,
                            "variant": args.variant})
    result.save(out)
    with open(out / "examples.jsonl", "w") as f:
        for ex in examples:
            rec = {"id": ex.id, "prompt": ex.text, "matching_token_id": ex.matching_token_id,
                   "non_matching_token_id": ex.non_matching_token_id,
                   "steer_from_position": ex.steer_from_position if args.positions ==
                   "from_last" else 0, "matching_letter": ex.matching_letter,
                   "tokens": list(ex.tokens)}
            f.write(json.dumps(rec) + "\n")
    with open(out / "train_pairs.jsonl", "w") as f:
        for ex in pairs:
            f.write(json.dumps({
                "id": ex.id,
                "positive": model.tokenizer.decode(list(ex.positive_tokens)),
                "negative": model.tokenizer.decode(list(ex.negative_tokens)),
                "read_position": -1, "matching_letter": ex.matching_letter}) + "\n")
    write_json(out / "run.json", {
        "model": model.cfg.model_name, "dataset": dataset, "variant": args.variant,
        "split": args.split, "split_seed": args.seed, "train_fraction": args.train_fraction,
        "n_train": len(train), "n_examples": len(examples), "engine": args.engine,
        "hook": vectors.hook, "hook_names": [vectors.hook_name(x) for x in vectors.layers],
        "positions": args.positions, "multipliers": list(args.multipliers),
        "multiplier_scale": args.scale, "layer_scale": scales,
        "letter_orders": 1 if args.single_order else 2,
        "wall_time_s": round(time.time() - t0, 1), "versions": library_versions()})
    s = result.steerability.mean(0)
    best = int(result.layers[int(s.argmax())])
    print("mean steerability per layer: " + " ".join(
        f"{layer}:{v:+.3f}" for layer, v in zip(result.layers, s)))
    print(f"best mean layer={best} steerability={s.max():+.4f}")
    print(f"wrote {out}")
    return 0


def cmd_train_router(args: argparse.Namespace) -> int:
    """`w2s-lens train-router`: fit a router on a training-split sweep directory."""
    from w2s_lens.examples import SteeringExample
    from w2s_lens.models import load_model
    from w2s_lens.router import LayerRouter
    from w2s_lens.sweep import SweepResult
    from w2s_lens.vectors import SteeringVectors
    from w2s_lens.w2s import W2S

    sweep_dir = Path(args.sweep)
    run = json.loads((sweep_dir / "run.json").read_text())
    if run.get("split") != "train":
        print(f"warning: {sweep_dir} is a sweep of the {run.get('split', '?')!r} split; "
              "routers should be fitted on a training-split sweep (w2s-lens sweep --split "
              "train)", file=sys.stderr)
    model = load_model(run["model"])
    sweep = SweepResult.load(sweep_dir)
    vectors = SteeringVectors.load(sweep_dir, model=model, hook=run.get("hook"))
    scales = run.get("layer_scale")
    if scales is not None and len(scales) != len(sweep.layers):
        raise ValueError(f"{sweep_dir / 'run.json'} has {len(scales)} layer scales for "
                         f"{len(sweep.layers)} swept layers")
    examples = []
    with open(sweep_dir / "examples.jsonl") as f:
        for line in f:
            r = json.loads(line)
            examples.append(SteeringExample(r["id"], r["prompt"], tuple(r["tokens"]),
                                            r["matching_token_id"], r["non_matching_token_id"],
                                            r["matching_letter"]))
    from w2s_lens.embeddings import default_layer, embed_examples, embedding_name

    layer = default_layer(model) if args.embedding_layer is None else args.embedding_layer
    x = embed_examples(model, examples, args.embedding, layer)
    router = LayerRouter(args.router, model=run["model"], dataset=run["dataset"],
                         embedding=embedding_name(args.embedding, layer), layers=sweep.layers,
                         hook=vectors.hook).fit(x, sweep.steerability)
    W2S(model, vectors, router, args.embedding, layer, scales,
        run.get("positions", "from_last")).save(args.out)
    pred = router.predict(x)
    acc = float((pred == sweep.steerability.argmax(1)).mean())
    print(f"router {args.router} on {len(examples)} inputs; training accuracy {acc:.2f}; "
          f"cv {router.cv_info_}")
    print(f"wrote {args.out}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """`w2s-lens generate`: unsteered vs steered generation at the routed layer."""
    import torch

    from w2s_lens.models import load_model
    from w2s_lens.prompts import DEFAULT_SYSTEM_PROMPT, PromptFormatter
    from w2s_lens.w2s import W2S

    meta = json.loads((Path(args.router) / "w2s.json").read_text())
    model = load_model(args.model or meta["model"])
    w2s = W2S.load(args.router, model)
    fmt = PromptFormatter(model.tokenizer)  # the BOS rule and answer opening of training
    messages = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
                {"role": "user", "content": args.prompt}]
    text = model.tokenizer.apply_chat_template(messages, tokenize=False,
                                               add_generation_prompt=True)
    if fmt.add_bos:
        text = model.tokenizer.bos_token + text
    encode = model.tokenizer
    tokens = encode(text, add_special_tokens=False)["input_ids"]
    # route on the prompt as the router saw prompts in training: ending in the answer opening
    route_tokens = encode(text + fmt.answer_opening, add_special_tokens=False)["input_ids"]
    layer = w2s.choose_layer(route_tokens)
    print(f"routed layer: {layer}  (multiplier {args.multiplier})")
    inp = torch.tensor([tokens])
    kw = dict(max_new_tokens=args.max_new_tokens, do_sample=False, verbose=False,
              stop_at_eos=True)
    plain = model.generate(inp, **kw)
    with w2s.steer(tokens, multiplier=args.multiplier, layer=layer):
        steered = model.generate(inp, **kw)
    dec = model.tokenizer.decode
    print("--- unsteered ---")
    print(dec(plain[0, len(tokens):].tolist(), skip_special_tokens=True))
    print(f"--- steered at layer {layer} ---")
    print(dec(steered[0, len(tokens):].tolist(), skip_special_tokens=True))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """`w2s-lens report`: a self-contained HTML report for a run or sweep directory."""
    from w2s_lens.report import write_report

    path = write_report(args.run_dir, args.out)
    print(f"report: {Path(path).resolve()}")
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``w2s-lens``."""
    from w2s_lens.embeddings import EMBEDDINGS
    from w2s_lens.prompts import VARIANTS
    from w2s_lens.router import ROUTER_KINDS

    parser = argparse.ArgumentParser(prog="w2s-lens", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-model", help="HookedTransformer vs transformers log-probs")
    _add_common(p)
    p.add_argument("--tolerance", type=float, default=1e-3)
    p.set_defaults(func=cmd_check_model)

    def add_eval_opts(p, variants_default):
        p.add_argument("--variants", type=_names, default=variants_default,
                       help=f"comma-separated, from {','.join(VARIANTS)}")
        p.add_argument("--embedding", choices=EMBEDDINGS, default="resid-last")
        p.add_argument("--embedding-layer", type=int, default=None,
                       help="residual layer of the embedding (default: the middle layer)")
        p.add_argument("--routers", type=_names, default=list(ROUTER_KINDS),
                       help="comma-separated router kinds; the first is the primary one")
        p.add_argument("--n-boot", type=int, default=2000)

    p = sub.add_parser("demo", help="the embedded default, end to end, with a report")
    _add_common(p)
    _add_data(p)
    _add_sweep_opts(p)
    add_eval_opts(p, ["base", "sys-neg"])
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--show", type=int, default=3, help="prompts to print")
    p.set_defaults(func=cmd_demo, n_train=16, n_test=8)

    p = sub.add_parser("evaluate", help="the whole W2S comparison")
    _add_common(p)
    _add_data(p)
    _add_sweep_opts(p)
    add_eval_opts(p, list(VARIANTS))
    p.add_argument("--out", required=True)
    p.add_argument("--report", action="store_true", help="also write report.html")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sweep", help="CAA vectors + layer × multiplier sweep")
    _add_common(p)
    _add_data(p)
    _add_sweep_opts(p)
    p.add_argument("--variant", choices=VARIANTS, default="base")
    p.add_argument("--split", choices=["test", "train"], default="test",
                   help="which split to sweep (train: for fitting a router)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("train-router", help="fit a router on a training-split sweep")
    p.add_argument("--sweep", required=True, help="directory written by w2s-lens sweep")
    p.add_argument("--embedding", choices=EMBEDDINGS, default="resid-last")
    p.add_argument("--embedding-layer", type=int, default=None)
    p.add_argument("--router", choices=ROUTER_KINDS, default="logreg")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_train_router)

    p = sub.add_parser("generate", help="steer a generation at the routed layer")
    p.add_argument("--router", required=True, help="a router bundle directory")
    p.add_argument("--prompt", required=True)
    p.add_argument("--model", default=None, help="default: the bundle's model")
    p.add_argument("--multiplier", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("report", help="write a self-contained HTML report")
    p.add_argument("run_dir")
    p.add_argument("--out", default=None, help="default: RUN_DIR/report.html")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``w2s-lens``."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore", message=".*HookedTransformer is deprecated.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_threads(args)
    from w2s_lens.artifacts import ArtifactMismatch
    from w2s_lens.assets import AssetError
    from w2s_lens.behaviours import BehaviourError
    from w2s_lens.datasets import DatasetError
    from w2s_lens.evaluation import ConfigError
    from w2s_lens.models import ModelLoadError
    from w2s_lens.prompts import PromptError
    from w2s_lens.router import RouterMismatchError

    user_errors = (ArtifactMismatch, AssetError, BehaviourError, ConfigError, DatasetError,
                   ModelLoadError,
                   PromptError, RouterMismatchError, FileNotFoundError)
    if os.environ.get("W2S_DEBUG"):
        user_errors = ()  # show full tracebacks
    try:
        return int(args.func(args) or 0)
    except user_errors as exc:
        print(f"w2s-lens {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, KeyError) as exc:
        print(f"w2s-lens {args.command}: error: {exc} (set W2S_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume the sweep", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
