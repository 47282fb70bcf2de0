"""The powered study at a glance (:mod:`w2s_lens.report.tables.study`): per dataset, W2S − fixed
and the cross-validated oracle − fixed with their 95% intervals, one panel per protocol ×
model, a vertical line at zero.

:func:`study_panels` turns study rows into plain panels (what any renderer draws: the plotly
figure here, the static image of ``analysis/powered_table.py``); :func:`study_figure` draws
them. Datasets not yet run keep their place on the y axis with no marker, and their label says
so, as does a dataset that ran smaller than planned. A missing number is NaN, a missing
interval none (as in :mod:`.plots_headroom`).

Example::

    >>> rows = [{"protocol": "cloze-0.5b", "model": "m", "dataset": "d", "method": "caa",
    ...          "status": "done", "diff": 0.1, "diff_lo": 0.0, "diff_hi": 0.2,
    ...          "xv_diff": 0.3, "xv_lo": 0.1, "xv_hi": 0.5}]
    >>> fig = study_figure(rows)
    >>> [t.name for t in fig.data], list(fig.data[0].x)
    (['W2S − fixed', 'cross-validated oracle − fixed'], [0.1])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from w2s_lens.report.formatting import fmt_p
from w2s_lens.report.plots_base import _color
from w2s_lens.report.plots_headroom import _f, _offsets

__all__ = ["OFFSET", "SERIES", "study_figure", "study_panels"]

#: The two comparisons drawn per dataset: (label, mean key, interval keys, p key).
SERIES = (("W2S − fixed", "diff", ("diff_lo", "diff_hi"), "p_value"),
          ("cross-validated oracle − fixed", "xv_diff", ("xv_lo", "xv_hi"), "xv_p"))
#: Vertical distance of the two markers from their dataset's line (W2S above, oracle below).
OFFSET = 0.15


def _label(r: Mapping[str, Any], several_methods: bool, several_routers: bool = False) -> str:
    text = str(r.get("dataset"))
    if several_methods:
        text += f" · {r.get('method')}"
    if several_routers:  # the study's two primary comparisons: question and options views
        text += f" · {r.get('router')}"
    status = r.get("status")
    if status != "done":
        return f"{text} ({status})"
    return text + (" (smaller than planned)" if r.get("smaller_than_planned") else "")


def _hover(r: Mapping[str, Any], name: str, mean: float, ci: Sequence[Any],
           p_key: str) -> str:
    lines = [f"{r.get('dataset')} · {r.get('method')} · W2S router {r.get('router')} "
             f"({r.get('protocol')})"]
    if r.get("status") != "done":
        return "<br>".join(lines + [str(r.get("status"))])
    lo, hi = (_f(x) for x in ci)
    interval = "" if math.isnan(lo) or math.isnan(hi) else f" [{lo:+.3f}, {hi:+.3f}]"
    lines.append(f"{name}: {mean:+.3f}{interval}" if not math.isnan(mean) else f"{name}: –")
    nz = r.get("n_nonzero") if p_key == "p_value" else None
    n = r.get("n_test") if p_key == "p_value" else r.get("xv_n")
    lines.append(f"n = {n} test items" + ("" if nz is None else
                                                        f" ({nz} non-zero)")
                 + f", {r.get('n_train')} training items")
    lines.append(f"p (one-sided, sign-flip) = {fmt_p(r.get(p_key))}")
    if p_key == "p_value":
        bh = "beats" if r.get("beats_after_bh") else "no"
        lines.append(f"{r.get('verdict')}; after BH: {bh}")
    return "<br>".join(lines)


def study_panels(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Study rows grouped into panels, one per protocol × model, in order of appearance.

    Each panel is ``{"title", "protocol", "model", "labels", "series"}``: ``labels`` the
    y-axis labels (one per dataset × method × primary router, top to bottom: label ``i`` at
    ``y = i``; the router is named when a panel has several),
    ``series`` one entry per comparison of :data:`SERIES` with ``name``, ``color``,
    ``symbol`` (plotly's marker name), ``y`` (``i`` ∓ :data:`OFFSET`: W2S above, the oracle
    below), ``mean``, ``lo``, ``hi`` (floats, NaN where missing) and ``hover`` (text per
    label).

    Example:
        >>> p = study_panels([{"protocol": "p", "model": "m", "dataset": "d",
        ...                    "method": "caa", "status": "not run"}])
        >>> p[0]["title"], p[0]["labels"], p[0]["series"][0]["mean"]
        ('p · m', ['d (not run)'], [nan])
    """
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r.get("protocol"), []).append(r)
    panels = []
    for protocol, sub in groups.items():
        model = ", ".join(dict.fromkeys(str(r.get("model")) for r in sub))
        several = len({r.get("method") for r in sub}) > 1
        routers = len({r.get("router") for r in sub}) > 1
        series = []
        for j, (name, key, (lo_key, hi_key), p_key) in enumerate(SERIES):
            mean = [_f(r.get(key)) for r in sub]
            cis = [[r.get(lo_key), r.get(hi_key)] for r in sub]
            series.append({
                "name": name, "color": _color(j), "symbol": ("circle", "diamond")[j],
                "y": [k + (OFFSET if j else -OFFSET) for k in range(len(sub))],
                "mean": mean, "lo": [_f(c[0]) for c in cis],
                "hi": [_f(c[1]) for c in cis],
                "hover": [_hover(r, name, m, c, p_key) for r, m, c in zip(sub, mean, cis)]})
        panels.append({"title": f"{protocol} · {model}", "protocol": protocol, "model": model,
                       "labels": [_label(r, several, routers) for r in sub],
                       "series": series})
    return panels


def study_figure(rows: Sequence[Mapping[str, Any]], title: str | None = None) -> go.Figure:
    """Per dataset (y), W2S − fixed and the cross-validated oracle − fixed as markers with
    horizontal 95% intervals, one panel per protocol × model (:func:`study_panels`), a
    vertical line at zero in each; hover text gives n, p and the verdict.

    Traces: per panel, one trace per comparison of :data:`SERIES` (in that order; legend
    entries on the first panel only). The y axis is numeric (dataset ``i`` at ``i``, the two
    markers :data:`OFFSET` above and below) with the labels as tick text, top to bottom.

    Raises:
        ValueError: no rows.

    Example:
        >>> fig = study_figure([{"protocol": "p", "model": "m", "dataset": "d",
        ...                      "status": "done", "diff": -0.2, "xv_diff": None}])
        >>> len(fig.data), fig.layout.yaxis.ticktext
        (2, ('d',))
    """
    panels = study_panels(rows)
    if not panels:
        raise ValueError("no study rows to draw")
    sizes = [len(p["labels"]) for p in panels]
    fig = make_subplots(rows=len(panels), cols=1, subplot_titles=[p["title"] for p in panels],
                        row_heights=[max(s, 1) for s in sizes],
                        vertical_spacing=min(0.3 / len(panels), 0.12))
    for i, panel in enumerate(panels, start=1):
        for s in panel["series"]:
            plus, minus = zip(*(_offsets(m, [lo, hi])
                                for m, lo, hi in zip(s["mean"], s["lo"], s["hi"])))
            fig.add_trace(go.Scatter(
                x=s["mean"], y=s["y"], mode="markers", name=s["name"], legendgroup=s["name"],
                showlegend=i == 1, text=s["hover"], hovertemplate="%{text}<extra></extra>",
                marker={"color": s["color"], "size": 9, "symbol": s["symbol"]},
                error_x={"type": "data", "symmetric": False, "array": list(plus),
                         "arrayminus": list(minus), "color": s["color"]}), row=i, col=1)
        fig.add_vline(x=0.0, line={"color": "#444", "width": 1}, row=i, col=1)
        fig.update_yaxes(tickvals=list(range(len(panel["labels"]))), ticktext=panel["labels"],
                         range=[len(panel["labels"]) - 0.5, -0.5], row=i, col=1)
        fig.update_xaxes(zeroline=False, row=i, col=1)
    fig.update_xaxes(title_text="difference in mean steerability (95% interval)",
                     row=len(panels), col=1)
    fig.update_layout(
        height=max(360, 120 + 70 * len(panels) + 55 * sum(sizes)),
        title={"text": title or "The powered study: W2S − fixed and cross-validated oracle − "
                                "fixed per dataset (BASE test items; the oracle on the retest's "
                                "items)"},
        legend={"orientation": "h", "y": -0.08 if len(panels) > 1 else -0.2})
    return fig
