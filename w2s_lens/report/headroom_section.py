"""The report's "Is there anything to learn?" section: per method, the headroom diagnostics of
``results["methods"][m]["headroom"]`` (:mod:`w2s_lens.evaluation.headroom`) and which of the
three cases they point to.

* the **retest**: the two halves' best layers as an agreement matrix (a heatmap labelled with
  layer numbers), agreement against chance, Cohen's κ, agreement within one layer, the median
  rank correlation of the layer curves and the number of items (or why it was skipped);
* the **cross-validated oracle** against the cross-validated fixed layer, beside the fixed
  layer, W2S and the in-sample oracle of the results table (a table and a bar figure);
* the **learning curve**: W2S − fixed with its interval against the number of training items,
  one trace per router, with the router and majority-layer accuracies (a figure and a table);
* a reading in words of :func:`~w2s_lens.evaluation.headroom.headroom_case`, with its rule.

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

import inspect
import re
from collections.abc import Mapping, Sequence
from typing import Any

from w2s_lens.evaluation.headroom import (
    CASE_LEARNABLE,
    CASE_NOTHING,
    CASE_STABLE,
    KAPPA_STABLE,
    headroom_case,
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

__all__ = ["HEADROOM_RULE", "case_reading", "has_headroom", "headroom_rule", "headroom_section"]

#: The rule of :func:`~w2s_lens.evaluation.headroom.headroom_case` in the report's words, where
#: its docstring cannot be read (:func:`headroom_rule` reads the rule from there).
HEADROOM_RULE: tuple[str, ...] = (
    f"{CASE_LEARNABLE}: W2S beats the fixed layer at the largest training size;",
    f"{CASE_STABLE}: the cross-validated oracle beats the cross-validated fixed layer, but W2S "
    "does not;",
    f"{CASE_NOTHING}: the cross-validated oracle does not beat it and the retest κ is below "
    f"{KAPPA_STABLE:g} (or undefined because one layer wins everywhere);",
    "otherwise undetermined.",
)
_RULE = re.compile(r"The rule, in order:\s*\n(.*?)\n\s*\n", re.S)
_ROLE = re.compile(r":(?:data|func|mod):`~?([\w.]+)`")


def headroom_rule() -> list[str]:
    """The rule of :func:`~w2s_lens.evaluation.headroom.headroom_case`, one string per case,
    read from its docstring (so the report shows the rule the code applies), in plain text:
    markup dropped, :data:`~w2s_lens.evaluation.headroom.KAPPA_STABLE` as its value;
    :data:`HEADROOM_RULE` if the docstring has no rule.

    >>> headroom_rule()[0].startswith("learnable, given data: ")
    True
    """
    m = _RULE.search(inspect.getdoc(headroom_case) or "")
    if m is None:
        return list(HEADROOM_RULE)

    def plain(text: str) -> str:
        text = _ROLE.sub(lambda r: (f"{KAPPA_STABLE:g}" if r.group(1).endswith("KAPPA_STABLE")
                                    else r.group(1).rsplit(".", 1)[-1]), text)
        text = re.sub(r"\*\*(.+?)\*\*", r"\1", text).replace("``", "")
        return " ".join(text.split())

    items = [plain(x) for x in re.split(r"^\s*\*\s+", m.group(1), flags=re.M) if x.strip()]
    return items or list(HEADROOM_RULE)


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


def _retest_text(retest: Mapping[str, Any]) -> str:
    if "skipped" in retest:
        return f"the retest was not measured ({retest['skipped']})"
    kappa = _num(retest.get("kappa"))
    return (f"the two halves agree on {_pct(retest.get('agreement'))} of the items' best layers "
            f"against {_pct(retest.get('chance'))} by chance, κ "
            f"{'undefined' if kappa is None else f'= {kappa:.2f}'}")


def _xv_text(xv: Mapping[str, Any], n: Any) -> str:
    if not xv or "skipped" in xv:
        return "the cross-validated oracle was not measured"
    return (f"cross-validated oracle − fixed "
            f"{fmt_interval(xv.get('diff'), xv.get('ci'), n, unit=' test items')}: "
            f"{router_verdict(_paired(xv))}")


def _last_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    last = max((r.get("n_train") or 0 for r in rows), default=None)
    return [r for r in rows if r.get("n_train") == last]


def case_reading(headroom: Mapping[str, Any], w2s_block: Mapping[str, Any] | None = None,
                 in_sample_gain: float | None = None, n: Any = None) -> tuple[str, str]:
    """``(case, reading)``: :func:`~w2s_lens.evaluation.headroom.headroom_case` of a headroom
    block and what its numbers say, in words.

    >>> case, text = case_reading({"retest": {"agreement": 0.3, "chance": 0.3, "kappa": 0.0,
    ...                                       "n": 40},
    ...                            "xv": {"diff": 0.0, "verdict": "no detectable difference"},
    ...                            "learning_curve": {"rows": []}}, in_sample_gain=0.4)
    >>> case, text[:37]
    ('nothing to learn', 'The halves do not agree beyond chance')
    """
    case = headroom_case(headroom, w2s_block)
    retest = headroom.get("retest") or {}
    xv = headroom.get("xv") or {}
    rows = (headroom.get("learning_curve") or {}).get("rows") or []
    stab, xvt = _retest_text(retest), _xv_text(xv, n)
    parts = [] if w2s_block is None else [f"results table: {router_verdict(w2s_block)}"]
    if rows:
        r = _last_rows(rows)[0]
        parts.append(f"at {r.get('n_train')} training items ({r.get('router')}) W2S − fixed "
                     f"{fmt_interval(r.get('diff'), r.get('ci'), n, unit=' test items')}: "
                     f"{r.get('verdict')}")
    curve = "; ".join(parts) or "no learning curve"
    gain = "" if in_sample_gain is None else f" ({_signed(in_sample_gain)} over the fixed layer)"
    if case == CASE_LEARNABLE:
        text = (f"W2S beats the fixed layer ({curve}): there is a per-input layer, and the "
                "router learns it from the prompt embedding.")
    elif case == CASE_STABLE:
        text = (f"Best layers are stable ({stab}) and the cross-validated oracle beats the "
                f"cross-validated fixed layer ({xvt}), but W2S does not beat the fixed layer "
                f"({curve}): the per-input layer is real, and the router does not predict it "
                "from the embedding with this many training items.")
    elif case == CASE_NOTHING:
        mde = _num(xv.get("mde"))
        text = (f"The halves do not agree beyond chance ({stab}) and the cross-validated oracle "
                f"does not beat the cross-validated fixed layer ({xvt}): an item's best layer "
                f"is not a stable property of the item, and the in-sample oracle's gain{gain} "
                "is a maximum over noise." + ("" if mde is None else
                                              f" No per-input gain larger than {_signed(mde)} "
                                              "is likely (80% power)."))
    else:
        text = (f"The diagnostics fit none of the three cases: {stab}; {xvt}; {curve}.")
    return case, text


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
    doc.p("Three situations look alike when W2S − fixed is not detectably above 0. Nothing to "
          "learn: an item's best layer is not stable between two sweeps of the test items with "
          "vectors fitted on disjoint halves of the training items, and the in-sample oracle's "
          "gain is a maximum over noise. Stable but not predictable: the halves agree and the "
          "cross-validated oracle (each item's layer chosen under one half and scored under "
          "the other) beats the cross-validated fixed layer, but routers do not gain at any "
          "training size. Learnable, given data: the learning curve rises.")
    doc.add("<p>Which case the numbers point to, in order (the rule of "
            "<code>w2s_lens.evaluation.headroom.headroom_case</code>):</p><ul>"
            + "".join(f"<li>{_e(x)}</li>" for x in headroom_rule()) + "</ul>")
    doc.p("Here the W2S verdict read is the one of the results table (base variant, primary "
          "router); the learning curve's last row is shown beside it.")
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
        _method_part(doc, results, name, hr, *_base(results, block))


def _method_part(doc: Doc, results: Mapping[str, Any], name: str, hr: Mapping[str, Any],
                 vres: Mapping[str, Any], w: Mapping[str, Any]) -> None:
    n = vres.get("n")
    fixed, oracle = vres.get("fixed") or {}, vres.get("oracle") or {}
    gain = (None if _num(oracle.get("steerability")) is None
            or _num(fixed.get("steerability")) is None
            else float(oracle["steerability"]) - float(fixed["steerability"]))
    block = {"diff_vs_fixed_verdict": router_verdict(w)} if w else None
    case, text = case_reading(hr, block, gain, n)
    doc.add(f'<p class="readout"><b>Reading: {_e(case)}.</b> {_e(text)}</p>')
    _retest_part(doc, results, name, hr.get("retest") or {})
    _xv_part(doc, results, name, hr.get("xv") or {}, vres, w, gain)
    _curve_part(doc, results, name, hr.get("learning_curve") or {}, n)


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
