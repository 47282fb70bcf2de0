"""Per-input figures of a sweep: the inputs × layers heatmap, steerability-vs-layer curves and
propensity-vs-multiplier lines (conventions in :mod:`w2s_lens.report.plots_base`).

Example::

    >>> import numpy as np
    >>> s = np.array([[0.1, 0.5, 0.2], [0.4, 0.0, -0.1]])
    >>> steerability_heatmap(s, layers=[2, 4, 6], ids=["q1", "q2"]).data[0].type
    'heatmap'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from w2s_lens.report.plots_base import (
    Propensity,
    Steerability,
    _as_2d,
    _color,
    _ids,
    _layer_positions,
    _layers,
    best_layer_order,
)
from w2s_lens.sweep.readouts import slopes

__all__ = ["layer_curves", "propensity_lines", "steerability_heatmap"]


def steerability_heatmap(
    steerability: Steerability,
    layers: Sequence[int],
    ids: Sequence[Any] | None = None,
    order: str | Sequence[int] | None = "best_layer",
    show_best: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Inputs × layers heatmap of steerability, on a diverging colour scale centred at 0.

    Args:
        steerability: ``[n_inputs, n_layers]`` array.
        layers: layer number of each column.
        ids: per-input labels (default ``#0, #1, ...``), shown on the y axis and in the hover.
        order: ``"best_layer"`` (rows grouped by best layer, see :func:`best_layer_order`),
            ``"input"``/``None`` (as given) or an explicit permutation of the row indices.
        show_best: overlay a marker on each row's best layer.
        title: figure title (a default naming the ordering is used).

    Trace 0 is the heatmap (its ``z`` rows are in display order, first row at the top); trace 1
    (if ``show_best``) marks the best layer per row.

    >>> fig = steerability_heatmap([[0.0, 1.0], [2.0, 0.0]], layers=[3, 5], ids=["a", "b"])
    >>> fig.data[0].z.tolist()
    [[2.0, 0.0], [0.0, 1.0]]
    """
    s = _as_2d(steerability)
    n, n_layers = s.shape
    lay = _layers(layers, n_layers)
    labels = _ids(ids, n)
    by_best = isinstance(order, str) and order == "best_layer"
    if by_best:
        idx = best_layer_order(s)
    elif order is None or (isinstance(order, str) and order == "input"):
        idx = np.arange(n)
    elif isinstance(order, str):
        raise ValueError(f"order must be 'best_layer', 'input', None or a permutation; got "
                         f"{order!r}")
    else:
        idx = np.asarray(order, dtype=int)
        if sorted(idx.tolist()) != list(range(n)):
            raise ValueError(f"order must be a permutation of range({n})")
    z = s[idx]
    row_ids = [labels[i] for i in idx]
    x = [str(v) for v in lay]
    best = np.argmax(z, axis=1)
    custom = np.empty(z.shape, dtype=object)
    for r in range(n):
        for c in range(n_layers):
            custom[r, c] = [row_ids[r], x[best[r]]]
    vmax = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    vmax = vmax or 1.0
    fig = go.Figure(go.Heatmap(
        z=z, x=x, y=list(range(n)), customdata=custom, colorscale="RdBu", zmid=0.0,
        zmin=-vmax, zmax=vmax, colorbar={"title": {"text": "steerability"}}, name="steerability",
        hovertemplate=("input %{customdata[0]}<br>layer %{x}<br>steerability %{z:.4f}"
                       "<br>best layer %{customdata[1]}<extra></extra>")))
    if show_best:
        fig.add_trace(go.Scatter(
            x=[x[b] for b in best], y=list(range(n)), mode="markers", name="best layer",
            marker={"symbol": "circle-open", "color": "black", "size": 7}, customdata=row_ids,
            hovertemplate="input %{customdata}<br>best layer %{x}<extra></extra>"))
    ordering = "rows ordered by best layer" if by_best else "rows in input order"
    tick = ({"tickmode": "array", "tickvals": list(range(n)), "ticktext": row_ids}
            if n <= 60 else {"showticklabels": False})
    fig.update_layout(
        title={"text": title or f"Steerability per input and layer ({n} inputs; {ordering})"},
        xaxis={"title": {"text": "layer"}, "type": "category"},
        yaxis={"title": {"text": "input"}, "autorange": "reversed", **tick},
        showlegend=show_best, legend={"orientation": "h", "y": -0.15},
        height=max(350, min(1200, 120 + 14 * n)))
    return fig


def layer_curves(
    steerability: Steerability,
    layers: Sequence[int],
    ids: Sequence[Any] | None = None,
    fixed_layer: int | None = None,
    router_layers: Sequence[int] | None = None,
    max_inputs: int = 12,
    title: str | None = None,
) -> go.Figure:
    """Per-input steerability-vs-layer lines, with the fixed layer and the router's picks marked.

    Args:
        steerability: ``[n_inputs, n_layers]``.
        layers: layer number of each column.
        ids: per-input labels.
        fixed_layer: layer number of the single fixed layer; drawn as a dashed vertical line.
        router_layers: per-input layer number chosen by the router (length ``n_inputs``); drawn
            as a star on that input's line (same colour).
        max_inputs: plot only the first ``max_inputs`` inputs (the title says how many of how
            many are shown).

    Traces: for each shown input a ``lines+markers`` trace named by its id, followed (if
    ``router_layers``) by one star-marker trace per input, in the same legend group.

    >>> fig = layer_curves([[0.0, 1.0], [2.0, 0.0]], [3, 5], fixed_layer=5, router_layers=[5, 3])
    >>> [t.name for t in fig.data]
    ['#0', '#1', 'router pick #0', 'router pick #1']
    """
    s = _as_2d(steerability)
    n, n_layers = s.shape
    lay = _layers(layers, n_layers)
    labels = _ids(ids, n)
    if max_inputs < 1:
        raise ValueError(f"max_inputs must be >= 1; got {max_inputs}")
    shown = min(n, int(max_inputs))
    router_pos = None
    if router_layers is not None:
        if len(router_layers) != n:
            raise ValueError(f"router_layers has {len(router_layers)} entries but there are {n} "
                             "inputs")
        router_pos = _layer_positions(router_layers, lay, "router_layers")
    if fixed_layer is not None and int(fixed_layer) not in lay:
        raise ValueError(f"fixed_layer {fixed_layer} is not one of the swept layers {lay}")
    fig = go.Figure()
    best = np.argmax(s, axis=1)
    for i in range(shown):
        fig.add_trace(go.Scatter(
            x=lay, y=s[i], mode="lines+markers", name=labels[i], legendgroup=labels[i],
            line={"color": _color(i)}, marker={"size": 5},
            hovertemplate=(f"input {labels[i]}<br>layer %{{x}}<br>steerability %{{y:.4f}}"
                           f"<br>best layer {lay[best[i]]}<extra></extra>")))
    if router_pos is not None:
        for i in range(shown):
            p = int(router_pos[i])
            fig.add_trace(go.Scatter(
                x=[lay[p]], y=[s[i, p]], mode="markers", name=f"router pick {labels[i]}",
                legendgroup=labels[i], showlegend=False,
                marker={"symbol": "star", "size": 14, "color": _color(i),
                        "line": {"color": "black", "width": 1}},
                hovertemplate=(f"input {labels[i]}<br>router picked layer %{{x}}"
                               f"<br>steerability %{{y:.4f}} (best {s[i].max():.4f} at layer "
                               f"{lay[best[i]]})<extra></extra>")))
    if fixed_layer is not None:
        fig.add_vline(x=int(fixed_layer), line={"dash": "dash", "color": "grey"},
                      annotation_text=f"fixed layer {int(fixed_layer)}",
                      annotation_position="top")
    fig.add_hline(y=0, line={"color": "lightgrey", "width": 1})
    sub = f"{shown} of {n} inputs" if shown < n else f"{n} inputs"
    extra = "; ★ = router's pick" if router_pos is not None else ""
    fig.update_layout(
        title={"text": title or f"Steerability vs layer per input ({sub}{extra})"},
        xaxis={"title": {"text": "layer"}, "tickmode": "array", "tickvals": lay},
        yaxis={"title": {"text": "steerability (propensity slope)"}},
        legend={"title": {"text": "input"}}, hovermode="closest")
    return fig


def propensity_lines(
    propensity: Propensity | Sequence[Any],
    multipliers: Sequence[float],
    layers: Sequence[int],
    input_indices: Sequence[int] | None = None,
    layer_indices: Sequence[int] | None = None,
    ids: Sequence[Any] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Propensity vs steering multiplier, one panel per input and one line per layer.

    Args:
        propensity: ``[n_inputs, n_layers, n_multipliers]``.
        multipliers: the multiplier of each last-axis entry.
        layers: layer number of each layer column.
        input_indices: which inputs (row indices) to show; default the first 3.
        layer_indices: which layer *columns* to show; default all (at most 8, evenly spaced).
        ids: per-input labels for the panel titles.

    Traces are ordered input-major: for input ``input_indices[k]`` and layer column
    ``layer_indices[j]`` the trace is ``fig.data[k * len(layer_indices) + j]``. Each line's name
    is ``"layer <number>"``; its hover gives the least-squares slope (= steerability, from
    :func:`w2s_lens.sweep.readouts.slopes`).

    >>> p = np.zeros((2, 3, 3)); p[:, :, 2] = 1.0
    >>> fig = propensity_lines(p, [-1, 0, 1], [1, 2, 3], input_indices=[1], layer_indices=[0, 2])
    >>> [t.name for t in fig.data]
    ['layer 1', 'layer 3']
    """
    p = np.asarray(propensity, dtype=float)
    if p.ndim != 3:
        raise ValueError(f"propensity must be 3-D [n_inputs, n_layers, n_multipliers]; got "
                         f"shape {p.shape}")
    n, n_layers, m = p.shape
    lay = _layers(layers, n_layers)
    mult = np.asarray(multipliers, dtype=float).reshape(-1)
    if mult.size != m:
        raise ValueError(f"multipliers has {mult.size} entries but propensity has {m} columns")
    labels = _ids(ids, n)
    inp = list(range(min(3, n))) if input_indices is None else [int(i) for i in input_indices]
    if layer_indices is None:
        lidx = (list(range(n_layers)) if n_layers <= 8
                else sorted({int(round(v)) for v in np.linspace(0, n_layers - 1, 8)}))
    else:
        lidx = [int(j) for j in layer_indices]
    if not inp or not lidx:
        raise ValueError("input_indices and layer_indices must not be empty")
    for i in inp:
        if not 0 <= i < n:
            raise ValueError(f"input index {i} out of range for {n} inputs")
    for j in lidx:
        if not 0 <= j < n_layers:
            raise ValueError(f"layer index {j} out of range for {n_layers} layer columns")
    slope = slopes(p, mult)
    cols = 2 if len(inp) == 4 else min(len(inp), 3)
    rows = -(-len(inp) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"input {labels[i]}" for i in inp],
                        shared_yaxes=True, horizontal_spacing=0.06,
                        vertical_spacing=min(0.25, 0.4 / rows) if rows > 1 else 0.1)
    for k, i in enumerate(inp):
        r, c = k // cols + 1, k % cols + 1
        for jj, j in enumerate(lidx):
            fig.add_trace(go.Scatter(
                x=mult, y=p[i, j], mode="lines+markers", name=f"layer {lay[j]}",
                legendgroup=f"layer {lay[j]}", showlegend=k == 0, line={"color": _color(jj)},
                hovertemplate=(f"input {labels[i]}<br>layer {lay[j]}<br>multiplier %{{x}}"
                               "<br>propensity %{y:.4f}"
                               f"<br>slope (steerability) {slope[i, j]:.4f}<extra></extra>")),
                row=r, col=c)
        if k + cols >= len(inp):  # bottom panel of its column
            fig.update_xaxes(title_text="multiplier", row=r, col=c)
        if c == 1:
            fig.update_yaxes(title_text="propensity", row=r, col=c)
    fig.update_layout(
        title={"text": title or "Propensity vs steering multiplier (slope = steerability)"},
        height=max(380, 330 * rows), legend={"title": {"text": "layer"}})
    return fig
