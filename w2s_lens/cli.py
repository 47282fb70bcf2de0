"""The ``w2s-lens`` command line: argument parsing, then one library call per command.

Nothing heavy is imported until a command runs, so ``w2s-lens --help`` answers at once.
Every command's work is a function of :mod:`w2s_lens.evaluation.jobs` (or :mod:`w2s_lens.demo`,
:mod:`w2s_lens.report.html`, :mod:`w2s_lens.models.loading`), which checks the output directory and the
settings before any model is loaded.

Run ``w2s-lens COMMAND --help`` for each command's options.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from w2s_lens.choices import (
    DEFAULT_MODEL,
    DEFAULT_MULTIPLIERS,
    DEFAULT_SYSTEM_PROMPT,
    DTYPES,
    EMBEDDINGS,
    ENGINES,
    METHODS,
    POSITIONS,
    READOUTS,
    ROUTER_KINDS,
    SCALES,
    VARIANTS,
)

__all__ = ["main", "build_parser", "config_from_args"]

SUMMARIES = {
    "demo": "the main job on the embedded defaults: a positive control, then a real model",
    "check-model": "HookedTransformer vs transformers log-probabilities",
    "vectors": "CAA vectors from custom contrast pairs",
    "sweep": "CAA vectors + a layer × multiplier sweep of one split",
    "train-router": "fit a router on a training-split sweep",
    "evaluate": "the whole W2S comparison (CAA, L2S or both)",
    "generate": "unsteered / fixed-layer / routed continuations side by side",
    "report": "a self-contained HTML report of a run",
}
DESCRIPTIONS = {
    "demo": "The main job on the embedded defaults, in one run: first the synthetic positive "
            "control (a hand-built model whose input families are steerable only at their own "
            "layers: W2S must find them), then the embedded model on a dataset where it "
            "steers (corrigible-neutral-HHH from --data-dir or $W2S_DATA_DIR, downloaded when "
            "online, else the embedded sycophancy set), ending with an HTML report.",
    "check-model": "Compare the HookedTransformer with the dequantized transformers model of "
                   "an embedded model: prints the largest next-token log-probability "
                   "difference and fails above --tolerance.",
    "vectors": "Build CAA steering vectors from a JSONL file of custom contrast pairs "
               "({\"positive\": ..., \"negative\": ..., \"read_position\": -1}); the sweep "
               "and evaluate commands take them with --vectors.",
    "sweep": "Train CAA vectors on the training split (or take --vectors) and steer every "
             "input of one split at every layer with every multiplier, recording propensities "
             "and steerability slopes in a sweep directory (resumable).",
    "train-router": "Fit a layer router on a training-split sweep directory and save a W2S "
                    "bundle that `generate` can use.",
    "evaluate": "The whole W2S comparison for one dataset: vectors, cross-fitted training "
                "sweep, routers, test sweeps for every variant, and fixed vs W2S vs oracle with "
                "bootstrap intervals, for CAA, L2S or both.",
    "generate": "Greedy continuations of a prompt (or the first N of a dataset), unsteered, "
                "at the bundle's fixed layer and at the routed layer, side by side.",
    "report": "Write a self-contained HTML report (figures, tables, verdicts) for a run or "
              "sweep directory.",
}


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


def _add_model(p: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL) -> None:
    p.add_argument("--model", default=default,
                   help="embedded model name or a Hugging Face model id (default: "
                        f"{default or 'the bundle or sweep model'})")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when present), cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="model precision; readouts are float32 whatever it is "
                        "(default: %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is fastest on a busy "
                        "machine)")


def _add_data(p: argparse.ArgumentParser, default: str = "default") -> None:
    p.add_argument("--dataset", default=default,
                   help="dataset name (e.g. corrigible-neutral-HHH), a .jsonl/.json file "
                        "(anthropics/evals or CAA layout), or 'default' for the embedded "
                        "sycophancy set (default: %(default)s)")
    p.add_argument("--data-dir", default=None,
                   help="folder in the anthropics/evals or CAA layout (default: $W2S_DATA_DIR)")


def _add_eval(p: argparse.ArgumentParser, variants: Sequence[str]) -> None:
    g = p.add_argument_group("split")
    g.add_argument("--n-train", type=int, default=None, help="cap on training items")
    g.add_argument("--n-test", type=int, default=None, help="cap on test items")
    g.add_argument("--seed", type=int, default=0, help="split seed (default: %(default)s)")
    g.add_argument("--train-fraction", type=float, default=0.5,
                   help="share of the items used for training (default: %(default)s)")
    g = p.add_argument_group("steering")
    g.add_argument("--method", choices=METHODS, default="caa",
                   help="caa: one vector per layer; l2s: a vector per input; both "
                        "(default: %(default)s)")
    g.add_argument("--layers", type=_layers, default=None,
                   help="'all' or comma-separated layers (default: every layer but 0)")
    g.add_argument("--multipliers", type=_floats, default=list(DEFAULT_MULTIPLIERS),
                   help="comma-separated λ values (default: -1.5,-1,-0.5,0,0.5,1,1.5); write "
                        "--multipliers=-1,0,1 so the leading minus is not read as an option")
    g.add_argument("--readout", choices=READOUTS, default="letter",
                   help="letter: A/B logit difference; cloze: option texts scored without "
                        "letters (default: %(default)s)")
    g.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                   help="letter readout: average both letter orders of every item "
                        "(default: on)")
    g.add_argument("--length-norm", action="store_true",
                   help="cloze readout: divide each option's log-probability by its length")
    g.add_argument("--engine", choices=ENGINES, default="fast",
                   help="fast, or naive (a full forward pass per run; the reference)")
    g.add_argument("--positions", choices=POSITIONS, default="from_last",
                   help="steer from the last prompt token on, or at all tokens")
    g.add_argument("--scale", choices=SCALES, default="raw",
                   help="multiplier scale: raw (the paper's) or relative to the residual norm")
    g.add_argument("--fraction", type=float, default=0.25,
                   help="--scale relative: share of the residual norm that λ=1 adds")
    g.add_argument("--single-order", action="store_true",
                   help="train vectors on one letter order only (the paper's setup; risks an "
                        "A-vs-B artifact)")
    g.add_argument("--vectors", default=None,
                   help="use these CAA vectors (a directory from `w2s-lens vectors` or "
                        "`sweep`) instead of training them")
    g.add_argument("--system-prompt", default=DEFAULT_SYSTEM_PROMPT,
                   help="the base system prompt (default: %(default)r)")
    g = p.add_argument_group("routing and statistics")
    g.add_argument("--variants", type=_names, default=list(variants),
                   help=f"comma-separated test variants, from {','.join(VARIANTS)} "
                        f"(default: {','.join(variants)})")
    g.add_argument("--embedding", choices=EMBEDDINGS, default="resid-last",
                   help="router input (default: %(default)s)")
    g.add_argument("--embedding-layer", type=int, default=None,
                   help="residual layer of the embedding (default: the middle layer)")
    g.add_argument("--routers", type=_names, default=list(ROUTER_KINDS),
                   help="comma-separated router kinds; the first is the primary one")
    g.add_argument("--cross-fit", type=int, default=5,
                   help="folds: each training item is swept with vectors fitted without it "
                        "(0: in-sample; default: %(default)s)")
    g.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    g = p.add_argument_group("L2S")
    g.add_argument("--l2s-hidden", type=int, default=256, help="MLP hidden width")
    g.add_argument("--l2s-epochs", type=int, default=300, help="maximum training epochs")
    g.add_argument("--l2s-weight-decay", type=float, default=1e-2, help="AdamW weight decay")
    g.add_argument("--l2s-input-layer", type=int, default=None,
                   help="layer of the input representation (default: the middle layer)")
    g = p.add_argument_group("compute")
    g.add_argument("--batch-size", type=int, default=8, help="prompts per caching pass")
    g.add_argument("--chunk-size", type=int, default=8, help="inputs per resumable sweep chunk")
    g.add_argument("--max-rows", type=int, default=None,
                   help="fast engine: batch the steered rows of several inputs, up to this "
                        "many (default: one input at a time)")


def config_from_args(args: argparse.Namespace):
    """The :class:`~w2s_lens.evaluation.config.EvalConfig` a parsed command line asks for."""
    from w2s_lens.evaluation.config import EvalConfig
    from w2s_lens.steering.l2s import L2SConfig

    return EvalConfig(
        dataset=args.dataset, data_dir=args.data_dir, vectors=args.vectors, model=args.model,
        device=args.device, dtype=args.dtype, variants=tuple(args.variants),
        n_train=args.n_train, n_test=args.n_test, train_fraction=args.train_fraction,
        seed=args.seed, layers=None if args.layers is None else tuple(args.layers),
        multipliers=tuple(args.multipliers), readout=args.readout, mirror=args.mirror,
        length_norm=args.length_norm, method=args.method, engine=args.engine,
        positions=args.positions, scale=args.scale, fraction=args.fraction,
        embedding=args.embedding, embedding_layer=args.embedding_layer,
        routers=tuple(args.routers), primary_router=(args.routers or ["logreg"])[0],
        both_orders=not args.single_order, cross_fit=args.cross_fit,
        system_prompt=args.system_prompt,
        l2s=L2SConfig(input_layer=args.l2s_input_layer, hidden=args.l2s_hidden,
                      epochs=args.l2s_epochs, weight_decay=args.l2s_weight_decay,
                      seed=args.seed),
        n_boot=args.n_boot, batch_size=args.batch_size, chunk_size=args.chunk_size,
        max_rows=args.max_rows)


# ----------------------------------------------------------------------------- commands


def cmd_check_model(args: argparse.Namespace) -> int:
    from w2s_lens.models.loading import check_model

    diff = check_model(args.model, device=args.device, dtype=args.dtype)
    print(f"max_abs_logprob_diff={diff:.3e}")
    return 0 if diff <= args.tolerance else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from w2s_lens.demo import run_demo

    run_demo(config_from_args(args), args.out, show=args.show, control=args.control)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from w2s_lens.evaluation.jobs import run_evaluation
    from w2s_lens.evaluation.summary import ratio_line, results_table

    results = run_evaluation(config_from_args(args), args.out)
    print(results_table(results))
    if args.report:
        from w2s_lens.report.html import write_report

        print(f"report: {write_report(args.out).resolve()}")
    print(ratio_line(results))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from w2s_lens.evaluation.jobs import run_sweep_job

    res = run_sweep_job(config_from_args(args), args.out, split=args.split,
                        variant=args.variant)
    s = res.mirrored().steerability.mean(0)
    print("mean steerability per layer: " + " ".join(
        f"{layer}:{v:+.3f}" for layer, v in zip(res.layers, s)))
    print(f"best mean layer={res.layers[int(s.argmax())]} steerability={s.max():+.4f}")
    print(f"wrote {args.out}")
    return 0


def cmd_train_router(args: argparse.Namespace) -> int:
    from w2s_lens.evaluation.jobs import train_router_job

    w2s = train_router_job(args.sweep, args.out, args.router, args.embedding,
                           args.embedding_layer, args.device, args.dtype)
    print(f"router {w2s.router.kind}: cv {w2s.router.cv_info_}")
    print(f"wrote {args.out}")
    return 0


def cmd_vectors(args: argparse.Namespace) -> int:
    from w2s_lens.evaluation.jobs import vectors_from_pairs_job

    vecs = vectors_from_pairs_job(args.pairs, args.out, args.model, args.layers, args.device,
                                  args.dtype)
    print(f"{vecs.metadata.get('n_pairs')} pairs → vectors at layers {vecs.layers[0]}.."
          f"{vecs.layers[-1]}; norms " + " ".join(f"{n:.2f}" for n in vecs.norms().tolist()))
    print(f"wrote {args.out}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from w2s_lens.evaluation.jobs import generate_job
    from w2s_lens.evaluation.summary import comparison_text

    rows = generate_job(args.router, [args.prompt] if args.prompt else [], args.dataset,
                        args.n, args.multiplier, args.max_new_tokens, args.model, args.device,
                        args.dtype, args.data_dir)
    print(comparison_text(rows, rich_table=sys.stdout.isatty() and args.compare))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from w2s_lens.report.html import write_report

    print(f"report: {write_report(args.run_dir, args.out).resolve()}")
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``w2s-lens`` (imports nothing heavy)."""
    parser = argparse.ArgumentParser(
        prog="w2s-lens", description="Where to steer: per-input steering-layer selection for "
        "TransformerLens models. Each command's --help lists its options.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=SUMMARIES[name], description=DESCRIPTIONS[name])
        p.set_defaults(func=func)
        return p

    p = command("demo", cmd_demo)
    _add_model(p)
    _add_data(p, default="corrigible-neutral-HHH")
    _add_eval(p, ["base"])
    p.add_argument("--out", default="runs/demo", help="run directory (default: %(default)s)")
    p.add_argument("--show", type=int, default=2, help="prompts to print (default: %(default)s)")
    p.add_argument("--control", action=argparse.BooleanOptionalAction, default=True,
                   help="run the synthetic positive control first (default: on)")
    p.set_defaults(n_train=12, n_test=12)

    p = command("check-model", cmd_check_model)
    _add_model(p)
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="largest accepted log-probability difference (default: %(default)s)")

    p = command("vectors", cmd_vectors)
    _add_model(p)
    p.add_argument("--pairs", required=True, help="JSONL file of contrast pairs")
    p.add_argument("--layers", type=_layers, default=None,
                   help="'all' or comma-separated layers (default: all)")
    p.add_argument("--out", required=True, help="output directory")

    p = command("sweep", cmd_sweep)
    _add_model(p)
    _add_data(p)
    _add_eval(p, ["base"])
    p.add_argument("--variant", choices=VARIANTS, default="base",
                   help="prompt variant of the swept inputs (default: %(default)s)")
    p.add_argument("--split", choices=["test", "train"], default="test",
                   help="which split to sweep (train: for fitting a router)")
    p.add_argument("--out", required=True, help="sweep directory")

    p = command("train-router", cmd_train_router)
    p.add_argument("--sweep", required=True, help="directory written by w2s-lens sweep")
    p.add_argument("--embedding", choices=EMBEDDINGS, default="resid-last",
                   help="router input (default: %(default)s)")
    p.add_argument("--embedding-layer", type=int, default=None,
                   help="residual layer of the embedding (default: the middle layer)")
    p.add_argument("--router", choices=ROUTER_KINDS, default="logreg",
                   help="router kind (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help="model precision (default: the sweep's)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", required=True, help="bundle directory")

    p = command("evaluate", cmd_evaluate)
    _add_model(p)
    _add_data(p)
    _add_eval(p, list(VARIANTS))
    p.add_argument("--out", required=True, help="run directory (resumed if it holds this run)")
    p.add_argument("--report", action="store_true", help="also write report.html")

    p = command("generate", cmd_generate)
    _add_model(p, default=None)
    p.add_argument("--router", required=True, help="a W2S bundle directory "
                   "(e.g. RUN/caa/routers/logreg)")
    p.add_argument("--prompt", default=None, help="the user message")
    p.add_argument("--dataset", default=None,
                   help="a dataset file or name: use its first --n prompts")
    p.add_argument("--data-dir", default=None, help="folder of --dataset")
    p.add_argument("--n", type=int, default=3, help="prompts taken from --dataset")
    p.add_argument("--compare", action="store_true",
                   help="a table of the three continuations side by side (on a terminal)")
    p.add_argument("--multiplier", type=float, default=1.0, help="λ (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=40, help="(default: %(default)s)")

    p = command("report", cmd_report)
    p.add_argument("run_dir", help="a run or sweep directory")
    p.add_argument("--out", default=None, help="default: RUN_DIR/report.html")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``w2s-lens``."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[w2s-lens] %(message)s")
    import warnings

    warnings.filterwarnings("ignore", message=".*HookedTransformer is deprecated.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    from w2s_lens.artifacts import ArtifactMismatch
    from w2s_lens.assets import AssetError
    from w2s_lens.data.behaviours import BehaviourError
    from w2s_lens.data.datasets import DatasetError
    from w2s_lens.data.prompts import PromptError
    from w2s_lens.evaluation.config import ConfigError
    from w2s_lens.models.loading import ModelLoadError

    user_errors: tuple[type[BaseException], ...] = (
        ArtifactMismatch, AssetError, BehaviourError, ConfigError, DatasetError, ModelLoadError,
        PromptError, FileNotFoundError)
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
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
