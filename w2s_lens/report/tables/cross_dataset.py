"""The cross-dataset table, assembled: rows from typed results
(:class:`~w2s_lens.evaluation.results.typed.EvaluationResult`), summary rows, and the
markdown / CSV text (:mod:`w2s_lens.cli.table` runs the evaluations behind it).

A :class:`Table` has one row per dataset × method × variant (columns :data:`COLUMNS`: model,
dataset, method, readout, variant, sizes, fixed layer, fixed [CI], W2S [CI], oracle, letter
oracle (single-order letter rows), answer-form oracle (cloze rows), W2S − fixed [CI], the
sign-flip p-value, test name, minimal detectable difference and number of informative items,
the verdict, router and majority-layer accuracy) and summary rows per model × method ×
readout × variant: means over datasets, how many datasets show "W2S beats fixed beyond the
noise" (sign-flip, one-sided 2.5%; k of N) and how many stay significant after
Benjamini-Hochberg at the same 2.5% (:func:`w2s_lens.evaluation.stats.paired.bh_rejections`).
Rows from results written before the sign-flip test carry the test "bootstrap CI (older)".

The rows themselves (:func:`table_rows`) are this module's own plain records (one dict per
row, keys :data:`COLUMNS`, written as CSV), not results.

Example:
    >>> readout_label({"readout": "letter", "mirror": False})
    'letter-single'
    >>> Table.from_results([EvaluationResult.load("runs/corrigible")]).write(
    ...     "runs/table")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from w2s_lens.artifacts.files import write_text
from w2s_lens.evaluation.config import EvalConfig, flat_config
from w2s_lens.evaluation.results.nodes import Summary
from w2s_lens.evaluation.results.typed import EvaluationResult, as_result
from w2s_lens.evaluation.stats.paired import (
    ALPHA,
    N_DRAWS,
    N_EXACT,
    OLDER_TEST,
    VERDICT_BETTER,
    VERDICT_TOO_FEW,
    VERDICT_WORSE,
    bh_rejections,
    verdict_kind,
)
from w2s_lens.evaluation.storage.rundir import RESULTS_FILE, RunDir
from w2s_lens.report.tables.headroom_cells import (
    HEADROOM_COLUMNS,
    headroom_cells,
    headroom_markdown,
)
from w2s_lens.report.tables.summary import fmt_ci

__all__ = ["COLUMNS", "FDR_Q", "DatasetRun", "Table", "describe_config", "readout_label",
           "summary_rows", "table_markdown", "table_rows"]

#: CSV columns of a table row, in order (the columns of older tables first).
COLUMNS = ("dataset", "method", "readout", "variant", "fixed_layer", "fixed", "fixed_lo",
           "fixed_hi", "w2s", "w2s_lo", "w2s_hi", "oracle", "letter_oracle", "diff", "diff_lo",
           "diff_hi", "diff_p", "verdict", "n_test", "router", "router_acc", "fixed_frac",
           "w2s_frac", "oracle_frac", "model", "n_train", "p_value", "p_less", "test", "mde",
           "n_nonzero", "form_oracle", "majority_acc", "agreement", "kappa", "xv_diff", "xv_lo",
           "xv_hi", "xv_p", "form_router_diff", "case")
_VARIANT_ORDER = ("base", "sys-pos", "sys-neg", "user-pos", "user-neg")
#: the level of the Benjamini-Hochberg count: the one-sided level of every verdict
FDR_Q = ALPHA


def readout_label(results: EvaluationResult | Mapping[str, Any]) -> str:
    """``letter-mirrored``, ``letter-single``, ``cloze`` or ``cloze-length-norm``: how a run
    read its answers, from a typed result or a mapping of the settings (``readout``,
    ``mirror``, ``length_norm``; e.g. a configuration, which is not a result).

    Example:
        >>> readout_label({"readout": "letter", "mirror": True})
        'letter-mirrored'
        >>> readout_label({"sweep": {"readout": "cloze", "scoring": "mean"}})
        'cloze-length-norm'
        >>> readout_label(EvaluationResult.from_dict({"readout": "cloze", "methods": {}}))
        'cloze'
    """
    if isinstance(results, EvaluationResult):
        readout, mirror, length_norm = results.readout, results.mirror, results.length_norm
    else:
        settings = flat_config(results)  # a run.json config may be nested by part
        readout, mirror = settings.get("readout"), settings.get("mirror")
        length_norm = settings.get("length_norm", settings.get("scoring") == "mean")
    if readout == "cloze":
        return "cloze-length-norm" if length_norm else "cloze"
    return "letter-mirrored" if mirror else "letter-single"


def _steer(block: Summary | None) -> float | None:
    return block.steerability if isinstance(block, Summary) else None


def _pair(ci: Sequence[Any] | None) -> tuple[Any, Any]:
    return (ci[0], ci[1]) if ci else (None, None)


def table_rows(results: EvaluationResult | str | os.PathLike | Mapping[str, Any],
               router: str | None = None) -> list[dict[str, Any]]:
    """The table rows of one result (one per method × variant), with ``COLUMNS``: W2S is
    ``router`` (default: the result's ``primary_router``; a method × variant that did not fit
    it gives no row).

    ``results``: a typed result, a run directory (or its ``results.json``), or a
    ``results.json`` dict (:func:`~w2s_lens.evaluation.results.typed.as_result`).
    ``verdict`` is the router's
    :meth:`~w2s_lens.evaluation.results.nodes.RouterComparison.verdict_text` (labelled for
    older results) and ``test`` names its test; ``p_value`` (= ``diff_p``) is that test's
    one-sided p-value for W2S > fixed. ``letter_oracle`` / ``form_oracle`` are empty where the
    run did not compute them (e.g. no letter oracle on cloze rows). The headroom columns
    (:func:`headroom_cells`) are filled on base rows only: the diagnostics run on the base
    test items.

    Example:
        >>> rows = table_rows(EvaluationResult.load("runs/corrigible"))  # doctest: +SKIP
        >>> rows[0]["verdict"], rows[0]["test"]  # doctest: +SKIP
        ('no detectable difference', 'sign-flip exact')
    """
    results = as_result(results)
    primary = router or results.primary_router
    label = readout_label(results)
    none = Summary()
    rows = []
    for method, m in results.methods.items():
        variants = sorted(m.variants.items(),
                          key=lambda kv: (_VARIANT_ORDER + (kv[0],)).index(kv[0]))
        for variant, r in variants:
            if primary not in r.routers:
                continue
            w = r.routers[primary]
            fixed = r.fixed if isinstance(r.fixed, Summary) else none
            oracle = r.oracle if isinstance(r.oracle, Summary) else none
            fixed_ci, w2s_ci, diff_ci = (_pair(fixed.steerability_ci),
                                         _pair(w.steerability_ci), _pair(w.diff_ci))
            rows.append({
                "dataset": results.dataset, "method": method, "readout": label,
                "variant": variant, "fixed_layer": r.fixed_layer,
                "fixed": fixed.steerability, "fixed_lo": fixed_ci[0],
                "fixed_hi": fixed_ci[1], "w2s": w.steerability, "w2s_lo": w2s_ci[0],
                "w2s_hi": w2s_ci[1], "oracle": oracle.steerability,
                "letter_oracle": _steer(r.letter_oracle),
                "diff": w.diff, "diff_lo": diff_ci[0], "diff_hi": diff_ci[1],
                "diff_p": w.p, "verdict": w.verdict_text(labelled=True),
                "n_test": r.n, "router": primary, "router_acc": w.accuracy,
                "fixed_frac": fixed.steerable_fraction,
                "w2s_frac": w.steerable_fraction,
                "oracle_frac": oracle.steerable_fraction, "model": results.model,
                "n_train": results.n_train, "p_value": w.p,
                "p_less": w.p_less, "test": w.test_name,
                "mde": w.mde, "n_nonzero": w.n_nonzero,
                "form_oracle": _steer(r.form_oracle),
                "majority_acc": w.majority_accuracy,
                **(headroom_cells(m, r, primary) if variant == "base"
                   else dict.fromkeys(HEADROOM_COLUMNS)),
            })
    return rows


def _mean(values: Sequence[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def summary_rows(rows: Sequence[Mapping[str, Any]], q: float = FDR_Q) -> list[dict[str, Any]]:
    """Per model × method × readout × variant (in order of first appearance): means over
    datasets and the counts of datasets where W2S beats the fixed layer beyond the noise
    (``wins``: the row's verdict, sign-flip at one-sided 2.5%; ``worse``: the reverse;
    ``too_few``: too few informative items), and where it stays significant after
    Benjamini-Hochberg at ``q`` (``wins_bh``; default the verdicts' own level). BH runs over
    the rows that are tests (a p-value, not "too few informative items"), and a row counts only
    when its own verdict also says "beats", so ``wins_bh <= wins`` always.

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
        kinds = [verdict_kind(str(r["verdict"])) for r in sub]
        rejected = bh_rejections([r.get("p_value", r.get("diff_p")) for r in sub], q, kinds)
        out.append({
            "model": model, "method": method, "readout": readout, "variant": variant,
            "n_datasets": len(sub),
            **{key: _mean([r.get(key) for r in sub])
               for key in ("fixed", "w2s", "oracle", "letter_oracle", "form_oracle", "diff")},
            "wins": kinds.count(VERDICT_BETTER),
            "worse": kinds.count(VERDICT_WORSE),
            "too_few": kinds.count(VERDICT_TOO_FEW),
            "wins_bh": sum(rej and k == VERDICT_BETTER for rej, k in zip(rejected, kinds)),
            "older": sum(r.get("test", OLDER_TEST) == OLDER_TEST for r in sub),
        })
    return out


def describe_config(config: EvalConfig, model: str | None = None) -> str:
    """One line naming the settings a table was made with (model, sizes, seed, readout, ...);
    ``model`` names the model actually used (default ``config.compute.model``).

    Example:
        >>> describe_config(EvalConfig(n_train=24, n_test=12)).split(";")[1].strip()
        'n_train=24, n_test=12 items per dataset (split seed 0)'
    """
    data, sweep, routing, stats = config.data, config.sweep, config.routing, config.statistics
    mode = readout_label({"readout": sweep.readout, "mirror": config.mirrored})
    if sweep.readout == "cloze":
        mode += {"mean": " (length-normalised)", "first": " (the first differing option token "
                 "scored)"}.get(sweep.scoring, "")
        if sweep.list_options:
            mode += " with both options listed in the prompt"
    scale = (f"relative scale, λ = 1 adds {sweep.fraction:g} of the residual norm"
             if sweep.scale == "relative" else f"{sweep.scale} scale")
    layers = "every layer but 0" if sweep.layers is None else ",".join(map(str, sweep.layers))
    mults = ",".join(f"{m:g}" for m in sweep.multipliers)
    return (f"Model {model or config.compute.model or 'the default'}; n_train={data.n_train}, "
            f"n_test={data.n_test} items per dataset (split seed {data.seed}); method "
            f"{sweep.method}; readout {mode}; layers: {layers}; multipliers {mults} "
            f"({scale}), steering {sweep.positions}; routers "
            f"{','.join(routing.routers)} (W2S = {routing.primary_router}, embedding "
            f"{routing.embedding}; views {','.join(routing.router_inputs)}); cross-fit "
            f"{stats.cross_fit} folds; 95% bootstrap "
            f"intervals over test items ({stats.n_boot} resamples); verdicts from the paired "
            f"sign-flip test of W2S − fixed, one-sided {ALPHA:.1%} (exact up to {N_EXACT} "
            f"non-zero differences, else {N_DRAWS} Monte-Carlo draws), MDE at 80% power.")


def _f(x: Any, fmt: str = "+.3f") -> str:
    return "–" if x is None else format(float(x), fmt)


def _p(x: Any) -> str:
    return "–" if x is None else f"{float(x):.3g}"


def table_markdown(rows: Sequence[Mapping[str, Any]], header: str = "",
                   q: float = FDR_Q) -> str:
    """The per-dataset table and the means over datasets (:func:`summary_rows`), as markdown.

    Example:
        >>> print(table_markdown([]).splitlines()[0][:30])
        | dataset | method | readout |
    """
    lines = [header, ""] if header else []
    lines += ["| dataset | method | readout | variant | fixed L | fixed [95% CI] | W2S [95% CI] | "
              "oracle | letter oracle | form oracle | W2S − fixed [95% CI] | p (W2S > fixed) | "
              "test | MDE | non-zero | verdict | n test | router acc | majority acc |",
              "|" + "---|" * 19]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['readout']} | {r['variant']} | "
            f"{r['fixed_layer']} | {fmt_ci(r['fixed'], [r['fixed_lo'], r['fixed_hi']])} | "
            f"{fmt_ci(r['w2s'], [r['w2s_lo'], r['w2s_hi']])} | {_f(r['oracle'])} | "
            f"{_f(r.get('letter_oracle'))} | {_f(r.get('form_oracle'))} | "
            f"{fmt_ci(r['diff'], [r['diff_lo'], r['diff_hi']])} | "
            f"{_p(r.get('p_value', r.get('diff_p')))} | {r.get('test', OLDER_TEST)} | "
            f"{_f(r.get('mde'), '.3f')} | {r.get('n_nonzero', '–')} | {r['verdict']} | "
            f"{r['n_test']} | {_f(r['router_acc'], '.2f')} | "
            f"{_f(r.get('majority_acc'), '.2f')} |")
    summary = summary_rows(rows, q)
    models = len({s["model"] for s in summary}) > 1  # a combined table of several models
    lines += ["", "Means over datasets:", "",
              "| " + ("model | " if models else "") + "method | readout | variant | "
              "datasets | fixed | W2S | oracle | letter oracle | form oracle | W2S − fixed | "
              f"W2S beats fixed beyond the noise (sign-flip, one-sided {ALPHA:.1%}) | "
              f"after BH at {q:.1%} | too few informative items |",
              "|" + "---|" * (13 + models)]
    for s in summary:
        n = s["n_datasets"]
        lines.append(
            "| " + (f"{s['model']} | " if models else "")
            + f"{s['method']} | {s['readout']} | {s['variant']} | {n} | {_f(s['fixed'])} "
            f"| {_f(s['w2s'])} | {_f(s['oracle'])} | {_f(s['letter_oracle'])} | "
            f"{_f(s['form_oracle'])} | {_f(s['diff'])} | {s['wins']} of {n} (worse in "
            f"{s['worse']}) | {s['wins_bh']} of {n} | {s['too_few']} of {n} |")
    lines += ["", "Benjamini-Hochberg runs across the datasets of each line (model × method × "
              "readout × variant); variants and routers are not corrected against each other, "
              "and with one dataset it is the verdict itself."]
    lines += headroom_markdown(rows)
    if any(s["older"] for s in summary):
        lines += ["", f"Rows whose test is \"{OLDER_TEST}\" come from results written before "
                  "the sign-flip test: their verdict is the older rule (the 95% BCa interval "
                  "of W2S − fixed excludes 0) and their p-value the bootstrap's."]
    return "\n".join(lines) + "\n"


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
    def from_results(cls, results: Sequence[EvaluationResult | str | os.PathLike
                                            | Mapping[str, Any]],
                     header: str = "", runs: Sequence[DatasetRun] = ()) -> Table:
        """A table from typed results (or run directories, or ``results.json`` dicts:
        :func:`~w2s_lens.evaluation.results.typed.as_result`), in the order given."""
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
        if not dirs:
            return cls([], "")
        config = EvalConfig.from_dict(dict(dirs[0].read_run()["config"]))
        results = [EvaluationResult.load(d.path / RESULTS_FILE) for d in dirs]
        return cls.from_results(results, describe_config(config, results[0].model))

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
        """The per-dataset table and the means over datasets, as markdown
        (:func:`table_markdown`)."""
        return table_markdown(self.rows, self.header, q)

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
