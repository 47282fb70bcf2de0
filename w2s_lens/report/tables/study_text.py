"""The powered study's tables: the cells both the markdown and the HTML page render, the
notes above them, and the markdown and CSV files, from :func:`~w2s_lens.report.tables.study.
study_rows`.

May import :mod:`w2s_lens.evaluation` (``study``, ``paired``, ``summary``, ``table_rows``) and
the top-level ``artifacts``; never :mod:`w2s_lens.report` or ``analysis/``.

Example:
    >>> from w2s_lens.report.tables.study import study_rows
    >>> plan = [{"name": "cloze-0.5b", "model": "m", "datasets": ["d"], "n_train": 200,
    ...          "n_test": 200, "methods": ["caa"], "readout": "cloze"}]
    >>> study_markdown(study_rows("/nonexistent", plan)).splitlines()[0]
    '# The powered study'
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from w2s_lens.artifacts.files import write_text
from w2s_lens.evaluation.stats.paired import ALPHA, MIN_NONZERO
from w2s_lens.report.tables.cross_dataset import FDR_Q
from w2s_lens.report.tables.study import (
    DONE,
    PRIMARY_COMPARISON,
    PRIMARY_ROUTER,
    STUDY_COLUMNS,
    study_summary,
)
from w2s_lens.report.tables.summary import fmt_ci
from w2s_lens.routing.views import split_router_name

__all__ = ["study_csv", "study_markdown", "study_notes", "study_tables", "write_study"]


def _f(x: Any, fmt: str = "+.3f") -> str:
    return "–" if x is None else format(float(x), fmt)


def _p(x: Any) -> str:
    return "–" if x is None else f"{float(x):.3g}"


def _ci(r: Mapping[str, Any], key: str, lo: str, hi: str) -> str:
    return "–" if r[key] is None else fmt_ci(r[key], [r[lo], r[hi]])


def _router(name: Any) -> str:
    """A router's name as the tables show it: ``kind@view`` (the question view spelled out)."""
    if not name:
        return "–"
    kind, view = split_router_name(str(name))
    return f"{kind}@{view}"


def _sizes(r: Mapping[str, Any]) -> str:
    planned = f"{r['n_train_planned']} + {r['n_test_planned']}"
    if r["status"] != DONE:
        return f"– (planned {planned})"
    used = f"{r['n_train']} + {r['n_test']}"
    return f"{used} (SMALLER than planned {planned})" if r["smaller_than_planned"] else used


def _curve(r: Mapping[str, Any]) -> str:
    """Every learning-curve size of the primary router (the last two when only those are
    known)."""
    pts = list((r.get("curve") or {}).items()) or [
        (r[f"curve_n_{k}"], r[f"curve_diff_{k}"]) for k in ("before", "last")]
    return "; ".join(f"{n}: {_f(d)}" for n, d in pts if n is not None) or "–"


def _bh(r: Mapping[str, Any]) -> str:
    return "–" if r["status"] != DONE else "beats" if r["beats_after_bh"] else "no"


def _wall(s: Any) -> str:
    return "–" if s is None else f"{float(s) / 3600:.1f} h" if s >= 3600 else f"{s:.0f} s"


def _router_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    kinds = list(dict.fromkeys(k for r in rows for k in (r.get("routers") or {})))
    # One line per finished dataset: every primary router's row carries the same router
    # kinds, so the first row of each protocol × model × dataset × method stands for them all.
    once = {(r["protocol"], r["model"], r["dataset"], r["method"]): r
            for r in reversed(rows) if r["status"] == DONE}
    cells = [[r["protocol"], r["dataset"], r["method"] or "–",
              *[_ci(r["routers"][k], "diff", "lo", "hi") + f" (p {_p(r['routers'][k]['p'])}, "
                f"acc {_f(r['routers'][k]['accuracy'], '.2f')})"
                if k in (r.get("routers") or {}) else "–" for k in kinds],
              _f(next((v["majority"] for v in (r.get("routers") or {}).values()), None), ".2f")]
             for r in reversed(once.values())]
    return ["protocol", "dataset", "method", *[f"{k}: W2S − fixed" for k in kinds],
            "majority acc"], cells


def study_tables(rows: Sequence[Mapping[str, Any]],
                 q: float = FDR_Q) -> list[tuple[str, list[str], list[list[str]]]]:
    """The study's four tables as ``(title, header, cells)``, plain text (the markdown and
    the HTML page render the same cells): the primary comparison per study row, per dataset,
    the secondary (headroom) numbers per dataset, and every router kind's W2S − fixed per
    finished dataset.

    Example:
        >>> [t[0][:23] for t in study_tables([])]
        ['Primary comparisons per', 'Primary comparisons per', 'Secondary: is there any', \
'Secondary: every router']
    """
    summary = [
        [s["protocol"], s["model"], s["method"] or "–", _router(s.get("router")),
         s["readout"] or "–", f"{s['n_run']} of {s['n_planned']}", _f(s["diff"]),
         f"{s['wins']} of {s['n_run']}",
         f"{s['wins_bh']} of {s['n_run']}", f"{s['worse']} of {s['n_run']}",
         f"{s['too_few']} of {s['n_run']}" + (f" ({', '.join(s['too_few_datasets'])})"
                                              if s["too_few_datasets"] else ""),
         ", ".join(s["not_run"] + [f"{d} (unreadable)" for d in s["unreadable"]]) or "–",
         ", ".join(s["smaller"]) or "–"]
        for s in study_summary(rows, q)]
    primary = [
        [r["protocol"], str(r["model"]), r["dataset"], r["method"] or "–",
         _router(r.get("router")), r["readout"] or "–", _sizes(r),
         str(r["fixed_layer"] if r["fixed_layer"] is not None else "–"),
         _ci(r, "fixed", "fixed_lo", "fixed_hi"),
         _ci(r, "w2s", "w2s_lo", "w2s_hi"),
         _ci(r, "oracle", "oracle_lo", "oracle_hi"),
         _ci(r, "diff", "diff_lo", "diff_hi"), _p(r["p_value"]), str(r["test"] or "–"),
         _f(r["mde"], ".3f"), str(r["n_nonzero"] if r["n_nonzero"] is not None else "–"),
         str(r["verdict"]), _bh(r)]
        for r in rows]
    secondary = [
        [r["protocol"], r["dataset"], r["method"] or "–", _router(r.get("router")),
         str(r["xv_n"] if r["xv_n"] is not None else "–"),
         _ci(r, "xv_diff", "xv_lo", "xv_hi"), _p(r["xv_p"]),
         f"{_f(r['agreement'], '.2f')} / {_f(r['chance'], '.2f')}, κ {_f(r['kappa'], '+.2f')}",
         _curve(r), f"{_f(r['router_acc'], '.2f')} / {_f(r['majority_acc'], '.2f')}",
         _f(r["form_router_diff"]), str(r["case"] or "–"), _wall(r["wall_time_s"])]
        for r in rows]
    return [
        ("Primary comparisons per study row (protocol × model × method × router)",
         ["protocol", "model", "method", "W2S router", "readout", "datasets run (of planned)",
          "mean W2S − fixed", f"W2S beats fixed beyond the noise (sign-flip, one-sided "
          f"{ALPHA:.1%})", f"after BH at {q:.1%} across the row's datasets",
          "W2S worse than fixed", "too few informative items", "not run", "smaller than planned"],
         summary),
        ("Primary comparisons per dataset (BASE test items)",
         ["protocol", "model", "dataset", "method", "W2S router", "readout",
          "items train + test",
          "fixed L", "fixed [95% CI]", "W2S [95% CI]", "in-sample oracle [95% CI]",
          "W2S − fixed [95% CI]", "p (W2S > fixed)", "test", "MDE", "non-zero", "verdict",
          "after BH"], primary),
        ("Secondary: is there anything to learn? (retest and cross-validated oracle on the "
         "first n BASE test items: column n)",
         ["protocol", "dataset", "method", "W2S router", "n",
          "xv-oracle − xv-fixed [95% CI]", "p",
          "retest agreement / chance, κ", "learning curve (n: W2S − fixed)",
          "router acc / majority", "form router − fixed", "case", "wall time"], secondary),
        ("Secondary: every router kind, W2S − fixed [95% CI] (BASE test items)",
         *_router_table(rows)),
    ]


def study_notes(rows: Sequence[Mapping[str, Any]], q: float = FDR_Q) -> list[str]:
    """The paragraphs above the tables, plain text: the status (datasets finished, smaller
    than planned), how BH and the marks read, and a warning when a result's primary router is
    not the plan's :data:`PRIMARY_ROUTER`.

    Example:
        >>> study_notes([])[0]
        'Status: 0 of 0 planned datasets finished (none yet: every row reads "not run").'
    """
    done = {(r["protocol"], r["dataset"]) for r in rows if r["status"] == DONE}
    smaller = {(r["protocol"], r["dataset"]) for r in rows if r["smaller_than_planned"]}
    status = (f"Status: {len(done)} of {len({(r['protocol'], r['dataset']) for r in rows})} "
              "planned datasets finished" + ("" if done else " (none yet: every row reads "
                                              "\"not run\")")
              + (f"; {len(smaller)} ran SMALLER than planned." if smaller else "."))
    out = [status,
           f"Benjamini-Hochberg runs at {q:.1%} across the finished datasets of one comparison "
           f"(protocol × model × method × W2S router: each primary router is its own family) "
           f"that are tests (a p-value and at least {MIN_NONZERO} "
           "non-zero differences); a dataset counts after BH only when its own verdict says it "
           "beats. "
           "\"SMALLER than planned\" marks a dataset that ran on fewer items than the plan "
           "(deduplication); \"not run\" one without results yet. The in-sample oracle is "
           "biased upwards (a maximum over layers on the test items); the cross-validated "
           "oracle is not. W2S = the row's router (`kind@view`; a bare kind reads the "
           "question)."]
    others = sorted({str(r["router"]) for r in rows if r["status"] == DONE
                     and split_router_name(str(r["router"]))[0] != PRIMARY_ROUTER})
    if others:
        out.append(f"Warning: some rows' W2S router is not the plan's kind {PRIMARY_ROUTER} "
                   f"({', '.join(others)}); their W2S is that router.")
    return out


def study_markdown(rows: Sequence[Mapping[str, Any]], statement: str = PRIMARY_COMPARISON,
                   q: float = FDR_Q, title: str = "The powered study") -> str:
    """The study as markdown: the primary comparison stated before running (``statement``),
    :func:`study_notes` (rows not yet run, rows smaller than planned), then
    :func:`study_tables` (cells with ``|`` escaped).

    Example:
        >>> study_markdown([]).splitlines()[2].startswith("**Primary comparison (stated")
        True
    """
    lines = [f"# {title}", "", f"**Primary comparison (stated before running).** {statement}"]
    for note in study_notes(rows, q):
        lines += ["", note]
    for title_, header, cells in study_tables(rows, q):
        lines += ["", f"## {title_}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                  for row in cells]
    return "\n".join(lines) + "\n"


def study_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as CSV (columns :data:`~w2s_lens.report.tables.study.STUDY_COLUMNS`; missing
    numbers empty; ``routers`` as JSON).

    Example:
        >>> study_csv([]).split(",")[:3]
        ['protocol', 'model', 'dataset']
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(STUDY_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: (json.dumps(r.get(k)) if isinstance(r.get(k), dict) else r.get(k))
                      for k in STUDY_COLUMNS} for r in rows)
    return buf.getvalue()


def write_study(rows: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike,
                stem: str = "powered_table", statement: str = PRIMARY_COMPARISON,
                q: float = FDR_Q) -> dict[str, Path]:
    """Write ``<stem>.md`` and ``<stem>.csv`` into ``out_dir``; returns their paths.

    Example:
        >>> write_study(study_rows("analysis/results/powered", plan), "out")  # doctest: +SKIP
        {'md': PosixPath('out/powered_table.md'), 'csv': PosixPath('out/powered_table.csv')}
    """
    out = Path(out_dir)
    return {"md": write_text(out / f"{stem}.md", study_markdown(rows, statement, q)),
            "csv": write_text(out / f"{stem}.csv", study_csv(rows))}
