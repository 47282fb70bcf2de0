"""The results tables of the HTML report, from ``results.json``: the comparison of CAA and L2S
per variant (fixed / W2S / oracles / W2S − fixed with its test and verdict), steerable
fractions and routing accuracy, the training split, the single-order and answer-form
diagnostics, and every router per method.

Columns that only newer results carry (the exact test, the minimal detectable difference, the
majority-layer accuracy, the answer-form oracle) appear only when some row has them; the letter
oracle only where it applies (``letter_oracle`` not None).

Example:
    >>> from w2s_lens.report.formatting import Doc
    >>> doc = Doc()
    >>> results_section(doc, {"methods": {}})
    >>> doc.parts[-1]
    '<p class="note">results.json has no methods.</p>'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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


def _variant_blocks(results: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """``(variant, method, variant block)`` in table order: variants, then methods."""
    methods = results.get("methods") or {}
    variants = dict.fromkeys(v for b in methods.values() for v in b.get("variants") or {})
    return [(v, m, vres) for v in variants for m, b in methods.items()
            if (vres := (b.get("variants") or {}).get(v)) is not None]


def _routers(results: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for _, _, vres in _variant_blocks(results):
        yield from ((vres.get("w2s") or {}).values())
        if isinstance(vres.get("form_router"), Mapping):
            yield vres["form_router"]


def _table(doc: Doc, header: Sequence[str], rows: Sequence[Mapping[str, Any]],
           optional: Mapping[str, bool], left: int = 2) -> None:
    """A table of dict rows; a column in ``optional`` is kept only where it maps to True."""
    cols = [h for h in header if optional.get(h, True)]
    doc.table(cols, [[r.get(h, "–") for h in cols] for r in rows], left=left)


def _letter_text(lo: Mapping[str, Any] | None, n: Any, seed: Any, unit: str = "") -> str:
    if lo is None:
        return "not applicable"
    lays = lo.get("layers") or {}
    text = fmt_interval(lo.get("steerability"), lo.get("steerability_ci"), n, seed, unit=unit)
    return text + (f" A→{lays.get('A', '–')}, B→{lays.get('B', '–')}" if lays else "")


def _form_text(fo: Mapping[str, Any] | None, n: Any, seed: Any) -> str:
    if not isinstance(fo, Mapping):
        return "–"
    text = fmt_interval(fo.get("steerability"), fo.get("steerability_ci"), n, seed)
    groups = form_groups_text(fo)
    return text if groups == "–" else f"{text} {groups}"


#: The row name of the answer-form router (cloze runs), and its side in the test's text.
FORM_ROUTER = "answer-form router"


def _diff_cells(w: Mapping[str, Any], n: Any, seed: Any,
                names: tuple[str, str] = ("W2S", "fixed")) -> dict[str, Any]:
    """W2S − fixed, its test, its minimal detectable difference and the verdict."""
    return {"W2S − fixed": fmt_interval(w.get("diff_vs_fixed"), w.get("diff_vs_fixed_ci"), n,
                                        seed),
            _TEST: diff_test_text(w, names), _MDE: mde_reading(w),
            "verdict": _verdict_cell(router_verdict(w) if w else "no router results")}


def results_section(doc: Doc, results: Mapping[str, Any]) -> None:
    """The comparison: CAA and L2S side by side per variant, with intervals, n, seed, the test
    of W2S − fixed and the verdict; the artifact warnings; the training split, the diagnostics,
    and every router and the letters per method (folded).

    >>> doc = Doc()
    >>> results_section(doc, {"split_seed": 0, "primary_router": "logreg", "methods": {"caa": {
    ...     "variants": {"base": {"n": 4, "fixed": {"steerability": 0.1},
    ...                           "w2s": {"logreg": {"diff_vs_fixed_ci": [0.1, 0.2]}}}}}}})
    >>> "W2S beats fixed beyond the noise" in "".join(doc.parts)
    True
    """
    methods: Mapping[str, Any] = results.get("methods") or {}
    seed, primary = results.get("split_seed"), results.get("primary_router")
    doc.h(2, "Results", "results")
    if not methods:
        doc.note("results.json has no methods.")
        return
    blocks = _variant_blocks(results)
    routers = list(_routers(results))
    has = {"letter oracle": any(v.get("letter_oracle") is not None for _, _, v in blocks),
           "answer-form oracle": any(isinstance(v.get("form_oracle"), Mapping)
                                     for _, _, v in blocks),
           _TEST: any(r.get("diff_vs_fixed_p") is not None for r in routers),
           _MDE: any("diff_vs_fixed_mde" in r for r in routers),
           _MAJORITY: any(r.get("majority_accuracy") is not None for r in routers)}
    exact = any(r.get("diff_vs_fixed_verdict") for r in routers)
    oracles = ("; the letter oracle picks one layer per matching letter" if has["letter oracle"]
               else "") + ("; the answer-form oracle one layer per group of the answers' form"
                           if has["answer-form oracle"] else "")
    form_note = (f" A row \"{FORM_ROUTER}\" puts in the W2S column a router that sees only the "
                 "form of the answers, tested against the fixed layer as W2S is."
                 if any(isinstance(v.get("form_router"), Mapping) for _, _, v in blocks) else "")
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
        n, name = vres.get("n"), plots_results.method_label(method)
        router = plots_results.primary_router(results, vres)
        w = (vres.get("w2s") or {}).get(router) or {} if router else {}
        fixed, oracle = vres.get("fixed") or {}, vres.get("oracle") or {}
        rows.append({"variant": variant, "method": name,
                     "fixed layer": vres.get("fixed_layer", "–"),
                     **{k: fmt_interval(x.get("steerability"), x.get("steerability_ci"), n, seed)
                        for k, x in (("fixed", fixed), (w2s_head, w), ("oracle", oracle))},
                     "letter oracle": _letter_text(vres.get("letter_oracle"), n, seed),
                     "answer-form oracle": _form_text(vres.get("form_oracle"), n, seed),
                     **_diff_cells(w, n, seed)})
        fr = vres.get("form_router")
        if isinstance(fr, Mapping):
            rows.append({"variant": variant, "method": f"{name} · {FORM_ROUTER}",
                         "fixed layer": vres.get("fixed_layer", "–"),
                         **{k: fmt_interval(x.get("steerability"), x.get("steerability_ci"), n,
                                            seed)
                            for k, x in (("fixed", fixed), (w2s_head, fr), ("oracle", oracle))},
                         **_diff_cells(fr, n, seed, (FORM_ROUTER, "fixed"))})
        frac_rows.append({"variant": variant, "method": name, **{
            k: fmt_interval(x.get("steerable_fraction"), x.get("steerable_fraction_ci"), n,
                            seed, pct=True) for k, x in (("fixed", fixed), ("W2S", w),
                                                         ("oracle", oracle))},
            "router accuracy (top-3)": f"{_pct(w.get('accuracy'))} "
                                       f"({_pct(w.get('top3_accuracy'))})",
            _MAJORITY: _pct(w.get("majority_accuracy"))})
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
    for method, block in methods.items():
        _details(doc, results, method, block, has)


def _training_table(doc: Doc, results: Mapping[str, Any]) -> None:
    doc.h(3, "Training split")
    rows = []
    for method, block in (results.get("methods") or {}).items():
        counts = block.get("train_best_layer_counts") or {}
        cv = block.get("router_cv") or {}
        ratio = block.get("w2s_over_fixed")
        rows.append([plots_results.method_label(method), block.get("fixed_layer", "–"),
                     _signed(block.get("train_fixed_steerability")),
                     ", ".join(f"L{k}: {v}" for k, v in sorted(counts.items(),
                                                                 key=lambda kv: int(kv[0]))),
                     "; ".join(f"{k}: {_plain((c or {}).get('cv_score'))}"
                               for k, c in cv.items()),
                     "–" if ratio is None else f"{ratio:.3f}"])
    doc.p(f"{results.get('n_train', '?')} training items, cross-fitted in "
          f"{results.get('cross_fit', '?')} folds (0: in-sample); the fixed layer is the best "
          "mean training layer. The W2S/fixed ratio of mean steerabilities (base variant) is "
          "only shown where the fixed layer steers at all.")
    doc.table(["method", "fixed layer", "training steerability there",
               "best layers of training items", "router CV score", "W2S / fixed (base)"], rows)


def _single_order_table(doc: Doc, results: Mapping[str, Any]) -> None:
    rows = []
    for method, block in (results.get("methods") or {}).items():
        for variant, vres in (block.get("variants") or {}).items():
            single = vres.get("single_order")
            if not isinstance(single, Mapping) or single.get("letter_oracle") is None:
                continue
            n, seed = single.get("n"), results.get("split_seed")
            lo = single.get("letter_oracle") or {}
            lays = lo.get("layers") or {}
            share = letter_gain_share(single)
            rows.append([variant, plots_results.method_label(method),
                         *(fmt_interval(x.get("steerability"), x.get("steerability_ci"), n, seed,
                                        unit=" presentations")
                           for x in (single.get("fixed") or {}, single.get("oracle") or {}, lo)),
                         f"A→{lays.get('A', '–')}, B→{lays.get('B', '–')}",
                         "–" if share is None else f"{share:.0%}"])
    if not rows:
        return
    doc.h(3, "Single-order diagnostic")
    doc.p("Each letter order scored on its own (presentations, not items; intervals resample "
          "presentations). If the letter oracle gets most of the oracle's gain here, the best "
          "layer follows the matching letter: the letter-artifact warning above is computed "
          "on this table.")
    doc.table(["variant", "method", "fixed", "oracle", "letter oracle", "letter layers",
               "letter share of oracle gain"], rows, left=2)


def _form_table(doc: Doc, results: Mapping[str, Any],
                blocks: Sequence[tuple[str, str, Mapping[str, Any]]]) -> None:
    seed, rows = results.get("split_seed"), []
    for variant, method, vres in blocks:
        fo = vres.get("form_oracle")
        if not isinstance(fo, Mapping):
            continue
        n, share = vres.get("n"), form_gain_share(vres)
        rows.append([variant, plots_results.method_label(method), *(
            fmt_interval(x.get("steerability"), x.get("steerability_ci"), n, seed)
            for x in (vres.get("fixed") or {}, vres.get("oracle") or {}, fo)),
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


def _details(doc: Doc, results: Mapping[str, Any], method: str, block: Mapping[str, Any],
             has: Mapping[str, bool]) -> None:
    """Every router and the by-letter breakdown of one method, folded."""
    name, seed = plots_results.method_label(method), results.get("split_seed")
    router_rows, letter_rows = [], []
    for variant, vres in (block.get("variants") or {}).items():
        n, primary = vres.get("n"), plots_results.primary_router(results, vres)
        for kind, r in (vres.get("w2s") or {}).items():
            router_rows.append({
                "variant": variant, "router": kind + (" (primary)" if kind == primary else ""),
                "W2S": fmt_interval(r.get("steerability"), r.get("steerability_ci"), n, seed),
                "accuracy": _pct(r.get("accuracy")), "top-3 accuracy": _pct(r.get("top3_accuracy")),
                _MAJORITY: _pct(r.get("majority_accuracy")), **_diff_cells(r, n, seed),
                "verdict": router_verdict(r)})
        fr = vres.get("form_router")
        if isinstance(fr, Mapping):
            router_rows.append({
                "variant": variant, "router": FORM_ROUTER,
                "W2S": fmt_interval(fr.get("steerability"), fr.get("steerability_ci"), n, seed),
                "accuracy": _pct(fr.get("accuracy")),
                "top-3 accuracy": _pct(fr.get("top3_accuracy")),
                _MAJORITY: _pct(fr.get("majority_accuracy")),
                **_diff_cells(fr, n, seed, (FORM_ROUTER, "fixed")), "verdict": router_verdict(fr)})
        for letter, b in (vres.get("by_letter") or {}).items():
            b = b or {}
            w = (b.get("w2s") or {}).get(primary) or {}
            letter_rows.append([variant, letter, *(
                fmt_interval(x.get("steerability"), x.get("steerability_ci"), b.get("n"), seed)
                for x in (b.get("fixed") or {}, w, b.get("oracle") or {}))])
    doc.add(f"<details><summary>{_e(name)}: every router"
            f"{', and the items by matching letter' if letter_rows else ''}</summary>")
    doc.p("Every router (accuracy: the routed layer is the item's own best test layer).")
    _table(doc, ["variant", "router", "W2S", "accuracy", "top-3 accuracy", _MAJORITY,
                 "W2S − fixed", _TEST, _MDE, "verdict"], router_rows, has)
    if letter_rows:
        doc.p("The test items by matching letter (of an item's first presentation).")
        doc.table(["variant", "matching letter", "fixed", "W2S", "oracle"], letter_rows, left=2)
    doc.add("</details>")
