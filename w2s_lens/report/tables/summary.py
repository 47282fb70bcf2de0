"""Plain-text summaries of evaluation results (for the command line, the demo and notebooks),
read from an :class:`~w2s_lens.evaluation.results.typed.EvaluationResult`.

Example:
    >>> print(results_table(EvaluationResult.load("runs/corrigible")))  # doctest: +SKIP
    qwen2.5-coder-0.5b-instruct · corrigible-neutral-HHH · letter readout, mirrored · ...
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from w2s_lens.evaluation.results.headroom import CrossValidatedOracle, LearningCurve, Retest
from w2s_lens.evaluation.results.nodes import RouterComparison, Summary
from w2s_lens.evaluation.results.typed import (
    EvaluationResult,
    MethodResult,
    VariantResult,
    as_result,
)

__all__ = ["comparison_text", "fmt_ci", "headroom_text", "ratio_line", "results_table"]

#: An absent summary or comparison (its cells read ``–``).
_NONE = RouterComparison()


def fmt_ci(value: Any, ci: Any) -> str:
    """``+0.123 [+0.100,+0.150]`` (``–`` for missing numbers).

    >>> fmt_ci(0.5, [0.25, 0.75])
    '+0.500 [+0.250,+0.750]'
    """
    def f(x: Any) -> str:
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.3f}"

    lo, hi = (ci or [None, None])[:2]
    return f"{f(value)} [{f(lo)},{f(hi)}]"


def _num(x: Any, fmt: str) -> str:
    return "–" if x is None else format(float(x), fmt)


def _test_cell(w: RouterComparison) -> str:
    """``p=0.031 (sign-flip exact, 9 non-zero)``: the test behind the verdict."""
    p_text = "–" if w.p is None else f"{w.p:.3g}"
    n = w.n_nonzero
    return f"p={p_text} ({w.test_name}" + ("" if n is None else f", {n} non-zero") + ")"


def _mode(results: EvaluationResult) -> str:
    if results.readout == "cloze":
        return "length-normalised" if results.length_norm else "summed log-probs"
    return "mirrored" if results.mirror else "single order"


def _summary(x: Summary | None) -> Summary:
    return x if isinstance(x, Summary) else _NONE


def results_table(results: EvaluationResult | str | os.PathLike | Mapping[str, Any]) -> str:
    """One table per method: fixed / W2S / oracle / letter oracle / answer-form oracle per
    variant, with intervals, the router's accuracy beside the majority-layer baseline's, the
    test-set size and the split seed, W2S − fixed with the sign-flip test's one-sided p-value
    and name, its minimal detectable difference, and a plain-words verdict
    (:meth:`~w2s_lens.evaluation.results.nodes.RouterComparison.verdict_text`; older results:
    the interval rule, labelled). Oracles a run did not compute (the letter oracle on cloze
    rows) show ``–``.

    ``results``: a typed result, a run directory (or its ``results.json``), or a
    ``results.json`` dict (:func:`~w2s_lens.evaluation.results.typed.as_result`).

    >>> r = EvaluationResult.from_dict({"model": "m", "dataset": "d", "readout": "letter",
    ...     "mirror": True, "n_train": 1, "n_test": 1, "split_seed": 0,
    ...     "primary_router": "logreg", "embedding": "e", "methods": {}})
    >>> print(results_table(r).splitlines()[0])  # doctest: +ELLIPSIS
    m · d · letter readout, mirrored · n_train=1 n_test=1 (items, split seed 0) · ...
    """
    results = as_result(results)
    primary = results.primary_router
    lines = [f"{results.model} · {results.dataset} · {results.readout} readout, "
             f"{_mode(results)} · n_train={results.n_train} n_test={results.n_test} (items, "
             f"split seed {results.split_seed}) · router={primary} · "
             f"embedding={results.embedding}"]
    for method, m in results.methods.items():
        head = (f"{'method':6} {'variant':9} {'fixed L':>7} {'fixed':>23} {'W2S':>23} "
                f"{'oracle':>8} {'letter-or.':>10} {'form-or.':>8} {'acc':>5} {'major.':>6}  "
                "W2S−fixed [95% CI]  test  MDE  verdict")
        lines += ["", head, "-" * len(head)]
        for variant, v in m.variants.items():
            f, o = _summary(v.fixed), _summary(v.oracle)
            w = v.routers.get(primary) or _NONE
            lo, fo = _summary(v.letter_oracle), _summary(v.form_oracle)
            lines.append(
                f"{method:6} {variant:9} {v.fixed_layer!s:>7} "
                f"{fmt_ci(f.steerability, f.steerability_ci):>23} "
                f"{fmt_ci(w.steerability, w.steerability_ci):>23} "
                f"{_num(o.steerability, '+.3f'):>8} "
                f"{_num(lo.steerability, '+.3f'):>10} "
                f"{_num(fo.steerability, '+.3f'):>8} "
                f"{_num(w.accuracy, '.2f'):>5} {_num(w.majority_accuracy, '.2f'):>6}"
                f"  {fmt_ci(w.diff, w.diff_ci)}  {_test_cell(w)}  "
                f"MDE {_num(w.mde, '.3f')}  {w.verdict_text(labelled=True)}")
        if m.headroom is not None and not m.headroom.empty:
            lines += ["", headroom_text(m, method, primary)]
    return "\n".join(lines)


def _p(x: Any) -> str:
    return "–" if x is None else f"{float(x):.3g}"


def headroom_text(m: MethodResult, method: str, primary: str) -> str:
    """The "Is there anything to learn?" block of one method: retest agreement, chance and κ,
    the cross-validated oracle − fixed with its interval and p, the primary router's learning
    curve, the answer-form router (cloze runs) and the reading
    :func:`~w2s_lens.evaluation.results.evidence.read_evidence` stored (or reads) from them
    (:meth:`~w2s_lens.evaluation.results.typed.MethodResult.evidence`).

    >>> m = MethodResult.from_dict({"variants": {}, "headroom": {
    ...     "retest": {"skipped": "given vectors"}, "xv": {"skipped": "given vectors"},
    ...     "learning_curve": {"rows": [], "note": "n"}}})
    >>> print(headroom_text(m, "caa", "logreg"))
    Is there anything to learn? (caa, base test items)
      retest: skipped (given vectors)
      learning curve (logreg; n): –
      reading: headroom not measured; robustness not measured; question not run
    """
    h = m.headroom
    retest = (h.retest if h is not None else None) or Retest()
    xv = (h.xv if h is not None else None) or CrossValidatedOracle()
    curve = (h.learning_curve if h is not None else None) or LearningCurve()
    lines = [f"Is there anything to learn? ({method}, base test items)"]
    if retest.has("skipped"):
        lines.append(f"  retest: skipped ({retest.skipped})")
    else:
        sizes = "/".join(str(n) for n in retest.half_sizes or ())
        lines.append(f"  retest on {retest.n_items} items, vectors from halves of "
                     f"{sizes} training items: best-layer agreement "
                     f"{_num(retest.agreement, '.2f')} (chance "
                     f"{_num(retest.chance, '.2f')}), κ {_num(retest.kappa, '+.2f')}")
    if not xv.empty and not xv.has("skipped"):
        lines.append(f"  cross-validated oracle − cross-validated fixed: "
                     f"{fmt_ci(xv.diff, xv.ci)}  p={_p(xv.p)} "
                     f"({xv.test}, {xv.n_nonzero} non-zero)  {xv.verdict}")
    rows = [r for r in curve.rows if r.router == primary]
    lines.append(f"  learning curve ({primary}; {curve.note or ''}): " + ("" if rows else "–"))
    for r in rows:
        lines.append(f"    n_train={r.n_train!s:<4} W2S−fixed {fmt_ci(r.diff, r.ci)}"
                     f"  acc {_num(r.accuracy, '.2f')}  majority "
                     f"{_num(r.majority_accuracy, '.2f')}  {r.verdict}")
    base = m.variants.get("base") or VariantResult()
    form = base.form_router
    if form is not None and not form.empty:
        lines.append(f"  answer-form router − fixed: {fmt_ci(form.diff, form.diff_ci)}  "
                     f"p={_p(form.p)}  {form.verdict}")
    lines.append(f"  reading: {m.evidence(primary).text}")
    return "\n".join(lines)


def ratio_line(results: EvaluationResult | str | os.PathLike | Mapping[str, Any],
               method: str = "caa") -> str:
    """``w2s_over_fixed=<ratio>`` on the base variant, only where the fixed layer's
    steerability interval lies above 0; else ``w2s_over_fixed=omitted: <why>`` (a ratio over a
    fixed effect that may be 0 is noise; the W2S − fixed difference and its interval are the
    comparison to read). ``method``: its method, or the first one when the result lacks it.

    >>> def result(ci):
    ...     return EvaluationResult.from_dict({"methods": {"caa": {"w2s_over_fixed": 1.5,
    ...         "variants": {"base": {"fixed": {"steerability": 0.2, "steerability_ci": ci}}}}}})
    >>> ratio_line(result([-0.1, 0.5]))[:61]
    "w2s_over_fixed=omitted: the fixed layer's steerability +0.200"
    >>> ratio_line(result([0.1, 0.3]))
    'w2s_over_fixed=1.5000'
    """
    results = as_result(results)
    m = results.methods.get(method) or next(iter(results.methods.values()))
    ratio = m.w2s_over_fixed
    base = m.variants.get("base") or VariantResult()
    fixed = _summary(base.fixed)
    ci = fixed.steerability_ci or (None, None)
    lo = ci[0]
    if ratio is not None and lo is not None and not math.isnan(lo) and lo > 0:
        return f"w2s_over_fixed={ratio:.4f}"
    mean = fmt_ci(fixed.steerability, ci)
    if ci[0] is None or ci[1] is None:
        why = "it has no interval, so the ratio is not shown"
    else:
        where = "lies below 0" if ci[1] < 0 else "contains 0"
        why = f"its interval {where}, so a ratio over it is noise"
    return (f"w2s_over_fixed=omitted: the fixed layer's steerability {mean} on the base test "
            f"items; {why} (read W2S − fixed above)")


def comparison_text(rows: list[Mapping[str, Any]], rich_table: bool = False) -> str:
    """Unsteered, fixed-layer and routed continuations side by side (from
    :meth:`w2s_lens.routing.bundle.W2S.compare`), as a rich table or plain text.

    >>> print(comparison_text([{"prompt": "Hi", "routed_layer": 3, "fixed_layer": 2,
    ...     "multiplier": 1.0, "unsteered": "a", "fixed": "b", "routed": "c"}]))
    === Hi
    --- unsteered
    a
    --- fixed layer 2 (λ=1.0)
    b
    --- routed layer 3 (λ=1.0)
    c
    """
    if rich_table:
        import io

        from rich.console import Console
        from rich.table import Table

        buf = io.StringIO()
        console = Console(file=buf, force_terminal=True, width=160)
        for r in rows:
            table = Table(title=str(r["prompt"])[:150], show_lines=True)
            table.add_column("unsteered")
            table.add_column(f"fixed layer {r['fixed_layer']} (λ={r['multiplier']})")
            table.add_column(f"routed layer {r['routed_layer']} (λ={r['multiplier']})")
            table.add_row(r["unsteered"], r["fixed"] or "–", r["routed"])
            console.print(table)
        return buf.getvalue().rstrip()
    out = []
    for r in rows:
        out += [f"=== {r['prompt']}", "--- unsteered", str(r["unsteered"])]
        if r.get("fixed") is not None:
            out += [f"--- fixed layer {r['fixed_layer']} (λ={r['multiplier']})", str(r["fixed"])]
        out += [f"--- routed layer {r['routed_layer']} (λ={r['multiplier']})", str(r["routed"])]
    return "\n".join(out)
