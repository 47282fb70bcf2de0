"""Where does the cloze headroom come from? Readout and intervention ablations on the same items.

Under the cloze readout the same items, vectors and model show a per-item best layer worth
+0.4 to +0.8 (cross-validated) that the letter readouts do not have. Each row here removes one
ingredient of the cloze measurement, on the same items (split seed 0, the first 96 + 96 of the
letter-balanced split), the study's 7-layer grid, CAA, Qwen2.5-Coder-0.5B, and every router
view:

=================  ====================================================================
variant            what changes against ``baseline`` (cloze, from the last prompt token
                   on, summed option log-probabilities, raw vectors, options hidden)
=================  ====================================================================
``baseline``       nothing
``prompt-only``    steer the prompt only (``--positions prompt``): the option tokens
                   are reached through attention alone
``all-positions``  steer every token (``--positions all``)
``first-token``    score one option token only, the first at which the two
                   options differ (``--scoring first``)
``mean``           length-normalised scoring (``--scoring mean``)
``relative``       λ = 1 is the same fraction of the residual norm at every layer
                   (``--scale relative``)
``listed``         the prompt lists both options (no letters) above the answer
                   (``--list-options``): the router's input holds what is scored
=================  ====================================================================

The retest (two half-vector sweeps, for κ) runs on the first :data:`RETEST_ITEMS` = 48 of the
96 BASE test items, fixed here before any row ran. The reason is cost, measured before the
runs (one thread, Qwen2.5-Coder-0.5B, the 7-layer grid, 4 test items each, on this 2-core
machine beside two study jobs): per item the baseline cloze sweep cost 11.8 s of CPU
(corrigible-neutral-HHH) and 16.1 s (self-awareness-text-model), ``prompt-only`` 33.0 s and
28.8 s, ``all-positions`` 32.5 s and 28.4 s (every prompt token steered: no shared prefix),
``first-token`` 1.7 s and 1.3 s. The whole plan is then about 9 baseline rows per dataset,
roughly 20 core-hours with the retest on 48 items against 27 with it on all 96.

Each (variant, dataset) is one ``analysis/reproduce_table.py`` run into
``$W2S_RUNS_DIR/ablation/<variant>/<dataset>`` (resumable), copied when finished to
``analysis/results/ablation/<variant>/<dataset>/`` (``results.json``, ``run.json``,
``items.csv``, ``run_log.json``) and committed with ``--commit``. ``--table`` writes
``analysis/results/ablation/ablation_table.csv`` and ``.md`` (and the README's compact
``ablation_summary.md``) from whatever has finished: one
row per dataset × variant with the fixed steerability and its interval (all test items, the
layer chosen on training items), the cross-validated headroom with its interval (on the
``n_retest`` retested items, against the cross-validated fixed layer ``xv_fixed_layers`` worth
``xv_fixed``: the denominator of the relative headroom, not the ``fixed`` column), the retest
κ, the best-layer histogram and W2S − fixed per router view (the primary router kind).

Variants score on different scales (one option token's log-probability against a sum over
20), so their absolute headroom is not comparable. Each row therefore also has its
**relative headroom** (unchanged by a rescaling common to every layer and item, and only by
that) (``rel_headroom``: cross-validated oracle / cross-validated fixed − 1,
the share of the fixed effect a perfect router adds, with its interval) and, for a variant,
``vs_baseline``: its relative headroom minus the baseline's on the items both retested, a
paired bootstrap interval over items and a one-sided p for "lower than the baseline's"
(:func:`~w2s_lens.evaluation.headroom.compare.headroom_shift`, from the two ``items.csv``).

Usage:
    python analysis/ablation_study.py --list
    python analysis/ablation_study.py --pending --workers 2 --commit
    python analysis/ablation_study.py --pending --variants baseline,first-token --commit
    python analysis/ablation_study.py --table
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from powered_study import (  # noqa: E402
    GRID_05B,
    TWO,
    Row,
    needs_run,
    plan_commands,
    run_many,
    runs_root,
)

from w2s_lens.evaluation.headroom.compare import (  # noqa: E402
    headroom_shift,
    relative_headroom,
    retest_matrices,
)
from w2s_lens.evaluation.results import EvaluationResult, Headroom, Summary  # noqa: E402
from w2s_lens.evaluation.results.headroom import CrossValidatedOracle  # noqa: E402
from w2s_lens.routing.views import split_router_name  # noqa: E402

RESULTS = HERE / "results" / "ablation"
N_ITEMS = 96
#: BASE test items the retest sweeps twice (of the N_ITEMS; see the module docstring)
RETEST_ITEMS = 48
_BASE = ("--readout", "cloze", "--layers", GRID_05B, "--method", "caa")
#: variant -> the arguments it adds to the baseline's
VARIANTS: dict[str, tuple[str, ...]] = {
    "baseline": (),
    "first-token": ("--scoring", "first"),
    "mean": ("--scoring", "mean"),
    "relative": ("--scale", "relative"),
    "listed": ("--list-options",),
    "prompt-only": ("--positions", "prompt"),
    "all-positions": ("--positions", "all"),
}
#: One row per variant, in the order ``--pending`` runs them: the cheap ones first (the two
#: position variants cost 2–3 baseline rows each), so a study cut off early has the most rows.
PLAN = tuple(Row(name, "qwen2.5-coder-0.5b-instruct", TWO, N_ITEMS, N_ITEMS, (*_BASE, *extra),
                 retest=str(RETEST_ITEMS))
             for name, extra in VARIANTS.items())
#: The CSV's columns.
COLUMNS = ("dataset", "variant", "n_train", "n_test", "fixed_layer", "fixed", "fixed_lo",
           "fixed_hi", "n_retest", "xv_fixed_layers", "xv_fixed", "headroom", "headroom_lo",
           "headroom_hi", "headroom_p", "rel_headroom",
           "rel_headroom_lo", "rel_headroom_hi", "vs_baseline", "vs_baseline_lo",
           "vs_baseline_hi", "vs_baseline_p", "n_shared", "kappa", "best_layers", "reading")


def _relative(folder: Path, base: Path | None) -> dict[str, Any]:
    """The row's relative headroom (cross-validated oracle / fixed − 1 on its retested items)
    and, for a variant, its shift against the baseline's on the items both retested
    (:func:`~w2s_lens.evaluation.headroom.compare.headroom_shift`), from ``items.csv``."""
    if not (folder / "items.csv").is_file():
        return {}
    try:
        _, _, s1, s2 = retest_matrices(folder)
    except ValueError as exc:  # no retest in this row: its cells stay empty, the table is made
        print(f"{folder}: no relative headroom ({exc})", flush=True)
        return {}
    own = relative_headroom(s1, s2)
    out: dict[str, Any] = {"rel_headroom": own.ratio,
                           "rel_headroom_lo": own.ratio_ci[0] if own.ratio_ci else None,
                           "rel_headroom_hi": own.ratio_ci[1] if own.ratio_ci else None}
    if base is not None and (base / "items.csv").is_file():
        try:
            shift = headroom_shift(base, folder)
        except ValueError as exc:
            print(f"{folder}: no shift against {base} ({exc})", flush=True)
            return out
        out.update({"vs_baseline": shift.diff,
                    "vs_baseline_lo": shift.diff_ci[0] if shift.diff_ci else None,
                    "vs_baseline_hi": shift.diff_ci[1] if shift.diff_ci else None,
                    "vs_baseline_p": shift.p_less, "n_shared": shift.n})
    return out


def table_rows(results: Path = RESULTS) -> list[dict[str, Any]]:
    """One row per finished (dataset, variant), read from its ``results.json`` through the
    typed result (:class:`~w2s_lens.evaluation.results.typed.EvaluationResult`; nothing is
    computed again), with ``w2s_minus_fixed[<view>]`` (and ``_mde``) columns for the primary
    router kind on each router view, and the method's reading (stored, or read now from the
    stored diagnostics for results written before readings were stored).

    Example:
        >>> rows = table_rows()  # doctest: +SKIP
        >>> rows[0]["variant"]  # doctest: +SKIP
        'baseline'
    """
    rows = []
    for row in PLAN:
        for d in row.datasets:
            f = results / row.name / d / "results.json"
            if not f.is_file():
                continue
            res = EvaluationResult.load(f)
            m = res.methods["caa"]
            base = m.variants["base"]
            headroom = m.headroom or Headroom()
            xv = headroom.xv or CrossValidatedOracle()
            fixed = base.fixed or Summary()
            fixed_ci = fixed.steerability_ci or (None, None)
            xv_ci = xv.ci or (None, None)
            primary = res.primary_router or "logreg"
            views = res.router_inputs or ("question",)
            out: dict[str, Any] = {
                "dataset": d, "variant": row.name, "n_train": res.n_train,
                "n_test": res.n_test, "fixed_layer": base.fixed_layer,
                "fixed": fixed.steerability, "fixed_lo": fixed_ci[0], "fixed_hi": fixed_ci[1],
                # the headroom's own items and denominator: the retested items, the fixed
                # layer chosen under each half's vectors (not the row's fixed layer above)
                "n_retest": xv.n,
                "xv_fixed_layers": " ".join(f"L{x}" for x in (xv.fixed_layers or ())),
                "xv_fixed": xv.fixed,
                "headroom": xv.diff, "headroom_lo": xv_ci[0], "headroom_hi": xv_ci[1],
                "headroom_p": xv.p,
                "kappa": headroom.retest.kappa if headroom.retest else None,
                "best_layers": " ".join(f"L{k}:{v}" for k, v in sorted(
                    (m.train_best_layer_counts or {}).items())),
                "reading": m.evidence(primary, views).text,
                **_relative(f.parent, None if row.name == "baseline"
                            else results / "baseline" / d)}
            for name, comparison in base.routers.items():
                kind, view = split_router_name(name)
                if kind == primary:
                    out[f"w2s_minus_fixed[{view}]"] = comparison.diff
                    out[f"w2s_minus_fixed_mde[{view}]"] = comparison.mde
            rows.append(out)
    return rows


def _ci(x: Any, lo: Any, hi: Any, fmt: str = "+.3f") -> str:
    if x is None or x == "":
        return "–"
    ci = "" if lo is None or hi is None else f" [{lo:{fmt}}, {hi:{fmt}}]"
    return f"{x:{fmt}}{ci}"


def summary_table(rows: list[dict[str, Any]]) -> str:
    """The rows as the README shows them (markdown): per dataset × variant the fixed layer on
    all test items, the cross-validated fixed on the retested ones, the headroom and the
    relative headroom with intervals, the shift against the baseline with its one-sided p,
    κ, and the primary router's W2S − fixed on the question and options views.

    >>> print(summary_table([]).splitlines()[-1])
    (no row finished yet)
    """
    head = ("| dataset | variant | fixed layer: all test items [95% CI] | cross-validated fixed: "
            "retested items | headroom [95% CI] | relative headroom [95% CI] | vs baseline "
            "[95% CI], p | κ | W2S − fixed, question / options |\n"
            "|---|---|---|---|---|---|---|---|---|")
    if not rows:
        return head + "\n(no row finished yet)"
    out = [head]
    for r in rows:
        shift = "–" if r.get("vs_baseline") is None else (
            f"{_ci(r['vs_baseline'], r.get('vs_baseline_lo'), r.get('vs_baseline_hi'), '+.2f')}"
            f", {r['vs_baseline_p']:.2g}")
        views = " / ".join(_ci(r.get(f"w2s_minus_fixed[{v}]"), None, None)
                           for v in ("question", "options"))
        kappa = "–" if r.get("kappa") is None else f"{r['kappa']:.2f}"
        rel = _ci(r.get("rel_headroom"), r.get("rel_headroom_lo"), r.get("rel_headroom_hi"),
                  ".2f")
        out.append(
            f"| {r['dataset']} | {r['variant']} | L{r['fixed_layer']} "
            f"{_ci(r['fixed'], r['fixed_lo'], r['fixed_hi'])} | "
            f"{'/'.join(r['xv_fixed_layers'].split())} "
            f"{_ci(r['xv_fixed'], None, None)} ({r['n_retest']} items) | "
            f"{_ci(r['headroom'], r['headroom_lo'], r['headroom_hi'])} | "
            f"{rel} | {shift} | {kappa} | {views} |")
    return "\n".join(out)


def write_table(rows: list[dict[str, Any]], out: Path = RESULTS) -> Path:
    """``ablation_table.csv`` (and a markdown copy) under ``out``, and the README's compact
    table, ``ablation_summary.md`` (:func:`summary_table`)."""
    out.mkdir(parents=True, exist_ok=True)
    cols = list(COLUMNS) + sorted({k for r in rows for k in r if k not in COLUMNS})
    path = out / "ablation_table.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, restval="", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)

    def cell(x: Any, col: str) -> str:
        if x is None or x == "":
            return "–"
        if isinstance(x, float):
            return f"{x:.3g}" if col.endswith("_p") else f"{x:+.3f}"
        return str(x)

    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(cell(r.get(c), c) for c in cols) + " |" for r in rows]
    (out / "ablation_table.md").write_text("\n".join(md) + "\n")
    (out / "ablation_summary.md").write_text(
        "# The ablations, finished rows\n\nBuilt by `analysis/ablation_study.py --table` from "
        "each row's `results.json` and `items.csv` (all columns: `ablation_table.md`).\n\n"
        + summary_table(rows) + "\n")
    return path


def pending(variants: list[str] | None = None, results: Path = RESULTS,
            datasets: list[str] | None = None, stale: bool = False) -> list[tuple[Row, str]]:
    """The unfinished (row, dataset) jobs in the plan's order (with ``stale``, also the
    finished ones whose routers were tuned on another grid: ``powered_study.needs_run``), of
    ``variants`` and ``datasets`` only if given.

    Example:
        >>> [(r.name, d) for r, d in pending(["first-token"], Path("/nonexistent"))]
        [('first-token', 'corrigible-neutral-HHH'), ('first-token', 'self-awareness-text-model')]
    """
    if variants is not None:
        unknown = sorted(set(variants) - set(VARIANTS))
        if unknown:
            raise SystemExit(f"unknown ablation variant(s) {', '.join(unknown)}; "
                             f"known: {', '.join(VARIANTS)}")
    if datasets is not None:
        unknown = sorted(set(datasets) - set(TWO))
        if unknown:
            raise SystemExit(f"dataset(s) {', '.join(unknown)} are not in the ablation plan; "
                             f"planned: {', '.join(TWO)}")
    return [(r, d) for r in PLAN for d in r.datasets
            if (variants is None or r.name in variants)
            and (datasets is None or d in datasets)
            and needs_run(results / r.name / d, stale)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default=str(runs_root() / "ablation"),
                   help="run directories (default: $W2S_RUNS_DIR/ablation, else "
                        "~/.local/share/w2s-lens/runs/ablation)")
    p.add_argument("--list", action="store_true", help="print the plan")
    p.add_argument("--pending", action="store_true", help="run every unfinished row")
    p.add_argument("--variants", help="with --pending: only these variants, comma-separated "
                                      f"(of {', '.join(VARIANTS)}), in the plan's order")
    p.add_argument("--datasets", help="with --pending: only these datasets, comma-separated "
                                      f"(of {', '.join(TWO)})")
    p.add_argument("--stale", action="store_true",
                   help="with --pending: also the finished rows whose routers were tuned on "
                        "another grid than today's (their run directories resume and the "
                        "routers are tuned again)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--commit", action="store_true")
    p.add_argument("--table", action="store_true", help="write ablation_table.csv / .md")
    args = p.parse_args(argv)
    if (args.variants or args.datasets or args.stale) and not args.pending:
        p.error("--variants, --datasets and --stale choose among --pending's rows")
    if args.list:
        print("\n".join(plan_commands(PLAN, Path(args.runs))))
        return 0
    if args.table:
        print(f"wrote {write_table(table_rows())}")
        return 0
    if not args.pending:
        p.error("give --list, --pending or --table")
    for flag in ("variants", "datasets"):
        value = getattr(args, flag)
        if value is not None and not [x for x in value.split(",") if x.strip()]:
            p.error(f"--{flag} names nothing")
    def names(value: str | None) -> list[str] | None:
        return None if value is None else [x.strip() for x in value.split(",") if x.strip()]

    jobs = pending(names(args.variants), datasets=names(args.datasets), stale=args.stale)
    return run_many(jobs, Path(args.runs), args.threads, args.workers, args.commit,
                    results=RESULTS, study="ablation study")


if __name__ == "__main__":
    sys.exit(main())
