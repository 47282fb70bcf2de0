"""The headroom columns of the cross-dataset table (:mod:`w2s_lens.report.tables.cross_dataset`):
is there a per-input layer to learn, per dataset and method?

:func:`headroom_cells` reads a method's headroom diagnostics (``result.methods[m].headroom``,
:mod:`w2s_lens.evaluation.headroom.run`) into the :data:`HEADROOM_COLUMNS` of a base row, and
:func:`headroom_markdown` prints them as the table's "Is there anything to learn?" section.

Example:
    >>> headroom_cells(MethodResult(), VariantResult(), "logreg")["kappa"] is None
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from w2s_lens.evaluation.results.headroom import CrossValidatedOracle, Retest
from w2s_lens.evaluation.results.nodes import FormRouter
from w2s_lens.evaluation.results.typed import MethodResult, VariantResult
from w2s_lens.report.tables.summary import fmt_ci

__all__ = ["HEADROOM_COLUMNS", "headroom_cells", "headroom_markdown"]

#: The headroom columns (base-variant rows only; empty on the others and for older results).
HEADROOM_COLUMNS = ("agreement", "kappa", "xv_diff", "xv_lo", "xv_hi", "xv_p",
                    "form_router_diff", "case")


def _f(x: Any, fmt: str = "+.3f") -> str:
    return "–" if x is None or np.isnan(float(x)) else format(float(x), fmt)


def _p(x: Any) -> str:
    return "–" if x is None else f"{float(x):.3g}"


def headroom_cells(m: MethodResult, base: VariantResult, primary: str) -> dict[str, Any]:
    """The :data:`HEADROOM_COLUMNS` of one method's base row: retest agreement and κ, the
    cross-validated oracle − fixed with its interval and p, the answer-form router − fixed
    (cloze runs), and the reading
    (:meth:`~w2s_lens.evaluation.results.typed.MethodResult.evidence`); all None for results
    without headroom diagnostics.

    Example:
        >>> m = MethodResult.from_dict({"headroom": {"retest": {"kappa": 0.7},
        ...                                          "xv": {"diff": 0.2, "ci": [0.1, 0.3]}}})
        >>> cells = headroom_cells(m, VariantResult(), "logreg")
        >>> cells["kappa"], cells["xv_lo"], cells["case"].split(";")[0]
        (0.7, 0.1, 'no headroom')
        >>> headroom_cells(MethodResult(), VariantResult(), "logreg")["case"] is None
        True
    """
    h = m.headroom
    if h is None or h.empty:
        return dict.fromkeys(HEADROOM_COLUMNS)
    retest = h.retest if isinstance(h.retest, Retest) else Retest()
    xv = h.xv if isinstance(h.xv, CrossValidatedOracle) else CrossValidatedOracle()
    lo, hi = xv.ci or (None, None)
    form = base.form_router if isinstance(base.form_router, FormRouter) else FormRouter()
    return {"agreement": retest.agreement, "kappa": retest.kappa,
            "xv_diff": xv.diff, "xv_lo": lo, "xv_hi": hi, "xv_p": xv.p,
            "form_router_diff": form.diff, "case": m.evidence(primary).text}


def headroom_markdown(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The "Is there anything to learn?" table of the base rows that carry headroom
    diagnostics, as markdown lines (none when no row does).

    Example:
        >>> headroom_markdown([{"variant": "base", "case": None}])
        []
    """
    base = [r for r in rows if r.get("variant") == "base" and r.get("case")]
    if not base:
        return []
    out = ["", "Is there anything to learn? (base test items: retest of vectors from two "
           "halves of the training items, cross-validated oracle, learning curve)", "",
           "| dataset | method | readout | retest agreement | κ | xv-oracle − xv-fixed [95% CI] "
           "| p | W2S − fixed | MDE | form router − fixed | reading |", "|" + "---|" * 11]
    for r in base:
        out.append(f"| {r['dataset']} | {r['method']} | {r['readout']} | "
                   f"{_f(r.get('agreement'), '.2f')} | {_f(r.get('kappa'), '+.2f')} | "
                   f"{fmt_ci(r.get('xv_diff'), [r.get('xv_lo'), r.get('xv_hi')])} | "
                   f"{_p(r.get('xv_p'))} | {_f(r.get('diff'))} | {_f(r.get('mde'), '.3f')} | "
                   f"{_f(r.get('form_router_diff'))} | {r['case']} |")
    return out
