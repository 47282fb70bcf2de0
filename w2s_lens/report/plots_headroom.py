"""Plotly figures of the headroom diagnostics (``result.methods[m].headroom`` of an
:class:`~w2s_lens.evaluation.results.typed.EvaluationResult`, written by
:mod:`w2s_lens.evaluation.headroom.diagnostics`): the retest agreement matrix of the two halves'
best layers, the learning curve of W2S − fixed against the number of training items, and the
layer choices (fixed, W2S, in-sample and cross-validated oracles) side by side.

The matrix and the layer choices are plain numbers (``Retest.matrix``, tuples of means and
intervals); the learning curve is its typed rows
(:class:`~w2s_lens.evaluation.results.headroom.CurveRow`). A missing number (``None``) is drawn
as NaN, a missing interval as none.

Example::

    >>> fig = retest_matrix([[3, 1], [0, 4]], layers=[6, 12])
    >>> fig.data[0].type, list(fig.data[0].x), list(fig.data[0].y)
    ('heatmap', ['6', '12'], ['6', '12'])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Int
from plotly.subplots import make_subplots

from w2s_lens.evaluation.results.headroom import CurveRow
from w2s_lens.report.plots_base import _check_layer_list, _color

__all__ = ["choice_intervals", "learning_curve_figure", "retest_matrix"]

#: Colour of the majority-layer baseline in :func:`learning_curve_figure`.
MAJORITY_COLOR = "#7f7f7f"


def _f(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return v


def _offsets(mean: float, ci: Any) -> tuple[float, float]:
    """``(hi - mean, mean - lo)`` of an interval, zeros where it is missing."""
    if not isinstance(ci, Sequence) or isinstance(ci, str) or len(ci) != 2:
        return 0.0, 0.0
    lo, hi = _f(ci[0]), _f(ci[1])
    if math.isnan(lo) or math.isnan(hi) or math.isnan(mean):
        return 0.0, 0.0
    return hi - mean, mean - lo


def retest_matrix(
    matrix: Int[np.ndarray, "n_layers n_layers"] | Sequence[Sequence[int]],
    layers: Sequence[int],
    title: str | None = None,
) -> go.Figure:
    """Counts of items by (best layer under half 1's vectors, best layer under half 2's).

    Rows (y) are the best layer under half 1, columns (x) under half 2, both labelled with the
    layer numbers; items on the diagonal agree. Trace 0 is a heatmap whose ``z`` is
    ``matrix``; the default title gives the number of items and the share on the diagonal.

    Args:
        matrix: ``[L, L]`` counts, as ``retest["matrix"]``.
        layers: the layer numbers of the axes (``retest["layers"]``).

    >>> retest_matrix([[2, 0], [1, 1]], [3, 5]).layout.title.text
    'Best layer under half 1 × half 2 (4 items; 75.0% on the diagonal)'
    """
    z = np.asarray(matrix, dtype=int)
    lay = _check_layer_list(layers)
    if z.ndim != 2 or z.shape != (len(lay), len(lay)):
        raise ValueError(f"the retest matrix must be [{len(lay)}, {len(lay)}] for layers {lay}; "
                         f"got shape {z.shape}")
    n = int(z.sum())
    diag = f"{np.trace(z) / n:.1%}" if n else "–"
    labels = [str(v) for v in lay]
    fig = go.Figure(go.Heatmap(
        z=z.tolist(), x=labels, y=labels, text=z.tolist(), texttemplate="%{text}",
        colorscale="Blues", colorbar={"title": {"text": "items"}},
        hovertemplate=("best under half 1: layer %{y}<br>best under half 2: layer %{x}<br>"
                       "%{z} items<extra></extra>")))
    fig.update_layout(
        height=max(400, min(900, 160 + 45 * len(lay))),
        title={"text": title or f"Best layer under half 1 × half 2 ({n} items; {diag} on the "
                                "diagonal)"},
        xaxis={"title": {"text": "best layer, vectors from half 2"}, "type": "category"},
        yaxis={"title": {"text": "best layer, vectors from half 1"}, "type": "category",
               "autorange": "reversed"})
    return fig


def learning_curve_figure(rows: Sequence[CurveRow],
                          title: str | None = None) -> go.Figure:
    """W2S − fixed with its interval against the number of training items, one trace per
    router (top panel), and each router's accuracy with the majority-layer accuracy (bottom).

    Args:
        rows: ``headroom.learning_curve.rows``: one
            :class:`~w2s_lens.evaluation.results.headroom.CurveRow` per router and size
            (``n_train``, ``router``, ``diff``, ``ci``, ``accuracy``, ``majority_accuracy``);
            rows without ``n_train`` are not drawn.

    Traces: one W2S − fixed trace per router (in order of first appearance, error bars the
    interval offsets), then one accuracy trace per router, then the majority layer (its
    accuracy per size, from the first row of that size).

    >>> rows = [CurveRow(n_train=12, router="logreg", diff=0.1, ci=(0.0, 0.2), accuracy=0.5,
    ...                  majority_accuracy=0.4),
    ...         CurveRow(n_train=24, router="logreg", diff=0.3, ci=(0.1, 0.5), accuracy=0.8,
    ...                  majority_accuracy=0.4)]
    >>> fig = learning_curve_figure(rows)
    >>> [t.name for t in fig.data], list(fig.data[0].y)
    (['logreg', 'logreg accuracy', 'majority layer'], [0.1, 0.3])
    """
    if not rows:
        raise ValueError("the learning curve has no rows")
    if not all(isinstance(r, CurveRow) for r in rows):
        raise TypeError("rows must be CurveRow objects (result.methods[m].headroom."
                        "learning_curve.rows; CurveRow.from_dict reads one row of "
                        "results.json)")
    rows = [r for r in rows if r.n_train is not None]
    if not rows:
        raise ValueError("the learning curve has no rows with a training size")
    routers = list(dict.fromkeys(str(r.router) for r in rows))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=("W2S − fixed (95% interval)",
                                        "router accuracy and the majority layer"))
    mine_of = {kind: sorted((r for r in rows if str(r.router) == kind), key=lambda r: r.n_train)
               for kind in routers}
    for i, kind in enumerate(routers):
        mine = mine_of[kind]
        x = [int(r.n_train) for r in mine]
        y = [_f(r.diff) for r in mine]
        plus, minus = zip(*(_offsets(m, r.ci) for m, r in zip(y, mine)))
        reps = ["?" if r.repeats is None else r.repeats for r in mine]
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines+markers", name=kind, legendgroup=kind,
            line={"color": _color(i)}, customdata=reps,
            error_y={"type": "data", "symmetric": False, "array": list(plus),
                     "arrayminus": list(minus)},
            hovertemplate=(f"{kind}<br>%{{x}} training items (%{{customdata}} repeats)<br>"
                           "W2S − fixed %{y:+.4f}<extra></extra>")), row=1, col=1)
    for i, kind in enumerate(routers):
        mine = mine_of[kind]
        fig.add_trace(go.Scatter(
            x=[int(r.n_train) for r in mine], y=[_f(r.accuracy) for r in mine],
            mode="lines+markers", name=f"{kind} accuracy", legendgroup=kind,
            line={"color": _color(i), "dash": "dot"},
            hovertemplate=f"{kind}<br>%{{x}} training items<br>accuracy %{{y:.1%}}"
                          "<extra></extra>"), row=2, col=1)
    first = {int(r.n_train): r for r in reversed(rows)}
    sizes = sorted(first)
    fig.add_trace(go.Scatter(
        x=sizes, y=[_f(first[k].majority_accuracy) for k in sizes],
        mode="lines+markers", name="majority layer", line={"color": MAJORITY_COLOR,
                                                           "dash": "dash"},
        hovertemplate="majority layer<br>%{x} training items<br>accuracy %{y:.1%}"
                      "<extra></extra>"), row=2, col=1)
    fig.add_hline(y=0.0, line={"color": "#444", "width": 1}, row=1, col=1)
    fig.update_xaxes(title_text="training items (n_train)", row=2, col=1)
    fig.update_yaxes(title_text="W2S − fixed", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", range=[0, 1.05], row=2, col=1)
    fig.update_layout(height=640, title={"text": title or "Learning curve: routers refitted on "
                                                          "nested subsets of the training items"})
    return fig


def choice_intervals(entries: Sequence[tuple[str, Any, Any]],
                     title: str | None = None) -> go.Figure:
    """Mean steerability of several layer choices as bars, with their intervals where given.

    Args:
        entries: ``(label, mean, ci or None)`` per bar, in order (e.g. fixed, W2S,
            cross-validated fixed, cross-validated oracle, in-sample oracle).

    Trace 0 is a bar trace with one bar per entry; a missing mean is NaN, a missing interval
    a zero-length error bar.

    >>> fig = choice_intervals([("fixed", 0.2, [0.1, 0.3]), ("xv oracle", 0.25, None)])
    >>> list(fig.data[0].y), [round(v, 3) for v in fig.data[0].error_y.array]
    ([0.2, 0.25], [0.1, 0.0])
    """
    if not entries:
        raise ValueError("no layer choices to draw")
    labels = [str(e[0]) for e in entries]
    means = [_f(e[1]) for e in entries]
    plus, minus = zip(*(_offsets(m, e[2]) for m, e in zip(means, entries)))
    has_ci = ["95% interval" if p or q else "no interval" for p, q in zip(plus, minus)]
    fig = go.Figure(go.Bar(
        x=labels, y=means, marker={"color": [_color(i) for i in range(len(labels))]},
        customdata=has_ci,
        error_y={"type": "data", "symmetric": False, "array": list(plus),
                 "arrayminus": list(minus)},
        hovertemplate="%{x}<br>mean steerability %{y:.4f}<br>%{customdata}<extra></extra>"))
    fig.update_layout(
        title={"text": title or "Layer choices on the test items"},
        xaxis={"title": {"text": "layer choice"}, "type": "category"},
        yaxis={"title": {"text": "mean steerability"}}, showlegend=False)
    return fig
