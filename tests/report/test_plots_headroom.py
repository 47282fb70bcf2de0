"""Figures of the headroom diagnostics (w2s_lens.report.plots_headroom) on what
w2s_lens.evaluation.headroom.diagnostics computes from small steerability matrices (the learning
curve's rows read as the typed rows of a result)."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

from w2s_lens.evaluation.headroom.diagnostics import learning_curve, retest_agreement
from w2s_lens.evaluation.results.headroom import CurveRow, LearningCurve
from w2s_lens.report import plots_headroom


def test_retest_matrix_is_labelled_with_layer_numbers() -> None:
    s1 = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    s2 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    r = retest_agreement(s1, s2)
    fig = plots_headroom.retest_matrix(r["matrix"], [3, 7, 11])
    trace = fig.data[0]
    assert np.asarray(trace.z).tolist() == [[1, 1, 0], [0, 0, 1], [0, 0, 1]]
    assert list(trace.x) == list(trace.y) == ["3", "7", "11"]
    assert fig.layout.title.text == "Best layer under half 1 × half 2 (4 items; 50.0% on the " \
                                    "diagonal)"
    assert r["agreement"] == 0.5
    assert fig.layout.xaxis.title.text == "best layer, vectors from half 2"
    with pytest.raises(ValueError, match=r"must be \[2, 2\]"):
        plots_headroom.retest_matrix(r["matrix"], [3, 7])


def test_learning_curve_has_a_trace_per_router_and_the_majority_layer() -> None:
    s = np.array([[1.0, 0.0], [0.0, 1.0]] * 8)
    rows = learning_curve(s, s, s, s, ["logreg", "knn"], sizes=[4, 16], repeats=2, n_boot=100)
    typed = LearningCurve.from_dict({"rows": rows}).rows
    assert all(isinstance(r, CurveRow) for r in typed)
    fig = plots_headroom.learning_curve_figure(typed)
    assert [t.name for t in fig.data] == ["logreg", "knn", "logreg accuracy", "knn accuracy",
                                          "majority layer"]
    logreg = [r for r in rows if r["router"] == "logreg"]
    top = fig.data[0]
    assert list(top.x) == [4, 16] and list(top.y) == [r["diff"] for r in logreg]
    for i, r in enumerate(logreg):
        assert top.error_y.array[i] == pytest.approx(r["ci"][1] - r["diff"])
        assert top.error_y.arrayminus[i] == pytest.approx(r["diff"] - r["ci"][0])
    assert list(fig.data[2].y) == [r["accuracy"] for r in logreg]
    assert list(fig.data[4].y) == [r["majority_accuracy"] for r in logreg]
    assert top.yaxis == "y" and fig.data[2].yaxis == "y2"  # the accuracies are a second panel
    with pytest.raises(ValueError, match="no rows"):
        plots_headroom.learning_curve_figure([])
    with pytest.raises(TypeError, match="CurveRow"):
        plots_headroom.learning_curve_figure(rows)  # the results.json dicts: read them first
    with pytest.raises(ValueError, match="no rows with a training size"):
        plots_headroom.learning_curve_figure([CurveRow(router="logreg", diff=0.1)])
    # rows without a training size are left out; repeats missing read "?"
    fig = plots_headroom.learning_curve_figure([*typed, CurveRow(router="logreg", diff=9.0)])
    assert list(fig.data[0].y) == [r["diff"] for r in logreg]
    fig = plots_headroom.learning_curve_figure([CurveRow(n_train=8, router="x", diff=0.5)])
    assert list(fig.data[0].customdata) == ["?"] and fig.data[0].error_y.array == (0.0,)


def test_choice_intervals_draw_intervals_only_where_given() -> None:
    fig = plots_headroom.choice_intervals([("fixed", 0.2, [0.1, 0.35]), ("xv oracle", 0.3, None),
                                           ("oracle", None, None)])
    bar = fig.data[0]
    assert list(bar.x) == ["fixed", "xv oracle", "oracle"]
    assert bar.y[0] == 0.2 and bar.y[1] == 0.3 and np.isnan(bar.y[2])
    assert [round(v, 3) for v in bar.error_y.array] == [0.15, 0.0, 0.0]
    assert [round(v, 3) for v in bar.error_y.arrayminus] == [0.1, 0.0, 0.0]
    assert list(bar.customdata) == ["95% interval", "no interval", "no interval"]


def test_the_docstring_examples_run() -> None:
    """The examples in the docstrings (typed results in, the text shown out) hold."""
    failed, attempted = doctest.testmod(importlib.import_module("w2s_lens.report.plots_headroom"),
                                        optionflags=doctest.ELLIPSIS)
    assert failed == 0 and attempted > 0
