"""The cross-dataset table, run: one W2S evaluation per dataset, serially or as Ray tasks
(:mod:`w2s_lens.report.tables.cross_dataset` assembles the rows, summary, markdown and CSV).

:func:`run_table` runs :func:`w2s_lens.cli.jobs.run_evaluation` once per dataset into
``out_root/<dataset>``. A dataset whose run directory already holds finished results with the
same settings and routers tuned on today's grids is read back, not recomputed (a changed
grid, :func:`stale_routers`, tunes the routers again over the resumed sweeps); an interrupted
one resumes from its sweep chunks.
With ``ray=True`` every dataset is one Ray task (one GPU per task when the cluster has GPUs,
else ``num_cpus_per_task`` CPUs); the assembled :class:`Table` is the same as the serial one.
Ray is an optional extra (``pip install ray``), imported only when ``ray=True``.

The assembly (:class:`Table`, :data:`COLUMNS`, :func:`table_rows`, :func:`summary_rows`,
:func:`readout_label`, :func:`describe_config`, :class:`DatasetRun`) is in
:mod:`w2s_lens.report.tables.cross_dataset`.

Example:
    >>> from w2s_lens.evaluation.config import EvalConfig
    >>> table = run_table(["corrigible-neutral-HHH", "myopic-reward"],
    ...                   EvalConfig(data_dir="../shared/data/mwe", n_train=24, n_test=12),
    ...                   "runs/table", ray=True)  # doctest: +SKIP
    >>> table.write("runs/table")  # table.md and table.csv  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from w2s_lens.evaluation.config import EvalConfig, flat_config
from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.evaluation.storage.rundir import RESULTS_FILE, RUN_FILE, RunDir
from w2s_lens.report.tables.cross_dataset import (
    DatasetRun,
    Table,
    describe_config,
    table_rows,
)

__all__ = ["READ_BACK_SETTINGS", "TableError", "after_sweep_changes", "evaluate_dataset",
           "finished_results", "run_table", "stale_routers"]

log = logging.getLogger(__name__)


class TableError(RuntimeError):
    """One or more datasets of a table failed (the message names them and their errors)."""


def _f(x: Any, fmt: str = "+.3f") -> str:
    return "–" if x is None else format(float(x), fmt)


def finished_results(config: EvalConfig, out_dir: str | os.PathLike) -> EvaluationResult | None:
    """The results of a finished run of ``config`` in ``out_dir``, or None when it has to be
    (re)computed. A directory holding a run with other settings raises
    :class:`~w2s_lens.artifacts.provenance.ArtifactMismatch` (naming them).

    Example:
        >>> finished_results(EvalConfig(dataset="openness"), "runs/t/openness")  # doctest: +SKIP
    """
    rd = RunDir(out_dir)
    if not (rd.path / RESULTS_FILE).is_file():
        return None
    rd.prepare("evaluation", config.to_dict())
    # settings a resume accepts but the results depend on (the intervals, the routers and
    # what they see, the variants, generations): when any differs, recompute (sweeps resume)
    changed = after_sweep_changes(rd.read_run()["config"], config)
    if changed:
        log.info("%s: %s changed since its results were written: recomputing what depends on "
                 "them (the sweeps resume)", rd.path, ", ".join(changed))
        return None
    result = EvaluationResult.load(rd.path)
    stale = stale_routers(result)
    if stale:
        log.info("%s: the tuning grid of %s changed since its results were written: tuning the "
                 "routers again (the sweeps resume)", rd.path, ", ".join(stale))
        return None
    return result


def stale_routers(result: EvaluationResult) -> list[str]:
    """``method/router`` names of ``result`` whose recorded tuning grid is not today's
    (:func:`~w2s_lens.routing.estimators.grid_is_current`).

    Example:
        >>> stale_routers(EvaluationResult.load("runs/t/openness"))  # doctest: +SKIP
        ['caa/mlp', 'caa/mlp@options']
    """
    from w2s_lens.evaluation.refit import stale_router_names

    d = result.to_dict()
    return [f"{method}/{name}" for method in d["methods"]
            for name in stale_router_names(d, method)]


#: settings a finished run is read back only with (see :func:`after_sweep_changes`)
READ_BACK_SETTINGS = ("n_boot", "routers", "primary_router", "router_inputs", "variants",
                      "generations")


def after_sweep_changes(recorded: Any, config: EvalConfig) -> list[str]:
    """The settings of :data:`READ_BACK_SETTINGS` in which ``config`` differs from a run's
    recorded config (``run.json``'s, nested or flat; older dumps read with today's defaults).

    Example:
        >>> after_sweep_changes(EvalConfig(n_boot=100).to_dict(), EvalConfig(n_boot=100))
        []
        >>> after_sweep_changes(EvalConfig().to_dict(), EvalConfig(router_inputs=("question",
        ...                     "options")))
        ['router_inputs']
    """
    try:
        old = flat_config(EvalConfig.from_dict(dict(recorded)).to_dict())
    except (ValueError, TypeError):  # unreadable: compare what is there
        old = flat_config(dict(recorded))
    new = flat_config(config.to_dict())

    def norm(x: Any) -> Any:
        return [norm(v) for v in x] if isinstance(x, (list, tuple)) else x

    return [k for k in READ_BACK_SETTINGS if norm(old.get(k)) != norm(new.get(k))]


def evaluate_dataset(config: EvalConfig, out_dir: str | os.PathLike, model: Any = None,
                     threads: int | None = None, progress: bool = False
                     ) -> tuple[EvaluationResult, float]:
    """One dataset of a table: :func:`~w2s_lens.cli.jobs.run_evaluation` (loading
    ``config.compute.model`` unless ``model`` is given), with ``threads`` torch threads. Returns
    ``(results, seconds)``.
    This is the body of a Ray task.

    Example:
        >>> res, s = evaluate_dataset(EvalConfig(dataset="openness"), "t/o")  # doctest: +SKIP
    """
    import torch

    from w2s_lens.cli.jobs import run_evaluation

    if threads is not None:
        torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    results = run_evaluation(config, out_dir, progress=progress, model=model)
    return results, time.perf_counter() - t0


def _load_model(config: EvalConfig) -> Any:
    from w2s_lens.models.loading import load_model

    kw = {"device": config.compute.device, "dtype": config.compute.dtype}
    return load_model(config.compute.model, **kw) if config.compute.model else load_model(**kw)


def _log_done(name: str, results: EvaluationResult, seconds: float) -> None:
    rows = [r for r in table_rows(results) if r["variant"] == "base"]
    for r in rows:
        log.info("%s (%s) done in %.0f s: fixed L%s %s, W2S %s, oracle %s", name, r["method"],
                 seconds, r["fixed_layer"], _f(r["fixed"]), _f(r["w2s"]), _f(r["oracle"]))


def _serial(todo, model, threads, progress, keep_going, done, runs) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(int(threads))
        _serial_loop(todo, model, progress, keep_going, done, runs)
    finally:
        torch.set_num_threads(before)


def _serial_loop(todo, model, progress, keep_going, done, runs) -> None:
    for name, cfg, out in tqdm(todo, desc="datasets", unit="dataset", disable=not progress):
        try:
            if model is None:
                model = _load_model(cfg)  # once, for every dataset still to compute
            res, secs = evaluate_dataset(cfg, out, model=model, progress=progress)
        except Exception as exc:
            if not keep_going:
                raise TableError(f"dataset {name!r} failed: {type(exc).__name__}: {exc}") \
                    from exc
            log.error("%s failed: %s", name, exc)
            runs[name] = DatasetRun(name, str(out), "failed", error=f"{type(exc).__name__}: {exc}")
            continue
        done[name] = res
        runs[name] = DatasetRun(name, str(out), "computed", round(secs, 1))
        _log_done(name, res, secs)


def _on_ray(todo, model, threads, progress, done, runs, address, num_gpus_per_task,
            num_cpus_per_task) -> None:
    try:
        import ray as ray_lib
    except ImportError as exc:  # an optional extra
        raise ImportError("run_table(ray=True) needs Ray: pip install 'w2s-lens[ray]' "
                          "(or pip install ray)") from exc
    started = not ray_lib.is_initialized()
    if started:
        ray_lib.init(address=address)
    try:
        gpus = num_gpus_per_task
        if gpus is None:
            gpus = 1 if ray_lib.cluster_resources().get("GPU", 0) > 0 else 0
        task = ray_lib.remote(num_cpus=num_cpus_per_task, num_gpus=gpus)(evaluate_dataset)
        model_ref = ray_lib.put(model) if model is not None else None
        per_task_threads = threads if threads is not None else max(1, int(num_cpus_per_task))
        futures = {task.remote(cfg, str(out), model_ref, per_task_threads, False): (name, out)
                   for name, cfg, out in todo}
        log.info("submitted %d Ray tasks (%s GPU, %s CPU each)", len(futures), gpus,
                 num_cpus_per_task)
        pending = list(futures)
        with tqdm(total=len(pending), desc="datasets (Ray)", unit="dataset",
                  disable=not progress) as bar:
            while pending:
                ready, pending = ray_lib.wait(pending, num_returns=1)
                for ref in ready:
                    name, out = futures[ref]
                    try:
                        res, secs = ray_lib.get(ref)
                    except Exception as exc:
                        log.error("%s failed: %s", name, exc)
                        runs[name] = DatasetRun(name, str(out), "failed",
                                                error=f"{type(exc).__name__}: {exc}")
                    else:
                        done[name] = res
                        runs[name] = DatasetRun(name, str(out), "computed", round(secs, 1))
                        _log_done(name, res, secs)
                    bar.update(1)
    finally:
        if started:
            ray_lib.shutdown()


def run_table(
    datasets: Sequence[str],
    base_config: EvalConfig,
    out_root: str | os.PathLike,
    ray: bool = False,
    address: str | None = None,
    num_gpus_per_task: float | None = None,
    progress: bool = True,
    *,
    model: Any = None,
    num_cpus_per_task: float = 1,
    threads: int | None = None,
    keep_going: bool = False,
) -> Table:
    """Evaluate every dataset into ``out_root/<dataset>`` and assemble the :class:`Table`.

    Args:
        datasets: dataset names (or paths: the run folder is then the file's stem).
        base_config: the settings of every run; its ``dataset`` is replaced per dataset.
        out_root: the folder of the run directories.
        ray: run each dataset as a Ray task (Ray is imported only then).
        address: the Ray cluster to join (``ray.init(address=...)``); None starts a local
            instance unless Ray is already initialised (then that one is used and kept).
        num_gpus_per_task: GPUs per Ray task; None: 1 when the cluster has GPUs, else 0.
        progress: progress bars (serially also the evaluation's own; on Ray, one bar over
            finished tasks).
        model: an already loaded model for every dataset (default: load ``config.compute.model``,
            once serially, once per task on Ray). On Ray it is shipped to every task as is.
        num_cpus_per_task: CPUs per Ray task (also its torch threads unless ``threads``).
        threads: torch CPU threads (serially, and in every Ray task).
        keep_going: a failed dataset is logged and left out, and the others still run
            (``Table.failures`` lists it); False raises :class:`TableError` (serially at the
            first failure; on Ray once every task has ended).

    Returns:
        the :class:`Table` of every finished dataset, in the order of ``datasets``, with the
        run log in ``Table.runs``.

    Raises:
        TableError: a dataset failed and ``keep_going`` is False.
        ArtifactMismatch: a dataset's folder holds a run with other settings.

    Example:
        >>> t = run_table(["openness"], EvalConfig(n_train=8, n_test=4), "t")  # doctest: +SKIP
    """
    names = list(dict.fromkeys(datasets))
    if not names:
        raise ValueError("run_table needs at least one dataset")
    root = Path(out_root)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"out_root {root} is a file")
    done: dict[str, EvaluationResult] = {}
    runs: dict[str, DatasetRun] = {}
    todo = []
    for name in names:
        cfg = base_config.replace(dataset=name)
        out = root / (Path(name).stem if Path(name).suffix else name)
        res = finished_results(cfg, out)  # refuses a folder of other settings before any work
        if res is not None:
            log.info("%s: finished before, read back from %s", name, out / RESULTS_FILE)
            done[name] = res
            runs[name] = DatasetRun(name, str(out), "read back")
        else:
            if (out / RUN_FILE).is_file():
                log.info("%s: resuming in %s", name, out)
            todo.append((name, cfg, out))
    if todo and ray:
        _on_ray(todo, model, threads, progress, done, runs, address, num_gpus_per_task,
                num_cpus_per_task)
    elif todo:
        _serial(todo, model, threads, progress, keep_going, done, runs)
    finished = [done[n] for n in names if n in done]
    header = describe_config(base_config, finished[0].model if finished else None)
    table = Table.from_results(finished, header, [runs[n] for n in names])
    if table.failures and not keep_going:
        raise TableError("; ".join(f"{k}: {v}" for k, v in table.failures.items()))
    return table
