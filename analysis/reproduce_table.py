"""The paper's table on one model: fixed vs W2S vs oracle over the 13 shared datasets.

A thin command line over :func:`w2s_lens.cli.table.run_table`. For each dataset in
``--data-dir`` (default ``$W2S_DATA_DIR`` or ``../shared/data/mwe``) it runs the whole W2S
evaluation (``w2s_lens.cli.jobs.run_evaluation``) into ``OUT/<dataset>/``, serially or
as one Ray task per dataset (``--ray``; one GPU per task when the cluster has GPUs). It is
resumable: a finished dataset is read back, an interrupted one resumes its sweeps from their
chunks. At the end it writes ``OUT/table.md`` and ``OUT/table.csv``
(:class:`w2s_lens.report.tables.cross_dataset.Table`: per dataset, method and variant the fixed
layer, fixed / W2S with 95% intervals, oracle, letter oracle (single-order letter rows),
answer-form oracle (cloze rows), W2S − fixed with its interval, the paired sign-flip test's
one-sided p-value, name, minimal detectable difference and informative items, the verdict,
router and majority-layer accuracy, sizes; then means over datasets with "W2S beats fixed
beyond the noise (sign-flip, one-sided 2.5%): k of N", the count after Benjamini-Hochberg at
2.5% and the datasets with too few informative items; last, "Is there anything to learn?" per
dataset and method on the base test items: retest agreement and κ of vectors from two halves of
the training items, the cross-validated oracle − fixed with its interval and p, W2S − fixed at
the full training size with its MDE, the answer-form router − fixed on cloze runs, and the case
the diagnostics point to) and ``OUT/run_log.json`` (command line,
settings, sizes, seeds, per-dataset status and wall time, total wall time, library versions;
one entry per invocation, so a resumed run keeps the log of the earlier ones). Results
written before the sign-flip test are tabulated with the test "bootstrap CI (older)".

Usage:
    python analysis/reproduce_table.py --n-train 24 --n-test 12 --out runs/table
    python analysis/reproduce_table.py --n-train 24 --n-test 12 --out runs/table --ray
    python analysis/reproduce_table.py --out runs/table --table-only   # just re-tabulate
    python analysis/reproduce_table.py --out runs/readouts \\
        --combine runs/table runs/table-single runs/table-cloze   # one table, three readouts
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)

#: the repository's root (the run log's paths are written relative to it)
ROOT = Path(__file__).resolve().parent.parent

from w2s_lens.artifacts.json_files import read_json, write_json  # noqa: E402
from w2s_lens.artifacts.provenance import stamp  # noqa: E402
from w2s_lens.choices import (  # noqa: E402
    DEFAULT_MODEL,
    DTYPES,
    METHODS,
    POSITIONS,
    READOUTS,
    ROUTER_INPUTS,
    SCALES,
    SCORINGS,
    VARIANTS,
)
from w2s_lens.cli.values import cap as _cap  # noqa: E402
from w2s_lens.cli.values import finite, positive, scoring_from_args, threads  # noqa: E402
from w2s_lens.cli.values import layers as _layers  # noqa: E402
from w2s_lens.data.datasets import DATASET_NAMES  # noqa: E402
from w2s_lens.evaluation.config import portable_config  # noqa: E402

PAPER_NOTE = ("For orientation only: the W2S paper reports mean CAA steerability over its 13 "
              "datasets of 1.259 (best fixed layer) → 1.502 (W2S) on 7B–14B chat models; the "
              "model here is far smaller, so the numbers are not comparable.")


def _relative(path: str | os.PathLike, start: Path) -> str:
    """``path`` relative to ``start`` (the run log's folder), so the log names no local path."""
    return os.path.relpath(path, start)


def portable_command(command: list[str]) -> list[str]:
    """A command line for the run log without this machine's paths: the interpreter as
    ``python``, an absolute path inside the repository relative to it, one under the home folder
    as ``~/...``, any other relative to the repository.

    Example:
        >>> portable_command([sys.executable, str(ROOT / "analysis" / "x.py"), "--n", "2"])
        ['python', 'analysis/x.py', '--n', '2']
    """
    home = Path.home()
    out = ["python"] if command and command[0] == sys.executable else command[:1]
    for arg in command[1:]:
        path = Path(arg)
        if not path.is_absolute():
            out.append(arg)
        elif path.is_relative_to(ROOT):
            out.append(str(path.relative_to(ROOT)))
        elif path.is_relative_to(home):
            out.append(str(Path("~") / path.relative_to(home)))
        else:
            out.append(os.path.relpath(path, ROOT))
    return out


def default_data_dir() -> str:
    """``$W2S_DATA_DIR``, else ``shared/data/mwe`` next to the repository."""
    env = os.environ.get("W2S_DATA_DIR")
    if env:
        return env
    return str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mwe")


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _w2s_layers(text: str) -> list[int] | None:
    """``--layers``: as ``w2s-lens evaluate`` takes them, and at least two (W2S chooses).

    Example:
        >>> _w2s_layers("15,3"), _w2s_layers("all")
        ([3, 15], None)
    """
    chosen = _layers(text)
    if chosen is not None and len(chosen) < 2:
        raise argparse.ArgumentTypeError(f"W2S chooses a layer per input and needs at least 2 "
                                         f"layers to choose from, got {text!r}")
    return chosen


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("Usage:")[1])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--datasets", type=_names, default=list(DATASET_NAMES),
                   help="comma-separated dataset names (default: the 13)")
    p.add_argument("--data-dir", default=default_data_dir(),
                   help="folder with the anthropics/evals files (default: $W2S_DATA_DIR, else "
                        "../shared/data/mwe next to the repository)")
    p.add_argument("--n-train", type=int, default=32, help="training items per dataset")
    p.add_argument("--n-test", type=int, default=16, help="test items per dataset")
    p.add_argument("--seed", type=int, default=0, help="split seed")
    p.add_argument("--layers", type=_w2s_layers, default=None,
                   help="'all' or comma-separated layers (default: every layer but 0)")
    p.add_argument("--readout", choices=READOUTS, default="letter",
                   help="letter (answer letters) or cloze (option texts)")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                   help="letter readout: average both letter orders of every item")
    p.add_argument("--scoring", choices=SCORINGS, default=None,
                   help="cloze readout: sum (default), mean per token, or the first token")
    p.add_argument("--length-norm", action="store_true",
                   help="cloze readout: the same as --scoring mean")
    p.add_argument("--list-options", action="store_true",
                   help="cloze readout: list both options (no letters) under the question")
    p.add_argument("--router-inputs", type=_names, default=["question"],
                   help=f"comma-separated router views, from {','.join(ROUTER_INPUTS)} "
                        "(default: question)")
    p.add_argument("--method", choices=METHODS, default="caa",
                   help="steering vectors: caa, l2s or both")
    p.add_argument("--variants", type=_names, default=list(VARIANTS),
                   help=f"comma-separated test variants (default: all of {','.join(VARIANTS)})")
    p.add_argument("--scale", choices=SCALES, default="raw",
                   help="raw vectors, or relative to the typical residual norm")
    p.add_argument("--positions", choices=POSITIONS, default="from_last",
                   help="steer from the last prompt token on, at every token, or on the "
                        "prompt only")
    p.add_argument("--single-order", action="store_true",
                   help="train vectors on one letter order only (the paper's protocol)")
    p.add_argument("--cross-fit", type=int, default=5,
                   help="folds for cross-fitted training labels (0: in-sample, the paper's)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--retest", action=argparse.BooleanOptionalAction, default=True,
                   help="headroom retest: two more sweeps of the base test items with vectors "
                        "from two halves of the training items (default: on)")
    p.add_argument("--retest-items", type=_cap, default=64,
                   help="cap on the base test items the retest sweeps, or 'all'; it costs two "
                        "extra test sweeps of this many items (default: %(default)s)")
    p.add_argument("--max-rows", type=int, default=None,
                   help="fast engine: batch the steered rows of several inputs (e.g. 1024 on "
                        "a GPU)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="model precision; readouts stay float32")
    p.add_argument("--out", default="runs/table",
                   help="run folder: one sub-folder per dataset, then table.md and table.csv")
    p.add_argument("--ray", action="store_true", help="one Ray task per dataset")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: start a local instance)")
    p.add_argument("--num-gpus-per-task", type=finite, default=None,
                   help="default: 1 when the cluster has GPUs, else 0")
    p.add_argument("--num-cpus-per-task", type=positive, default=1,
                   help="CPUs each Ray task reserves (default: %(default)s)")
    p.add_argument("--threads", type=threads, default=None,
                   help="torch CPU threads, 1 to the cores this process may use (serially, "
                        "and in every Ray task)")
    p.add_argument("--table-only", action="store_true",
                   help="re-tabulate the finished runs under --out; compute nothing")
    p.add_argument("--combine", nargs="+", default=None, metavar="DIR",
                   help="tabulate the finished runs under these folders together into --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def config_from_args(args: argparse.Namespace):
    """The :class:`~w2s_lens.evaluation.config.EvalConfig` shared by every dataset."""
    from w2s_lens.evaluation.config import EvalConfig

    return EvalConfig(model=args.model, data_dir=args.data_dir, device=args.device,
                      dtype=args.dtype, variants=tuple(args.variants), n_train=args.n_train,
                      n_test=args.n_test, seed=args.seed, layers=args.layers,
                      readout=args.readout, mirror=args.mirror,
                      scoring=scoring_from_args(args), list_options=args.list_options,
                      router_inputs=tuple(args.router_inputs),
                      method=args.method, scale=args.scale, positions=args.positions,
                      n_boot=args.n_boot, both_orders=not args.single_order,
                      cross_fit=args.cross_fit, max_rows=args.max_rows, retest=args.retest,
                      retest_max_items=args.retest_items)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from w2s_lens.cli.table import run_table
    from w2s_lens.report.tables.cross_dataset import Table

    out = Path(args.out)
    t0 = time.time()
    if args.combine:
        table = Table.combine([Table.from_run_root(d, args.datasets) for d in args.combine])
    elif args.table_only:
        table = Table.from_run_root(out, args.datasets)
    else:
        config = config_from_args(args)
        table = run_table(args.datasets, config, out, ray=args.ray, address=args.address,
                          num_gpus_per_task=args.num_gpus_per_task, progress=not args.quiet,
                          num_cpus_per_task=args.num_cpus_per_task, threads=args.threads,
                          keep_going=True)
    if not table.rows:
        print(f"no finished results under {args.combine or out}", file=sys.stderr)
        return 1
    table.header = "\n\n".join(x for x in (table.header, PAPER_NOTE) if x)
    paths = table.write(out)
    wall = time.time() - t0
    if not (args.table_only or args.combine):
        log_file = out / "run_log.json"
        earlier = read_json(log_file).get("invocations", []) if log_file.is_file() else []
        write_json(log_file, stamp({"invocations": earlier + [{
            "command": portable_command([sys.executable, *sys.argv] if argv is None
                                        else list(argv)),
            "config": portable_config(config.to_dict()),
            "datasets": [{**vars(r), "out_dir": _relative(r.out_dir, out),
                          "n_train_items": n_items(r.out_dir, "n_train"),
                          "n_test_items": n_items(r.out_dir, "n_test")} for r in table.runs],
            "ray": {"used": args.ray, "address": args.address,
                    "num_gpus_per_task": args.num_gpus_per_task,
                    "num_cpus_per_task": args.num_cpus_per_task},
            "threads": args.threads,
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t0)),
            "wall_time_s": round(wall, 1),
        }]}))
    print(table.to_markdown())
    print(f"wrote {paths['md']}, {paths['csv']}; total wall time {wall:.0f}s")
    if table.failures:
        for name, err in table.failures.items():
            print(f"FAILED {name}: {err}", file=sys.stderr)
        return 1
    return 0


def n_items(run_dir: str, key: str) -> int | None:
    """``n_train`` / ``n_test`` items of a finished dataset (None when it has no results)."""
    from w2s_lens.evaluation.storage.rundir import RESULTS_FILE, RunDir

    rd = RunDir(run_dir)
    return rd.read_results().get(key) if (rd.path / RESULTS_FILE).is_file() else None


if __name__ == "__main__":
    sys.exit(main())
