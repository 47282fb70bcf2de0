"""Plotly figures of evaluation results: the method comparison and routing confusion
matrices.

Inputs are typed results (:class:`~w2s_lens.evaluation.results.typed.EvaluationResult`, or a
run directory to load one from) and ``routing.json`` layer lists as read by
:class:`~w2s_lens.evaluation.storage.rundir.RunDir`; conventions as in
:mod:`w2s_lens.report.plots_base`.

Example::

    >>> fig = confusion_matrix([2, 4, 4], [2, 4, 2], layers=[2, 4])
    >>> fig.data[0].type
    'heatmap'
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from w2s_lens.evaluation.results.nodes import GroupOracle, RouterComparison, Summary
from w2s_lens.evaluation.results.typed import EvaluationResult, VariantResult, as_result
from w2s_lens.report.plots_base import _check_layer_list, _layer_positions

__all__ = ["METHODS", "OPTIONAL", "confusion_matrix", "method_bars", "method_label",
           "primary_router"]

#: (name, display name) of the layer choices compared by :func:`method_bars`: the variant's
#: attribute, or ``w2s`` for its primary router's comparison (the ``"w2s"`` block).
METHODS: tuple[tuple[str, str], ...] = (
    ("fixed", "fixed layer"),
    ("w2s", "W2S (router)"),
    ("oracle", "oracle"),
    ("letter_oracle", "letter-oracle"),
    ("form_oracle", "answer-form oracle"),
)
#: Layer choices drawn only when some variant has them (``letter_oracle`` is None where it
#: does not apply; ``form_oracle`` exists on cloze rows of newer results).
OPTIONAL = ("letter_oracle", "form_oracle")


def primary_router(results: EvaluationResult, vres: VariantResult) -> str | None:
    """The router a variant is reported with: the result's ``primary_router`` when the variant
    has it, else its first router (None when it has none).

    >>> r = EvaluationResult.from_dict({"primary_router": "curve", "methods": {}})
    >>> primary_router(r, VariantResult.from_dict({"w2s": {"logreg": {}, "curve": {}}}))
    'curve'
    >>> primary_router(r, VariantResult.from_dict({"w2s": {"logreg": {}}}))
    'logreg'
    """
    p = results.primary_router
    return str(p) if p in vres.routers else next(iter(vres.routers), None)


def method_label(method: str) -> str:
    """Display name of a steering method: ``caa`` -> ``CAA``, ``l2s`` -> ``L2S``.

    >>> method_label("l2s")
    'L2S'
    """
    return str(method).upper()


def confusion_matrix(
    true_layers: Sequence[int],
    predicted_layers: Sequence[int],
    layers: Sequence[int],
    normalize: bool = False,
    title: str | None = None,
) -> go.Figure:
    """Router confusion matrix: rows are the true (oracle) best layer, columns the router's pick.

    Args:
        true_layers, predicted_layers: per-input layer numbers (same length).
        layers: the possible layers (row/column order).
        normalize: colour by row fraction (counts still shown as text).

    Trace 0 is a heatmap whose ``z`` is the ``[len(layers), len(layers)]`` count matrix
    (or row fractions when ``normalize``); the title gives exact-match accuracy.

    >>> confusion_matrix([3, 5, 5], [3, 3, 5], [3, 5]).data[0].z.tolist()
    [[1, 0], [1, 1]]
    """
    t_arr = np.asarray(true_layers).reshape(-1)
    p_arr = np.asarray(predicted_layers).reshape(-1)
    if t_arr.size != p_arr.size:
        raise ValueError(f"true_layers ({t_arr.size}) and predicted_layers ({p_arr.size}) "
                         "differ in length")
    lay = _check_layer_list(layers)
    t = _layer_positions(t_arr, lay, "true_layers")
    p = _layer_positions(p_arr, lay, "predicted_layers")
    k = len(lay)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (t, p), 1)
    n = int(t.size)
    acc = float((t == p).mean()) if n else float("nan")
    rowsum = counts.sum(axis=1, keepdims=True)
    frac = np.divide(counts, rowsum, out=np.zeros((k, k)), where=rowsum > 0)
    labels = [str(v) for v in lay]
    fig = go.Figure(go.Heatmap(
        z=frac if normalize else counts, x=labels, y=labels, text=counts,
        texttemplate="%{text}", customdata=frac, colorscale="Blues",
        colorbar={"title": {"text": "fraction of row" if normalize else "inputs"}},
        hovertemplate=("oracle best layer %{y}<br>router picked %{x}<br>%{text} inputs "
                       "(%{customdata:.1%} of row)<extra></extra>")))
    fig.update_layout(
        height=max(400, min(900, 160 + 45 * k)),
        title={"text": title or f"Router confusion matrix ({n} inputs; exact accuracy {acc:.1%})"},
        xaxis={"title": {"text": "router's layer"}, "type": "category"},
        yaxis={"title": {"text": "oracle best layer"}, "type": "category", "autorange": "reversed"})
    return fig


# --------------------------------------------------------------------------- results


def _bar_entries(results: EvaluationResult | str | os.PathLike
                 | Mapping[str, EvaluationResult | str | os.PathLike],
                 method: str | None) -> list[tuple[str, EvaluationResult, VariantResult]]:
    """(group label, result, variant) for every bar group of :func:`method_bars`."""

    def one(res: EvaluationResult, prefix: str) -> list[tuple[str, EvaluationResult,
                                                               VariantResult]]:
        if method is not None and method not in res.methods:
            raise ValueError(f"no method {method!r} in the results; there are: "
                             f"{', '.join(res.methods) or '-'}")
        methods = {k: m for k, m in res.methods.items() if method in (None, k)}
        several = len(methods) > 1
        return [(f"{prefix}{method_label(k) + ' / ' if several else ''}{v}", res, vres)
                for k, m in methods.items() for v, vres in m.variants.items()]

    if isinstance(results, (EvaluationResult, str, os.PathLike)):
        return one(as_result(results), "")
    if not isinstance(results, Mapping):
        raise TypeError("results must be an EvaluationResult, a run directory, or a dict "
                        f"label -> EvaluationResult; got {type(results).__name__}")
    if not results:
        raise ValueError("results is empty")
    out = []
    for k, v in results.items():
        if not isinstance(v, (EvaluationResult, str, os.PathLike)):
            raise TypeError(f"results[{k!r}] is not an evaluation result (got "
                            f"{type(v).__name__}); pass one EvaluationResult or a dict label "
                            "-> EvaluationResult (EvaluationResult.load reads a run directory)")
        out += one(as_result(v), f"{k} / " if len(results) > 1 else "")
    return out


def _choice(res: EvaluationResult, vres: VariantResult, key: str) -> Summary | None:
    """The layer choice ``key`` of :data:`METHODS` of one variant."""
    if key == "w2s":
        router = primary_router(res, vres)
        return vres.routers.get(router) if router is not None else None
    return {"fixed": vres.fixed, "oracle": vres.oracle, "letter_oracle": vres.letter_oracle,
            "form_oracle": vres.form_oracle}[key]


def method_bars(results: EvaluationResult | str | os.PathLike
                | Mapping[str, EvaluationResult | str | os.PathLike],
                title: str | None = None, method: str | None = None) -> go.Figure:
    """Grouped bars of mean steerability per layer choice (fixed / W2S / oracle / letter-oracle /
    answer-form oracle).

    Args:
        results: a typed result or a run directory to load one from (groups on the x axis
            are ``"CAA / base"``, ``"L2S / base"``, ... when it holds several methods, else the
            variants), or a dict ``{label: result}`` of several (groups prefixed
            ``"label / "``).
        method: draw this method alone (groups are then its variants).

    One bar trace per entry of :data:`METHODS` (those in :data:`OPTIONAL` only when some
    variant has them); error bars are asymmetric and equal the ``steerability_ci`` offsets
    (``error_y.array = hi - mean``, ``arrayminus = mean - lo``). W2S uses
    :func:`primary_router`. Missing entries are NaN.

    >>> r = EvaluationResult.from_dict({"methods": {"caa": {"variants": {"base": {
    ...     "n": 10, "fixed_layer": 3,
    ...     "fixed": {"steerability": 0.2, "steerability_ci": [0.1, 0.3]}}}}}})
    >>> method_bars(r).data[0].y.tolist()
    [0.2]
    """
    entries = _bar_entries(results, method)
    if not entries:
        raise ValueError("results has no variants")
    groups = [g for g, _, _ in entries]
    fig = go.Figure()
    for key, display in METHODS:
        if key in OPTIONAL and not any(isinstance(_choice(r, v, key), Summary)
                                       for _, r, v in entries):
            continue
        ys, plus, minus, hover = [], [], [], []
        for _, res, vres in entries:
            router = primary_router(res, vres)
            st = _choice(res, vres, key)
            st = st if isinstance(st, Summary) else None
            has_mean = st is not None and st.steerability is not None
            mean = float(st.steerability) if has_mean else float("nan")
            ci = st.steerability_ci if st is not None else None
            lo, hi = ((float(ci[0]), float(ci[1])) if ci and None not in ci[:2]
                      else (mean, mean))
            ys.append(mean)
            plus.append(hi - mean)
            minus.append(mean - lo)
            bits = [f"n={'?' if vres.n is None else vres.n}"]
            if key == "fixed":
                bits.append(f"layer {'?' if vres.fixed_layer is None else vres.fixed_layer}")
            elif key == "w2s" and router is not None:
                bits.append(f"router {router}")
                if isinstance(st, RouterComparison) and st.accuracy is not None:
                    bits.append(f"accuracy {float(st.accuracy):.1%}")
            elif key == "letter_oracle" and isinstance(st, GroupOracle) and st.layers is not None:
                lays = st.layers
                bits.append(f"A→layer {lays.get('A', '?')}, B→layer {lays.get('B', '?')}")
            elif key == "form_oracle" and isinstance(st, GroupOracle) and st.groups:
                bits.append(", ".join(f"{g}→layer {x}" for g, x in st.groups.items()))
            if st is not None and st.steerable_fraction is not None:
                bits.append(f"steerable {float(st.steerable_fraction):.1%}")
            hover.append(f"[{lo:.4f}, {hi:.4f}]<br>" + "<br>".join(bits))
        fig.add_trace(go.Bar(
            x=groups, y=np.asarray(ys, dtype=float), name=display, customdata=hover,
            error_y={"type": "data", "symmetric": False, "array": np.asarray(plus),
                     "arrayminus": np.asarray(minus)},
            hovertemplate=(f"{display}<br>%{{x}}<br>mean steerability %{{y:.4f}}"
                           "<br>95% CI %{customdata}<extra></extra>")))
    fig.update_layout(
        barmode="group", title={"text": title or "Mean steerability by method (error bars: CI)"},
        xaxis={"title": {"text": "group"}, "type": "category"},
        yaxis={"title": {"text": "mean steerability"}}, legend={"title": {"text": "layer choice"}})
    return fig
