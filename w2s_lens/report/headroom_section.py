"""The report's "Is there anything to learn?" section: per method, the headroom diagnostics of
``results["methods"][m]["headroom"]`` (:mod:`w2s_lens.evaluation.headroom.diagnostics`), the
reading that
names its evidence (:mod:`w2s_lens.evaluation.results.evidence`) and how each router was tuned.

* the **retest**: the two halves' best layers as an agreement matrix (a heatmap labelled with
  layer numbers), agreement against chance, Cohen's κ, agreement within one layer, the median
  rank correlation of the layer curves and the number of items (or why it was skipped);
* the **cross-validated oracle** against the cross-validated fixed layer, beside the fixed
  layer, W2S and the in-sample oracle of the results table (a table and a bar figure);
* the **learning curve**: W2S − fixed with its interval against the number of training items,
  one trace per router, with the router and majority-layer accuracies (a figure and a table);
* the reading (stored in ``results.json``, or made from the stored diagnostics for older
  results) with its rules, and each router's tuning (``router_cv``).

Results without headroom blocks (older runs, runs with ``--no-retest``) get no section; a
method without one, in a run where another has one, is marked "not measured".

Example:
    >>> from w2s_lens.report.formatting import Doc
    >>> doc = Doc()
    >>> headroom_section(doc, {"methods": {"caa": {"variants": {}}}})
    >>> doc.parts
    []
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from w2s_lens.evaluation.results.evidence import (
    HEADROOM_FRACTION,
    KAPPA_ROBUST,
    POWER_RATIO,
    method_evidence,
)
from w2s_lens.report import plots_headroom, plots_results
from w2s_lens.report.formatting import (
    Doc,
    _e,
    _num,
    _pct,
    _plain,
    _signed,
    _verdict_cell,
    fmt_interval,
)
from w2s_lens.report.readings import diff_test_text, mde_reading, router_verdict

__all__ = ["READING_RULES", "has_headroom", "headroom_section", "method_reading"]

#: How the readings are made, in the report's words (the rule of
#: :func:`w2s_lens.evaluation.results.evidence.read_evidence`).
READING_RULES: tuple[str, ...] = (
    f"headroom: the cross-validated oracle beats the cross-validated fixed layer beyond the "
    f"noise (sign-flip test, one-sided 2.5%) and by at least {HEADROOM_FRACTION:.0%} of the "
    "fixed layer's effect;",
    f"robust to re-estimating the vector: retest κ of at least {KAPPA_ROBUST:g} between the "
    "best layers under vectors from two halves of the training items (forward passes are "
    "deterministic, so this is all the retest measures);",
    "learned by view V: W2S with the primary router on that view beats the fixed layer beyond "
    "the noise;",
    f"not learned by view V at this power: it does not, and its minimal detectable difference "
    f"is at most {POWER_RATIO:.0%} of the headroom; otherwise underpowered for V.",
)


#: The two sides of the cross-validated comparison, as its test's text names them.
XV_SIDES = ("xv oracle", "xv fixed")


def has_headroom(results: Mapping[str, Any]) -> bool:
    """Whether any method of ``results`` carries a headroom block.

    >>> has_headroom({"methods": {"caa": {"headroom": {"xv": {}}}, "l2s": {}}})
    True
    >>> has_headroom({"methods": {"caa": {}}})
    False
    """
    return any(isinstance((b or {}).get("headroom"), Mapping)
               for b in (results.get("methods") or {}).values())


def _paired(c: Mapping[str, Any]) -> dict[str, Any]:
    """A paired comparison (``diff``, ``ci``, ``p``, ...) under a router block's key names, so
    the readings of W2S − fixed read it too."""
    return {"diff_vs_fixed": c.get("diff"), "diff_vs_fixed_ci": c.get("ci"),
            **{f"diff_vs_fixed_{k}": c.get(k)
               for k in ("p", "p_less", "test", "n_nonzero", "mde", "verdict")}}


def _base(results: Mapping[str, Any], block: Mapping[str, Any]) -> tuple[dict, dict]:
    """The base variant's block and its primary router's block (empty when absent)."""
    vres = (block.get("variants") or {}).get("base") or {}
    router = plots_results.primary_router(results, vres)
    return dict(vres), dict(((vres.get("w2s") or {}).get(router) or {}) if router else {})


def method_reading(results: Mapping[str, Any], block: Mapping[str, Any]) -> dict[str, Any]:
    """The stored reading of one method
    (:func:`~w2s_lens.evaluation.results.evidence.read_evidence`),
    or, for results written before readings were stored, the reading made now from the stored
    diagnostics.

    >>> method_reading({"primary_router": "logreg"}, {"headroom": {}})["text"]
    'headroom not measured; robustness not measured; question not run'
    """
    return method_evidence(block, results.get("primary_router") or "logreg",
                           results.get("router_inputs") or ("question",))


def headroom_section(doc: Doc, results: Mapping[str, Any]) -> None:
    """The "Is there anything to learn?" section (see the module docstring); nothing when no
    method has a headroom block.

    >>> doc = Doc()
    >>> headroom_section(doc, {"methods": {"caa": {"headroom": {"retest": {"skipped": "given "
    ...     "vectors"}, "xv": {}, "learning_curve": {"rows": []}}}, "l2s": {}}})
    >>> [p for p in doc.parts if "not measured" in p][-1]
    '<p class="note">L2S: not measured (results.json has no headroom block for it).</p>'
    """
    methods = results.get("methods") or {}
    if not has_headroom(results):
        return
    doc.h(2, "Is there anything to learn?", "headroom")
    doc.p("Each method is read in parts that name their evidence: is there headroom (a "
          "per-item layer worth more than the fixed one, cross-validated), are the best layers "
          "robust to re-estimating the vector, and does a router learn the headroom from what "
          "it sees (each router view: the question, the options, both, or a text embedding).")
    doc.add("<p>The rules (<code>w2s_lens.evaluation.results.evidence.read_evidence</code>):"
            "</p><ul>"
            + "".join(f"<li>{_e(x)}</li>" for x in READING_RULES) + "</ul>")
    for method, block in methods.items():
        name = plots_results.method_label(method)
        hr = (block or {}).get("headroom")
        if not isinstance(hr, Mapping):
            doc.note(f"{name}: not measured (results.json has no headroom block for it).")
            continue
        doc.h(3, f"{name}: is there anything to learn?")
        if "skipped" in hr:
            doc.note(f"{name}: not measured ({hr['skipped']}).")
            continue
        _method_part(doc, results, name, hr, *_base(results, block), block)


def _method_part(doc: Doc, results: Mapping[str, Any], name: str, hr: Mapping[str, Any],
                 vres: Mapping[str, Any], w: Mapping[str, Any],
                 method_block: Mapping[str, Any]) -> None:
    n = vres.get("n")
    fixed, oracle = vres.get("fixed") or {}, vres.get("oracle") or {}
    gain = (None if _num(oracle.get("steerability")) is None
            or _num(fixed.get("steerability")) is None
            else float(oracle["steerability"]) - float(fixed["steerability"]))
    _reading_part(doc, method_reading(results, method_block), gain)
    _tuning_part(doc, method_block.get("router_cv") or {})
    _retest_part(doc, results, name, hr.get("retest") or {})
    _xv_part(doc, results, name, hr.get("xv") or {}, vres, w, gain)
    _curve_part(doc, results, name, hr.get("learning_curve") or {}, n)


def _reading_part(doc: Doc, reading: Mapping[str, Any], gain: float | None) -> None:
    doc.add(f'<p class="readout"><b>Reading: {_e(reading.get("text", "–"))}.</b></p>')
    hr, rob = reading.get("headroom") or {}, reading.get("robustness") or {}
    rows = [["headroom", _e(hr.get("text", "–"))], ["robustness", _e(rob.get("text", "–"))]]
    for view, v in (reading.get("views") or {}).items():
        ci = v.get("ci") or [None, None]
        rows.append([f"view: {view}", _e(f"{v.get('reading')}: W2S − fixed "
                                         f"{fmt_interval(v.get('diff'), ci)}, p "
                                         f"{_plain(v.get('p'))}, MDE {_plain(v.get('mde'))}")])
    if gain is not None:
        rows.append(["in-sample oracle − fixed", _signed(gain) + " (biased upwards)"])
    doc.table(["part", "reading and evidence"], rows, left={0, 1})


def _tuning_part(doc: Doc, router_cv: Mapping[str, Any]) -> None:
    if not router_cv:
        return
    doc.h(4, "Router tuning (cross-validated on the training items)")
    rows = []
    for name, cv in router_cv.items():
        chosen = ", ".join(f"{k} = {v}" for k, v in (cv.get("best_params") or {}).items())
        edge = cv.get("at_grid_edge")
        rows.append([name, cv.get("n_splits", "–"), chosen or cv.get("note", "–"),
                     "–" if edge is None else ("yes" if edge else "no"),
                     _plain(cv.get("cv_score")), cv.get("cv_scoring", "–")])
    doc.table(["router", "folds", "chosen", "at a grid edge", "cv score", "score"], rows,
              left={0, 2})


def _retest_part(doc: Doc, results: Mapping[str, Any], name: str,
                 retest: Mapping[str, Any]) -> None:
    doc.h(4, "Retest: best layers under vectors from two halves of the training items")
    if not retest or "skipped" in retest:
        doc.note(f"{name}: retest not measured ({retest.get('skipped', 'no retest block')}).")
        return
    halves = retest.get("half_sizes")
    kappa = _num(retest.get("kappa"))
    doc.table(["items", "training items per half", "agreement", "chance", "Cohen's κ",
               "within one layer", "rank correlation (median Spearman)"],
              [[retest.get("n_items", retest.get("n", "–")),
                " + ".join(map(str, halves)) if isinstance(halves, Sequence) else "–",
                _pct(retest.get("agreement")), _pct(retest.get("chance")),
                "undefined (one layer wins everywhere)" if kappa is None else f"{kappa:.3f}",
                _pct(retest.get("within_one")), _plain(retest.get("rank_correlation"))]])
    matrix = retest.get("matrix")
    if not matrix:
        return
    layers = retest.get("layers") or results.get("layers") or list(range(len(matrix)))
    doc.figure(f"{name}: retest matrix", lambda: plots_headroom.retest_matrix(matrix, layers),
               prefix=name)


def _xv_part(doc: Doc, results: Mapping[str, Any], name: str, xv: Mapping[str, Any],
             vres: Mapping[str, Any], w: Mapping[str, Any], gain: float | None) -> None:
    doc.h(4, "Cross-validated oracle")
    if not xv or "skipped" in xv:
        doc.note(f"{name}: cross-validated oracle not measured"
                 + (f" ({xv['skipped']})." if xv else "."))
        return
    seed, n = results.get("split_seed"), vres.get("n")
    fixed, oracle = vres.get("fixed") or {}, vres.get("oracle") or {}
    choices = [
        (f"fixed layer {vres.get('fixed_layer', '–')}", fixed.get("steerability"),
         fixed.get("steerability_ci"), "one layer, from the training items"),
        ("W2S", w.get("steerability"), w.get("steerability_ci"), "the primary router's layer"),
        ("cross-validated fixed", xv.get("xv_fixed"), None,
         "one layer chosen under one half's vectors, scored under the other's"),
        ("cross-validated oracle", xv.get("xv_oracle"), None,
         "each item's best layer under one half, scored under the other"),
        ("in-sample oracle", oracle.get("steerability"), oracle.get("steerability_ci"),
         "each item's best layer, chosen and scored on one sweep (biased upwards)")]
    doc.p("Mean steerability on the test items. Fixed, W2S and the in-sample oracle use the "
          "vectors of all training items (as in the results table); the cross-validated pair "
          "uses the two halves' vectors, so only its difference is compared.")
    doc.table(["layer choice", "mean steerability", "how the layer is chosen"],
              [[c[0], fmt_interval(c[1], c[2], n, seed), c[3]] for c in choices], left={0, 2})
    comp = _paired(xv)
    doc.table(["comparison", "difference", "test", "minimal detectable difference", "verdict"],
              [["cross-validated oracle − fixed",
                fmt_interval(xv.get("diff"), xv.get("ci"), xv.get("n", n), seed),
                diff_test_text(comp, XV_SIDES), mde_reading(comp),
                _verdict_cell(router_verdict(comp))]])
    survived = _num(xv.get("diff"))
    if gain is not None and gain > 0 and survived is not None:
        doc.p(f"Of the in-sample oracle's gain over the fixed layer ({_signed(gain)}), the "
              f"cross-validated oracle keeps {survived / gain:.0%} ({_signed(survived)}).")
    doc.figure(f"{name}: layer choices", lambda: plots_headroom.choice_intervals(
        [(c[0], c[1], c[2]) for c in choices],
        title="Layer choices: fixed, W2S, cross-validated and in-sample oracles"), prefix=name)


def _curve_part(doc: Doc, results: Mapping[str, Any], name: str, curve: Mapping[str, Any],
                n: Any) -> None:
    doc.h(4, "Learning curve")
    rows = curve.get("rows") or []
    if curve.get("note"):
        doc.p(f"Learning curve: {curve['note']}.")
    if not rows:
        doc.note(f"{name}: learning curve not measured.")
        return
    seed, table = results.get("split_seed"), []
    for r in rows:
        comp = _paired(r)
        table.append([r.get("n_train", "–"), r.get("router", "–"), r.get("repeats", "–"),
                      _pct(r.get("accuracy")), _pct(r.get("majority_accuracy")),
                      fmt_interval(r.get("diff"), r.get("ci"), n, seed), diff_test_text(comp),
                      mde_reading(comp), _verdict_cell(router_verdict(comp))])
    doc.figure(f"{name}: learning curve", lambda: plots_headroom.learning_curve_figure(rows),
               prefix=name)
    doc.table(["training items", "router", "repeats", "accuracy", "majority layer",
               "W2S − fixed", "test of W2S > fixed", "minimal detectable difference", "verdict"],
              table, left={1})
