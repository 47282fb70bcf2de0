"""Plotly figures of steering sweeps: one import for the sweep figure families.

The figures live by family: per-input figures of a sweep (heatmap, layer curves, propensity
lines) in :mod:`w2s_lens.report.plots_inputs`, best-layer histograms (of a sweep, of groups, of
runs with different readouts) in :mod:`w2s_lens.report.plots_layers`, shared checks and the
conventions in :mod:`w2s_lens.report.plots_base`; this module re-exports all of them, so
``from w2s_lens.report import plots`` then ``plots.steerability_heatmap(...)`` works. The
figures of evaluation results (method comparison, confusion matrices) are in
:mod:`w2s_lens.report.plots_results`.

Most functions take plain arrays / lists / dicts (a :class:`~w2s_lens.sweep.runner.SweepResult`'s
``steerability``, ``propensity``, ``layers``) and return a :class:`plotly.graph_objects.Figure`;
:func:`readout_histograms` reads run directories itself (through
:class:`~w2s_lens.evaluation.rundir.RunDir`), to compare runs made with different readouts.

Conventions:

* ``steerability`` is ``[n_inputs, n_layers]`` (slope of propensity vs multiplier per layer);
* ``layers`` are the model layer numbers of the columns (need not be contiguous);
* "best layer" is the argmax over layers with ties going to the earlier column (``np.argmax``,
  as :func:`w2s_lens.routing.labels.best_layers`);
* per-input layer choices (router / oracle / fixed) are given as *layer numbers*, not column
  indices, unless a function says otherwise.

Example::

    >>> import numpy as np
    >>> from w2s_lens.report import plots
    >>> s = np.array([[0.1, 0.5, 0.2], [0.4, 0.0, -0.1]])
    >>> fig = plots.steerability_heatmap(s, layers=[2, 4, 6], ids=["q1", "q2"])
    >>> fig.data[0].type
    'heatmap'
"""

from __future__ import annotations

from w2s_lens.report.plots_base import best_layer_order
from w2s_lens.report.plots_inputs import layer_curves, propensity_lines, steerability_heatmap
from w2s_lens.report.plots_layers import (
    best_layer_histogram,
    layer_histograms,
    readout_histograms,
)

__all__ = [
    "best_layer_histogram",
    "best_layer_order",
    "layer_curves",
    "layer_histograms",
    "propensity_lines",
    "readout_histograms",
    "steerability_heatmap",
]
