"""The report's "Is there anything to learn?" section: per method of an
:class:`~w2s_lens.evaluation.results.typed.EvaluationResult`, its headroom diagnostics
(``result.methods[m].headroom``, a :class:`~w2s_lens.evaluation.results.headroom.Headroom`;
:mod:`w2s_lens.evaluation.headroom.diagnostics`), the reading that names its evidence
(:mod:`w2s_lens.evaluation.results.evidence`) and how each router was tuned.

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
    >>> headroom_section(doc, EvaluationResult.from_dict({"methods": {"caa": {"variants": {}}}}))
    >>> doc.parts
    []
"""

from __future__ import annotations

from typing import Any

from w2s_lens.evaluation.results.evidence import HEADROOM_FRACTION, KAPPA_ROBUST, POWER_RATIO
from w2s_lens.evaluation.results.headroom import (
    CrossValidatedOracle,
    CurveRow,
    Headroom,
    LearningCurve,
    PairedDifference,
    Reading,
    Retest,
)
from w2s_lens.evaluation.results.nodes import RouterComparison, RouterTuning, Summary
from w2s_lens.evaluation.results.typed import EvaluationResult, MethodResult, VariantResult
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
#: An absent summary (its cells read ``–``).
_NONE = Summary()


def has_headroom(results: EvaluationResult) -> bool:
    """Whether any method of ``results`` carries a headroom block.

    >>> has_headroom(EvaluationResult.from_dict({"methods": {"caa": {"headroom": {"xv": {}}},
    ...                                                      "l2s": {}}}))
    True
    >>> has_headroom(EvaluationResult.from_dict({"methods": {"caa": {}}}))
    False
    """
    return any(isinstance(m.headroom, Headroom) for m in results.methods.values())


def _paired(c: PairedDifference) -> RouterComparison:
    """A paired comparison (the cross-validated oracle's, a learning-curve point's) as a
    router's comparison with the fixed layer, so the readings of W2S − fixed read it too.

    >>> _paired(PairedDifference(diff=0.2, ci=(0.1, 0.3), mde=0.1)).diff_ci
    (0.1, 0.3)
    """
    return RouterComparison(diff=c.diff, diff_ci=c.ci, p=c.p, p_less=c.p_less, test=c.test,
                            n_nonzero=c.n_nonzero, mde=c.mde, verdict=c.verdict)


def _base(results: EvaluationResult, m: MethodResult) -> tuple[VariantResult, RouterComparison]:
    """The base variant and its primary router's comparison (empty ones when absent)."""
    vres = m.variants.get("base") or VariantResult()
    router = plots_results.primary_router(results, vres)
    w = vres.routers.get(router) if router is not None else None
    return vres, w if w is not None else RouterComparison()


def method_reading(results: EvaluationResult, m: MethodResult) -> Reading:
    """The stored reading of one method
    (:func:`~w2s_lens.evaluation.results.evidence.read_evidence`), or, for results written
    before readings were stored, the reading made now from the stored diagnostics
    (:meth:`~w2s_lens.evaluation.results.typed.MethodResult.evidence`, for the result's primary
    router on each of its router views).

    >>> r = EvaluationResult.from_dict({"primary_router": "logreg",
    ...                                 "methods": {"caa": {"headroom": {}}}})
    >>> method_reading(r, r.methods["caa"]).text
    'headroom not measured; robustness not measured; question not run'
    """
    return m.evidence(results.primary_router or "logreg", results.router_inputs or ("question",))


def headroom_section(doc: Doc, results: EvaluationResult) -> None:
    """The "Is there anything to learn?" section (see the module docstring); nothing when no
    method has a headroom block.

    >>> doc = Doc()
    >>> headroom_section(doc, EvaluationResult.from_dict({"methods": {"caa": {"headroom": {
    ...     "retest": {"skipped": "given vectors"}, "xv": {}, "learning_curve": {"rows": []}}},
    ...     "l2s": {}}}))
    >>> [p for p in doc.parts if "not measured" in p][-1]
    '<p class="note">L2S: not measured (results.json has no headroom block for it).</p>'
    """
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
    for method, m in results.methods.items():
        name = plots_results.method_label(method)
        hr = m.headroom
        if not isinstance(hr, Headroom):
            doc.note(f"{name}: not measured (results.json has no headroom block for it).")
            continue
        doc.h(3, f"{name}: is there anything to learn?")
        if hr.has("skipped"):
            doc.note(f"{name}: not measured ({hr.skipped}).")
            continue
        _method_part(doc, results, name, hr, *_base(results, m), m)


def _method_part(doc: Doc, results: EvaluationResult, name: str, hr: Headroom,
                 vres: VariantResult, w: RouterComparison, m: MethodResult) -> None:
    fixed = vres.fixed if isinstance(vres.fixed, Summary) else _NONE
    oracle = vres.oracle if isinstance(vres.oracle, Summary) else _NONE
    gain = (None if _num(oracle.steerability) is None or _num(fixed.steerability) is None
            else float(oracle.steerability) - float(fixed.steerability))
    _reading_part(doc, method_reading(results, m), gain)
    _tuning_part(doc, m.router_cv or {})
    _retest_part(doc, results, name, hr.retest)
    _xv_part(doc, results, name, hr.xv, vres, w, gain)
    _curve_part(doc, results, name, hr.learning_curve, vres.n)


def _text(part: Any) -> str:
    text = getattr(part, "text", None)
    return "–" if text is None else str(text)


def _reading_part(doc: Doc, reading: Reading, gain: float | None) -> None:
    doc.add(f'<p class="readout"><b>Reading: {_e(_text(reading))}.</b></p>')
    rows = [["headroom", _e(_text(reading.headroom))],
            ["robustness", _e(_text(reading.robustness))]]
    for view, v in (reading.views or {}).items():
        rows.append([f"view: {view}", _e(f"{v.reading}: W2S − fixed "
                                         f"{fmt_interval(v.diff, v.ci or (None, None))}, p "
                                         f"{_plain(v.p)}, MDE {_plain(v.mde)}")])
    if gain is not None:
        rows.append(["in-sample oracle − fixed", _signed(gain) + " (biased upwards)"])
    doc.table(["part", "reading and evidence"], rows, left={0, 1})


def _tuning_part(doc: Doc, router_cv: dict[str, RouterTuning]) -> None:
    if not router_cv:
        return
    doc.h(4, "Router tuning (cross-validated on the training items)")
    rows = []
    for name, cv in router_cv.items():
        chosen = ", ".join(f"{k} = {v}" for k, v in (cv.best_params or {}).items())
        edge = cv.at_grid_edge
        rows.append([name, "–" if cv.n_splits is None else cv.n_splits,
                     chosen or ("–" if cv.note is None else cv.note),
                     "–" if edge is None else ("yes" if edge else "no"),
                     _flatness(cv),
                     _plain(cv.cv_score), "–" if cv.cv_scoring is None else cv.cv_scoring])
    doc.table(["router", "folds", "chosen", "at a grid edge",
               "grid values within one SE of the chosen", "cv score", "score"], rows,
              left={0, 2, 4})


def _flatness(cv: RouterTuning) -> str:
    """How decided the choice was: the grid values scoring within one standard error of it
    (the whole grid: the data could not choose; older runs did not record it)."""
    if cv.within_one_se is None or not cv.grid:
        return "–"
    n, m = cv.within_one_se, len(cv.grid)
    return f"{n} of {m}" + (" (flat: the data could not choose)" if n == m else "")


def _retest_part(doc: Doc, results: EvaluationResult, name: str,
                 retest: Retest | None) -> None:
    doc.h(4, "Retest: best layers under vectors from two halves of the training items")
    if not isinstance(retest, Retest) or retest.empty or retest.has("skipped"):
        why = retest.skipped if isinstance(retest, Retest) and retest.has("skipped") \
            else "no retest block"
        doc.note(f"{name}: retest not measured ({why}).")
        return
    halves, kappa = retest.half_sizes, _num(retest.kappa)
    items = retest.n_items if retest.n_items is not None else retest.n
    doc.table(["items", "training items per half", "agreement", "chance", "Cohen's κ",
               "within one layer", "rank correlation (median Spearman)"],
              [["–" if items is None else items,
                " + ".join(map(str, halves)) if halves is not None else "–",
                _pct(retest.agreement), _pct(retest.chance),
                "undefined (one layer wins everywhere)" if kappa is None else f"{kappa:.3f}",
                _pct(retest.within_one), _plain(retest.rank_correlation)]])
    matrix = retest.matrix
    if not matrix:
        return
    layers = retest.layers or results.layers or list(range(len(matrix)))
    doc.figure(f"{name}: retest matrix", lambda: plots_headroom.retest_matrix(matrix, layers),
               prefix=name)


def _xv_part(doc: Doc, results: EvaluationResult, name: str, xv: CrossValidatedOracle | None,
             vres: VariantResult, w: RouterComparison, gain: float | None) -> None:
    doc.h(4, "Cross-validated oracle")
    if not isinstance(xv, CrossValidatedOracle) or xv.empty or xv.has("skipped"):
        measured = isinstance(xv, CrossValidatedOracle) and not xv.empty
        doc.note(f"{name}: cross-validated oracle not measured"
                 + (f" ({xv.skipped})." if measured else "."))
        return
    seed, n = results.split_seed, vres.n
    fixed = vres.fixed if isinstance(vres.fixed, Summary) else _NONE
    oracle = vres.oracle if isinstance(vres.oracle, Summary) else _NONE
    layer = "–" if vres.fixed_layer is None else vres.fixed_layer
    choices = [
        (f"fixed layer {layer}", fixed.steerability, fixed.steerability_ci,
         "one layer, from the training items"),
        ("W2S", w.steerability, w.steerability_ci, "the primary router's layer"),
        ("cross-validated fixed", xv.fixed, None,
         "one layer chosen under one half's vectors, scored under the other's"),
        ("cross-validated oracle", xv.oracle, None,
         "each item's best layer under one half, scored under the other"),
        ("in-sample oracle", oracle.steerability, oracle.steerability_ci,
         "each item's best layer, chosen and scored on one sweep (biased upwards)")]
    doc.p("Mean steerability on the test items. Fixed, W2S and the in-sample oracle use the "
          "vectors of all training items (as in the results table); the cross-validated pair "
          "uses the two halves' vectors, so only its difference is compared.")
    doc.table(["layer choice", "mean steerability", "how the layer is chosen"],
              [[c[0], fmt_interval(c[1], c[2], n, seed), c[3]] for c in choices], left={0, 2})
    comp = _paired(xv)
    doc.table(["comparison", "difference", "test", "minimal detectable difference", "verdict"],
              [["cross-validated oracle − fixed",
                fmt_interval(xv.diff, xv.ci, xv.n if xv.n is not None else n, seed),
                diff_test_text(comp, XV_SIDES), mde_reading(comp),
                _verdict_cell(router_verdict(comp))]])
    survived = _num(xv.diff)
    if gain is not None and gain > 0 and survived is not None:
        doc.p(f"Of the in-sample oracle's gain over the fixed layer ({_signed(gain)}), the "
              f"cross-validated oracle keeps {survived / gain:.0%} ({_signed(survived)}).")
    doc.figure(f"{name}: layer choices", lambda: plots_headroom.choice_intervals(
        [(c[0], c[1], c[2]) for c in choices],
        title="Layer choices: fixed, W2S, cross-validated and in-sample oracles"), prefix=name)


def _curve_part(doc: Doc, results: EvaluationResult, name: str, curve: LearningCurve | None,
                n: Any) -> None:
    doc.h(4, "Learning curve")
    curve = curve if isinstance(curve, LearningCurve) else LearningCurve()
    rows: tuple[CurveRow, ...] = curve.rows or ()
    if curve.note:
        doc.p(f"Learning curve: {curve.note}.")
    if not rows:
        doc.note(f"{name}: learning curve not measured.")
        return
    seed, table = results.split_seed, []
    for r in rows:
        comp = _paired(r)
        table.append(["–" if r.n_train is None else r.n_train,
                      "–" if r.router is None else r.router,
                      "–" if r.repeats is None else r.repeats,
                      _pct(r.accuracy), _pct(r.majority_accuracy),
                      fmt_interval(r.diff, r.ci, n, seed), diff_test_text(comp),
                      mde_reading(comp), _verdict_cell(router_verdict(comp))])
    doc.figure(f"{name}: learning curve", lambda: plots_headroom.learning_curve_figure(rows),
               prefix=name)
    doc.table(["training items", "router", "repeats", "accuracy", "majority layer",
               "W2S − fixed", "test of W2S > fixed", "minimal detectable difference", "verdict"],
              table, left={1})
