"""The figure and files of ``w2s-lens advise``: per-layer first-order steerability with its
intervals over items, the measured slopes of a verification sweep overlaid.

Example::

    >>> fig = advice_figure(adv)  # doctest: +SKIP
    >>> paths = write_advice(adv, "runs/advice")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from w2s_lens.artifacts.files import write_text
from w2s_lens.artifacts.json_files import write_json
from w2s_lens.report.plots_base import _color

__all__ = ["ADVICE_FILES", "advice_figure", "write_advice"]

#: what :func:`write_advice` writes into its directory
ADVICE_FILES = ("advice.json", "items.csv", "advice.html")


def _band(x: list[str], lo: np.ndarray, hi: np.ndarray, color: str, name: str) -> go.Scatter:
    return go.Scatter(x=x + x[::-1], y=list(hi) + list(lo[::-1]), fill="toself",
                      fillcolor=color, opacity=0.2, line={"width": 0}, hoverinfo="skip",
                      name=name, showlegend=True)


def advice_figure(adv: Any) -> go.Figure:
    """Mean first-order steerability per layer with its 95% interval over items (trace 0: the
    band, trace 1: the means), the fixed layer marked, and where ``adv.verification`` exists
    the verified items' mean measured slope with its range (last trace: the measured means).

    Example::

        >>> advice_figure(adv).data[1].name  # doctest: +SKIP
        'first-order mean'
    """
    x = [str(v) for v in adv.layers]
    ci = np.asarray(adv.layer_ci, dtype=float)
    fo = _color(0)
    fig = go.Figure([
        _band(x, ci[:, 0], ci[:, 1], fo, "first-order 95% CI"),
        go.Scatter(x=x, y=np.asarray(adv.layer_mean), mode="lines+markers", name="first-order mean",
                   line={"color": fo},
                   hovertemplate="layer %{x}<br>first-order %{y:+.4f}<extra></extra>")])
    v = adv.verification
    if v is not None:
        m = np.asarray(v.measured, dtype=float)
        fm = np.asarray(v.first_order, dtype=float)
        col = _color(1)
        fig.add_trace(go.Scatter(x=x, y=fm.mean(axis=0), mode="lines", name=(
            f"first-order mean, the {v.n} verified items"), line={"color": fo, "dash": "dot"}))
        fig.add_trace(go.Scatter(
            x=x, y=m.mean(axis=0), mode="lines+markers", name=f"measured (sweep) mean, {v.n} "
            "items", line={"color": col},
            hovertemplate="layer %{x}<br>measured %{y:+.4f}<extra></extra>"))
    if str(adv.fixed_layer) not in x:
        raise ValueError(f"the fixed layer {adv.fixed_layer} is not among the advice's layers "
                         f"{list(adv.layers)}")
    fig.add_vline(x=x.index(str(adv.fixed_layer)), line_dash="dash", line_color="grey",
                  annotation_text=f"fixed layer {adv.fixed_layer}")
    fig.update_layout(
        title=f"First-order steerability per layer: {adv.model} on {adv.dataset} "
              f"({adv.readout}, {adv.n} items)",
        xaxis_title="layer", yaxis_title="steerability (Δ propensity per unit λ)",
        template="plotly_white", legend={"orientation": "h", "y": -0.2})
    return fig


def write_advice(adv: Any, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``advice.json`` (:meth:`Advice.to_dict`), ``items.csv``
    (:meth:`Advice.to_pandas`) and ``advice.html`` (:func:`advice_figure`, plotly.js
    embedded: opens offline) into ``out_dir`` (created).

    Example::

        >>> [p.name for p in write_advice(adv, "runs/advice")]  # doctest: +SKIP
        ['advice.json', 'items.csv', 'advice.html']
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html = advice_figure(adv).to_html(full_html=True, include_plotlyjs=True)
    return [write_json(out / ADVICE_FILES[0], adv.to_dict()),
            write_text(out / ADVICE_FILES[1], adv.to_pandas().to_csv(index=False)),
            write_text(out / ADVICE_FILES[2], html)]
