"""Per-input sweep figures (w2s_lens.report.plots_inputs): heatmap, layer curves and
propensity lines on small arrays."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
from helpers_plots import IDS, LAYERS, STEER

from w2s_lens.report import plots_inputs, plots_layers


def test_heatmap_rows_ordered_by_best_layer() -> None:
    fig = plots_inputs.steerability_heatmap(STEER, LAYERS, IDS)
    assert isinstance(fig, go.Figure)
    hm, best = fig.data
    assert hm.type == "heatmap" and best.type == "scatter"
    z = np.asarray(hm.z)
    assert z.shape == (4, 4)
    np.testing.assert_array_equal(z, STEER[[3, 1, 2, 0]])
    # best layer per displayed row is non-decreasing
    cols = np.argmax(z, axis=1)
    assert (np.diff(cols) >= 0).all()
    assert list(hm.x) == ["2", "4", "6", "8"]
    assert list(fig.layout.yaxis.ticktext) == ["d", "b", "c", "a"]
    assert list(best.x) == ["2", "2", "4", "6"]
    # diverging scale centred at 0, symmetric limits
    assert hm.zmid == 0 and hm.zmin == -hm.zmax
    assert fig.layout.yaxis.autorange == "reversed"
    assert "best layer" in fig.layout.title.text


def test_heatmap_input_order_and_errors() -> None:
    fig = plots_inputs.steerability_heatmap(STEER, LAYERS, order="input", show_best=False)
    assert len(fig.data) == 1
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), STEER)
    fig = plots_inputs.steerability_heatmap(STEER, LAYERS, order=[3, 2, 1, 0])
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), STEER[::-1])
    with pytest.raises(ValueError, match="2-D"):
        plots_inputs.steerability_heatmap(STEER[0], LAYERS)
    with pytest.raises(ValueError, match="layers has 3 entries"):
        plots_inputs.steerability_heatmap(STEER, LAYERS[:3])
    with pytest.raises(ValueError, match="ids has 2 entries"):
        plots_inputs.steerability_heatmap(STEER, LAYERS, ids=["x", "y"])
    with pytest.raises(ValueError, match="permutation"):
        plots_inputs.steerability_heatmap(STEER, LAYERS, order=[0, 0, 1, 2])


def test_layer_curves_marks_fixed_and_router() -> None:
    router = [6, 4, 8, 2]
    fig = plots_inputs.layer_curves(STEER, LAYERS, IDS, fixed_layer=4, router_layers=router)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    stars = [t for t in fig.data if t.mode == "markers"]
    assert [t.name for t in lines] == IDS
    assert len(stars) == 4
    for i, t in enumerate(stars):
        assert t.marker.symbol == "star"
        assert list(t.x) == [router[i]]
        assert t.y[0] == pytest.approx(STEER[i, LAYERS.index(router[i])])
        assert t.marker.color == lines[i].line.color
    vlines = [s for s in fig.layout.shapes if s.x0 == s.x1 == 4]
    assert len(vlines) == 1
    assert any("fixed layer 4" in a.text for a in fig.layout.annotations)


def test_layer_curves_max_inputs_and_errors() -> None:
    s = np.random.default_rng(0).normal(size=(20, 4))
    fig = plots_inputs.layer_curves(s, LAYERS, max_inputs=5)
    assert len(fig.data) == 5
    assert "5 of 20" in fig.layout.title.text
    with pytest.raises(ValueError, match="not one of the swept layers"):
        plots_inputs.layer_curves(STEER, LAYERS, router_layers=[6, 4, 7, 2])
    with pytest.raises(ValueError, match="router_layers has 2 entries"):
        plots_inputs.layer_curves(STEER, LAYERS, router_layers=[6, 4])
    with pytest.raises(ValueError, match="fixed_layer 3"):
        plots_inputs.layer_curves(STEER, LAYERS, fixed_layer=3)


def test_propensity_lines_structure() -> None:
    mult = [-1.0, 0.0, 1.0]
    p = np.zeros((3, 4, 3))
    p[:, :, :] = np.array(mult) * np.arange(4)[None, :, None] * 0.1 + 0.5
    fig = plots_inputs.propensity_lines(p, mult, LAYERS, input_indices=[0, 2], layer_indices=[1, 3])
    assert len(fig.data) == 4
    assert [t.name for t in fig.data] == ["layer 4", "layer 8", "layer 4", "layer 8"]
    assert "slope (steerability) 0.1000" in fig.data[0].hovertemplate
    assert "slope (steerability) 0.3000" in fig.data[3].hovertemplate
    np.testing.assert_allclose(fig.data[1].y, p[0, 3])
    np.testing.assert_allclose(fig.data[0].x, mult)
    assert [t.showlegend for t in fig.data] == [True, True, False, False]
    with pytest.raises(ValueError, match="3-D"):
        plots_inputs.propensity_lines(p[0], mult, LAYERS)
    with pytest.raises(ValueError, match="multipliers has 2"):
        plots_inputs.propensity_lines(p, mult[:2], LAYERS)
    with pytest.raises(ValueError, match="input index 7"):
        plots_inputs.propensity_lines(p, mult, LAYERS, input_indices=[7])


def test_the_sweep_figures_draw() -> None:
    fig = plots_inputs.steerability_heatmap(np.array([[0.0, 1.0], [2.0, 0.0]]), [3, 5], ["a", "b"])
    assert fig.data[0].z.tolist() == [[2.0, 0.0], [0.0, 1.0]]
    hist = plots_layers.layer_histograms({"x": [3, 5, 5]}, [3, 5])
    assert list(hist.data[0].customdata) == [1, 2]
