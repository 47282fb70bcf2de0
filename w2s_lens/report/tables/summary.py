"""Plain-text summaries of evaluation results (for the command line, the demo and notebooks).

Example:
    >>> print(results_table(results))  # doctest: +SKIP
    qwen2.5-coder-0.5b-instruct · corrigible-neutral-HHH · letter readout, mirrored · ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from w2s_lens.evaluation.results.evidence import reading_words
from w2s_lens.evaluation.results.typed import EvaluationResult, results_dict
from w2s_lens.evaluation.stats.paired import paired_test_name, verdict_of

__all__ = ["comparison_text", "fmt_ci", "headroom_text", "ratio_line", "results_table"]


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


def _test_cell(w: Mapping[str, Any]) -> str:
    """``p=0.031 (sign-flip exact, 9 non-zero)``: the test behind the verdict."""
    p = w.get("diff_vs_fixed_p")
    p_text = "–" if p is None else f"{p:.3g}"
    n = w.get("diff_vs_fixed_n_nonzero")
    return f"p={p_text} ({paired_test_name(w)}" + ("" if n is None else f", {n} non-zero") + ")"


def results_table(results: EvaluationResult | Mapping[str, Any]) -> str:
    """One table per method: fixed / W2S / oracle / letter oracle / answer-form oracle per
    variant, with intervals, the router's accuracy beside the majority-layer baseline's, the
    test-set size and the split seed, W2S − fixed with the sign-flip test's one-sided p-value
    and name, its minimal detectable difference, and a plain-words verdict
    (:func:`~w2s_lens.evaluation.stats.paired.verdict_of`; older results: the interval rule,
    labelled).
    Oracles a run did not compute (the letter oracle on cloze rows) show ``–``.

    >>> print(results_table({"model": "m", "dataset": "d", "readout": "letter", "mirror": True,
    ...     "n_train": 1, "n_test": 1, "split_seed": 0, "primary_router": "logreg",
    ...     "embedding": "e", "methods": {}}).splitlines()[0])  # doctest: +ELLIPSIS
    m · d · letter readout, mirrored · n_train=1 n_test=1 (items, split seed 0) · ...
    """
    results = results_dict(results)
    primary = results["primary_router"]
    mode = "mirrored" if results.get("mirror") else "single order"
    if results.get("readout") == "cloze":
        mode = "length-normalised" if results.get("length_norm") else "summed log-probs"
    lines = [f"{results['model']} · {results['dataset']} · {results.get('readout')} readout, "
             f"{mode} · n_train={results['n_train']} n_test={results['n_test']} (items, split "
             f"seed {results.get('split_seed')}) · router={primary} · "
             f"embedding={results['embedding']}"]
    for method, block in results["methods"].items():
        head = (f"{'method':6} {'variant':9} {'fixed L':>7} {'fixed':>23} {'W2S':>23} "
                f"{'oracle':>8} {'letter-or.':>10} {'form-or.':>8} {'acc':>5} {'major.':>6}  "
                "W2S−fixed [95% CI]  test  MDE  verdict")
        lines += ["", head, "-" * len(head)]
        for variant, r in block["variants"].items():
            f, w, o = r["fixed"], r["w2s"][primary], r["oracle"]
            lo, fo = r.get("letter_oracle") or {}, r.get("form_oracle") or {}
            d = w.get("diff_vs_fixed_ci") or [None, None]
            lines.append(
                f"{method:6} {variant:9} {r['fixed_layer']:>7} "
                f"{fmt_ci(f['steerability'], f['steerability_ci']):>23} "
                f"{fmt_ci(w['steerability'], w['steerability_ci']):>23} "
                f"{_num(o['steerability'], '+.3f'):>8} "
                f"{_num(lo.get('steerability'), '+.3f'):>10} "
                f"{_num(fo.get('steerability'), '+.3f'):>8} "
                f"{_num(w.get('accuracy'), '.2f'):>5} {_num(w.get('majority_accuracy'), '.2f'):>6}"
                f"  {fmt_ci(w.get('diff_vs_fixed'), d)}  {_test_cell(w)}  "
                f"MDE {_num(w.get('diff_vs_fixed_mde'), '.3f')}  {verdict_of(w, labelled=True)}")
        if block.get("headroom"):
            lines += ["", headroom_text(block, method, primary)]
    return "\n".join(lines)


def _p(x: Any) -> str:
    return "–" if x is None else f"{float(x):.3g}"


def headroom_text(block: Mapping[str, Any], method: str, primary: str) -> str:
    """The "Is there anything to learn?" block of one method: retest agreement, chance and κ,
    the cross-validated oracle − fixed with its interval and p, the primary router's learning
    curve, the answer-form router (cloze runs) and the reading
    :func:`~w2s_lens.evaluation.results.evidence.read_evidence` stored (or reads) from them.

    >>> h = {"retest": {"skipped": "given vectors"}, "xv": {"skipped": "given vectors"},
    ...      "learning_curve": {"rows": [], "note": "n"}}
    >>> print(headroom_text({"headroom": h, "variants": {}}, "caa", "logreg"))
    Is there anything to learn? (caa, base test items)
      retest: skipped (given vectors)
      learning curve (logreg; n): –
      reading: headroom not measured; robustness not measured; question not run
    """
    h = block["headroom"]
    retest, xv = h.get("retest") or {}, h.get("xv") or {}
    curve = h.get("learning_curve") or {}
    lines = [f"Is there anything to learn? ({method}, base test items)"]
    if "skipped" in retest:
        lines.append(f"  retest: skipped ({retest['skipped']})")
    else:
        sizes = "/".join(str(n) for n in retest.get("half_sizes") or [])
        lines.append(f"  retest on {retest.get('n_items')} items, vectors from halves of "
                     f"{sizes} training items: best-layer agreement "
                     f"{_num(retest.get('agreement'), '.2f')} (chance "
                     f"{_num(retest.get('chance'), '.2f')}), κ {_num(retest.get('kappa'), '+.2f')}")
    if xv and "skipped" not in xv:
        lines.append(f"  cross-validated oracle − cross-validated fixed: "
                     f"{fmt_ci(xv.get('diff'), xv.get('ci'))}  p={_p(xv.get('p'))} "
                     f"({xv.get('test')}, {xv.get('n_nonzero')} non-zero)  {xv.get('verdict')}")
    rows = [r for r in curve.get("rows") or [] if r.get("router") == primary]
    lines.append(f"  learning curve ({primary}; {curve.get('note', '')}): " + ("" if rows else "–"))
    for r in rows:
        lines.append(f"    n_train={r['n_train']:<4} W2S−fixed {fmt_ci(r.get('diff'), r.get('ci'))}"
                     f"  acc {_num(r.get('accuracy'), '.2f')}  majority "
                     f"{_num(r.get('majority_accuracy'), '.2f')}  {r.get('verdict')}")
    base = (block.get("variants") or {}).get("base") or {}
    form = base.get("form_router")
    if form:
        lines.append(f"  answer-form router − fixed: "
                     f"{fmt_ci(form.get('diff_vs_fixed'), form.get('diff_vs_fixed_ci'))}  "
                     f"p={_p(form.get('diff_vs_fixed_p'))}  {form.get('diff_vs_fixed_verdict')}")
    lines.append(f"  reading: {reading_words(block, primary)}")
    return "\n".join(lines)


def ratio_line(results: EvaluationResult | Mapping[str, Any], method: str = "caa") -> str:
    """``w2s_over_fixed=<ratio>`` on the base variant, only where the fixed layer's
    steerability interval lies above 0; else ``w2s_over_fixed=omitted: <why>`` (a ratio over a
    fixed effect that may be 0 is noise; the W2S − fixed difference and its interval are the
    comparison to read).

    >>> fixed = {"steerability": 0.2, "steerability_ci": [-0.1, 0.5]}
    >>> ratio_line({"methods": {"caa": {"w2s_over_fixed": 1.5, "variants": {"base": {
    ...     "fixed": fixed}}}}})[:60]
    "w2s_over_fixed=omitted: the fixed layer's steerability +0.200"
    >>> ratio_line({"methods": {"caa": {"w2s_over_fixed": 1.5, "variants": {"base": {
    ...     "fixed": {**fixed, "steerability_ci": [0.1, 0.3]}}}}}})
    'w2s_over_fixed=1.5000'
    """
    results = results_dict(results)
    block = results["methods"].get(method) or next(iter(results["methods"].values()))
    ratio = block.get("w2s_over_fixed")
    fixed = (((block.get("variants") or {}).get("base") or {}).get("fixed") or {})
    lo = (fixed.get("steerability_ci") or [None])[0]
    if ratio is not None and lo is not None and not math.isnan(lo) and lo > 0:
        return f"w2s_over_fixed={ratio:.4f}"
    ci = fixed.get("steerability_ci") or [None, None]
    mean = fmt_ci(fixed.get("steerability"), ci)
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
