"""The powered study: W2S against the best fixed layer at hundreds of items per dataset.

The plan is fixed here, before any of it runs (sizes, seeds, layers, protocols), and every row
is one ``analysis/reproduce_table.py`` invocation per dataset, so each finished dataset can be
committed at once and an interrupted one resumes from its run directory.

**Primary comparison (stated before running).** Per dataset: W2S (the ``logreg`` router on the
residual at the middle layer) − the best fixed layer, on the BASE test items, the paired 95%
interval and the exact sign-flip test (one-sided 2.5%), with Benjamini-Hochberg across the
datasets of the study at the same level. Everything else — other routers, L2S, the
cross-validated oracle, retest agreement, the learning curve, the letter-readout and
paper-protocol rows, the 1.5B rows — is secondary.

Rows (split seed 0 everywhere; BASE variant only; 5-fold cross-fitted labels except the paper
protocol; the retest on the first 64 BASE test items):

* ``cloze-0.5b``: Qwen2.5-Coder-0.5B-Instruct, cloze readout, CAA, the five AI-risk datasets,
  200 training + 200 test items, layers 3, 7, 11, 15, 17, 19, 23, every router kind;
* ``cloze-0.5b-l2s``: the same with L2S next to CAA on corrigible-neutral-HHH and
  self-awareness-text-model;
* ``letter-0.5b``: mirrored letter readout, all layers, 200 + 200, on those two;
* ``paper-0.5b``: the paper's protocol on those two — single letter order for vectors and
  sweeps, in-sample labels (``--no-mirror --single-order --cross-fit 0``);
* ``cloze-1.5b``: Qwen2.5-Coder-1.5B-Instruct, cloze, 96 + 96, the 7-layer grid scaled to 28
  layers (3, 8, 13, 17, 20, 22, 27), on corrigible-neutral-HHH and self-awareness-text-model.

A row that runs smaller than planned (deduplication leaves fewer items) says so: the table's
``n_train`` / ``n_test`` columns are the sizes used, and ``--check`` compares them with the plan.

Usage:
    python analysis/powered_study.py --list                      # the plan, one line per job
    python analysis/powered_study.py --row cloze-0.5b            # run (or resume) one row
    python analysis/powered_study.py --row cloze-0.5b --dataset corrigible-neutral-HHH
    python analysis/powered_study.py --check                     # planned vs used sizes
    python analysis/powered_study.py --pending --workers 2 --commit   # everything not yet run

``--pending`` runs every planned (row, dataset) without a result in ``analysis/results/powered``,
in plan order (the primary row first, then the paper protocol, the 1.5B model, the mirrored
letter readout and L2S), ``--workers K`` of them at a time (one thread each). ``--commit``
commits each dataset's result folder as soon as it is copied (under a lock, one commit per
dataset), so a session cut off mid-study loses at most the datasets still running, and those
resume from their run directories.

Each finished dataset's ``results.json``, ``run.json``, ``table.md``, ``table.csv`` and
``run_log.json`` (command, settings, wall time) are copied to
``analysis/results/powered/<row>/<dataset>/``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "powered"
AI_RISK = ("corrigible-neutral-HHH", "myopic-reward", "self-awareness-good-text-model",
           "self-awareness-text-model", "self-awareness-training-web-gpt")
TWO = ("corrigible-neutral-HHH", "self-awareness-text-model")
GRID_05B = "3,7,11,15,17,19,23"
GRID_15B = "3,8,13,17,20,22,27"
#: BASE test items the retest sweeps twice (the first, letter-balanced, of the test split).
RETEST_ITEMS = 64


@dataclass(frozen=True)
class Row:
    """One planned row of the study: a protocol on a model, over some datasets."""

    name: str
    model: str
    datasets: tuple[str, ...]
    n_train: int
    n_test: int
    args: tuple[str, ...] = field(default_factory=tuple)

    def command(self, dataset: str, out: Path, threads: int = 1) -> list[str]:
        return [sys.executable, str(HERE / "reproduce_table.py"), "--model", self.model,
                "--datasets", dataset, "--n-train", str(self.n_train), "--n-test",
                str(self.n_test), "--seed", "0", "--variants", "base", "--threads",
                str(threads), "--retest-items", str(RETEST_ITEMS), "--quiet", "--out",
                str(out), *self.args]


#: The plan, in the order ``--pending`` runs it: the primary row, then the rows that say what
#: the paper's protocol claims (cheap: letter readout, one order), the larger model, the
#: mirrored letter readout and L2S.
PLAN = (
    Row("cloze-0.5b", "qwen2.5-coder-0.5b-instruct", AI_RISK, 200, 200,
        ("--readout", "cloze", "--layers", GRID_05B, "--method", "caa")),
    Row("paper-0.5b", "qwen2.5-coder-0.5b-instruct", TWO, 200, 200,
        ("--readout", "letter", "--no-mirror", "--single-order", "--cross-fit", "0",
         "--layers", "all", "--method", "caa")),
    Row("cloze-1.5b", "qwen2.5-coder-1.5b-instruct", TWO, 96, 96,
        ("--readout", "cloze", "--layers", GRID_15B, "--method", "caa")),
    Row("letter-0.5b", "qwen2.5-coder-0.5b-instruct", TWO, 200, 200,
        ("--readout", "letter", "--mirror", "--layers", "all", "--method", "caa")),
    Row("cloze-0.5b-l2s", "qwen2.5-coder-0.5b-instruct", TWO, 200, 200,
        ("--readout", "cloze", "--layers", GRID_05B, "--method", "l2s")),
)
FILES = ("table.md", "table.csv", "run_log.json")


def _row(name: str) -> Row:
    for r in PLAN:
        if r.name == name:
            return r
    raise SystemExit(f"no row {name!r}; rows: {', '.join(r.name for r in PLAN)}")


def run(row: Row, dataset: str, runs: Path, threads: int = 1, commit: bool = False,
        results: Path = RESULTS) -> int:
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
        dest = results / row.name / dataset
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("results.json", "run.json"):
            shutil.copy2(out / dataset / name, dest / name)
        for name in FILES:
            if (out / name).is_file():
                shutil.copy2(out / name, dest / name)
        if commit and not commit_results(
                dest, f"Results: powered study, {row.name}/{dataset} ({row.n_train}+"
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


def pending(results: Path = RESULTS) -> list[tuple[Row, str]]:
    """The planned (row, dataset) jobs without a finished result, in plan order.

    Example:
        >>> [f"{r.name}/{d}" for r, d in pending()][:1]  # doctest: +SKIP
        ['cloze-0.5b/myopic-reward']
    """
    return [(row, d) for row in PLAN for d in row.datasets
            if not (results / row.name / d / "results.json").is_file()]


def run_many(jobs: list[tuple[Row, str]], runs: Path, threads: int, workers: int,
             commit: bool) -> int:
    """Run ``jobs`` with ``workers`` at a time; 0 when all succeeded, else the first failure's
    return code (a negative one too: a job killed by a signal)."""
    if not jobs:
        print("nothing pending: every planned dataset has a result", flush=True)
        return 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        codes = list(pool.map(lambda job: run(job[0], job[1], runs, threads, commit), jobs))
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
    p.add_argument("--runs", default=str(HERE.parent / "runs" / "powered"),
                   help="run directories (resumable; default: runs/powered in the repository)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 is fastest on a busy 2-core machine)")
    p.add_argument("--list", action="store_true", help="print the plan")
    p.add_argument("--check", action="store_true", help="planned vs used sizes")
    p.add_argument("--pending", action="store_true",
                   help="run every planned dataset that has no result yet, in plan order")
    p.add_argument("--workers", type=int, default=1,
                   help="datasets run at a time (each with --threads threads)")
    p.add_argument("--commit", action="store_true",
                   help="git-commit each dataset's result folder as soon as it is copied")
    args = p.parse_args(argv)
    if args.list:
        for row in PLAN:
            for d in row.datasets:
                print(" ".join(row.command(d, Path(args.runs) / row.name / d)))
        return 0
    if args.check:
        print("\n".join(check()))
        return 0
    if args.pending:
        if args.row or args.dataset:
            p.error("--pending runs the whole plan; drop --row/--dataset")
        return run_many(pending(), Path(args.runs), args.threads, args.workers, args.commit)
    if not args.row:
        p.error("give --row, --pending, --list or --check")
    row = _row(args.row)
    datasets = [args.dataset] if args.dataset else list(row.datasets)
    return run_many([(row, d) for d in datasets], Path(args.runs), args.threads,
                    args.workers, args.commit)


if __name__ == "__main__":
    sys.exit(main())
