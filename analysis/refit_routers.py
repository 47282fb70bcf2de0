"""Refit the stale routers of finished study rows from their per-item data, without a sweep.

A router whose tuning grid has changed since its row ran (``stale``,
:func:`w2s_lens.evaluation.refit.stale_router_names`) needs the row's steerabilities and its
own inputs, not the sweeps: the steerabilities are in the row's ``items.csv`` and the inputs
are unsteered forward passes. For each folder (``results.json``, ``run.json``, ``items.csv``,
as the studies keep them) this script loads the run's items from the data directory, formats
them with the run's settings, and calls :func:`w2s_lens.evaluation.refit.refit_routers`, which
first checks that refitting the primary router reproduces the stored numbers, then refits the
stale routers and rewrites ``results.json`` (with a ``refits`` record) and ``items.csv``. The
folder's ``table.md`` / ``table.csv`` are written again and the wall and CPU time appended to
its ``refit_log.json``.

Usage:
    python analysis/refit_routers.py --stale                # every stale folder of the studies
    python analysis/refit_routers.py FOLDER [FOLDER ...] [--routers mlp,mlp@options]
    python analysis/refit_routers.py --stale --list         # only name them
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from reproduce_table import PAPER_NOTE, default_data_dir  # noqa: E402

from w2s_lens.artifacts.json_files import read_json, write_json  # noqa: E402
from w2s_lens.artifacts.provenance import ArtifactMismatch, stamp  # noqa: E402
from w2s_lens.evaluation.config import EvalConfig  # noqa: E402
from w2s_lens.evaluation.refit import stale_router_names  # noqa: E402
from w2s_lens.evaluation.results.typed import EvaluationResult  # noqa: E402
from w2s_lens.report.tables.cross_dataset import Table, describe_config  # noqa: E402

#: the study folders searched by ``--stale``
STUDIES = (HERE / "results" / "fair", HERE / "results" / "ablation")
LOG_FILE = "refit_log.json"


def stale_folders(roots: tuple[Path, ...] = STUDIES) -> list[Path]:
    """The folders under ``roots`` whose ``results.json`` has a stale router, in name order.

    Example:
        >>> [f.parent.name for f in stale_folders()]  # doctest: +SKIP
        ['cloze-0.5b', 'letter-0.5b', 'letter-0.5b']
    """
    out = []
    for root in roots:
        for f in sorted(root.glob("**/results.json")):
            res = read_json(f)
            if any(stale_router_names(res, m) for m in res.get("methods", {})):
                out.append(f.parent)
    return out


def write_table(folder: Path) -> Table:
    """``table.md`` / ``table.csv`` of one study folder from its ``results.json`` (as the study
    wrote them when the row finished).

    Example:
        >>> write_table(HERE / "results/fair/cloze-0.5b/myopic-reward")  # doctest: +SKIP
    """
    config = EvalConfig.from_dict(dict(read_json(folder / "run.json")["config"]))
    result = EvaluationResult.load(folder)
    table = Table.from_results([result], describe_config(config, result.model))
    table.header = "\n\n".join(x for x in (table.header, PAPER_NOTE) if x)
    table.write(folder)
    return table


def refit_folder(folder: Path, routers: list[str] | None, data_dir: str, models: dict) -> dict:
    """Refit one folder (:func:`w2s_lens.cli.jobs.refit_job`, one model per name kept in
    ``models``), write its table again and append to its log; returns the log entry."""
    from w2s_lens.cli.jobs import refit_job
    from w2s_lens.models.loading import load_model

    t0, c0 = time.perf_counter(), time.process_time()
    config = EvalConfig.from_dict(dict(read_json(folder / "run.json")["config"]))
    name = config.compute.model
    if name not in models:
        models[name] = load_model(name, device=config.compute.device, dtype=config.compute.dtype)
    before = len(read_json(folder / "results.json").get("refits") or [])
    refits = refit_job(folder, routers, data_dir, model=models[name]).refits or ()
    write_table(folder)
    entry = {"routers": refits[-1]["routers"] if len(refits) > before else [],
             "wall_time_s": round(time.perf_counter() - t0, 1),
             "cpu_time_s": round(time.process_time() - c0, 1),
             "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
             "command": " ".join(["python", "analysis/refit_routers.py", *sys.argv[1:]])}
    log_file = folder / LOG_FILE
    earlier = read_json(log_file).get("refits", []) if log_file.is_file() else []
    write_json(log_file, stamp({"refits": [*earlier, entry]}))
    return entry


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="*", type=Path, help="study folders to refit")
    p.add_argument("--stale", action="store_true",
                   help="every folder of the fair study and the ablations with a stale router")
    p.add_argument("--routers", help="comma-separated router names (default: the stale ones)")
    p.add_argument("--list", action="store_true", help="name the folders and stop")
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    folders = list(args.folders) + (stale_folders() if args.stale else [])
    if not folders:
        p.error("give folders or --stale")
    if args.list:
        print("\n".join(str(f) for f in folders))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    routers = args.routers.split(",") if args.routers else None
    models: dict = {}
    failed = []
    for folder in folders:
        try:
            entry = refit_folder(folder, routers, args.data_dir, models)
        except ArtifactMismatch as err:  # this folder is refused; the others still run
            print(f"{folder}: REFUSED: {err}", file=sys.stderr, flush=True)
            failed.append(folder)
            continue
        print(f"{folder}: refitted {', '.join(entry['routers']) or 'nothing'} in "
              f"{entry['wall_time_s']:.0f} s ({entry['cpu_time_s']:.0f} s CPU)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
