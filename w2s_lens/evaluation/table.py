"""The cross-dataset table: one W2S evaluation per dataset, serially or as Ray tasks, and the
markdown / CSV table of fixed vs W2S vs oracle that summarises them.

:func:`run_table` runs :func:`w2s_lens.evaluation.jobs.run_evaluation` once per dataset into
``out_root/<dataset>``. A dataset whose run directory already holds finished results with the
same settings is read back, not recomputed; an interrupted one resumes from its sweep chunks.
With ``ray=True`` every dataset is one Ray task (one GPU per task when the cluster has GPUs,
else ``num_cpus_per_task`` CPUs); the assembled :class:`Table` is the same as the serial one.
Ray is an optional extra (``pip install ray``), imported only when ``ray=True``.

A :class:`Table` has one row per dataset × method × variant (columns: dataset, method, readout,
variant, fixed layer, fixed [CI], W2S [CI], oracle, letter oracle, W2S − fixed [CI], verdict,
n test items, router accuracy) and summary rows per method × readout × variant: means over
datasets, how many datasets show "W2S beats fixed beyond the noise" (k of N), and how many
stay significant after Benjamini-Hochberg correction of the one-sided p-values
(:func:`w2s_lens.evaluation.metrics.fdr_count`).

Example:
    >>> from w2s_lens.evaluation.config import EvalConfig
    >>> table = run_table(["corrigible-neutral-HHH", "myopic-reward"],
    ...                   EvalConfig(data_dir="../shared/data/mwe", n_train=24, n_test=12),
    ...                   "runs/table", ray=True)  # doctest: +SKIP
    >>> table.write("runs/table")  # table.md and table.csv  # doctest: +SKIP
    >>> readout_label({"readout": "letter", "mirror": False})
    'letter-single'
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from w2s_lens.artifacts import write_text
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.metrics import VERDICT_BETTER, VERDICT_WORSE, fdr_count, verdict
from w2s_lens.evaluation.rundir import RESULTS_FILE, RUN_FILE, RunDir
from w2s_lens.evaluation.summary import fmt_ci

__all__ = ["COLUMNS", "DatasetRun", "Table", "TableError", "describe_config", "readout_label",
           "run_table", "summary_rows", "table_rows"]

log = logging.getLogger(__name__)

#: CSV columns of a table row, in order.
COLUMNS = ("dataset", "method", "readout", "variant", "fixed_layer", "fixed", "fixed_lo",
           "fixed_hi", "w2s", "w2s_lo", "w2s_hi", "oracle", "letter_oracle", "diff", "diff_lo",
           "diff_hi", "diff_p", "verdict", "n_test", "router", "router_acc", "fixed_frac",
           "w2s_frac", "oracle_frac", "model")
_VARIANT_ORDER = ("base", "sys-pos", "sys-neg", "user-pos", "user-neg")
#: the false discovery rate of the Benjamini-Hochberg count
FDR_Q = 0.05


class TableError(RuntimeError):
    """One or more datasets of a table failed (the message names them and their errors)."""


# --------------------------------------------------------------------------- assembly


def readout_label(results: Mapping[str, Any]) -> str:
    """``letter-mirrored``, ``letter-single``, ``cloze`` or ``cloze-length-norm``: how a run
    read its answers.

    Example:
        >>> readout_label({"readout": "letter", "mirror": True})
        'letter-mirrored'
        >>> readout_label({"readout": "cloze"})
        'cloze'
    """
    if results.get("readout") == "cloze":
        return "cloze-length-norm" if results.get("length_norm") else "cloze"
    return "letter-mirrored" if results.get("mirror") else "letter-single"


def table_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The table rows of one ``results.json`` (one per method × variant), with ``COLUMNS``.

    Example:
        >>> rows = table_rows(results)  # doctest: +SKIP
        >>> rows[0]["verdict"]  # doctest: +SKIP
        'no detectable difference'
    """
    primary = results["primary_router"]
    label = readout_label(results)
    rows = []
    for method, block in results["methods"].items():
        variants = sorted(block["variants"].items(),
                          key=lambda kv: (_VARIANT_ORDER + (kv[0],)).index(kv[0]))
        for variant, r in variants:
            w = r["w2s"][primary]
            fixed_ci = r["fixed"]["steerability_ci"] or [None, None]
            w2s_ci = w["steerability_ci"] or [None, None]
            diff_ci = w.get("diff_vs_fixed_ci") or [None, None]
            rows.append({
                "dataset": results["dataset"], "method": method, "readout": label,
                "variant": variant, "fixed_layer": r["fixed_layer"],
                "fixed": r["fixed"]["steerability"], "fixed_lo": fixed_ci[0],
                "fixed_hi": fixed_ci[1], "w2s": w["steerability"], "w2s_lo": w2s_ci[0],
                "w2s_hi": w2s_ci[1], "oracle": r["oracle"]["steerability"],
                "letter_oracle": r["letter_oracle"]["steerability"],
                "diff": w.get("diff_vs_fixed"), "diff_lo": diff_ci[0], "diff_hi": diff_ci[1],
                "diff_p": w.get("diff_vs_fixed_p"), "verdict": verdict(diff_ci),
                "n_test": r["n"], "router": primary, "router_acc": w.get("accuracy"),
                "fixed_frac": r["fixed"]["steerable_fraction"],
                "w2s_frac": w["steerable_fraction"],
                "oracle_frac": r["oracle"]["steerable_fraction"], "model": results["model"],
            })
    return rows


def _mean(values: Sequence[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def summary_rows(rows: Sequence[Mapping[str, Any]], q: float = FDR_Q) -> list[dict[str, Any]]:
    """Per model × method × readout × variant (in order of first appearance): means over
    datasets and the counts of datasets where
    W2S beats the fixed layer beyond the noise (``wins``; ``worse``: the reverse), and where
    it stays significant after Benjamini-Hochberg correction at ``q`` (``wins_bh``).

    Example:
        >>> s = summary_rows([{"method": "caa", "readout": "cloze", "variant": "base",
        ...     "fixed": 0.1, "w2s": 0.3, "oracle": 0.4, "letter_oracle": 0.2, "diff": 0.2,
        ...     "diff_p": 0.001, "verdict": "W2S beats fixed beyond the noise"}])
        >>> s[0]["wins"], s[0]["wins_bh"], s[0]["n_datasets"]
        (1, 1, 1)
    """
    groups: dict[tuple[str, str, str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r.get("model", ""), r["method"], r["readout"], r["variant"]),
                          []).append(r)
    out = []
    for (model, method, readout, variant), sub in groups.items():
        out.append({
            "model": model, "method": method, "readout": readout, "variant": variant,
            "n_datasets": len(sub),
            **{key: _mean([r[key] for r in sub])
               for key in ("fixed", "w2s", "oracle", "letter_oracle", "diff")},
            "wins": sum(r["verdict"] == VERDICT_BETTER for r in sub),
            "worse": sum(r["verdict"] == VERDICT_WORSE for r in sub),
            "wins_bh": fdr_count([r["diff_p"] for r in sub], q=q),
        })
    return out


def describe_config(config: EvalConfig, model: str | None = None) -> str:
    """One line naming the settings a table was made with (model, sizes, seed, readout, ...);
    ``model`` names the model actually used (default ``config.model``).

    Example:
        >>> describe_config(EvalConfig(n_train=24, n_test=12)).split(";")[1].strip()
        'n_train=24, n_test=12 items per dataset (split seed 0)'
    """
    mode = readout_label({"readout": config.readout, "mirror": config.mirrored})
    if config.readout == "cloze" and config.length_norm:
        mode += " (length-normalised)"
    layers = "every layer but 0" if config.layers is None else ",".join(map(str, config.layers))
    mults = ",".join(f"{m:g}" for m in config.multipliers)
    return (f"Model {model or config.model or 'the default'}; n_train={config.n_train}, "
            f"n_test={config.n_test} items per dataset (split seed {config.seed}); method "
            f"{config.method}; readout {mode}; layers: {layers}; multipliers {mults} "
            f"({config.scale} scale), steering {config.positions}; routers "
            f"{','.join(config.routers)} (W2S = {config.primary_router}, embedding "
            f"{config.embedding}); cross-fit {config.cross_fit} folds; 95% bootstrap "
            f"intervals over test items ({config.n_boot} resamples).")


def _f(x: Any, fmt: str = "+.3f") -> str:
    return "–" if x is None else format(float(x), fmt)


@dataclass
class DatasetRun:
    """What happened to one dataset of a table (for the run log).

    Attributes:
        dataset: its name.
        out_dir: its run directory.
        status: ``"computed"``, ``"read back"`` (finished before) or ``"failed"``.
        wall_time_s: seconds spent on it in this call (0 when read back).
        error: the error message of a failed dataset.
    """

    dataset: str
    out_dir: str
    status: str
    wall_time_s: float = 0.0
    error: str | None = None


@dataclass
class Table:
    """The cross-dataset table (rows from :func:`table_rows`) and how it was made.

    Two tables are equal when their rows and header are (the run log, with its wall times,
    is not compared).

    Attributes:
        rows: one dict per dataset × method × variant, keys :data:`COLUMNS`.
        header: a line of settings shown above the markdown table.
        runs: per dataset, what this call did (computed, read back, failed) and its time.

    Example:
        >>> t = Table.from_results([results_a, results_b], header="Qwen, 24/12")  # doctest: +SKIP
        >>> print(t.to_markdown())  # doctest: +SKIP
    """

    rows: list[dict[str, Any]]
    header: str = ""
    runs: list[DatasetRun] = field(default_factory=list, compare=False)

    @classmethod
    def from_results(cls, results: Sequence[Mapping[str, Any]], header: str = "",
                     runs: Sequence[DatasetRun] = ()) -> Table:
        """A table from ``results.json`` dicts, in the order given."""
        return cls([row for res in results for row in table_rows(res)], header, list(runs))

    @classmethod
    def from_run_root(cls, out_root: str | os.PathLike,
                      datasets: Sequence[str] | None = None) -> Table:
        """Re-tabulate the finished runs under ``out_root`` (``<dataset>/results.json``; all of
        them in name order, or ``datasets`` in the order given, skipping unfinished ones)."""
        root = Path(out_root)
        names = (sorted(p.parent.name for p in root.glob(f"*/{RESULTS_FILE}"))
                 if datasets is None else list(datasets))
        dirs = [RunDir(root / n) for n in names if (root / n / RESULTS_FILE).is_file()]
        header = ""
        if dirs:
            config = EvalConfig.from_dict(dict(dirs[0].read_run()["config"]))
            results = [d.read_results() for d in dirs]
            header = describe_config(config, results[0]["model"])
            return cls.from_results(results, header)
        return cls([], header)

    @classmethod
    def combine(cls, tables: Sequence[Table]) -> Table:
        """One table holding the rows of several (e.g. mirrored, single-order and cloze runs
        of the same datasets); the summary then has one row per readout."""
        header = "\n\n".join(dict.fromkeys(t.header for t in tables if t.header))
        return cls([r for t in tables for r in t.rows], header,
                   [run for t in tables for run in t.runs])

    @property
    def failures(self) -> dict[str, str]:
        """Dataset -> error message, for the datasets that failed in this call."""
        return {r.dataset: r.error or "" for r in self.runs if r.status == "failed"}

    def summary(self, q: float = FDR_Q) -> list[dict[str, Any]]:
        """:func:`summary_rows` of this table."""
        return summary_rows(self.rows, q)

    def to_markdown(self, q: float = FDR_Q) -> str:
        """The per-dataset table and the means over datasets, as markdown."""
        lines = [self.header, ""] if self.header else []
        lines += ["| dataset | method | readout | variant | fixed L | fixed [95% CI] | "
                  "W2S [95% CI] | oracle | letter oracle | W2S − fixed [95% CI] | verdict | "
                  "n test | router acc |", "|" + "---|" * 13]
        for r in self.rows:
            lines.append(
                f"| {r['dataset']} | {r['method']} | {r['readout']} | {r['variant']} | "
                f"{r['fixed_layer']} | {fmt_ci(r['fixed'], [r['fixed_lo'], r['fixed_hi']])} | "
                f"{fmt_ci(r['w2s'], [r['w2s_lo'], r['w2s_hi']])} | {_f(r['oracle'])} | "
                f"{_f(r['letter_oracle'])} | {fmt_ci(r['diff'], [r['diff_lo'], r['diff_hi']])} "
                f"| {r['verdict']} | {r['n_test']} | {_f(r['router_acc'], '.2f')} |")
        summary = self.summary(q)
        models = len({s["model"] for s in summary}) > 1  # a combined table of several models
        lines += ["", "Means over datasets:", "",
                  "| " + ("model | " if models else "") + "method | readout | variant | "
                  "datasets | fixed | W2S | oracle | letter oracle | W2S − fixed | W2S beats "
                  f"fixed beyond the noise | after Benjamini-Hochberg (q = {q:g}) |",
                  "|" + "---|" * (11 + models)]
        for s in summary:
            n = s["n_datasets"]
            lines.append(
                "| " + (f"{s['model']} | " if models else "")
                + f"{s['method']} | {s['readout']} | {s['variant']} | {n} | {_f(s['fixed'])} "
                f"| {_f(s['w2s'])} | {_f(s['oracle'])} | {_f(s['letter_oracle'])} | "
                f"{_f(s['diff'])} | {s['wins']} of {n} (worse in {s['worse']}) | "
                f"{s['wins_bh']} of {n} |")
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """The rows as CSV (columns :data:`COLUMNS`; missing numbers empty)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: r.get(k) for k in COLUMNS} for r in self.rows)
        return buf.getvalue()

    def write(self, out_dir: str | os.PathLike, stem: str = "table") -> dict[str, Path]:
        """Write ``<stem>.md`` and ``<stem>.csv`` into ``out_dir``; returns their paths."""
        out = Path(out_dir)
        return {"md": write_text(out / f"{stem}.md", self.to_markdown()),
                "csv": write_text(out / f"{stem}.csv", self.to_csv())}


# --------------------------------------------------------------------------- running


def finished_results(config: EvalConfig, out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The results of a finished run of ``config`` in ``out_dir``, or None when it has to be
    (re)computed. A directory holding a run with other settings raises
    :class:`~w2s_lens.artifacts.ArtifactMismatch` (naming them).

    Example:
        >>> finished_results(EvalConfig(dataset="openness"), "runs/t/openness")  # doctest: +SKIP
    """
    rd = RunDir(out_dir)
    if not (rd.path / RESULTS_FILE).is_file():
        return None
    rd.prepare("evaluation", config.to_dict())
    # n_boot is a "resumable" setting, but it changes the intervals: recompute (sweeps resume)
    if rd.read_run()["config"].get("n_boot") != config.n_boot:
        return None
    return rd.read_results()


def evaluate_dataset(config: EvalConfig, out_dir: str | os.PathLike, model: Any = None,
                     threads: int | None = None, progress: bool = False
                     ) -> tuple[dict[str, Any], float]:
    """One dataset of a table: :func:`~w2s_lens.evaluation.jobs.run_evaluation` (loading ``config.model``
    unless ``model`` is given), with ``threads`` torch threads. Returns ``(results, seconds)``.
    This is the body of a Ray task.

    Example:
        >>> res, s = evaluate_dataset(EvalConfig(dataset="openness"), "t/o")  # doctest: +SKIP
    """
    import torch

    from w2s_lens.evaluation.jobs import run_evaluation

    if threads is not None:
        torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    results = run_evaluation(config, out_dir, progress=progress, model=model)
    return results, time.perf_counter() - t0


def _load_model(config: EvalConfig) -> Any:
    from w2s_lens.models.loading import load_model

    kw = {"device": config.device, "dtype": config.dtype}
    return load_model(config.model, **kw) if config.model else load_model(**kw)


def _log_done(name: str, results: Mapping[str, Any], seconds: float) -> None:
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
        model: an already loaded model for every dataset (default: load ``config.model``,
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
    done: dict[str, dict[str, Any]] = {}
    runs: dict[str, DatasetRun] = {}
    todo = []
    for name in names:
        cfg = replace(base_config, dataset=name)
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
    header = describe_config(base_config, finished[0]["model"] if finished else None)
    table = Table.from_results(finished, header, [runs[n] for n in names])
    if table.failures and not keep_going:
        raise TableError("; ".join(f"{k}: {v}" for k, v in table.failures.items()))
    return table
