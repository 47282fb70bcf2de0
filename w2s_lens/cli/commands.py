"""The ``w2s-lens`` command line: argument parsing, then one library call per command.

Nothing heavy is imported until a command runs, so ``w2s-lens --help`` answers at once.
Every command's work is a function of :mod:`w2s_lens.cli.jobs` (or :mod:`w2s_lens.demo.walkthrough`,
:mod:`w2s_lens.report.html`, :mod:`w2s_lens.models.loading`). Before it runs, the command line
becomes settings and is checked without loading a model (:mod:`w2s_lens.cli.settings`). The
shared options are defined in :mod:`w2s_lens.cli.options`, their values parsed in
:mod:`w2s_lens.cli.values`.

Run ``w2s-lens COMMAND --help`` for each command's options.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from w2s_lens.choices import DTYPES, EMBEDDINGS, ROUTER_KINDS, VARIANTS
from w2s_lens.cli.options import (
    ADVISE_HIDDEN,
    DESCRIPTIONS,
    PICKED_THREADS,
    SUMMARIES,
    add_data,
    add_eval,
    add_model,
    hide_options,
)
from w2s_lens.cli.settings import config_from_args, preflight
from w2s_lens.cli.values import OptionError, finite, threads, usable_cores
from w2s_lens.cli.values import layers as _layers

__all__ = ["main", "build_parser"]


# ----------------------------------------------------------------------------- commands


def cmd_check_model(args: argparse.Namespace) -> int:
    from w2s_lens.models.loading import check_model

    diff = check_model(args.model, device=args.device, dtype=args.dtype)
    print(f"max_abs_logprob_diff={diff:.3e}")
    return 0 if diff <= args.tolerance else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from w2s_lens.demo.walkthrough import run_demo

    run_demo(config_from_args(args), args.out, show=args.show, control=args.control,
             threads=args.threads)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from w2s_lens.cli.jobs import run_evaluation
    from w2s_lens.report.tables.summary import ratio_line

    result = run_evaluation(config_from_args(args), args.out)
    print(result.summary())
    if args.report:
        from w2s_lens.report.html import write_report

        print(f"report: {write_report(args.out).resolve()}")
    print(ratio_line(result))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from w2s_lens.cli.jobs import run_sweep_job

    res = run_sweep_job(config_from_args(args), args.out, split=args.split,
                        variant=args.variant)
    s = res.mirrored().steerability.mean(0)
    print("mean steerability per layer: " + " ".join(
        f"{layer}:{v:+.3f}" for layer, v in zip(res.layers, s)))
    print(f"best mean layer={res.layers[int(s.argmax())]} steerability={s.max():+.4f}")
    print(f"wrote {args.out}")
    return 0


def cmd_advise(args: argparse.Namespace) -> int:
    from w2s_lens.cli.jobs import advise_job

    if args.verify < 0:
        raise OptionError(f"--verify {args.verify}: give 0 (no check) or a positive count")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise OptionError(f"--out {args.out} is a file; give a directory")
    adv = advise_job(config_from_args(args), verify=args.verify, advise_on=args.advise_on)
    print(adv.summary())
    if args.out is not None:
        from w2s_lens.report.plots_advice import write_advice

        paths = write_advice(adv, args.out)
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_train_router(args: argparse.Namespace) -> int:
    from w2s_lens.cli.jobs import train_router_job

    w2s = train_router_job(args.sweep, args.out, args.router, args.embedding,
                           args.embedding_layer, args.device, args.dtype,
                           allow_test_split=args.allow_test_split)
    print(f"router {w2s.router.kind}: cv {w2s.router.cv_info_}")
    print(f"wrote {args.out}")
    return 0


def cmd_vectors(args: argparse.Namespace) -> int:
    from w2s_lens.cli.jobs import vectors_from_pairs_job

    vecs = vectors_from_pairs_job(args.pairs, args.out, args.model, args.layers, args.device,
                                  args.dtype)
    print(f"{vecs.metadata.get('n_pairs')} pairs → vectors at layers {vecs.layers[0]}.."
          f"{vecs.layers[-1]}; norms " + " ".join(f"{n:.2f}" for n in vecs.norms().tolist()))
    print(f"wrote {args.out}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from w2s_lens.cli.jobs import generate_job
    from w2s_lens.report.tables.summary import comparison_text

    rows = generate_job(args.router, [args.prompt] if args.prompt else [], args.dataset,
                        args.n, args.multiplier, args.max_new_tokens, args.model, args.device,
                        args.dtype, args.data_dir)
    print(comparison_text(rows, rich_table=sys.stdout.isatty() and args.compare))
    return 0


def cmd_refit(args: argparse.Namespace) -> int:
    from w2s_lens.artifacts.json_files import read_json
    from w2s_lens.cli.jobs import refit_job

    routers = [r for r in args.routers.split(",") if r] if args.routers else None
    results = Path(args.run_dir) / "results.json"
    before = len(read_json(results).get("refits") or []) if results.is_file() else 0
    refits = refit_job(args.run_dir, routers, args.data_dir, device=args.device,
                       dtype=args.dtype).refits or ()
    if len(refits) == before:
        print("nothing to refit: every router was tuned on today's grid")
        return 0
    print(f"refitted {', '.join(refits[-1]['routers'])}; wrote {results}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from w2s_lens.evaluation.storage.runlock import hold
    from w2s_lens.report.html import write_report

    if not Path(args.run_dir).is_dir():  # hold() would create it
        raise FileNotFoundError(f"run directory {args.run_dir} does not exist")
    with hold(args.run_dir):  # reading a sweep may heal (rewrite) it: one writer at a time
        out = write_report(args.run_dir, args.out, strict=True)  # damage: exit 2
    print(f"report: {out.resolve()}")
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``w2s-lens`` (imports nothing heavy); each command's handler is
    its ``func``.

    Example:
        >>> args = build_parser().parse_args(["report", "runs/quick"])
        >>> args.command, args.run_dir, args.func.__name__
        ('report', 'runs/quick', 'cmd_report')
    """
    parser = argparse.ArgumentParser(
        prog="w2s-lens", description="Where to steer: per-input steering-layer selection for "
        "TransformerLens models. Each command's --help lists its options.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=SUMMARIES[name], description=DESCRIPTIONS[name])
        p.set_defaults(func=func)
        return p

    p = command("demo", cmd_demo)
    add_model(p, threads_default=PICKED_THREADS)
    add_data(p, default="corrigible-neutral-HHH")
    add_eval(p, ["base"])
    p.add_argument("--out", default="runs/demo", help="run directory (default: %(default)s)")
    p.add_argument("--show", type=int, default=2, help="prompts to print (default: %(default)s)")
    p.add_argument("--control", action=argparse.BooleanOptionalAction, default=True,
                   help="run the synthetic positive control first (default: on)")

    p = command("check-model", cmd_check_model)
    add_model(p)
    p.add_argument("--tolerance", type=finite, default=1e-3,
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
                   help="which split to sweep (default: %(default)s; train: for fitting a "
                        "router with train-router)")
    p.add_argument("--out", required=True, help="sweep directory")

    p = command("advise", cmd_advise)
    add_model(p)
    add_data(p)
    add_eval(p, ["base"])
    hide_options(p, ADVISE_HIDDEN)
    p.add_argument("--verify", type=int, default=0,
                   help="also sweep this many test items for real and print how far the "
                        "advice agrees with the measured slopes (default: 0, no sweep)")
    p.add_argument("--advise-on", default=None, metavar="FILE",
                   help="advise on these A/B items (a .jsonl/.json file) instead of the test "
                        "split; the --dataset items with other questions train the vectors")
    p.add_argument("--out", default=None,
                   help="write advice.json, items.csv and advice.html (the figure) here")

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
    p.add_argument("--threads", type=threads, default=None,
                   help="torch CPU threads, 1 to the cores this process may use")
    p.add_argument("--out", required=True, help="bundle directory")
    p.add_argument("--allow-test-split", action="store_true",
                   help="fit on a sweep of the test split (refused without it: its items "
                        "could then not judge the router)")

    p = command("evaluate", cmd_evaluate)
    add_model(p)
    add_data(p)
    add_eval(p, ["base"])
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
    p.add_argument("--multiplier", type=finite, default=1.0, help="λ (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=40, help="(default: %(default)s)")

    p = command("refit", cmd_refit)
    p.add_argument("run_dir", help="a finished run directory (results.json, run.json, items.csv)")
    p.add_argument("--routers", default=None,
                   help="comma-separated router names, e.g. mlp,mlp@options (default: those "
                        "tuned on an older grid)")
    p.add_argument("--data-dir", default=None, help="folder of the run's dataset")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: the run's)")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help="model precision (default: the run's)")

    p = command("report", cmd_report)
    p.add_argument("run_dir", help="a run or sweep directory")
    p.add_argument("--out", default=None, help="default: RUN_DIR/report.html")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``w2s-lens``: parse ``argv`` (default: the command line), run the
    command and return its exit status: 0 done, 2 an error said in one line (a refused input,
    a damaged artifact, a path that cannot be written), 130 interrupted (rerun to resume).

    Example:
        >>> main(["report", "runs/quick"])  # doctest: +SKIP
        0
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[w2s-lens] %(message)s")
    import warnings

    warnings.filterwarnings("ignore", message=".*HookedTransformer is deprecated.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if hasattr(args, "threads"):  # a model command: every core this process may use
        import torch

        torch.set_num_threads(args.threads or usable_cores())
    from w2s_lens.artifacts.provenance import ArtifactMismatch
    from w2s_lens.assets import AssetError
    from w2s_lens.data.behaviours import BehaviourError
    from w2s_lens.data.chat import PromptError
    from w2s_lens.data.items import DatasetError
    from w2s_lens.evaluation.config_parts import ConfigError
    from w2s_lens.models.embedded import ModelLoadError

    user_errors: tuple[type[BaseException], ...] = (
        ArtifactMismatch, AssetError, BehaviourError, ConfigError, DatasetError, ModelLoadError,
        OptionError, PromptError, FileNotFoundError)
    if os.environ.get("W2S_DEBUG"):
        user_errors = ()  # show full tracebacks
    try:
        preflight(args)
        return int(args.func(args) or 0)
    except user_errors as exc:
        print(f"w2s-lens {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # read-only, full or forbidden: one line naming the path
        if os.environ.get("W2S_DEBUG"):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"w2s-lens {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
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
