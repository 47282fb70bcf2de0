"""Figures from w2s_lens.report.plots: small arrays for the per-input figures, run directories written
by the library (the synthetic control) for the results and readout figures."""

from __future__ import annotations

import numpy as np
import pytest

from w2s_lens.evaluation.rundir import RunDir
from w2s_lens.report import plots_results

LAYERS = [2, 4, 6, 8]
# best columns: row0 -> 2 (layer 6), row1 -> 0 (layer 2), row2 -> 1 (tie 1/3 -> 1), row3 -> 0
STEER = np.array(
    [
        [0.0, 0.1, 0.9, 0.2],
        [0.5, 0.1, -0.2, 0.0],
        [0.1, 0.7, 0.3, 0.7],
        [0.8, 0.2, 0.1, 0.0],
    ]
)
IDS = ["a", "b", "c", "d"]


def test_primary_router_and_method_label() -> None:
    assert plots_results.primary_router({"primary_router": "b"}, {"w2s": {"a": {}, "b": {}}}) == "b"
    assert plots_results.primary_router({"primary_router": "c"}, {"w2s": {"a": {}, "b": {}}}) == "a"
    assert plots_results.primary_router({"primary_router": "c"}, {}) is None
    assert plots_results.method_label("caa") == "CAA"


def test_method_bars_side_by_side_with_ci_offsets(runs) -> None:
    results = RunDir(runs["letter mirrored"]).read_results()
    fig = plots_results.method_bars(results)
    assert [t.name for t in fig.data] == ["fixed layer", "W2S (router)", "oracle", "letter-oracle"]
    assert fig.layout.barmode == "group"
    assert list(fig.data[0].x) == ["CAA / base", "L2S / base"]
    for trace, key in zip(fig.data, ("fixed", "w2s", "oracle", "letter_oracle")):
        for k, method in enumerate(("caa", "l2s")):
            vres = results["methods"][method]["variants"]["base"]
            block = vres["w2s"]["curve"] if key == "w2s" else vres[key]  # the primary router
            lo, hi = block["steerability_ci"]
            assert trace.y[k] == pytest.approx(block["steerability"])
            assert trace.error_y.array[k] == pytest.approx(hi - block["steerability"])
            assert trace.error_y.arrayminus[k] == pytest.approx(block["steerability"] - lo)
    assert fig.data[0].error_y.symmetric is False


def test_method_bars_other_shapes_and_errors(runs) -> None:
    mirrored = RunDir(runs["letter mirrored"]).read_results()
    single = RunDir(runs["letter single-order"]).read_results()
    # one method's block with the primary router (the notebooks' form): groups are variants
    one = {"primary_router": "logreg", **mirrored["methods"]["caa"]}
    fig = plots_results.method_bars(one)
    assert list(fig.data[0].x) == ["base"]
    assert fig.data[1].y[0] == pytest.approx(
        mirrored["methods"]["caa"]["variants"]["base"]["w2s"]["logreg"]["steerability"])
    # several runs: groups prefixed by their label
    fig = plots_results.method_bars({"mirrored": mirrored, "single": single})
    assert list(fig.data[0].x) == ["mirrored / CAA / base", "mirrored / L2S / base",
                                   "single / base"]
    assert fig.data[0].y[2] == pytest.approx(
        single["methods"]["caa"]["variants"]["base"]["fixed"]["steerability"])
    with pytest.raises(ValueError, match="not a results.json"):
        plots_results.method_bars({"syc": {"foo": 1}})
    with pytest.raises(TypeError):
        plots_results.method_bars([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no variants"):
        plots_results.method_bars({"variants": {}})


def test_confusion_matrix_counts() -> None:
    true = [2, 2, 4, 6, 6, 6]
    pred = [2, 4, 4, 6, 2, 6]
    fig = plots_results.confusion_matrix(true, pred, LAYERS)
    hm = fig.data[0]
    z = np.asarray(hm.z)
    assert z.shape == (4, 4)
    expected = np.zeros((4, 4), dtype=int)
    for t, p in zip(true, pred, strict=True):
        expected[LAYERS.index(t), LAYERS.index(p)] += 1
    np.testing.assert_array_equal(z, expected)
    assert z.sum() == 6
    assert "66.7%" in fig.layout.title.text
    norm = np.asarray(plots_results.confusion_matrix(true, pred, LAYERS, normalize=True).data[0].z)
    np.testing.assert_allclose(norm[2], [1 / 3, 0, 2 / 3, 0])
    with pytest.raises(ValueError, match="differ in length"):
        plots_results.confusion_matrix([2], [2, 4], LAYERS)
    with pytest.raises(ValueError, match="predicted_layers contains layer 3"):
        plots_results.confusion_matrix([2], [3], LAYERS)
