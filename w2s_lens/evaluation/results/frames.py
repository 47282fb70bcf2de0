"""Views of an :class:`~w2s_lens.evaluation.results.typed.EvaluationResult`: text and long tables.

* :func:`summary_text`: the comparison as a plain-text table, and each method's headroom
  reading (``EvaluationResult.summary``);
* :func:`comparison_rows` / :func:`comparison_frame`: one row per method × variant × router
  (``EvaluationResult.to_pandas``);
* :func:`read_items`: the per-item rows of ``items.csv`` beside ``results.json``
  (``EvaluationResult.items_frame``);
* :func:`short_repr`: the result's one-screen ``repr``.

pandas is imported only by the functions that return a DataFrame.

Example:
    >>> from w2s_lens.evaluation.results.typed import EvaluationResult
    >>> r = EvaluationResult.from_dict({"primary_router": "logreg", "methods": {"caa": {
    ...     "variants": {"base": {"w2s": {"logreg": {"diff_vs_fixed": 0.25}}}}}}})
    >>> [(row["method"], row["router"], row["diff"]) for row in comparison_rows(r)]
    [('caa', 'logreg', 0.25)]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.evaluation.results.evidence import reading_words, variant_evidence
from w2s_lens.routing.views import split_router_name

if TYPE_CHECKING:
    from w2s_lens.evaluation.results.typed import EvaluationResult, MethodResult

__all__ = ["ITEMS_COLUMNS", "ITEMS_FILE", "comparison_frame", "comparison_rows",
           "headroom_reading", "read_items", "short_repr", "summary_text", "variant_reading"]

#: The per-item table beside ``results.json``, and the columns every version of it has.
ITEMS_FILE = "items.csv"
ITEMS_COLUMNS = ("split", "sweep", "id")
#: Lines of :func:`short_repr` listing comparisons before it says how many more there are.
REPR_ROWS = 12


def _layer(layer: int | None) -> str:
    return "–" if layer is None else str(layer)


def _f(x: Any, fmt: str = "+.3f") -> str:
    return "–" if x is None else format(float(x), fmt)


def _ci(value: Any, ci: Any) -> str:
    lo, hi = (tuple(ci) if ci else (None, None))[:2]
    return f"{_f(value)} [{_f(lo)},{_f(hi)}]"


def _pair(ci: Any) -> tuple[Any, Any]:
    return (ci[0], ci[1]) if ci and len(ci) >= 2 else (None, None)


def comparison_rows(result: EvaluationResult) -> list[dict[str, Any]]:
    """One dict per method × variant × router of the ``"w2s"`` blocks, with the columns
    ``method, variant, router, kind, view, primary, n, fixed_layer, fixed, fixed_lo, fixed_hi,
    w2s, w2s_lo, w2s_hi, oracle, diff, diff_lo, diff_hi, p, p_less, test, n_nonzero, mde,
    verdict, accuracy, majority_accuracy, top3_accuracy`` (``None`` where not computed).

    Example:
        >>> rows = comparison_rows(r)  # doctest: +SKIP
        >>> rows[0]["verdict"]  # doctest: +SKIP
        'no detectable difference'
    """
    rows = []
    for method, m in result.methods.items():
        for variant, v in m.variants.items():
            fixed, oracle = v.fixed, v.oracle
            for router, c in v.routers.items():
                kind, view = split_router_name(router)
                f_lo, f_hi = _pair(fixed.steerability_ci if fixed else None)
                w_lo, w_hi = _pair(c.steerability_ci)
                d_lo, d_hi = _pair(c.diff_ci)
                rows.append({
                    "method": method, "variant": variant, "router": router, "kind": kind,
                    "view": view, "primary": router == result.primary_router, "n": v.n,
                    "fixed_layer": v.fixed_layer,
                    "fixed": fixed.steerability if fixed else None,
                    "fixed_lo": f_lo, "fixed_hi": f_hi,
                    "w2s": c.steerability, "w2s_lo": w_lo, "w2s_hi": w_hi,
                    "oracle": oracle.steerability if oracle else None,
                    "diff": c.diff, "diff_lo": d_lo, "diff_hi": d_hi, "p": c.p,
                    "p_less": c.p_less, "test": c.test, "n_nonzero": c.n_nonzero, "mde": c.mde,
                    "verdict": c.verdict, "accuracy": c.accuracy,
                    "majority_accuracy": c.majority_accuracy, "top3_accuracy": c.top3_accuracy,
                })
    return rows


def comparison_frame(result: EvaluationResult) -> Any:
    """:func:`comparison_rows` as a ``pandas.DataFrame`` (the columns even when empty).

    Example:
        >>> df = comparison_frame(r)  # doctest: +SKIP
        >>> df.pivot(index="variant", columns="router", values="diff")  # doctest: +SKIP
    """
    import pandas as pd

    rows = comparison_rows(result)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(_COLUMNS))


_COLUMNS = ("method", "variant", "router", "kind", "view", "primary", "n", "fixed_layer",
            "fixed", "fixed_lo", "fixed_hi", "w2s", "w2s_lo", "w2s_hi", "oracle", "diff",
            "diff_lo", "diff_hi", "p", "p_less", "test", "n_nonzero", "mde", "verdict",
            "accuracy", "majority_accuracy", "top3_accuracy")


def headroom_reading(result: EvaluationResult, method: str) -> str | None:
    """A method's reading (:mod:`w2s_lens.evaluation.results.evidence`): the stored one when
    it was made under today's rules, else the one read now from the stored diagnostics;
    ``None`` without either.

    Example:
        >>> headroom_reading(r, "caa")  # doctest: +SKIP
        'headroom; robust to re-estimating the vector; not learned by question at this power'
    """
    m: MethodResult = result.methods[method]
    if m.headroom is None and (m.reading is None or not m.reading.text):
        return None
    return reading_words(m.to_dict(), result.primary_router,
                         list(result.router_inputs or ("question",)))


def variant_reading(result: EvaluationResult, method: str, variant: str) -> str:
    """An OOD test variant's reading (:func:`~w2s_lens.evaluation.results.evidence.
    variant_evidence`): per router view, whether W2S beats the fixed layer there; its headroom
    is not measured (the retest sweeps the BASE test items only). For ``"base"`` the method's
    reading.

    Example:
        >>> variant_reading(r, "caa", "sys-neg")  # doctest: +SKIP
        'headroom not measured; robustness not measured; no gain by question (headroom not ...'
    """
    m: MethodResult = result.methods[method]
    return str(variant_evidence(m.to_dict(), variant, result.primary_router,
                                list(result.router_inputs or ("question",)))["text"])


def _mode(result: EvaluationResult) -> str:
    if result.readout == "cloze":
        scored = {"mean": "length-normalised",
                  "first": "scored on the first differing option token"}
        mode = scored.get(result.scoring or ("mean" if result.length_norm else "sum"),
                          "summed log-probs")
        if result.list_options:
            mode += ", options listed"
    else:
        mode = "mirrored" if result.mirror else "single order"
    where = {"all": "steering every position", "prompt": "steering the prompt only"}
    if result.positions in where:
        mode += f", {where[result.positions]}"
    if result.scale == "relative":
        share = "" if result.fraction is None else f": λ = 1 adds {result.fraction:g} of the " \
                                                   "residual norm"
        mode += f", relative scale{share}"
    return mode


def _title(result: EvaluationResult) -> str:
    return (f"{result.model} · {result.dataset} · {result.readout} readout, {_mode(result)} · "
            f"n_train={result.n_train} n_test={result.n_test} (split seed {result.split_seed})"
            f" · primary router={result.primary_router} · embedding={result.embedding}")


def _headroom_lines(result: EvaluationResult, method: str) -> list[str]:
    h = result.methods[method].headroom
    lines = []
    if h is not None and h.retest is not None:
        rt = h.retest
        lines.append(f"  retest: skipped ({rt.skipped})" if rt.skipped else
                     f"  retest on {rt.n_items} items: best-layer agreement "
                     f"{_f(rt.agreement, '.2f')} (chance {_f(rt.chance, '.2f')}), "
                     f"κ {_f(rt.kappa, '+.2f')}")
    if h is not None and h.xv is not None and not h.xv.skipped:
        lines.append(f"  cross-validated oracle − fixed: {_ci(h.xv.diff, h.xv.ci)}  "
                     f"p={_f(h.xv.p, '.3g')}  {h.xv.verdict}")
    reading = headroom_reading(result, method)
    if reading is not None:
        lines.append(f"  reading: {reading}")
    return lines


def summary_text(result: EvaluationResult) -> str:
    """The run's title, then per method a table of every variant × router (``*`` marks the
    primary router): the fixed layer, fixed and W2S steerability, W2S − fixed with its 95%
    interval, the one-sided sign-flip p, the MDE and the verdict; then the headroom reading.

    Example:
        >>> print(summary_text(r))  # doctest: +SKIP
    """
    lines = [_title(result)]
    for method, m in result.methods.items():
        head = (f"{'variant':10} {'router':22} {'L':>3} {'fixed':>7} {'W2S':>7}  "
                f"{'W2S − fixed [95% CI]':26} {'p':>7} {'MDE':>6}  verdict")
        lines += ["", f"{method}: fixed layer {m.fixed_layer}", head, "-" * len(head)]
        for variant, v in m.variants.items():
            fixed = v.fixed.steerability if v.fixed else None
            for router, c in v.routers.items():
                mark = "*" if router == result.primary_router else " "
                lines.append(f"{variant:10} {mark}{router:21} {_layer(v.fixed_layer):>3} "
                             f"{_f(fixed):>7} {_f(c.steerability):>7}  "
                             f"{_ci(c.diff, c.diff_ci):26} {_f(c.p, '.3g'):>7} "
                             f"{_f(c.mde, '.3f'):>6}  {c.verdict or '–'}")
        more = _headroom_lines(result, method)
        if more:
            lines += ["", f"Is there anything to learn? ({method}, base test items)", *more]
        ood = [f"  {variant}: {variant_reading(result, method, variant)}"
               for variant in m.variants if variant != "base"]
        if ood:
            lines += ["", f"OOD variants ({method}; routers trained on BASE):", *ood]
    return "\n".join(lines)


def short_repr(result: EvaluationResult) -> str:
    """The result's ``repr``: its title, the primary router's comparison per method and variant
    (at most :data:`REPR_ROWS` lines), each method's headroom reading, and where to look next.

    Example:
        >>> r  # doctest: +SKIP
        EvaluationResult(qwen2.5-coder-0.5b-instruct · corrigible-neutral-HHH · ...)
    """
    lines = [f"EvaluationResult({_title(result)})"]
    rows = [row for row in comparison_rows(result) if row["primary"]]
    for row in rows[:REPR_ROWS]:
        lines.append(f"  {row['method']}/{row['variant']}: fixed L{row['fixed_layer']} "
                     f"{_f(row['fixed'])}, W2S {_f(row['w2s'])}, W2S − fixed "
                     f"{_ci(row['diff'], (row['diff_lo'], row['diff_hi']))} "
                     f"p={_f(row['p'], '.3g')}: {row['verdict'] or '–'}")
    if len(rows) > REPR_ROWS:
        lines.append(f"  … {len(rows) - REPR_ROWS} more")
    for method in result.methods:
        reading = headroom_reading(result, method)
        if reading is not None:
            lines.append(f"  {method} headroom: {reading}")
    lines.append("  (.summary() for every router, .to_pandas(), .items_frame(), .methods[...])")
    return "\n".join(lines)


def read_items(result: EvaluationResult, run_dir: str | os.PathLike | None = None) -> Any:
    """The per-item ``pandas.DataFrame`` of ``items.csv`` (one row per item and sweep: ``split,
    sweep, id, matching_tokens, non_matching_tokens, best_layer, s_L<layer>...,
    route_<router>...``) in ``run_dir``, or beside the file ``result`` was loaded from.

    Example:
        >>> read_items(r, "runs/corrigible").columns[:3].tolist()  # doctest: +SKIP
        ['split', 'sweep', 'id']
    """
    if run_dir is None:
        if result.path is None:
            raise ValueError("this result was not loaded from a file: pass run_dir=, the run "
                             f"directory holding {ITEMS_FILE}")
        folder = Path(result.path).parent
    else:
        folder = Path(run_dir)
        if folder.is_file():
            folder = folder.parent
    file = folder / ITEMS_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file} does not exist: newer evaluations write the per-item "
                                "table beside results.json; rerun `w2s-lens evaluate` into that "
                                "run directory to get it")
    import pandas as pd

    frame = pd.read_csv(file, dtype={"id": str})
    missing = [c for c in ITEMS_COLUMNS if c not in frame.columns]
    if missing:
        raise ArtifactMismatch(f"{file} lacks the columns {', '.join(missing)}; it is not a "
                               "w2s-lens per-item table")
    return frame
