"""The powered study's OOD rows: W2S − fixed under system and user prompts pushing towards or
away from the behaviour (``sys-pos``, ``sys-neg``, ``user-pos``, ``user-neg``), per finished
dataset × method × variant × router view of the primary kind.

Everything is trained on BASE (the paper's setting): the steering vectors, the fixed layer
(chosen on the cross-fitted BASE training items) and the routers; only the test prompts
change. These comparisons are **secondary** (the study's primary ones are on the BASE test
items, :data:`~w2s_lens.report.tables.study.PRIMARY_COMPARISON`). Each view × variant × method
(the router: kind and view) of a study row is its own Benjamini-Hochberg family across the
row's datasets
(``beats_after_bh``); nothing is corrected across variants or views. The headroom is not
measured under an OOD prompt (the retest sweeps the BASE test items only; an in-sample oracle
over a few noisy layers sits above the fixed layer even with nothing to learn, so it is shown
as ``oracle_in_sample`` and never read as headroom); the ``reading`` column is
:func:`~w2s_lens.evaluation.results.evidence.variant_evidence`'s words for the row's view.

May import :mod:`w2s_lens.evaluation` and its sibling table modules.

Example:
    >>> plan = [{"name": "cloze-0.5b", "model": "m", "datasets": ["d"], "n_train": 200,
    ...          "n_test": 200}]
    >>> ood_rows("/nonexistent", plan)
    []
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from w2s_lens.artifacts.files import write_text
from w2s_lens.evaluation.results.evidence import variant_evidence
from w2s_lens.evaluation.results.typed import EvaluationResult, as_result
from w2s_lens.evaluation.stats.paired import VERDICT_BETTER, bh_rejections, verdict_kind
from w2s_lens.evaluation.storage.rundir import RESULTS_FILE
from w2s_lens.report.tables.cross_dataset import FDR_Q, table_rows
from w2s_lens.report.tables.study import PRIMARY_ROUTER
from w2s_lens.routing.views import split_router_name

__all__ = ["OOD_COLUMNS", "OOD_NOTE", "dataset_ood_rows", "ood_csv", "ood_markdown",
           "ood_rows", "write_ood"]

#: CSV columns of an OOD row, in order.
OOD_COLUMNS = (
    "protocol", "model", "dataset", "method", "variant", "router", "view", "n_test",
    "fixed_layer", "fixed", "fixed_lo", "fixed_hi", "w2s", "diff", "diff_lo", "diff_hi",
    "p_value", "mde", "n_nonzero", "verdict", "beats_after_bh", "oracle_in_sample",
    "base_diff", "reading")
#: What every OOD table says first.
OOD_NOTE = (
    "Secondary comparisons. Vectors, fixed layer and routers come from BASE training items; "
    "only the test prompts change. Benjamini-Hochberg runs across the datasets of each study "
    "row × method × variant × router (kind and view), not across variants or views. The "
    "headroom is not "
    "measured under OOD prompts (the retest sweeps the BASE test items only); the in-sample "
    "oracle is shown for orientation and is biased upwards.")


def _primary_kind(results: EvaluationResult) -> str:
    return split_router_name(results.primary_router or PRIMARY_ROUTER)[0]


def dataset_ood_rows(results: EvaluationResult | str | os.PathLike | Mapping[str, Any],
                     plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The OOD rows (:data:`OOD_COLUMNS`) of one finished dataset: one per method × OOD
    variant × view of the primary router kind (``beats_after_bh`` left None; :func:`ood_rows`
    fills it across datasets). ``base_diff`` is the same router's W2S − fixed on BASE.

    Example:
        >>> r = EvaluationResult.from_dict({"dataset": "d", "primary_router": "logreg",
        ...     "methods": {"caa": {"variants": {
        ...         "base": {"n": 4, "w2s": {"logreg": {"diff_vs_fixed": 0.0}}},
        ...         "sys-pos": {"n": 4, "fixed": {"steerability": 0.5},
        ...                     "w2s": {"logreg": {"diff_vs_fixed": 0.1}}}}}}})
        >>> [(x["variant"], x["view"], x["diff"], x["base_diff"]) for x in
        ...  dataset_ood_rows(r, {"name": "p"})]
        [('sys-pos', 'question', 0.1, 0.0)]
    """
    results = as_result(results)
    kind = _primary_kind(results)
    views = list(results.router_inputs or ("question",))
    routers = [name for m in results.methods.values() for v in m.variants.values()
               for name in v.routers if split_router_name(name)[0] == kind]
    out = []
    for router in dict.fromkeys(routers):
        view = split_router_name(router)[1]
        base = {t["method"]: t["diff"] for t in table_rows(results, router=router)
                if t["variant"] == "base"}
        for t in table_rows(results, router=router):
            if t["variant"] == "base":
                continue
            reading = variant_evidence(results.methods[t["method"]].to_dict(), t["variant"],
                                       kind, views)
            row = dict.fromkeys(OOD_COLUMNS)
            row.update({k: t[k] for k in OOD_COLUMNS if k in t})
            row.update(protocol=plan.get("name"), model=results.model or plan.get("model"),
                       router=router, view=view, oracle_in_sample=t.get("oracle"),
                       base_diff=base.get(t["method"]),
                       reading=(reading.get("views") or {}).get(view, {}).get("reading"))
            out.append(row)
    return out


def ood_rows(root: str | os.PathLike, plan: Sequence[Mapping[str, Any]],
             q: float = FDR_Q) -> list[dict[str, Any]]:
    """Every finished dataset's OOD rows under ``root`` (``<root>/<name>/<dataset>/``), in
    plan order, with ``beats_after_bh`` per family (study row × method × variant × router;
    see the module docstring). Datasets not run, or run without OOD variants, give none.

    Example:
        >>> ood_rows("/nonexistent", [{"name": "p", "datasets": ["d"]}])
        []
    """
    rows: list[dict[str, Any]] = []
    for p in plan:
        for dataset in p["datasets"]:
            file = Path(root) / p["name"] / dataset / RESULTS_FILE
            if file.is_file():
                rows += dataset_ood_rows(EvaluationResult.load(file), p)
    families: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        families.setdefault((r["protocol"], r["method"], r["variant"], r["router"]),
                            []).append(r)
    for sub in families.values():
        kinds = [verdict_kind(str(r["verdict"])) for r in sub]
        for r, rej, k in zip(sub, bh_rejections([r["p_value"] for r in sub], q, kinds), kinds):
            r["beats_after_bh"] = bool(rej and k == VERDICT_BETTER)
    return rows


def _f(x: Any, fmt: str = "+.3f") -> str:
    return "–" if x is None else format(float(x), fmt)


def _v(x: Any) -> str:
    return "–" if x is None else str(x)


def ood_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The OOD rows as a markdown section (:data:`OOD_NOTE` first; "no OOD rows yet" when
    empty).

    Example:
        >>> print(ood_markdown([]))
        ## OOD variants (secondary)
        <BLANKLINE>
        No finished dataset has OOD variants yet.
    """
    lines = ["## OOD variants (secondary)", ""]
    if not rows:
        return "\n".join([*lines, "No finished dataset has OOD variants yet."])
    lines += [OOD_NOTE, "",
              "| row | dataset | method | variant | view | n | fixed L | fixed [95% CI] | "
              "W2S − fixed [95% CI] | p | MDE | verdict | after BH | in-sample oracle | "
              "BASE W2S − fixed | reading |",
              "|" + "---|" * 16]
    for r in rows:
        lines.append(
            f"| {r['protocol']} | {r['dataset']} | {r['method']} | {r['variant']} | "
            f"{r['view']} | {_v(r['n_test'])} | {_v(r['fixed_layer'])} | "
            f"{_f(r['fixed'])} [{_f(r['fixed_lo'])}, {_f(r['fixed_hi'])}] | "
            f"{_f(r['diff'])} [{_f(r['diff_lo'])}, {_f(r['diff_hi'])}] | "
            f"{_f(r['p_value'], '.3g')} | {_f(r['mde'], '.3f')} | {r['verdict'] or '–'} | "
            f"{'yes' if r['beats_after_bh'] else 'no'} | {_f(r['oracle_in_sample'])} | "
            f"{_f(r['base_diff'])} | {r['reading'] or '–'} |")
    return "\n".join(lines)


def ood_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The OOD rows as CSV (header :data:`OOD_COLUMNS`).

    Example:
        >>> ood_csv([]).splitlines()[0].split(",")[:3]
        ['protocol', 'model', 'dataset']
    """
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(OOD_COLUMNS), extrasaction="ignore",
                       lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_ood(rows: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike,
              stem: str) -> dict[str, Path]:
    """Write ``<stem>_ood.md`` and ``<stem>_ood.csv`` into ``out_dir``; returns their paths.

    Example:
        >>> rows = ood_rows(root, plan)  # doctest: +SKIP
        >>> write_ood(rows, "analysis/results/fair", "powered_table")  # doctest: +SKIP
    """
    out = Path(out_dir)
    return {"md": write_text(out / f"{stem}_ood.md", ood_markdown(rows) + "\n"),
            "csv": write_text(out / f"{stem}_ood.csv", ood_csv(rows))}
