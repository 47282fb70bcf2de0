"""Readings that name their evidence: what an evaluation's diagnostics show, and what not.

One method of one run is read in three parts, each saying what was tested
(:func:`read_evidence`; stored in ``results.json`` under ``methods[m]["reading"]``):

* **headroom**: the cross-validated oracle (each test item's layer chosen under vectors from
  one half of the training items, scored under the other half's) beats the cross-validated
  fixed layer beyond the noise (the paired sign-flip test, one-sided 2.5%) *and* by at least
  :data:`HEADROOM_FRACTION` of the fixed layer's effect. Otherwise "no headroom" (or "not
  measured" when the retest did not run);
* **robustness to re-estimating the vector**: the retest κ of the best layers under the two
  half-sample vectors. Forward passes are deterministic, so this measures only how far an
  item's best layer survives re-estimating the steering vector, not test–retest noise and not
  whether the best layer is a property of the input;
* per router view V (:mod:`w2s_lens.routing.views`), for the primary router kind:
  **learned by V** (W2S with that view beats the fixed layer beyond the noise); **not learned
  by V at this power** only when the minimal detectable difference (MDE) is at most half the
  headroom (:data:`POWER_RATIO`), so a real gain of half the headroom would have been seen;
  else **underpowered for V**. The MDE used is the larger of the router's own comparison's and
  the cross-validated oracle comparison's: a router's own MDE shrinks with the number of items
  it moves off the fixed layer (it is 0.0001 for a router that moves one item by 0.01, and
  undefined for one that moves none), so alone it cannot say that a gain would have been seen;
  the oracle comparison's MDE is that of a router sending every item to its best layer, the
  spread a router that learned the headroom would have (scaled by √(n_oracle / n_test) when
  the oracle comparison ran on fewer items than the router's, as the v1 study's retest did).
  Without headroom, a view that does not beat the fixed layer reads "no gain by V (no
  headroom to learn)"; without a headroom measurement, "no gain by V (headroom not
  measured)".

An OOD variant (a system or user prompt pushing towards or away from the behaviour) is read
per view the same way (:func:`variant_evidence`; stored under
``methods[m]["variants"][v]["reading"]``), with its headroom and robustness "not measured":
the retest sweeps the BASE test items only, and an in-sample oracle over a few noisy layers
sits above the fixed layer even when there is nothing to learn, so it is no headroom. A view
that beats the fixed layer there reads "learned by V"; one that does not, "no gain by V
(headroom not measured)".

A stored reading carries its rules and their version (:data:`RULES_VERSION`); one stored under
older rules (or none) is read again from the stored diagnostics wherever it is shown
(:func:`method_evidence`), and :func:`refresh_reading` rewrites it in a ``results.json`` dict.

The readings' words are the ones the table, the report, the printed summary and the README use.

Example:
    >>> hr = {"xv": {"diff": 0.5, "ci": [0.3, 0.7], "xv_fixed": 1.0, "mde": 0.2,
    ...              "verdict": "the cross-validated oracle beats the cross-validated fixed "
    ...                         "layer beyond the noise"},
    ...       "retest": {"kappa": 0.9, "n_items": 64}}
    >>> w2s = {"logreg": {"diff_vs_fixed": 0.0, "diff_vs_fixed_mde": 0.2,
    ...                   "diff_vs_fixed_p": 0.5, "diff_vs_fixed_verdict": "no detectable "
    ...                   "difference"}}
    >>> read_evidence(hr, w2s, 1.0, "logreg", ("question",))["text"]
    'headroom; robust to re-estimating the vector; not learned by question at this power'
    >>> hr["xv"]["mde"] = 0.3  # a router sending every item to its best layer: MDE 0.3 > 0.25
    >>> read_evidence(hr, w2s, 1.0, "logreg", ("question",))["text"]
    'headroom; robust to re-estimating the vector; underpowered for question'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from w2s_lens.choices import RouterKind
from w2s_lens.routing.views import router_name, split_router_name

__all__ = ["HEADROOM_FRACTION", "KAPPA_ROBUST", "OOD_NOTE", "POWER_RATIO", "RULES_VERSION",
           "method_evidence", "read_evidence", "reading_words", "refresh_reading",
           "variant_evidence"]

#: The headroom must be at least this fraction of the (cross-validated) fixed layer's effect.
HEADROOM_FRACTION = 0.10
#: "Not learned at this power" needs a minimal detectable difference of at most this fraction
#: of the headroom.
POWER_RATIO = 0.5
#: Retest κ from which best layers read as robust to re-estimating the vector.
KAPPA_ROBUST = 0.6
#: The version of these rules, stored with every reading (1: the rules before it was stored,
#: when "at this power" used the router's own MDE alone and a missing headroom measurement
#: read as no headroom; 2: the oracle comparison's MDE not yet scaled to the router's n).
RULES_VERSION = 3
#: What the retest measures, in one sentence.
RETEST_NOTE = ("forward passes are deterministic: the retest re-estimates the steering vector "
               "from two halves of the training items and nothing else")

#: Why an OOD variant's headroom and robustness are not measured.
OOD_NOTE = "the retest sweeps the BASE test items only"


def _beats(verdict: Any) -> bool:
    return str(verdict or "").endswith("beyond the noise")


def _f(x: Any) -> str:
    return "–" if x is None else f"{x:+.3f}"


def _headroom(xv: Mapping[str, Any]) -> dict[str, Any]:
    if not xv or "skipped" in xv or xv.get("diff") is None:
        return {"holds": None, "reading": "headroom not measured",
                "text": f"headroom not measured ({(xv or {}).get('skipped', 'no retest')})"}
    diff, fixed, ci = xv["diff"], xv.get("xv_fixed"), xv.get("ci") or [None, None]
    # a fixed effect of exactly 0: any headroom is more than a share of it
    share = None if fixed is None else diff / abs(fixed) if fixed else float("inf")
    big = share is None or share >= HEADROOM_FRACTION
    holds = _beats(xv.get("verdict")) and big
    span = f"{_f(diff)} [{_f(ci[0])}, {_f(ci[1])}]"
    of = (", its share of the fixed effect not recorded" if share is None
          else f", the fixed layer's effect {_f(fixed)}" if share == float("inf")
          else f", {share:.0%} of the fixed layer's {_f(fixed)}")
    if holds:
        text = f"headroom {span}{of}"
    elif _beats(xv.get("verdict")):
        text = f"headroom beyond the noise but below {HEADROOM_FRACTION:.0%} of the fixed effect " \
               f"({span}{of})"
    else:
        text = f"no headroom beyond the noise ({span}{of})"
    return {"holds": bool(holds), "reading": "headroom" if holds else "no headroom",
            "diff": diff, "ci": list(ci),
            "share_of_fixed": None if share == float("inf") else share, "p": xv.get("p"),
            "mde": xv.get("mde"), "n": xv.get("n"), "fraction_required": HEADROOM_FRACTION,
            "text": text}


def _robustness(retest: Mapping[str, Any]) -> dict[str, Any]:
    kappa = (retest or {}).get("kappa")
    n = (retest or {}).get("n_items") or (retest or {}).get("n")
    if not retest or "skipped" in retest or not n:
        return {"kappa": None, "reading": "robustness not measured",
                "text": "robustness to re-estimating the vector not measured", "note": RETEST_NOTE}
    if kappa is None:
        reading = "one layer best everywhere"
    elif kappa >= KAPPA_ROBUST:
        reading = "robust to re-estimating the vector"
    else:
        reading = "not robust to re-estimating the vector"
    shown = "undefined (one layer wins everywhere)" if kappa is None else f"{kappa:.2f}"
    return {"kappa": kappa, "n_items": n, "reading": reading,
            "text": f"{reading} (retest κ {shown} on {n} items; {RETEST_NOTE})",
            "note": RETEST_NOTE}


def _view(view: str, block: Mapping[str, Any] | None, headroom: dict[str, Any],
          n_test: int | None = None) -> dict[str, Any]:
    if block is None:
        return {"reading": f"{view} not run", "diff": None, "mde": None, "p": None}
    diff, mde = block.get("diff_vs_fixed"), block.get("diff_vs_fixed_mde")
    ci = block.get("diff_vs_fixed_ci")
    out = {"diff": diff, "ci": None if ci is None else list(ci), "mde": mde,
           "p": block.get("diff_vs_fixed_p"), "verdict": block.get("diff_vs_fixed_verdict")}
    if _beats(block.get("diff_vs_fixed_verdict")):
        return {**out, "reading": f"learned by {view}"}
    if headroom.get("holds") is None:
        return {**out, "reading": f"no gain by {view} (headroom not measured)"}
    if not headroom["holds"]:
        return {**out, "reading": f"no gain by {view} (no headroom to learn)"}
    # the router's own MDE alone shrinks with the items it moves: see the module docstring
    reference = headroom.get("mde")
    n_ref = headroom.get("n")
    if reference is not None and n_ref and n_test and n_ref != n_test:
        reference = reference * math.sqrt(n_ref / n_test)  # the MDE at the router's n
    power_mde = None if reference is None else max(reference, mde or 0.0)
    power = power_mde is not None and power_mde <= POWER_RATIO * headroom["diff"]
    reading = f"not learned by {view} at this power" if power else f"underpowered for {view}"
    return {**out, "power_mde": power_mde, "n_nonzero": block.get("diff_vs_fixed_n_nonzero"),
            "reading": reading}


def read_evidence(headroom: Mapping[str, Any], w2s: Mapping[str, Mapping[str, Any]],
                  fixed_effect: float | None, primary: str,
                  views: Sequence[str], n_test: int | None = None) -> dict[str, Any]:
    """The reading of one method (see the module docstring).

    Args:
        headroom: ``results["methods"][m]["headroom"]`` (``xv``, ``retest``; for an OOD
            variant both ``{"skipped": OOD_NOTE}``, see :func:`variant_evidence`).
        w2s: the variant's router blocks (``results[...]["variants"][v]["w2s"]``).
        fixed_effect: the fixed layer's mean steerability on the variant's test items.
        primary: the primary router kind (its block on each view is read).
        views: the router views of the run.
        n_test: the test items the routers were compared on (the oracle comparison's MDE
            is scaled to it when that ran on fewer items).

    Returns:
        ``{"headroom", "robustness", "views": {view: ...}, "text", "rules"}``.
    """
    hr = _headroom(headroom.get("xv") or {})
    rob = _robustness(headroom.get("retest") or {})
    vws = {v: _view(v, w2s.get(router_name(primary, v)), hr, n_test) for v in views}
    parts = [hr["reading"], rob["reading"], *(b["reading"] for b in vws.values())]
    return {"headroom": hr, "robustness": rob, "views": vws, "primary": primary,
            "fixed_effect": fixed_effect, "text": "; ".join(parts),
            "rules": {"version": RULES_VERSION, "headroom_fraction": HEADROOM_FRACTION,
                      "power_ratio": POWER_RATIO, "power_mde": "max(router, xv oracle)",
                      "kappa_robust": KAPPA_ROBUST, "alpha": "one-sided 2.5%"}}


def _current(stored: Any, primary: str | None = None) -> bool:
    """Whether a stored reading was made under today's rules (and, given ``primary``, for
    that router kind)."""
    rules = stored.get("rules") if isinstance(stored, Mapping) else None
    return (isinstance(rules, Mapping) and rules.get("version") == RULES_VERSION
            and (primary is None or stored.get("primary") in (None, primary)))


def _kind(primary: str | None) -> str:
    """The primary router *kind*: ``"logreg@options"`` → ``"logreg"``; None → the config's
    default kind."""
    return split_router_name(primary or RouterKind.LOGREG.value)[0]


def method_evidence(method: Mapping[str, Any], primary: str,
                    views: Sequence[str] = ("question",)) -> dict[str, Any]:
    """The reading of a ``results.json`` method block for the ``primary`` router kind (a
    router name such as ``"logreg@options"`` counts as its kind): the stored ``reading`` when
    it was made under today's rules (:data:`RULES_VERSION`) for that kind, else read now from
    the stored diagnostics
    (results written before readings were stored, or under older rules).

    Example:
        >>> current = {"text": "headroom; ...", "rules": {"version": RULES_VERSION}}
        >>> method_evidence({"reading": current}, "logreg")["text"]
        'headroom; ...'
        >>> method_evidence({"reading": {"text": "older rules"}}, "logreg")["text"]
        'headroom not measured; robustness not measured; question not run'
    """
    primary = _kind(primary)
    stored = method.get("reading")
    if stored and _current(stored, primary):
        return dict(stored)
    base = ((method.get("variants") or {}).get("base") or {})
    fixed = (base.get("fixed") or {}).get("steerability")
    w2s = base.get("w2s") or {}
    # the views the run fitted the primary kind on (its router names say which), else ``views``
    run_views = tuple(view for kind, view in map(split_router_name, w2s) if kind == primary)
    return read_evidence(method.get("headroom") or {}, w2s, fixed, primary,
                         run_views or tuple(views), base.get("n"))


def variant_evidence(method: Mapping[str, Any], variant: str, primary: str,
                     views: Sequence[str] = ("question",)) -> dict[str, Any]:
    """The reading of one test variant of a ``results.json`` method block: for ``"base"``
    :func:`method_evidence`; for an OOD variant its stored ``reading`` when made under today's
    rules, else read now from its router blocks, per view, with the headroom and robustness
    "not measured" (:data:`OOD_NOTE`; see the module docstring).

    Example:
        >>> m = {"variants": {"sys-pos": {"n": 200, "fixed": {"steerability": 0.4},
        ...     "w2s": {"logreg": {"diff_vs_fixed": 0.0, "diff_vs_fixed_verdict":
        ...                        "no detectable difference"},
        ...             "logreg@options": {"diff_vs_fixed": 0.1, "diff_vs_fixed_verdict":
        ...                                "W2S beats fixed beyond the noise"}}}}}
        >>> r = variant_evidence(m, "sys-pos", "logreg")
        >>> r["headroom"]["text"]
        'headroom not measured (the retest sweeps the BASE test items only)'
        >>> [v["reading"] for v in r["views"].values()]
        ['no gain by question (headroom not measured)', 'learned by options']
    """
    primary = _kind(primary)
    if variant == "base":
        return method_evidence(method, primary, views)
    block = (method.get("variants") or {}).get(variant)
    if block is None:
        raise KeyError(f"no test variant {variant!r} in this method (it has "
                       f"{sorted(method.get('variants') or {})})")
    stored = block.get("reading")
    if stored and _current(stored, primary):
        return dict(stored)
    w2s = block.get("w2s") or {}
    run_views = tuple(view for kind, view in map(split_router_name, w2s) if kind == primary)
    skipped = {"skipped": OOD_NOTE}
    return read_evidence({"xv": skipped, "retest": skipped}, w2s,
                         (block.get("fixed") or {}).get("steerability"), primary,
                         run_views or tuple(views), block.get("n"))


def reading_words(method: Mapping[str, Any], primary: str,
                  views: Sequence[str] = ("question",)) -> str:
    """The reading's words (:func:`method_evidence`'s ``text``).

    Example:
        >>> reading_words({"reading": {"text": "t", "rules": {"version": RULES_VERSION}}},
        ...               "logreg")
        't'
    """
    return str(method_evidence(method, primary, views)["text"])


def refresh_reading(results: dict[str, Any]) -> list[str]:
    """Rewrite, in a ``results.json`` dict, every method's stored reading made under older
    rules (or missing while its headroom diagnostics are there) by today's rules, read from
    the stored diagnostics, and each OOD variant's (:func:`variant_evidence`); returns what
    was rewritten (``"caa"``, ``"caa/sys-pos"``). Nothing else changes.

    Example:
        >>> res = {"primary_router": "logreg", "methods": {"caa": {"headroom": {},
        ...        "reading": {"text": "older rules"}}}}
        >>> refresh_reading(res), res["methods"]["caa"]["reading"]["rules"]["version"]
        (['caa'], 3)
        >>> refresh_reading(res)
        []
    """
    primary = _kind(results.get("primary_router"))
    views = tuple(results.get("router_inputs") or ("question",))
    done = []
    for name, method in (results.get("methods") or {}).items():
        stored = method.get("reading")
        if _current(stored) or (stored is None and "headroom" not in method):
            continue
        method["reading"] = method_evidence({**method, "reading": None}, primary, views)
        done.append(name)
    for name, method in (results.get("methods") or {}).items():
        for variant, block in (method.get("variants") or {}).items():
            if variant == "base" or _current(block.get("reading")) or not block.get("w2s"):
                continue
            block["reading"] = variant_evidence(
                {"variants": {variant: {**block, "reading": None}}}, variant, primary, views)
            done.append(f"{name}/{variant}")
    return done
