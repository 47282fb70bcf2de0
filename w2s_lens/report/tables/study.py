"""The powered study's table: one row per planned protocol × dataset × method on the BASE
variant, read from ``<root>/<protocol>/<dataset>/results.json`` as an
:class:`~w2s_lens.evaluation.results.typed.EvaluationResult` (older files included;
``run_log.json`` beside it, which is not a result and stays plain data), with the primary
comparison's multiplicity per study row.

The tables, notes, markdown and CSV of these rows are :mod:`.study_tables`.

The plan comes in as plain data (no import of ``analysis/``): one mapping per study row with
``name`` (the protocol), ``model``, ``datasets``, the planned ``n_train`` / ``n_test`` and
optionally ``methods``, ``readout`` (shown on rows not yet run) and ``primary_routers`` (the
routers whose W2S − fixed are primary comparisons, each with its own row per dataset and its own
Benjamini-Hochberg family; default: the results' ``primary_router``). Every number is the one
:func:`~w2s_lens.report.tables.cross_dataset.table_rows` (and its headroom columns) reads; this
module adds the planned sizes, the in-sample oracle's interval, the retest's chance agreement,
the learning curve (every size, and its last two points), every router kind and the wall time,
and counts each primary comparison per study row (protocol × model × method × router) with
:func:`~w2s_lens.report.tables.cross_dataset.summary_rows` (sign-flip at one-sided 2.5%,
Benjamini-Hochberg across the row's datasets at the same level).
A missing piece is None; a dataset without ``results.json`` is "not run". The study rows are
this module's own plain records (keys :data:`STUDY_COLUMNS`), as are the plan's rows.

May import :mod:`w2s_lens.evaluation` (``table_rows``, ``paired``, ``rundir``, ``summary``),
the top-level ``artifacts``; never :mod:`w2s_lens.report` or ``analysis/``.

Example:
    >>> plan = [{"name": "cloze-0.5b", "model": "m", "datasets": ["d"], "n_train": 200,
    ...          "n_test": 200, "methods": ["caa"], "readout": "cloze"}]
    >>> rows = study_rows("/nonexistent", plan)
    >>> rows[0]["status"], rows[0]["verdict"]
    ('not run', 'not run')
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from w2s_lens.artifacts.json_files import read_json
from w2s_lens.evaluation.results.headroom import (
    CrossValidatedOracle,
    CurveRow,
    LearningCurve,
    Retest,
)
from w2s_lens.evaluation.results.nodes import Summary
from w2s_lens.evaluation.results.typed import (
    EvaluationResult,
    MethodResult,
    VariantResult,
    as_result,
)
from w2s_lens.evaluation.stats.paired import (
    VERDICT_BETTER,
    VERDICT_TOO_FEW,
    bh_rejections,
    verdict_kind,
)
from w2s_lens.evaluation.storage.rundir import RESULTS_FILE
from w2s_lens.report.tables.cross_dataset import FDR_Q, summary_rows, table_rows

__all__ = ["DONE", "NOT_RUN", "PRIMARY_COMPARISON", "PRIMARY_ROUTER", "STUDY_COLUMNS",
           "UNREADABLE", "dataset_rows", "primary_routers", "router_diffs", "study_rows",
           "study_summary"]

#: The primary comparisons of the fair study as ``analysis/powered_study.py`` states them before
#: running.
PRIMARY_COMPARISON = (
    "Per dataset, on the BASE test items: (1) W2S with the `logreg` router on the *question* "
    "view (the residual at the middle layer of the unanswered prompt, as in the paper) − the "
    "best fixed layer; (2) the same router on the *options* view (the residual over each "
    "option's tokens read as a continuation of the prompt: matching − non-matching, their mean "
    "and their token counts) − the best fixed layer. Each: the paired 95% interval and the exact "
    "sign-flip test (one-sided 2.5%), with Benjamini-Hochberg across the datasets of the study "
    "row, each comparison its own BH family. Everything else (other router kinds and views, the "
    "cross-validated oracle, the retest, the learning curve, the OOD variants, the 1.5B rows) is "
    "secondary. Every router is tuned by cross-validation on the training items (`router_cv` in "
    "each `results.json`).")
#: The router the plan names as W2S (results mark theirs as ``primary_router``).
PRIMARY_ROUTER = "logreg"
DONE, NOT_RUN, UNREADABLE = "done", "not run", "unreadable"
RUN_LOG = "run_log.json"

#: CSV columns of a study row, in order.
STUDY_COLUMNS = (
    "protocol", "model", "dataset", "method", "readout", "status", "router", "n_train",
    "n_test", "n_train_planned", "n_test_planned", "smaller_than_planned", "fixed_layer",
    "fixed", "fixed_lo", "fixed_hi", "w2s", "w2s_lo", "w2s_hi", "oracle", "oracle_lo",
    "oracle_hi", "xv_diff", "xv_lo", "xv_hi", "xv_p", "xv_n", "diff", "diff_lo", "diff_hi",
    "p_value", "test", "mde", "n_nonzero", "verdict", "beats_after_bh", "agreement", "chance",
    "kappa",
    "curve_n_before", "curve_diff_before", "curve_n_last", "curve_diff_last", "curve",
    "router_acc",
    "majority_acc", "form_router_diff", "case", "routers", "wall_time_s", "error")


def _base_row(plan: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(STUDY_COLUMNS)
    row.update(protocol=plan["name"], model=plan.get("model"), dataset=dataset,
               readout=plan.get("readout"), n_train_planned=plan.get("n_train"),
               n_test_planned=plan.get("n_test"))
    return row


def _base_variant(m: MethodResult) -> VariantResult:
    """A method's BASE variant (an empty one when the result lacks it)."""
    v = m.variants.get("base")
    return v if isinstance(v, VariantResult) else VariantResult()


def _curve_points(m: MethodResult, router: str) -> dict[str, Any]:
    """The primary router's learning curve: its last two points (largest training sizes) and
    ``curve``, every size's W2S − fixed (``{n_train: diff}``, ascending)."""
    h = m.headroom
    curve = h.learning_curve if h is not None else None
    rows = curve.rows if isinstance(curve, LearningCurve) else ()
    mine: list[CurveRow] = sorted((r for r in rows
                                   if r.router == router and r.n_train is not None),
                                  key=lambda r: r.n_train)
    last = mine[-1] if mine else CurveRow()
    before = mine[-2] if len(mine) > 1 else CurveRow()
    return {"curve_n_before": before.n_train, "curve_diff_before": before.diff,
            "curve_n_last": last.n_train, "curve_diff_last": last.diff,
            "curve": {r.n_train: r.diff for r in mine} or None}


def router_diffs(results: EvaluationResult, method: str) -> dict[str, dict[str, Any]]:
    """Every router kind's W2S − fixed on the BASE test items: ``{kind: {diff, lo, hi, p,
    verdict, accuracy, majority}}`` in the order the run fitted them (secondary: the plan's
    W2S is the primary router alone).

    Example:
        >>> r = EvaluationResult.from_dict({"methods": {"caa": {"variants": {"base": {"w2s": {
        ...     "knn": {"diff_vs_fixed": 0.1, "diff_vs_fixed_ci": [-0.1, 0.3],
        ...             "diff_vs_fixed_verdict": "no detectable difference"}}}}}}})
        >>> d = router_diffs(r, "caa")["knn"]
        >>> d["lo"], d["verdict"]
        (-0.1, 'no detectable difference')
    """
    out = {}
    for kind, w in _base_variant(results.methods[method]).routers.items():
        lo, hi = w.diff_ci or (None, None)
        out[kind] = {"diff": w.diff, "lo": lo, "hi": hi, "p": w.p, "verdict": w.verdict,
                     "accuracy": w.accuracy, "majority": w.majority_accuracy}
    return out


def _wall_time(log: Mapping[str, Any] | None, dataset: str) -> float | None:
    """Seconds the run log records for ``dataset``, summed over its invocations (a killed
    invocation writes none, so a resumed dataset's time is a lower bound)."""
    if not log:
        return None
    times = [d["wall_time_s"] for inv in log.get("invocations") or []
             for d in inv.get("datasets") or []
             if d.get("dataset") == dataset and d.get("wall_time_s") is not None]
    return float(sum(times)) if times else None


def dataset_rows(results: EvaluationResult | str | os.PathLike | Mapping[str, Any],
                 plan: Mapping[str, Any],
                 run_log: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The study rows (:data:`STUDY_COLUMNS`) of one finished dataset: one per method, BASE
    variant, from :func:`~w2s_lens.report.tables.cross_dataset.table_rows` plus the planned sizes,
    the in-sample oracle's interval, the retest's chance agreement, the learning curve's last
    two points of the primary router and the wall time from ``run_log``.

    ``results``: a typed result, its run directory, or a ``results.json`` dict
    (:func:`~w2s_lens.evaluation.results.typed.as_result`); ``plan`` and ``run_log`` are plain
    data (the plan's row, ``run_log.json``).

    Example:
        >>> rows = dataset_rows(EvaluationResult.load("runs/powered/cloze-0.5b/myopic-reward"),
        ...                     {"name": "cloze-0.5b", "n_train": 200,
        ...                      "n_test": 200})  # doctest: +SKIP
        >>> rows[0]["smaller_than_planned"]  # doctest: +SKIP
        True
    """
    results = as_result(results)
    used = (results.n_train, results.n_test)
    planned = (plan.get("n_train"), plan.get("n_test"))
    out = []
    for router in primary_routers(plan, results):
        out += _router_rows(results, plan, run_log, router, used, planned)
    return out


def primary_routers(plan: Mapping[str, Any], results: EvaluationResult | None = None
                    ) -> list[str]:
    """The routers whose W2S − fixed the plan states as primary comparisons: the plan's
    ``primary_routers``, else the result's ``primary_router``, else :data:`PRIMARY_ROUTER`.

    Example:
        >>> primary_routers({"primary_routers": ["logreg", "logreg@options"]})
        ['logreg', 'logreg@options']
        >>> primary_routers({}, EvaluationResult.from_dict({"primary_router": "ridge",
        ...                                                 "methods": {}}))
        ['ridge']
    """
    if plan.get("primary_routers"):
        return list(plan["primary_routers"])
    return [(results.primary_router if results is not None else None) or PRIMARY_ROUTER]


def _router_rows(results: EvaluationResult, plan: Mapping[str, Any],
                 run_log: Mapping[str, Any] | None, router: str, used: tuple[Any, Any],
                 planned: tuple[Any, Any]) -> list[dict[str, Any]]:
    """:func:`dataset_rows` for one primary router; a router the run did not fit gives a
    ``"not run"`` row per method (e.g. a view added to the plan after the run)."""
    out = []
    for name, m in results.methods.items():
        if router not in _base_variant(m).routers:
            out.append({**_base_row(plan, results.dataset), "method": name, "router": router,
                        "status": NOT_RUN, "verdict": NOT_RUN,
                        "error": f"this run fitted no router {router!r}"})
    for t in table_rows(results, router=router):
        if t["variant"] != "base":
            continue
        m = results.methods[t["method"]]
        oracle = _base_variant(m).oracle
        oracle_lo, oracle_hi = (oracle.steerability_ci if isinstance(oracle, Summary) else None) \
            or (None, None)
        h = m.headroom
        retest = (h.retest if h is not None else None) or Retest()
        xv = (h.xv if h is not None else None) or CrossValidatedOracle()
        row = _base_row(plan, t["dataset"])
        row.update({k: t[k] for k in STUDY_COLUMNS if k in t})
        row.update(
            status=DONE, router=router,
            n_train=used[0], n_test=used[1] if used[1] is not None else t["n_test"],
            smaller_than_planned=any(u is not None and p is not None and u < p
                                     for u, p in zip(used, planned)),
            oracle_lo=oracle_lo, oracle_hi=oracle_hi, chance=retest.chance, xv_n=xv.n,
            wall_time_s=_wall_time(run_log, t["dataset"]),
            routers=router_diffs(results, t["method"]),
            **_curve_points(m, router))
        out.append(row)
    return out


def study_rows(root: str | os.PathLike, plan: Sequence[Mapping[str, Any]],
               q: float = FDR_Q) -> list[dict[str, Any]]:
    """Every planned protocol × dataset × method of the study under ``root``, BASE variant,
    in plan order (columns :data:`STUDY_COLUMNS`).

    A dataset without ``<root>/<name>/<dataset>/results.json`` gives one ``"not run"`` row
    per planned method (numbers None); one whose results cannot be read gives
    ``"unreadable"`` rows with the error. ``beats_after_bh`` says whether a finished row
    still beats the fixed layer after Benjamini-Hochberg at ``q`` across the datasets of its
    comparison (protocol × model × method × primary router; :func:`study_summary` counts
    them). A plan with several ``primary_routers`` gives one row per dataset × method × router.

    Example:
        >>> plan = [{"name": "paper-0.5b", "model": "m", "datasets": ["a", "b"],
        ...          "n_train": 200, "n_test": 200}]
        >>> [r["status"] for r in study_rows("/nonexistent", plan)]
        ['not run', 'not run']
    """
    rows: list[dict[str, Any]] = []
    for p in plan:
        for dataset in p["datasets"]:
            folder = Path(root) / p["name"] / dataset
            if not (folder / RESULTS_FILE).is_file():
                rows += [{**_base_row(p, dataset), "method": m, "router": r,
                          "status": NOT_RUN, "verdict": NOT_RUN}
                         for r in primary_routers(p) for m in p.get("methods") or [None]]
                continue
            try:
                log = read_json(folder / RUN_LOG) if (folder / RUN_LOG).is_file() else None
                rows += dataset_rows(EvaluationResult.load(folder / RESULTS_FILE), p, log)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
                rows += [{**_base_row(p, dataset), "method": m, "router": r,
                          "status": UNREADABLE, "verdict": UNREADABLE,
                          "error": f"{type(err).__name__}: {err}"}
                         for r in primary_routers(p) for m in p.get("methods") or [None]]
    for sub in _groups(rows).values():
        done = [r for r in sub if r["status"] == DONE]
        kinds = [verdict_kind(str(r["verdict"])) for r in done]
        rejected = bh_rejections([r["p_value"] for r in done], q, kinds)
        for r, rej, kind in zip(done, rejected, kinds):
            r["beats_after_bh"] = bool(rej and kind == VERDICT_BETTER)
    return rows


def _groups(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, Any, Any], list[Any]]:
    """Rows by comparison: protocol × method × router (each planned protocol runs on one
    model; each primary router is its own Benjamini-Hochberg family)."""
    groups: dict[tuple[Any, Any, Any], list[Any]] = {}
    for r in rows:
        groups.setdefault((r["protocol"], r.get("method"), r.get("router")), []).append(r)
    return groups


def study_summary(rows: Sequence[Mapping[str, Any]], q: float = FDR_Q) -> list[dict[str, Any]]:
    """Per comparison (protocol × model × method × primary router, in order): how many of its
    finished datasets
    show W2S beyond the noise (``wins``, sign-flip one-sided 2.5%), how many after
    Benjamini-Hochberg at ``q`` across those datasets (``wins_bh``), ``worse``, the datasets
    with too few informative items, and the datasets not run, unreadable or smaller than
    planned. The counts are :func:`~w2s_lens.report.tables.cross_dataset.summary_rows` of the
    group's finished rows.

    Example:
        >>> s = study_summary([{"protocol": "p", "model": "m", "method": "caa",
        ...     "dataset": "d", "readout": "cloze", "status": "done", "diff": 0.2,
        ...     "p_value": 0.001, "verdict": "W2S beats fixed beyond the noise"}])
        >>> s[0]["wins"], s[0]["wins_bh"], s[0]["n_run"], s[0]["n_planned"]
        (1, 1, 1, 1)
    """
    out = []
    for (protocol, method, router), sub in _groups(rows).items():
        done = [r for r in sub if r["status"] == DONE]
        counts = summary_rows([{**r, "model": "", "readout": "", "variant": "base",
                                "method": method or ""} for r in done], q)
        c = counts[0] if counts else {}
        out.append({
            "protocol": protocol, "method": method, "router": router,
            "model": ", ".join(dict.fromkeys(str(r.get("model")) for r in sub)),
            "readout": ", ".join(dict.fromkeys(str(r["readout"]) for r in sub if r.get("readout"))),
            "n_planned": len(sub), "n_run": len(done), "diff": c.get("diff"),
            "wins": c.get("wins", 0), "wins_bh": c.get("wins_bh", 0),
            "worse": c.get("worse", 0), "too_few": c.get("too_few", 0),
            "too_few_datasets": [r["dataset"] for r in done
                                 if verdict_kind(str(r["verdict"])) == VERDICT_TOO_FEW],
            "not_run": [r["dataset"] for r in sub if r["status"] == NOT_RUN],
            "unreadable": [r["dataset"] for r in sub if r["status"] == UNREADABLE],
            "smaller": [r["dataset"] for r in done if r.get("smaller_than_planned")],
        })
    return out
