"""The results tables of the HTML report, from an
:class:`~w2s_lens.evaluation.results.typed.EvaluationResult`: the comparison of CAA and L2S
per variant (fixed / W2S / oracles / W2S − fixed with its test and verdict), steerable
fractions and routing accuracy, the training split, the single-order and answer-form
diagnostics, and every router per method.

Columns that only newer results carry (the exact test, the minimal detectable difference, the
majority-layer accuracy, the answer-form oracle) appear only when some row has them; the letter
oracle only where it applies (``letter_oracle`` not None).

Example:
    >>> from w2s_lens.evaluation.results.typed import EvaluationResult
    >>> from w2s_lens.report.formatting import Doc
    >>> doc = Doc()
    >>> results_section(doc, EvaluationResult.from_dict({"methods": {}}))
    >>> doc.parts[-1]
    '<p class="note">results.json has no methods.</p>'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from w2s_lens.evaluation.results.nodes import (
    FormRouter,
    GroupOracle,
    RouterComparison,
    Summary,
)
from w2s_lens.evaluation.results.typed import EvaluationResult, MethodResult, VariantResult
from w2s_lens.report import plots_results
from w2s_lens.report.formatting import Doc, _e, _pct, _plain, _signed, _verdict_cell, fmt_interval
from w2s_lens.report.readings import (
    artifact_warnings,
    diff_test_text,
    form_gain_share,
    form_groups_text,
    letter_gain_share,
    mde_reading,
    router_verdict,
)

__all__ = ["FORM_ROUTER", "results_section"]

_TEST, _MDE, _MAJORITY = "test of W2S > fixed", "minimal detectable difference", "majority layer"
#: An absent summary (its interval cells read ``–``).
_NONE = Summary()


def _variant_blocks(results: EvaluationResult) -> list[tuple[str, str, VariantResult]]:
    """``(variant, method, variant)`` in table order: variants, then methods."""
    methods = results.methods
    variants = dict.fromkeys(v for m in methods.values() for v in m.variants)
    return [(v, name, vres) for v in variants for name, m in methods.items()
            if (vres := m.variants.get(v)) is not None]


def _form_router(vres: VariantResult) -> FormRouter | None:
    return vres.form_router if isinstance(vres.form_router, FormRouter) else None


def _routers(results: EvaluationResult) -> Iterable[RouterComparison]:
    for _, _, vres in _variant_blocks(results):
        yield from vres.routers.values()
        if _form_router(vres) is not None:
            yield vres.form_router


def _table(doc: Doc, header: Sequence[str], rows: Sequence[Mapping[str, Any]],
           optional: Mapping[str, bool], left: int = 2) -> None:
    """A table of dict rows; a column in ``optional`` is kept only where it maps to True."""
    cols = [h for h in header if optional.get(h, True)]
    doc.table(cols, [[r.get(h, "–") for h in cols] for r in rows], left=left)


def _interval(x: Summary | None, n: Any, seed: Any, unit: str = "") -> str:
    """A summary's mean steerability with its interval, n and seed."""
    x = x if isinstance(x, Summary) else _NONE
    return fmt_interval(x.steerability, x.steerability_ci, n, seed, unit=unit)


def _fraction(x: Summary | None, n: Any, seed: Any) -> str:
    """A summary's steerable fraction with its interval, n and seed."""
    x = x if isinstance(x, Summary) else _NONE
    return fmt_interval(x.steerable_fraction, x.steerable_fraction_ci, n, seed, pct=True)


def _letters(lo: GroupOracle) -> str:
    lays = lo.layers or {}
    return f"A→{lays.get('A', '–')}, B→{lays.get('B', '–')}"


def _letter_text(lo: GroupOracle | None, n: Any, seed: Any, unit: str = "") -> str:
    if lo is None:
        return "not applicable"
    text = _interval(lo, n, seed, unit)
    return text + (f" {_letters(lo)}" if lo.layers else "")


def _form_text(fo: GroupOracle | None, n: Any, seed: Any) -> str:
    if not isinstance(fo, GroupOracle):
        return "–"
    text = _interval(fo, n, seed)
    groups = form_groups_text(fo)
    return text if groups == "–" else f"{text} {groups}"


#: The row name of the answer-form router (cloze runs), and its side in the test's text.
FORM_ROUTER = "answer-form router"


def _diff_cells(w: RouterComparison | None, n: Any, seed: Any,
                names: tuple[str, str] = ("W2S", "fixed")) -> dict[str, Any]:
    """W2S − fixed, its test, its minimal detectable difference and the verdict (of no router
    results when ``w`` is None)."""
    c = w if w is not None else RouterComparison()
    return {"W2S − fixed": fmt_interval(c.diff, c.diff_ci, n, seed),
            _TEST: diff_test_text(c, names), _MDE: mde_reading(c),
            "verdict": _verdict_cell(router_verdict(c) if w is not None and not w.empty
                                     else "no router results")}


def _primary(results: EvaluationResult, vres: VariantResult) -> RouterComparison | None:
    """The variant's comparison under the router it is reported with (None without one)."""
    router = plots_results.primary_router(results, vres)
    return vres.routers.get(router) if router is not None else None


def results_section(doc: Doc, results: EvaluationResult) -> None:
    """The comparison: CAA and L2S side by side per variant, with intervals, n, seed, the test
    of W2S − fixed and the verdict; the artifact warnings; the training split, the diagnostics,
    and every router and the letters per method (folded).

    >>> doc = Doc()
    >>> results_section(doc, EvaluationResult.from_dict({"split_seed": 0,
    ...     "primary_router": "logreg", "methods": {"caa": {"variants": {"base": {
    ...     "n": 4, "fixed": {"steerability": 0.1},
    ...     "w2s": {"logreg": {"diff_vs_fixed_ci": [0.1, 0.2]}}}}}}}))
    >>> "W2S beats fixed beyond the noise" in "".join(doc.parts)
    True
    """
    methods = results.methods
    seed, primary = results.split_seed, results.primary_router
    doc.h(2, "Results", "results")
    if not methods:
        doc.note("results.json has no methods.")
        return
    blocks = _variant_blocks(results)
    routers = list(_routers(results))
    has = {"letter oracle": any(v.letter_oracle is not None for _, _, v in blocks),
           "answer-form oracle": any(isinstance(v.form_oracle, GroupOracle) for _, _, v in blocks),
           _TEST: any(r.p is not None for r in routers),
           _MDE: any(r.has("mde") for r in routers),
           _MAJORITY: any(r.majority_accuracy is not None for r in routers)}
    exact = any(r.verdict for r in routers)
    oracles = ("; the letter oracle picks one layer per matching letter" if has["letter oracle"]
               else "") + ("; the answer-form oracle one layer per group of the answers' form"
                           if has["answer-form oracle"] else "")
    form_note = (f" A row \"{FORM_ROUTER}\" puts in the W2S column a router that sees only the "
                 "form of the answers, tested against the fixed layer as W2S is."
                 if any(_form_router(v) is not None for _, _, v in blocks) else "")
    rule = ("Verdict: from the one-sided paired sign-flip test of W2S > fixed (its p-values, "
            "name and number of informative items, those where W2S and fixed differ, beside "
            "the interval; \"too few informative items\" where no verdict is possible), with "
            "its minimal detectable difference at 80% power (where no difference is found, "
            "none larger than that is likely)" if exact else
            "Verdict: the interval of W2S − fixed lies above 0, contains 0, or lies below 0")
    doc.p(f"Mean steerability (slope of propensity against the multiplier) on the test items "
          f"with 95% bootstrap intervals, each followed by the number of test items it is "
          f"computed on and the split seed. W2S is the primary router ({primary}); the oracle "
          f"picks each item's own best test layer{oracles} (upper bounds chosen on the test "
          f"items). {rule}.{form_note}")
    rows, frac_rows, warnings, w2s_head = [], [], [], f"W2S ({primary})"
    for variant, method, vres in blocks:
        n, name = vres.n, plots_results.method_label(method)
        w = _primary(results, vres)
        fixed_layer = "–" if vres.fixed_layer is None else vres.fixed_layer
        rows.append({"variant": variant, "method": name, "fixed layer": fixed_layer,
                     **{k: _interval(x, n, seed)
                        for k, x in (("fixed", vres.fixed), (w2s_head, w),
                                     ("oracle", vres.oracle))},
                     "letter oracle": _letter_text(vres.letter_oracle, n, seed),
                     "answer-form oracle": _form_text(vres.form_oracle, n, seed),
                     **_diff_cells(w, n, seed)})
        fr = _form_router(vres)
        if fr is not None:
            rows.append({"variant": variant, "method": f"{name} · {FORM_ROUTER}",
                         "fixed layer": fixed_layer,
                         **{k: _interval(x, n, seed)
                            for k, x in (("fixed", vres.fixed), (w2s_head, fr),
                                         ("oracle", vres.oracle))},
                         **_diff_cells(fr, n, seed, (FORM_ROUTER, "fixed"))})
        c = w if w is not None else RouterComparison()
        frac_rows.append({"variant": variant, "method": name, **{
            k: _fraction(x, n, seed) for k, x in (("fixed", vres.fixed), ("W2S", w),
                                                  ("oracle", vres.oracle))},
            "router accuracy (top-3)": f"{_pct(c.accuracy)} ({_pct(c.top3_accuracy)})",
            _MAJORITY: _pct(c.majority_accuracy)})
        warnings += artifact_warnings(results, name, variant, vres)
    _table(doc, ["variant", "method", "fixed layer", "fixed", w2s_head, "oracle", "letter oracle",
                 "answer-form oracle", "W2S − fixed", _TEST, _MDE, "verdict"], rows, has)
    for text in warnings:
        doc.warn(text)
    doc.h(3, "Steerable fraction and routing accuracy")
    if has[_MAJORITY]:
        doc.p("Majority layer: the accuracy of routing every test item to the training "
              "items' most common best layer, the baseline a router's accuracy should beat.")
    _table(doc, ["variant", "method", "fixed", "W2S", "oracle", "router accuracy (top-3)",
                 _MAJORITY], frac_rows, has)
    _training_table(doc, results)
    _single_order_table(doc, results)
    _form_table(doc, results, blocks)
    for method, m in methods.items():
        _details(doc, results, method, m, has)


def _training_table(doc: Doc, results: EvaluationResult) -> None:
    doc.h(3, "Training split")
    rows = []
    for method, m in results.methods.items():
        counts = m.train_best_layer_counts or {}
        ratio = m.w2s_over_fixed
        rows.append([plots_results.method_label(method),
                     "–" if m.fixed_layer is None else m.fixed_layer,
                     _signed(m.train_fixed_steerability),
                     ", ".join(f"L{k}: {v}" for k, v in sorted(counts.items(),
                                                                 key=lambda kv: int(kv[0]))),
                     "; ".join(f"{k}: {_plain(c.cv_score if c is not None else None)}"
                               for k, c in (m.router_cv or {}).items()),
                     "–" if ratio is None else f"{ratio:.3f}"])
    doc.p(f"{results.n_train if results.n_train is not None else '?'} training items, "
          f"cross-fitted in {results.cross_fit if results.cross_fit is not None else '?'} folds "
          "(0: in-sample); the fixed layer is the best mean training layer. The W2S/fixed ratio "
          "of mean steerabilities (base variant) is only shown where the fixed layer steers at "
          "all.")
    doc.table(["method", "fixed layer", "training steerability there",
               "best layers of training items", "router CV score", "W2S / fixed (base)"], rows)


def _single_order_table(doc: Doc, results: EvaluationResult) -> None:
    rows = []
    for method, m in results.methods.items():
        for variant, vres in m.variants.items():
            single = vres.single_order
            if not isinstance(single, VariantResult) or single.letter_oracle is None:
                continue
            n, seed, lo = single.n, results.split_seed, single.letter_oracle
            share = letter_gain_share(single)
            rows.append([variant, plots_results.method_label(method),
                         *(_interval(x, n, seed, unit=" presentations")
                           for x in (single.fixed, single.oracle, lo)),
                         _letters(lo), "–" if share is None else f"{share:.0%}"])
    if not rows:
        return
    doc.h(3, "Single-order diagnostic")
    doc.p("Each letter order scored on its own (presentations, not items; intervals resample "
          "presentations). If the letter oracle gets most of the oracle's gain here, the best "
          "layer follows the matching letter: the letter-artifact warning above is computed "
          "on this table.")
    doc.table(["variant", "method", "fixed", "oracle", "letter oracle", "letter layers",
               "letter share of oracle gain"], rows, left=2)


def _form_table(doc: Doc, results: EvaluationResult,
                blocks: Sequence[tuple[str, str, VariantResult]]) -> None:
    seed, rows = results.split_seed, []
    for variant, method, vres in blocks:
        fo = vres.form_oracle
        if not isinstance(fo, GroupOracle):
            continue
        n, share = vres.n, form_gain_share(vres)
        rows.append([variant, plots_results.method_label(method),
                     *(_interval(x, n, seed) for x in (vres.fixed, vres.oracle, fo)),
                     form_groups_text(fo), "–" if share is None else f"{share:.0%}"])
    if not rows:
        return
    doc.h(3, "Answer-form diagnostic")
    doc.p("The oracle restricted to one layer per group of the answers' form (chosen on the "
          "test items, as the oracle). If it gets most of the oracle's gain, the best layer "
          "follows the form of the answers, not the input: the answer-form warning above is "
          "computed on this table.")
    doc.table(["variant", "method", "fixed", "oracle", "answer-form oracle", "form layers",
               "form share of oracle gain"], rows, left=2)


def _router_row(variant: str, label: str, r: RouterComparison, n: Any, seed: Any,
                names: tuple[str, str] = ("W2S", "fixed")) -> dict[str, Any]:
    """One row of the every-router table."""
    return {"variant": variant, "router": label, "W2S": _interval(r, n, seed),
            "accuracy": _pct(r.accuracy), "top-3 accuracy": _pct(r.top3_accuracy),
            _MAJORITY: _pct(r.majority_accuracy), **_diff_cells(r, n, seed, names),
            "verdict": router_verdict(r)}


def _details(doc: Doc, results: EvaluationResult, method: str, m: MethodResult,
             has: Mapping[str, bool]) -> None:
    """Every router and the by-letter breakdown of one method, folded."""
    name, seed = plots_results.method_label(method), results.split_seed
    router_rows, letter_rows = [], []
    for variant, vres in m.variants.items():
        n, primary = vres.n, plots_results.primary_router(results, vres)
        for kind, r in vres.routers.items():
            router_rows.append(_router_row(
                variant, kind + (" (primary)" if kind == primary else ""), r, n, seed))
        fr = _form_router(vres)
        if fr is not None:
            router_rows.append(_router_row(variant, FORM_ROUTER, fr, n, seed,
                                           (FORM_ROUTER, "fixed")))
        for letter, b in (vres.by_letter or {}).items():
            if not isinstance(b, VariantResult):
                b = VariantResult()
            w = b.routers.get(primary) if primary is not None else None
            letter_rows.append([variant, letter,
                                *(_interval(x, b.n, seed) for x in (b.fixed, w, b.oracle))])
    doc.add(f"<details><summary>{_e(name)}: every router"
            f"{', and the items by matching letter' if letter_rows else ''}</summary>")
    doc.p("Every router (accuracy: the routed layer is the item's own best test layer).")
    _table(doc, ["variant", "router", "W2S", "accuracy", "top-3 accuracy", _MAJORITY,
                 "W2S − fixed", _TEST, _MDE, "verdict"], router_rows, has)
    if letter_rows:
        doc.p("The test items by matching letter (of an item's first presentation).")
        doc.table(["variant", "matching letter", "fixed", "W2S", "oracle"], letter_rows, left=2)
    doc.add("</details>")
