"""The ``w2s-lens`` command line: argument parsing, then one library call per command.

Nothing heavy is imported until a command runs, so ``w2s-lens --help`` answers at once.
Every command's work is a function of :mod:`w2s_lens.evaluation.jobs` (or :mod:`w2s_lens.demo`,
:mod:`w2s_lens.report.html`, :mod:`w2s_lens.models.loading`), which checks the output directory
and the settings before any model is loaded. The shared options are defined in
:mod:`w2s_lens.cli_options`.

Run ``w2s-lens COMMAND --help`` for each command's options.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from w2s_lens.choices import DTYPES, EMBEDDINGS, ROUTER_KINDS, VARIANTS
from w2s_lens.cli_options import DESCRIPTIONS, SUMMARIES, add_data, add_eval, add_model
from w2s_lens.cli_options import layers as _layers

__all__ = ["main", "build_parser", "config_from_args", "usable_cores"]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one).

    Example:
        >>> usable_cores() >= 1
        True
    """
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else max(1, os.cpu_count() or 1)


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
        retest=args.retest, retest_max_items=args.retest_items,
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
    add_model(p)
    add_data(p, default="corrigible-neutral-HHH")
    add_eval(p, ["base"])
    p.add_argument("--out", default="runs/demo", help="run directory (default: %(default)s)")
    p.add_argument("--show", type=int, default=2, help="prompts to print (default: %(default)s)")
    p.add_argument("--control", action=argparse.BooleanOptionalAction, default=True,
                   help="run the synthetic positive control first (default: on)")

    p = command("check-model", cmd_check_model)
    add_model(p)
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="largest accepted log-probability difference (default: %(default)s)")

    p = command("vectors", cmd_vectors)
    add_model(p)
    p.add_argument("--pairs", required=True, help="JSONL file of contrast pairs")
    p.add_argument("--layers", type=_layers, default=None,
                   help="'all' or comma-separated layers (default: all)")
    p.add_argument("--out", required=True, help="output directory")

    p = command("sweep", cmd_sweep)
    add_model(p)
    add_data(p)
    add_eval(p, ["base"])
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
    add_model(p)
    add_data(p)
    add_eval(p, list(VARIANTS))
    p.add_argument("--out", required=True, help="run directory (resumed if it holds this run)")
    p.add_argument("--report", action="store_true", help="also write report.html")

    p = command("generate", cmd_generate)
    add_model(p, default=None)
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
    if hasattr(args, "threads"):  # a model command: every core this process may use
        import torch

        torch.set_num_threads(args.threads or usable_cores())
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
