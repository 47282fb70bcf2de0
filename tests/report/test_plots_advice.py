"""The figure and files of ``w2s-lens advise`` (w2s_lens.report.plots_advice) on hand-built
advice: the interval band, the means, the fixed layer's mark, the verification's traces, and the
three files written (advice computed from a model is drawn in test_advice.py)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from w2s_lens.evaluation.advice import Advice, Verification
from w2s_lens.report.plots_advice import ADVICE_FILES, advice_figure, write_advice

LAYERS = (2, 4, 6, 8)
MEAN = np.array([0.1, 0.4, 0.3, -0.2])
CI = np.array([[0.0, 0.2], [0.25, 0.5], [0.1, 0.45], [-0.4, 0.0]])


def _advice(**changes) -> Advice:
    s = np.array([[0.1, 0.5, 0.2, -0.1], [0.2, 0.3, 0.4, -0.3], [0.0, 0.4, 0.3, -0.2]])
    adv = Advice(model="tiny", dataset="toy", readout="letter", scoring="sum",
                 positions="from_last", mirrored=True, layers=LAYERS, layer_scale=(1.0,) * 4,
                 ids=("a", "b", "c"), steerability=s, layer_mean=MEAN, layer_ci=CI,
                 fixed_layer=4, gain=0.03, gain_ci=(0.0, 0.1), item_layers=(4, 6, 4),
                 n_train_items=6, n_vector_pairs=12,
                 timing={"total": {"wall_s": 1.0, "cpu_s": 1.0}})
    return dataclasses.replace(adv, **changes)


def _verified() -> Advice:
    measured = np.array([[0.0, 0.6, 0.2, 0.0], [0.2, 0.2, 0.6, -0.2]])
    first = np.array([[0.1, 0.5, 0.2, -0.1], [0.2, 0.3, 0.4, -0.3]])
    v = Verification(ids=("a", "b"), measured=measured, first_order=first,
                     spearman=np.array([0.8, np.nan]), spearman_median=0.8,
                     best_layer_agreement=1.0, chance=0.5, measured_fixed_layer=4,
                     first_order_choice=0.6, advised_fixed=0.4, measured_fixed=0.4, oracle=0.6,
                     choice_vs_fixed_ci=(0.0, 0.4), timing={"wall_s": 2.0, "cpu_s": 3.0})
    return _advice(verification=v)


def test_the_band_and_the_means_are_the_first_two_traces() -> None:
    fig = advice_figure(_advice())
    assert [t.name for t in fig.data] == ["first-order 95% CI", "first-order mean"]
    band, means = fig.data
    x = [str(layer) for layer in LAYERS]
    # the band's outline: the upper ends left to right, then the lower ends back
    assert list(band.x) == x + x[::-1]
    assert list(band.y) == [0.2, 0.5, 0.45, 0.0, -0.4, 0.1, 0.25, 0.0]
    assert band.fill == "toself" and band.hoverinfo == "skip"
    assert list(means.x) == x and np.array_equal(means.y, MEAN)
    assert band.fillcolor == means.line.color  # one colour for the estimate and its interval


def test_the_fixed_layer_is_marked_at_its_place_on_the_layer_axis() -> None:
    for fixed in (2, 6):
        fig = advice_figure(_advice(fixed_layer=fixed))
        (line,) = fig.layout.shapes
        assert line.x0 == line.x1 == LAYERS.index(fixed)  # categorical axis: the position
        assert line.line.dash == "dash"
        assert [a.text for a in fig.layout.annotations] == [f"fixed layer {fixed}"]


def test_a_fixed_layer_off_the_layer_axis_is_refused_naming_both() -> None:
    with pytest.raises(ValueError, match=r"the fixed layer 5 is not among the advice's layers "
                                         r"\[2, 4, 6, 8\]"):
        advice_figure(_advice(fixed_layer=5))


def test_the_title_names_the_model_the_dataset_and_the_items() -> None:
    fig = advice_figure(_advice(readout="cloze"))
    assert fig.layout.title.text == "First-order steerability per layer: tiny on toy (cloze, 3 " \
                                    "items)"
    assert fig.layout.xaxis.title.text == "layer"
    assert fig.layout.yaxis.title.text.startswith("steerability")


def test_a_verification_adds_the_verified_items_first_order_and_measured_means() -> None:
    adv = _verified()
    fig = advice_figure(adv)
    assert [t.name for t in fig.data] == [
        "first-order 95% CI", "first-order mean", "first-order mean, the 2 verified items",
        "measured (sweep) mean, 2 items"]
    assert np.allclose(fig.data[2].y, [0.15, 0.4, 0.3, -0.2])
    assert np.allclose(fig.data[3].y, adv.verification.measured.mean(axis=0))
    assert fig.data[2].line.dash == "dot"
    assert fig.data[3].line.color != fig.data[1].line.color


@pytest.mark.parametrize("verified", [False, True])
def test_the_three_files_are_written_into_a_new_folder(tmp_path, verified: bool) -> None:
    adv = _verified() if verified else _advice()
    out = tmp_path / "deep" / "advice"
    paths = write_advice(adv, out)
    assert paths == [out / name for name in ADVICE_FILES]
    assert ADVICE_FILES == ("advice.json", "items.csv", "advice.html")
    data = json.loads((out / "advice.json").read_text())
    assert data == json.loads(json.dumps(adv.to_dict()))
    assert (data["verification"] is not None) == verified
    items = pd.read_csv(out / "items.csv")
    expected = adv.to_pandas()
    assert list(items.columns) == list(expected.columns)
    assert items["id"].tolist() == ["a", "b", "c"]
    assert np.allclose(items[[f"fo_L{x}" for x in LAYERS]], adv.steerability)
    html = (out / "advice.html").read_text()
    assert html.lower().startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "First-order steerability" in html
    assert "plotly.js v" in html  # embedded: the page opens offline
    assert 'src="https://cdn.plot.ly' not in html


def test_writing_again_replaces_the_files(tmp_path) -> None:
    write_advice(_advice(), tmp_path)
    write_advice(_advice(fixed_layer=6, dataset="other"), tmp_path)
    assert json.loads((tmp_path / "advice.json").read_text())["fixed_layer"] == 6
    assert "tiny on other" in (tmp_path / "advice.html").read_text()
