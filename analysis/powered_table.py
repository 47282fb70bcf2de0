"""The powered study's table, report and figure, from whatever has finished so far.

Reads ``analysis/results/<study>/<row>/<dataset>/`` (``results.json``, ``run_log.json``; as
``analysis/powered_study.py`` copies each finished dataset), takes the plan from that script's
``PLAN`` (passed to the package as plain data) and writes into ``--out`` (default: the same
folder):

* ``powered_table.md`` / ``powered_table.csv``: one row per protocol × dataset × method, BASE
  variant, opening with the primary comparison as stated before running; the counts of
  datasets beyond the noise per study row, plain and after Benjamini-Hochberg;
* ``powered_report.html``: the same, with the interactive figure (self-contained, offline;
  ~5 MB of inline plotly.js, so git ignores it: rebuild it with this script);
* ``powered_figure.png``: the figure as a static image (matplotlib, same content);
* ``powered_table_ood.md`` / ``powered_table_ood.csv``: the OOD variants (secondary): W2S −
  fixed per finished dataset × method × variant × view of the primary router kind, with BH
  per study row × method × variant × view (:mod:`w2s_lens.report.tables.study_ood`);
* ``powered_verdict.md``: the finished datasets in one short table (the README's): the fixed
  layer, the cross-validated headroom and its share of the fixed effect, κ, each primary
  router's W2S − fixed with p, and the reading.

Rows not yet run read "not run"; rows that ran on fewer items than planned are marked.
Nothing is computed again: every number comes from the datasets' ``results.json``.

Usage:
    python analysis/powered_table.py                       # the fair study: analysis/results/fair
    python analysis/powered_table.py --study powered-v1    # the first study: .../powered
    python analysis/powered_table.py --root DIR --out DIR
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import powered_study  # noqa: E402

from w2s_lens.evaluation.stats.paired import VERDICT_BETTER, verdict_kind  # noqa: E402
from w2s_lens.report.plots_study import study_panels  # noqa: E402
from w2s_lens.report.study_report import write_study_report  # noqa: E402
from w2s_lens.report.tables.cross_dataset import readout_label  # noqa: E402
from w2s_lens.report.tables.study import DONE, PRIMARY_COMPARISON, study_rows  # noqa: E402
from w2s_lens.report.tables.study_ood import ood_rows, write_ood  # noqa: E402
from w2s_lens.report.tables.study_text import write_study  # noqa: E402

STEM = "powered_table"
#: The first study's primary comparison, as it was stated before it ran.
STATEMENT_V1 = (
    "Per dataset: W2S (the `logreg` router on the residual at the middle layer) − the best "
    "fixed layer, on the BASE test items, the paired 95% interval and the exact sign-flip test "
    "(one-sided 2.5%), with Benjamini-Hochberg across the datasets of the study at the same "
    "level. Everything else — other routers, L2S, the cross-validated oracle, retest "
    "agreement, the learning curve, the letter-readout and paper-protocol rows, the 1.5B "
    "rows — is secondary.")
VERDICT = "powered_verdict.md"
REPORT = "powered_report.html"
FIGURE = "powered_figure.png"


def _flag(args: Sequence[str], name: str, default: str | None = None) -> str | None:
    """The value after ``name`` in a row's extra arguments (``default`` when absent)."""
    args = list(args)
    return args[args.index(name) + 1] if name in args[:-1] else default


def plan_data(plan: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """The study plan (default ``powered_study.PLAN``) as plain data for
    :func:`w2s_lens.report.tables.study.study_rows`: name, model, datasets, planned sizes, the
    methods, the primary routers (``logreg``, and ``logreg@options`` where the row fits the
    options view) and the readout label its arguments set (``reproduce_table.py``'s defaults: letter
    readout, mirrored, CAA).

    >>> plan = {p["name"]: p for p in plan_data()}
    >>> plan["paper-0.5b"]["readout"], plan["cloze-0.5b-l2s"]["methods"]
    ('letter-single', ['l2s'])
    """
    out = []
    for row in powered_study.PLAN if plan is None else plan:
        method = _flag(row.args, "--method", "caa")
        mirror = "--no-mirror" not in row.args
        out.append({"name": row.name, "model": row.model, "datasets": list(row.datasets),
                    "n_train": row.n_train, "n_test": row.n_test,
                    "methods": ["caa", "l2s"] if method == "both" else [method],
                    "primary_routers": list(row.primary_routers),
                    "readout": readout_label({"readout": _flag(row.args, "--readout", "letter"),
                                              "mirror": mirror,
                                              "length_norm": "--length-norm" in row.args})})
    return out


def statement(doc: str | None = powered_study.__doc__) -> str:
    """The primary comparison as ``powered_study.py``'s docstring states it (one paragraph,
    rst ``code`` turned into markdown); the package's copy if the docstring lacks it."""
    found = re.search(r"\*\*Primary comparisons?[^*]*\(stated before running\)\.\*\*\s*(.+?)"
                      r"\n\s*\n", doc or "", re.S)
    if not found:
        return PRIMARY_COMPARISON
    return re.sub(r"``([^`]+)``", r"`\1`", " ".join(found.group(1).split()))


def _ci(x: float, lo: float, hi: float) -> str:
    return f"{x:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _p(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}".rstrip("0").rstrip(".")


def _bh(row: Mapping[str, Any]) -> str:
    """What Benjamini-Hochberg did to a W2S win: nothing to say unless the row's own test
    says W2S beats fixed; then whether the win is kept across the study row's datasets."""
    if verdict_kind(str(row.get("verdict"))) != VERDICT_BETTER:
        return ""
    return "; kept by BH" if row.get("beats_after_bh") in (True, "True") else "; not kept by BH"


def verdict_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The finished datasets, one line each (its primary routers side by side): a markdown
    table. The reading is the row's stored ``case`` (per dataset, before any correction); a
    W2S cell whose own test says W2S beats fixed says whether Benjamini-Hochberg across the
    study row's datasets keeps the win. The headroom's share is cross-validated oracle −
    cross-validated fixed over the fixed layer's effect on all test items.

    >>> print(verdict_table([]).splitlines()[-1])
    (no dataset finished yet)
    """
    head = ("| protocol | dataset | items | fixed layer [95% CI] | headroom [95% CI] (share of "
            "fixed) | κ | W2S − fixed, question [95% CI], p (W2S > fixed) | W2S − fixed, options "
            "[95% CI], p | reading |\n|---|---|---|---|---|---|---|---|---|")
    lines: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        if r["status"] != DONE:
            continue
        line = lines.setdefault((r["protocol"], r["dataset"], r["method"]), {"row": r})
        view = r["router"].partition("@")[2] or "question"
        line[view] = r
    if not lines:
        return head + "\n(no dataset finished yet)"
    out = [head]
    for (protocol, dataset, method), line in lines.items():
        r = line["row"]
        share = r["xv_diff"] / r["fixed"] if r["fixed"] else float("nan")
        cells = []
        for view in ("question", "options"):
            v = line.get(view)
            cells.append("–" if v is None else
                         f"{_ci(v['diff'], v['diff_lo'], v['diff_hi'])}, {_p(v['p_value'])}"
                         f"{_bh(v)}")
        name = protocol if method == "caa" else f"{protocol} ({method})"
        out.append(f"| {name} | {dataset} | {r['n_train']} + {r['n_test']} | "
                   f"L{r['fixed_layer']} {_ci(r['fixed'], r['fixed_lo'], r['fixed_hi'])} | "
                   f"{_ci(r['xv_diff'], r['xv_lo'], r['xv_hi'])} ({share:.0%}) | "
                   f"{r['kappa']:.2f} | {cells[0]} | {cells[1]} | {r['case']} |")
    return "\n".join(out)


def _arm(a: float, b: float) -> float:
    """``a - b``, an error bar's arm: 0 where either end is missing (NaN)."""
    return 0.0 if math.isnan(a) or math.isnan(b) else max(a - b, 0.0)


def write_png(rows: Sequence[Mapping[str, Any]], path: Path,
              title: str = "The powered study") -> Path:
    """The study figure (:func:`w2s_lens.report.plots_study.study_panels`, as the report's
    plotly figure draws it) as a PNG, with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = study_panels(rows)
    sizes = [max(len(p["labels"]), 1) for p in panels]
    height = 1.6 + 0.55 * sum(sizes) + 0.6 * len(panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, height), squeeze=False,
                             gridspec_kw={"height_ratios": sizes})
    markers = {"circle": "o", "diamond": "D"}
    for ax, panel in zip(axes[:, 0], panels):
        n = len(panel["labels"])
        for s in panel["series"]:
            lo = [_arm(m, x) for m, x in zip(s["mean"], s["lo"])]
            hi = [_arm(x, m) for m, x in zip(s["mean"], s["hi"])]
            ax.errorbar(s["mean"], s["y"], xerr=[lo, hi], fmt=markers.get(s["symbol"], "o"),
                        color=s["color"], capsize=3, markersize=6, label=s["name"])
        ax.axvline(0.0, color="#444", linewidth=1)
        ax.set_yticks(range(n), panel["labels"], fontsize=8)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_title(panel["title"], fontsize=10)
        ax.grid(axis="x", color="#ddd", linewidth=0.5)
    axes[-1, 0].set_xlabel("difference in mean steerability (95% interval)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"{title}: W2S − fixed and cross-validated oracle − fixed per "
                 "dataset (BASE test items; the oracle on the retest's items)", fontsize=11)
    # keep about half an inch for the legend below and the title above, whatever the height
    fig.tight_layout(rect=(0, 0.5 / height, 1, 1 - 0.45 / height))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", choices=("fair", "powered-v1"), default="fair",
                   help="which plan: the fair-router study (analysis/results/fair) or the "
                        "first study (analysis/results/powered)")
    p.add_argument("--root", default=None,
                   help="the study's results folder (<row>/<dataset>/results.json; default: "
                        "the study's)")
    p.add_argument("--out", help="where to write the table, report and figure (default --root)")
    args = p.parse_args(argv)
    v1 = args.study == "powered-v1"
    root = Path(args.root or (powered_study.RESULTS_V1 if v1 else powered_study.RESULTS))
    out = Path(args.out) if args.out else root
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_data(powered_study.PLAN_V1 if v1 else None)
    rows = study_rows(root, plan)
    done = sum(r["status"] == DONE for r in rows)
    if not done:
        print(f"No finished dataset under {root} yet: every planned row reads \"not run\".")
    text = STATEMENT_V1 if v1 else statement()
    paths = write_study(rows, out, STEM, statement=text)
    report = write_study_report(rows, out / REPORT, statement=text, source=root)
    png = write_png(rows, out / FIGURE,
                    title="The first powered study" if v1 else "The fair study")
    ood = write_ood(ood_rows(root, plan), out, STEM)
    verdict = out / VERDICT
    verdict.write_text(f"# The {'first' if v1 else 'fair'} study, finished datasets\n\n"
                       f"Built by `analysis/powered_table.py` from each dataset's "
                       f"`results.json`; {done} of {len(rows)} planned (dataset × primary "
                       f"router) rows finished. Headroom: cross-validated oracle − "
                       f"cross-validated fixed on the retested BASE test items; its share is "
                       f"of the fixed layer's effect on all test items. p is one-sided and "
                       f"per dataset; a win says whether Benjamini-Hochberg at 2.5% across the "
                       f"study row's datasets (each primary router its own family) keeps it; "
                       f"the reading is per dataset, before that correction.\n\n"
                       f"{verdict_table(rows)}\n")
    print(f"{done} of {len(rows)} rows finished; wrote {paths['md']}, {paths['csv']}, "
          f"{report}, {png}, {ood['md']}, {ood['csv']}, {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
