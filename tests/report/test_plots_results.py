"""Figures of evaluation results (w2s_lens.report.plots_results): typed results of run
directories written by the library (the synthetic control) for the method comparison (the
expected numbers read from their results.json dicts), small arrays for the confusion matrix,
and typed results with and without the newer oracles."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
from helpers_plots import LAYERS

from w2s_lens.evaluation.results.typed import EvaluationResult, VariantResult
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.report import plots_results


def _result(primary: str | None, **extra) -> EvaluationResult:
    return EvaluationResult.from_dict({"primary_router": primary, "methods": {}, **extra})


def test_primary_router_and_method_label() -> None:
    two = VariantResult.from_dict({"w2s": {"a": {}, "b": {}}})
    assert plots_results.primary_router(_result("b"), two) == "b"
    assert plots_results.primary_router(_result("c"), two) == "a"
    assert plots_results.primary_router(_result("c"), VariantResult()) is None
    assert plots_results.method_label("caa") == "CAA"


def test_method_bars_side_by_side_with_ci_offsets(runs) -> None:
    typed = EvaluationResult.load(runs["letter mirrored"])
    results = RunDir(runs["letter mirrored"]).read_results()  # the expected numbers
    fig = plots_results.method_bars(typed)
    assert plots_results.method_bars(runs["letter mirrored"]).to_dict() == fig.to_dict()
    # the letter oracle of mirrored rows is None (not applicable): no bars
    base = [results["methods"][m]["variants"]["base"] for m in ("caa", "l2s")]
    assert all(v["letter_oracle"] is None for v in base)
    keys = ["fixed", "w2s", "oracle"]
    names = {"fixed": "fixed layer", "w2s": "W2S (router)", "oracle": "oracle",
             "letter_oracle": "letter-oracle"}
    assert [t.name for t in fig.data] == [names[k] for k in keys]
    assert fig.layout.barmode == "group"
    assert list(fig.data[0].x) == ["CAA / base", "L2S / base"]
    for trace, key in zip(fig.data, keys, strict=True):
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
    typed = EvaluationResult.load(runs["letter mirrored"])
    # one method of a result: groups are its variants, W2S its primary router ("curve")
    fig = plots_results.method_bars(typed, method="l2s")
    assert list(fig.data[0].x) == ["base"]
    assert fig.data[1].y[0] == pytest.approx(
        mirrored["methods"]["l2s"]["variants"]["base"]["w2s"]["curve"]["steerability"])
    assert "router curve" in fig.data[1].customdata[0]
    # several runs (typed, or their run directories): groups prefixed by their label
    fig = plots_results.method_bars({"mirrored": typed, "single": runs["letter single-order"]})
    assert list(fig.data[0].x) == ["mirrored / CAA / base", "mirrored / L2S / base",
                                   "single / base"]
    assert fig.data[0].y[2] == pytest.approx(
        single["methods"]["caa"]["variants"]["base"]["fixed"]["steerability"])
    with pytest.raises(TypeError, match=r"results\['syc'\] is not an evaluation result"):
        plots_results.method_bars({"syc": {"foo": 1}})
    with pytest.raises(TypeError, match=r"results\['m'\] is not an evaluation result"):
        plots_results.method_bars({"m": mirrored})  # a results.json dict: load it first
    with pytest.raises(TypeError, match="must be an EvaluationResult, .*; got list"):
        plots_results.method_bars([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="results is empty"):
        plots_results.method_bars({})
    with pytest.raises(ValueError, match="no method 'x' in the results; there are: caa, l2s"):
        plots_results.method_bars(typed, method="x")
    with pytest.raises(ValueError, match="no variants"):
        plots_results.method_bars(EvaluationResult.from_dict({"methods": {"caa": {}}}))


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


def _summary(mean: float) -> dict:
    return {"steerability": mean, "steerability_ci": [mean - 0.1, mean + 0.1]}


def test_method_bars_draw_the_oracles_that_apply() -> None:
    cloze = {"n": 8, "fixed_layer": 2, "fixed": _summary(0.1), "oracle": _summary(0.4),
             "w2s": {"logreg": _summary(0.2)}, "letter_oracle": None,
             "form_oracle": {**_summary(0.35), "groups": {"longer": 4, "shorter": 6}}}
    fig = plots_results.method_bars(_result("logreg", methods={"caa": {"variants": {
        "base": cloze}}}))
    assert [t.name for t in fig.data] == ["fixed layer", "W2S (router)", "oracle",
                                          "answer-form oracle"]
    assert fig.data[3].y[0] == pytest.approx(0.35)
    assert "longer→layer 4, shorter→layer 6" in fig.data[3].customdata[0]
    # a letter row next to it: the letter oracle is drawn, NaN where it does not apply
    letter = {**cloze, "letter_oracle": {**_summary(0.3), "layers": {"A": 2, "B": 4}}}
    del letter["form_oracle"]
    fig = plots_results.method_bars(_result("logreg", methods={"caa": {"variants": {
        "cloze": cloze, "letter": letter}}}))
    names = [t.name for t in fig.data]
    assert names == ["fixed layer", "W2S (router)", "oracle", "letter-oracle",
                     "answer-form oracle"]
    lo, fo = fig.data[3].y, fig.data[4].y
    assert np.isnan(lo[0]) and lo[1] == pytest.approx(0.3)
    assert fo[0] == pytest.approx(0.35) and np.isnan(fo[1])


def test_the_docstring_examples_run() -> None:
    """The examples in the docstrings (typed results in, the text shown out) hold."""
    failed, attempted = doctest.testmod(importlib.import_module("w2s_lens.report.plots_results"),
                                        optionflags=doctest.ELLIPSIS)
    assert failed == 0 and attempted > 0
