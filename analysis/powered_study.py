"""The powered study: W2S against the best fixed layer at hundreds of items per dataset.

Two plans live here, each fixed before any of it ran (sizes, seeds, layers, protocols):

* ``fair`` (:data:`PLAN`, results in ``analysis/results/fair/``; issue 31): the study asked
  again with routers that can see what decides the label, tuned without fallbacks, with the
  readings that name their evidence and per-item data (``items.csv``) kept for every row;
* ``powered-v1`` (:data:`PLAN_V1`, results in ``analysis/results/powered/``): the first
  13-row study (question-only routers, some untuned; no per-item data). Kept as it ran; it is
  tabulated, not rerun.

Every row is one ``analysis/reproduce_table.py`` invocation per dataset, so each finished
dataset can be committed at once and an interrupted one resumes from its run directory. Run
directories live outside the repository's work tree by default (``$W2S_RUNS_DIR``, else
``~/.local/share/w2s-lens/runs``), so a rerun on the same machine resumes them after a fresh
checkout.

**Primary comparisons of the fair study (stated before running).** Per dataset, on the BASE
test items: (1) W2S with the ``logreg`` router on the *question* view (the residual at the
middle layer of the unanswered prompt, as in the paper) − the best fixed layer; (2) the same
router on the *options* view (the residual over each option's tokens read as a continuation
of the prompt: matching − non-matching, their mean and their token counts) − the best fixed
layer. Each: the paired 95% interval and the exact sign-flip test (one-sided 2.5%), with
Benjamini-Hochberg across the datasets of the study row, each comparison its own BH family.
Everything else (other router kinds and views, the cross-validated oracle, the retest, the
learning curve, the OOD variants, the 1.5B rows) is secondary. Every router is tuned by
cross-validation on the training items (``router_cv`` in each ``results.json``).

Rows of the fair study (split seed 0; 5-fold cross-fitted labels; the retest on *all* BASE test
items; router views question, options, question+options and minilm):

* ``cloze-0.5b``: Qwen2.5-Coder-0.5B-Instruct, cloze readout, CAA, the five AI-risk datasets,
  200 training + 200 test items, layers 3, 7, 11, 15, 17, 19, 23, every router kind; on
  corrigible-neutral-HHH and self-awareness-text-model also the OOD variants (system and user
  prompts pushing towards and away from the behaviour; routers trained on BASE, as in the
  paper);
* ``cloze-1.5b``: Qwen2.5-Coder-1.5B-Instruct, cloze, 96 + 96, the 7-layer grid scaled to 28
  layers (3, 8, 13, 17, 20, 22, 27), on corrigible-neutral-HHH and self-awareness-text-model;
* ``paper-0.5b``, ``letter-0.5b``, ``cloze-0.5b-l2s``: the v1 rows of the same names, again
  with per-item data (lower priority: they run after the rows above).

A row that runs smaller than planned (deduplication leaves fewer items) says so: the table's
``n_train`` / ``n_test`` columns are the sizes used, and ``--check`` compares them with the plan.

Usage:
    python analysis/powered_study.py --list                      # the plan, one line per job
    python analysis/powered_study.py --row cloze-0.5b            # run (or resume) one row
    python analysis/powered_study.py --row cloze-0.5b --dataset corrigible-neutral-HHH
    python analysis/powered_study.py --check                     # planned vs used sizes
    python analysis/powered_study.py --pending --workers 2 --commit   # everything not yet run

``--pending`` runs every planned (row, dataset) without a result in the study's results folder,
in plan order, ``--workers K`` of them at a time (one thread each). ``--commit`` commits each
dataset's result folder as soon as it is copied (under a lock, one commit per dataset), so a
session cut off mid-study loses at most the datasets still running, and those resume from
their run directories.

Each finished dataset's ``results.json``, ``run.json``, ``items.csv`` (per item and sweep:
token counts, steerability at every layer, best layer, each router's routed layer),
``table.md``, ``table.csv`` and ``run_log.json`` (command, settings, wall time) are copied to
``analysis/results/<study>/<row>/<dataset>/``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Where the fair study's finished datasets are copied (and committed).
RESULTS = HERE / "results" / "fair"
#: The first study's results (tabulated, not rerun).
RESULTS_V1 = HERE / "results" / "powered"
AI_RISK = ("corrigible-neutral-HHH", "myopic-reward", "self-awareness-good-text-model",
           "self-awareness-text-model", "self-awareness-training-web-gpt")
TWO = ("corrigible-neutral-HHH", "self-awareness-text-model")
GRID_05B = "3,7,11,15,17,19,23"
GRID_15B = "3,8,13,17,20,22,27"
#: BASE test items the v1 retest swept twice (the first, letter-balanced, of the test split).
RETEST_ITEMS = 64
#: What the fair study's routers see (every view, every router kind).
VIEWS = "question,options,question+options,minilm"
#: The prompt variants of the OOD rows: BASE, then system and user prompts pushing towards
#: and away from the behaviour.
OOD = "base,sys-pos,sys-neg,user-pos,user-neg"


def runs_root() -> Path:
    """Where run directories live by default: ``$W2S_RUNS_DIR``, else
    ``~/.local/share/w2s-lens/runs`` (outside any work tree, so a fresh checkout resumes).

    Example:
        >>> runs_root().name  # doctest: +SKIP
        'runs'
    """
    env = os.environ.get("W2S_RUNS_DIR")
    return Path(env) if env else Path.home() / ".local" / "share" / "w2s-lens" / "runs"


@dataclass(frozen=True)
class Row:
    """One planned row of the study: a protocol on a model, over some datasets."""

    name: str
    model: str
    datasets: tuple[str, ...]
    n_train: int
    n_test: int
    args: tuple[str, ...] = field(default_factory=tuple)
    #: BASE test items the retest sweeps ("all", or a number)
    retest: str = "all"
    #: datasets whose test items are also swept under the OOD prompt variants
    ood: tuple[str, ...] = ()
    #: the router views (None: reproduce_table's default, the question view only)
    views: str | None = VIEWS

    @property
    def primary_routers(self) -> tuple[str, ...]:
        """The routers whose W2S − fixed are this row's primary comparisons (each its own
        Benjamini-Hochberg family): ``logreg`` on the question view, and ``logreg@options``
        where the row fits the options view."""
        views = (self.views or "question").split(",")
        return ("logreg",) + (("logreg@options",) if "options" in views else ())

    def command(self, dataset: str, out: Path, threads: int = 1) -> list[str]:
        variants = OOD if dataset in self.ood else "base"
        views = [] if self.views is None else ["--router-inputs", self.views]
        return [sys.executable, str(HERE / "reproduce_table.py"), "--model", self.model,
                "--datasets", dataset, "--n-train", str(self.n_train), "--n-test",
                str(self.n_test), "--seed", "0", "--variants", variants, "--threads",
                str(threads), "--retest-items", self.retest, "--quiet", "--out",
                str(out), *views, *self.args]


_CLOZE_05B = ("--readout", "cloze", "--layers", GRID_05B, "--method", "caa")
_PAPER = ("--readout", "letter", "--no-mirror", "--single-order", "--cross-fit", "0",
          "--layers", "all", "--method", "caa")
_LETTER = ("--readout", "letter", "--mirror", "--layers", "all", "--method", "caa")
_CLOZE_15B = ("--readout", "cloze", "--layers", GRID_15B, "--method", "caa")
_L2S = ("--readout", "cloze", "--layers", GRID_05B, "--method", "l2s")

#: The fair study, in the order ``--pending`` runs it: the primary row (with its OOD
#: variants on two datasets), the larger model, then the v1 rows again with per-item data.
PLAN = (
    Row("cloze-0.5b", "qwen2.5-coder-0.5b-instruct", AI_RISK, 200, 200, _CLOZE_05B, ood=TWO),
    Row("cloze-1.5b", "qwen2.5-coder-1.5b-instruct", TWO, 96, 96, _CLOZE_15B),
    Row("paper-0.5b", "qwen2.5-coder-0.5b-instruct", TWO, 200, 200, _PAPER),
    Row("letter-0.5b", "qwen2.5-coder-0.5b-instruct", TWO, 200, 200, _LETTER),
    Row("cloze-0.5b-l2s", "qwen2.5-coder-0.5b-instruct", TWO, 200, 200, _L2S),
)
#: The v1 study as it ran (the question view only; the retest on 64 BASE test items).
PLAN_V1 = (
    Row("cloze-0.5b", "qwen2.5-coder-0.5b-instruct", AI_RISK, 200, 200, _CLOZE_05B,
        retest=str(RETEST_ITEMS), views=None),
    Row("paper-0.5b", "qwen2.5-coder-0.5b-instruct", TWO, 200, 200, _PAPER,
        retest=str(RETEST_ITEMS), views=None),
    Row("cloze-1.5b", "qwen2.5-coder-1.5b-instruct", TWO, 96, 96, _CLOZE_15B,
        retest=str(RETEST_ITEMS), views=None),
    Row("letter-0.5b", "qwen2.5-coder-0.5b-instruct", TWO, 200, 200, _LETTER,
        retest=str(RETEST_ITEMS), views=None),
    Row("cloze-0.5b-l2s", "qwen2.5-coder-0.5b-instruct", TWO, 200, 200, _L2S,
        retest=str(RETEST_ITEMS), views=None),
)
FILES = ("table.md", "table.csv", "run_log.json")
#: Files of each dataset's own run folder that are copied (``items.csv``: per-item data).
DATASET_FILES = ("results.json", "run.json", "items.csv")


def _row(name: str) -> Row:
    for r in PLAN:
        if r.name == name:
            return r
    raise SystemExit(f"no row {name!r}; rows: {', '.join(r.name for r in PLAN)}")


def run(row: Row, dataset: str, runs: Path, threads: int = 1, commit: bool = False,
        results: Path = RESULTS, study: str = "powered study") -> int:
    """Run (or resume) one dataset of one row; when it succeeds, copy (and optionally commit)
    its files. A dataset another process is running (its run folder's lock is held) is
    skipped with a message; a failed run (non-zero return code) copies nothing, even if an
    older ``results.json`` lies in its run folder.
    """
    out = runs / row.name / dataset
    out.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{dataset}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{row.name}/{dataset}: another process is running it; skipped", flush=True)
            return 0
        cmd = row.command(dataset, out, threads)
        print("$", " ".join(cmd), flush=True)
        t0 = time.time()
        rc = subprocess.call(cmd)
        print(f"{row.name}/{dataset}: rc={rc}, {time.time() - t0:.0f}s", flush=True)
        if rc != 0 or not (out / dataset / "results.json").is_file():
            print(f"{row.name}/{dataset}: failed or unfinished; nothing copied", flush=True)
            return rc or 1
        missing = [n for n in DATASET_FILES if not (out / dataset / n).is_file()]
        if missing:
            print(f"{row.name}/{dataset}: the run left no {', '.join(missing)}; nothing "
                  "copied", flush=True)
            return 1
        dest = results / row.name / dataset
        dest.mkdir(parents=True, exist_ok=True)
        for name in DATASET_FILES:
            shutil.copy2(out / dataset / name, dest / name)
        for name in FILES:
            if (out / name).is_file():
                shutil.copy2(out / name, dest / name)
        if commit and not commit_results(
                dest, f"Results: {study}, {row.name}/{dataset} ({row.n_train}+"
                      f"{row.n_test} planned, {time.time() - t0:.0f}s)"):
            return 1
    return 0


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def commit_results(folder: Path, message: str, tries: int = 30) -> bool:
    """Commit ``folder`` alone (``git commit --only``), under a lock shared by the workers.
    Nothing to commit is success; a busy index (``index.lock``: another git command running)
    is retried for a minute; any other git error is printed, the folder unstaged again, and
    False returned.

    Example:
        >>> commit_results(RESULTS / "cloze-0.5b" / "myopic-reward", "msg")  # doctest: +SKIP
        True
    """
    top = _git(folder, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        print(f"not committed: {folder} is not in a git repository", flush=True)
        return False
    root = Path(top.stdout.strip())
    lock_path = Path(_git(root, "rev-parse", "--git-path", "w2s-powered.lock").stdout.strip())
    with open(root / lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _git(root, "status", "--porcelain", "--", str(folder)).stdout.strip():
            print(f"nothing new to commit in {folder}", flush=True)
            return True
        for _ in range(tries):
            step = _git(root, "add", "--", str(folder))
            if step.returncode == 0:
                step = _git(root, "commit", "-q", "-m", message, "--only", "--", str(folder))
            if step.returncode == 0:
                print(f"committed {folder}", flush=True)
                return True
            if "index.lock" not in step.stderr:
                break
            time.sleep(2)
        _git(root, "reset", "-q", "--", str(folder))
    print(f"NOT committed: {folder}: {step.stderr.strip()}", flush=True)
    return False


def stale_routers(folder: Path) -> list[str]:
    """The routers of a finished dataset's ``folder/results.json`` that were tuned on another
    grid than today's (``method/router`` names; :func:`w2s_lens.cli.table.stale_routers`).
    Rerunning the dataset resumes its run directory and tunes them again.

    Example:
        >>> stale_routers(RESULTS / "letter-0.5b" / "corrigible-neutral-HHH")  # doctest: +SKIP
        ['caa/mlp', 'caa/mlp@options']
    """
    if str(HERE.parent) not in sys.path:
        sys.path.insert(0, str(HERE.parent))
    from w2s_lens.cli.table import stale_routers as stale
    from w2s_lens.evaluation.results.typed import EvaluationResult

    return stale(EvaluationResult.load(folder))


def needs_run(folder: Path, stale: bool = False) -> bool:
    """Whether a planned dataset whose results are copied to ``folder`` is to run: it has no
    ``results.json`` yet, or (with ``stale``) its routers were tuned on another grid."""
    if not (folder / "results.json").is_file():
        return True
    return stale and bool(stale_routers(folder))


def pending(results: Path = RESULTS, stale: bool = False) -> list[tuple[Row, str]]:
    """The planned (row, dataset) jobs without a finished result (with ``stale``, also those
    whose routers were tuned on another grid: :func:`needs_run`), in plan order.

    Example:
        >>> [f"{r.name}/{d}" for r, d in pending()][:1]  # doctest: +SKIP
        ['cloze-0.5b/myopic-reward']
    """
    return [(row, d) for row in PLAN for d in row.datasets
            if needs_run(results / row.name / d, stale)]


def plan_commands(plan: tuple[Row, ...], runs: Path) -> list[str]:
    """Every job of ``plan`` as the command line it runs (``--list``), run folders under
    ``runs``.

    Example:
        >>> plan_commands(PLAN, Path("r"))[0].split()[3]  # doctest: +SKIP
        'qwen2.5-coder-0.5b-instruct'
    """
    return [" ".join(row.command(d, runs / row.name / d)) for row in plan for d in row.datasets]


def run_many(jobs: list[tuple[Row, str]], runs: Path, threads: int, workers: int,
             commit: bool, results: Path = RESULTS, study: str = "powered study") -> int:
    """Run ``jobs`` with ``workers`` at a time, copying finished datasets under ``results``;
    0 when all succeeded, else the first failure's return code (a negative one too: a job
    killed by a signal)."""
    if not jobs:
        print("nothing pending: every planned dataset has a result", flush=True)
        return 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        codes = list(pool.map(lambda job: run(job[0], job[1], runs, threads, commit, results,
                                              study), jobs))
    return next((c for c in codes if c), 0)


def check(results: Path = RESULTS) -> list[str]:
    """Planned against used sizes, per finished dataset (a smaller row is never silent)."""
    lines = []
    for row in PLAN:
        for d in row.datasets:
            f = results / row.name / d / "results.json"
            if not f.is_file():
                lines.append(f"{row.name}/{d}: not run")
                continue
            res = json.loads(f.read_text())
            used = (res.get("n_train"), res.get("n_test"))
            note = ("  SIZES NOT RECORDED" if None in used else "  SMALLER THAN PLANNED"
                    if used[0] < row.n_train or used[1] < row.n_test else "")
            lines.append(f"{row.name}/{d}: planned {row.n_train}+{row.n_test}, used "
                         f"{used[0]}+{used[1]}{note}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--row", help="the row to run (see --list)")
    p.add_argument("--dataset", help="only this dataset of the row")
    p.add_argument("--runs", default=str(runs_root() / "powered"),
                   help="run directories (resumable; default: $W2S_RUNS_DIR/powered, else "
                        "~/.local/share/w2s-lens/runs/powered: outside the work tree)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 is fastest on a busy 2-core machine)")
    p.add_argument("--list", action="store_true", help="print the plan")
    p.add_argument("--check", action="store_true", help="planned vs used sizes")
    p.add_argument("--pending", action="store_true",
                   help="run every planned dataset that has no result yet, in plan order")
    p.add_argument("--stale", action="store_true",
                   help="with --pending: also the finished datasets whose routers were tuned on "
                        "another grid than today's (their run directories resume and the "
                        "routers are tuned again; without the run directories that is the "
                        "whole dataset again)")
    p.add_argument("--workers", type=int, default=1,
                   help="datasets run at a time (each with --threads threads)")
    p.add_argument("--commit", action="store_true",
                   help="git-commit each dataset's result folder as soon as it is copied")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(plan_commands(PLAN, Path(args.runs))))
        return 0
    if args.check:
        print("\n".join(check()))
        return 0
    if args.pending:
        if args.row or args.dataset:
            p.error("--pending runs the whole plan; drop --row/--dataset")
        return run_many(pending(stale=args.stale), Path(args.runs), args.threads, args.workers,
                        args.commit)
    if args.stale:
        p.error("--stale chooses among --pending's datasets (a --row/--dataset always runs, "
                "and tunes stale routers again)")
    if not args.row:
        p.error("give --row, --pending, --list or --check")
    row = _row(args.row)
    datasets = [args.dataset] if args.dataset else list(row.datasets)
    return run_many([(row, d) for d in datasets], Path(args.runs), args.threads,
                    args.workers, args.commit)


if __name__ == "__main__":
    sys.exit(main())
