"""Plotly figures of evaluation results: the method comparison and routing confusion
matrices.

Inputs are ``results.json`` blocks and ``routing.json`` layer lists as read by
:class:`~w2s_lens.evaluation.storage.rundir.RunDir`; conventions as in
:mod:`w2s_lens.report.plots_base`.

Example::

    >>> fig = confusion_matrix([2, 4, 4], [2, 4, 2], layers=[2, 4])
    >>> fig.data[0].type
    'heatmap'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from w2s_lens.evaluation.results.typed import EvaluationResult, results_dict
from w2s_lens.report.plots_base import _check_layer_list, _layer_positions

__all__ = ["METHODS", "OPTIONAL", "confusion_matrix", "method_bars", "method_label",
           "primary_router"]

#: (results.json key, display name) of the layer choices compared by :func:`method_bars`.
METHODS: tuple[tuple[str, str], ...] = (
    ("fixed", "fixed layer"),
    ("w2s", "W2S (router)"),
    ("oracle", "oracle"),
    ("letter_oracle", "letter-oracle"),
    ("form_oracle", "answer-form oracle"),
)
#: Layer choices drawn only when some variant block has them (``letter_oracle`` is None where
#: it does not apply; ``form_oracle`` exists on cloze rows of newer results).
OPTIONAL = ("letter_oracle", "form_oracle")


def primary_router(results: Mapping[str, Any], vres: Mapping[str, Any]) -> str | None:
    """The router a variant block is reported with: ``results["primary_router"]`` when the
    block has it, else its first router (None when it has none).

    >>> primary_router({"primary_router": "curve"}, {"w2s": {"logreg": {}, "curve": {}}})
    'curve'
    >>> primary_router({"primary_router": "mlp"}, {"w2s": {"logreg": {}}})
    'logreg'
    """
    w2s = vres.get("w2s") or {}
    p = results.get("primary_router")
    return str(p) if p in w2s else next(iter(w2s), None)


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


def _bar_entries(results: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], Any]]:
    """(group label, results dict, variant block) for every bar group of :func:`method_bars`."""

    def one(res: Mapping[str, Any], prefix: str) -> list[tuple[str, Mapping[str, Any], Any]]:
        if "methods" in res:
            methods = res.get("methods") or {}
            return [(f"{prefix}{method_label(m) + ' / ' if len(methods) > 1 else ''}{v}", res,
                     vres) for m, block in methods.items()
                    for v, vres in ((block or {}).get("variants") or {}).items()]
        return [(f"{prefix}{v}", res, vres) for v, vres in (res.get("variants") or {}).items()]

    if "methods" in results or "variants" in results:
        return one(results, "")
    if not results:
        raise ValueError("results is empty")
    out = []
    for k, v in results.items():
        if not isinstance(v, Mapping) or not ("methods" in v or "variants" in v):
            raise ValueError(f"results[{k!r}] is not a results.json dict (no 'methods' or "
                             "'variants' key); pass one results dict or a dict label -> results")
        out += one(v, f"{k} / " if len(results) > 1 else "")
    return out


def method_bars(results: EvaluationResult | Mapping[str, Any],
                title: str | None = None) -> go.Figure:
    """Grouped bars of mean steerability per layer choice (fixed / W2S / oracle / letter-oracle /
    answer-form oracle).

    Args:
        results: a typed result or a ``results.json`` dict (groups on the x axis are
            ``"CAA / base"``, ``"L2S / base"``, ... when it holds several methods, else the
            variants), a dict with ``"variants"`` directly (one method's block plus
            ``primary_router``), or a dict ``{label: results}`` of several (groups
            prefixed ``"label / "``).

    One bar trace per entry of :data:`METHODS` (those in :data:`OPTIONAL` only when some
    variant block has them); error bars are asymmetric and equal the
    ``steerability_ci`` offsets (``error_y.array = hi - mean``, ``arrayminus = mean - lo``).
    W2S uses :func:`primary_router`. Missing entries are NaN.

    >>> r = {"variants": {"base": {"n": 10, "fixed_layer": 3,
    ...      "fixed": {"steerability": 0.2, "steerability_ci": [0.1, 0.3]}}}}
    >>> method_bars(r).data[0].y.tolist()
    [0.2]
    """
    results = results_dict(results)
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be a dict; got {type(results).__name__}")
    entries = _bar_entries(results)
    if not entries:
        raise ValueError("results has no variants")
    groups = [g for g, _, _ in entries]
    fig = go.Figure()
    for key, display in METHODS:
        if key in OPTIONAL and not any(isinstance(v.get(key), Mapping) for _, _, v in entries):
            continue
        ys, plus, minus, hover = [], [], [], []
        for _, res, vres in entries:
            router = primary_router(res, vres)
            if key == "w2s":
                st = (vres.get("w2s") or {}).get(router) if router is not None else None
            else:
                st = vres.get(key)
            has_mean = bool(st) and st.get("steerability") is not None
            mean = float(st["steerability"]) if has_mean else float("nan")
            ci = st.get("steerability_ci") if st else None
            lo, hi = ((float(ci[0]), float(ci[1])) if ci and None not in ci[:2]
                      else (mean, mean))
            ys.append(mean)
            plus.append(hi - mean)
            minus.append(mean - lo)
            bits = [f"n={vres.get('n', '?')}"]
            if key == "fixed":
                bits.append(f"layer {vres.get('fixed_layer', '?')}")
            elif key == "w2s" and router is not None:
                bits.append(f"router {router}")
                if st and st.get("accuracy") is not None:
                    bits.append(f"accuracy {float(st['accuracy']):.1%}")
            elif key == "letter_oracle" and st and "layers" in st:
                lays = st["layers"]
                bits.append(f"A→layer {lays.get('A', '?')}, B→layer {lays.get('B', '?')}")
            elif key == "form_oracle" and st and st.get("groups"):
                bits.append(", ".join(f"{g}→layer {x}" for g, x in st["groups"].items()))
            if st and st.get("steerable_fraction") is not None:
                bits.append(f"steerable {float(st['steerable_fraction']):.1%}")
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
