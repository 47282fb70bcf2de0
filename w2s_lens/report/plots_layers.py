"""Where behaviour is encoded: best-layer histograms of one sweep, of several groups side by
side, and of several runs made with different readouts (conventions in
:mod:`w2s_lens.report.plots_base`).

:func:`readout_histograms` is the one figure that reads run directories itself (through
:class:`~w2s_lens.evaluation.storage.rundir.RunDir`).

Example::

    >>> best_layer_histogram([[0.0, 1.0], [2.0, 0.0]], layers=[3, 5]).data[0].type
    'bar'
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Int

from w2s_lens.report.plots_base import Steerability, _best_positions, _check_layer_list, _color

__all__ = ["best_layer_histogram", "layer_histograms", "readout_histograms"]


def best_layer_histogram(
    steerability_or_best_layers: Steerability | Sequence[int] | Int[np.ndarray, " n_inputs"],
    layers: Sequence[int],
    indices: bool = False,
    title: str | None = None,
) -> go.Figure:
    """Bar chart of how many inputs have each layer as their best layer.

    Args:
        steerability_or_best_layers: either ``[n_inputs, n_layers]`` steerability (best layer =
            argmax, ties to the earlier layer) or a 1-D array of per-input best layers.
        layers: layer number of each column / the layers to count over.
        indices: for a 1-D input, whether its values are column indices (as returned by
            :func:`w2s_lens.routing.labels.best_layers`) instead of layer numbers.

    Trace 0 is a bar trace with ``x`` the layers (as category labels) and ``y`` the counts,
    zeros included.

    >>> best_layer_histogram([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0]], [3, 5]).data[0].y.tolist()
    [1, 2]
    """
    lay = _check_layer_list(layers)
    pos = _best_positions(steerability_or_best_layers, lay, indices)
    source = ("argmax steerability" if np.asarray(steerability_or_best_layers).ndim == 2
              else "given best layers")
    n = int(pos.size)
    counts = np.bincount(pos, minlength=len(lay)).astype(int)
    fig = go.Figure(go.Bar(
        x=[str(v) for v in lay], y=counts, customdata=counts / max(n, 1),
        text=[str(c) if c else "" for c in counts], textposition="outside", name="inputs",
        hovertemplate=("layer %{x}<br>%{y} inputs (%{customdata:.1%}) have their best layer "
                       "here<extra></extra>")))
    fig.update_layout(title={"text": title or f"Best layer per input ({n} inputs; {source})"},
                      xaxis={"title": {"text": "best layer"}, "type": "category"},
                      yaxis={"title": {"text": "number of inputs"}}, bargap=0.15)
    return fig


def layer_histograms(
    best: Mapping[str, Any],
    layers: Sequence[int],
    share: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Grouped best-layer histograms, one bar trace per label (e.g. train vs test, letter A vs
    B, one readout vs another), so distributions of different sizes can be compared.

    Args:
        best: label -> per-input best *layer numbers* (1-D) or a ``[n, n_layers]``
            steerability whose columns are ``layers``.
        layers: the layers to count over (x axis, in this order).
        share: plot each label's share of its own inputs (counts are in the hover); False:
            counts.

    Trace ``k`` is label ``k``: ``x`` the layers, ``y`` the shares (or counts), ``customdata``
    the counts; its name is ``"<label> (n=<inputs>)"``.

    >>> fig = layer_histograms({"A": [3, 3, 5], "B": [5]}, [3, 5])
    >>> [t.name for t in fig.data], [round(float(v), 2) for v in fig.data[0].y]
    (['A (n=3)', 'B (n=1)'], [0.67, 0.33])
    """
    lay = _check_layer_list(layers)
    if not best:
        raise ValueError("best is empty: give at least one label")
    fig = go.Figure()
    for k, (label, values) in enumerate(best.items()):
        pos = _best_positions(values, lay, indices=False)
        counts = np.bincount(pos, minlength=len(lay)).astype(int)
        n = int(pos.size)
        y = counts / max(n, 1) if share else counts
        fig.add_trace(go.Bar(
            x=[str(v) for v in lay], y=y, customdata=counts, name=f"{label} (n={n})",
            marker={"color": _color(k)},
            hovertemplate=(f"{label}<br>layer %{{x}}<br>%{{customdata}} of {n} inputs "
                           "(%{y:.1%})<extra></extra>" if share else
                           f"{label}<br>layer %{{x}}<br>%{{y}} of {n} inputs<extra></extra>")))
    fig.update_layout(
        barmode="group", title={"text": title or "Best layer per input"},
        xaxis={"title": {"text": "best layer"}, "type": "category"},
        yaxis={"title": {"text": "share of inputs" if share else "number of inputs"},
               **({"tickformat": ".0%"} if share else {})},
        legend={"orientation": "h", "y": -0.2}, bargap=0.15)
    return fig


def readout_histograms(
    run_dirs: Mapping[str, str | os.PathLike],
    split: str = "base",
    method: str | None = None,
    title: str | None = None,
) -> go.Figure:
    """Where each readout puts the behaviour: the best-layer histogram of several runs (one
    per readout, e.g. letter mirrored / letter single-order / cloze) in one figure.

    Each directory is read through :class:`~w2s_lens.evaluation.storage.rundir.RunDir`: an
    evaluation run's
    ``<method>/<split>`` sweep (default the first method it holds and the base test variant),
    or a plain sweep directory's sweep; best layers are taken per item (the mirrored sweep).

    Args:
        run_dirs: label -> run or sweep directory.
        split: ``"train"`` or a variant name (evaluation runs only).
        method: ``"caa"`` or ``"l2s"`` (evaluation runs; default the first present).

    Returns:
        :func:`layer_histograms` of the labels over the union of their layers (shares).

    Raises:
        FileNotFoundError: a directory has no such method or sweep.

    >>> fig = readout_histograms({"letter": "runs/letter", "cloze": "runs/cloze"})  # doctest: +SKIP
    """
    from w2s_lens.evaluation.storage.rundir import RunDir

    best: dict[str, list[int]] = {}
    all_layers: set[int] = set()
    for label, path in run_dirs.items():
        rd = RunDir(path)
        if rd.read_run().get("kind") == "sweep":
            where = rd.path
        else:
            held = rd.methods()
            m = method or (held[0] if held else None)
            if m is None or m not in held:
                raise FileNotFoundError(f"{rd.path} holds no results of method {m!r} (it has "
                                        f"{held})")
            where = rd.sweep_dir(split, m)
        sweep, _ = rd.load_sweep(where)
        items = sweep.mirrored()
        best[str(label)] = [items.layers[i] for i in np.argmax(items.steerability, axis=1)]
        all_layers.update(items.layers)
    return layer_histograms(best, sorted(all_layers), share=True, title=title or (
        f"Best layer per item by readout ({split}{'' if method is None else ', ' + method})"))
