"""The "Is there anything to learn?" section (w2s_lens.report.headroom_section) on typed results
(read from results.json dicts whose headroom blocks come from the real diagnostics,
w2s_lens.evaluation.headroom.diagnostics, and whose base variant comes from evaluate_variant, on
small steerability matrices); and results without headroom blocks, which get no section. The
fixtures are the dicts, the expected numbers read from them; the section gets the typed
result."""

from __future__ import annotations

import copy
import dataclasses
import doctest
import html
import importlib
import re

import numpy as np
import pytest

from w2s_lens.evaluation.headroom.diagnostics import (
    cross_validated_oracle,
    learning_curve,
    retest_agreement,
)
from w2s_lens.evaluation.results.headroom import Reading
from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.evaluation.stats.metrics import evaluate_variant
from w2s_lens.report.formatting import Doc, fmt_interval
from w2s_lens.report.headroom_section import (
    READING_RULES,
    has_headroom,
    headroom_section,
    method_reading,
)
from w2s_lens.routing.labels import best_layers
from w2s_lens.routing.routers import make_router

LAYERS = [2, 4, 6]
N = 24


def _sweep(rng: np.random.Generator, stable: bool) -> np.ndarray:
    """``[N, 3]`` slopes: item i's own layer is i mod 3 (``stable``) or every layer is alike."""
    base = np.eye(3)[np.arange(N) % 3] + 0.5 if stable else np.ones((N, 3))
    return base + 0.1 * rng.normal(size=base.shape)


def _results(stable: bool, informative: bool, seed: int = 0) -> dict:
    """A results dict of one method: the base variant and its headroom block, measured."""
    rng = np.random.default_rng(seed)
    train, s1, s2 = (_sweep(rng, stable) for _ in range(3))
    test = 0.5 * (s1 + s2)
    if informative:  # the embedding names the item's own layer
        x_train, x_test = np.eye(3)[best_layers(train)], np.eye(3)[best_layers(test)]
    else:
        x_train, x_test = rng.normal(size=(N, 4)), rng.normal(size=(N, 4))
    chosen = make_router("logreg").fit(x_train, train).predict(x_test)
    vres = evaluate_variant(test, None, int(np.argmax(train.mean(axis=0))), {"logreg": chosen},
                            layers=LAYERS, n_boot=200, train_best_idx=best_layers(train))
    headroom = {
        "retest": {**retest_agreement(s1, s2), "layers": LAYERS, "n_items": N,
                   "half_sizes": [12, 12]},
        "xv": cross_validated_oracle(s1, s2, n_boot=200),
        "learning_curve": {"rows": learning_curve(train, x_train, test, x_test, ["logreg", "knn"],
                                                  sizes=[6, 12, N], repeats=2, n_boot=200),
                           "note": "routers refitted on nested subsets"},
    }
    return {"split_seed": 0, "primary_router": "logreg", "layers": LAYERS,
            "methods": {"caa": {"variants": {"base": vres}, "headroom": headroom}}}


@pytest.fixture(scope="module")
def learnable() -> dict:
    return _results(stable=True, informative=True)


@pytest.fixture(scope="module")
def unpredictable() -> dict:
    return _results(stable=True, informative=False)


@pytest.fixture(scope="module")
def flat() -> dict:
    return _results(stable=False, informative=False)


def _page(results: dict) -> tuple[str, Doc]:
    doc = Doc()
    headroom_section(doc, EvaluationResult.from_dict(results))
    return "\n".join(doc.parts), doc


def _reading(page: str) -> str:
    return html.unescape(re.search(r'<p class="readout"><b>Reading: (.*?)\.</b>',
                                   page).group(1))


def test_readings_name_their_evidence_from_measured_blocks(learnable, unpredictable,
                                                           flat) -> None:
    learned, unlearned, nothing = (_reading(_page(r)[0]) for r in (learnable, unpredictable, flat))
    assert learned.startswith("headroom; robust to re-estimating the vector")
    assert learned.endswith("learned by question")
    assert unlearned.startswith("headroom; robust to re-estimating the vector")
    assert unlearned.endswith(("not learned by question at this power",
                               "underpowered for question"))
    assert nothing.startswith("no headroom; not robust to re-estimating the vector")
    assert len({learned, unlearned, nothing}) == 3


def test_the_rule_and_the_retest_numbers_are_shown(unpredictable) -> None:
    page, doc = _page(unpredictable)
    assert page.startswith('<h2 id="headroom">Is there anything to learn?</h2>')
    for line in READING_RULES:
        assert f"<li>{html.escape(line)}</li>" in page
    retest = unpredictable["methods"]["caa"]["headroom"]["retest"]
    assert retest["kappa"] > 0.5  # the halves see the same own layers
    row = re.search(r"<h4>Retest.*?<tbody><tr>(.*?)</tr>", page, re.S).group(1)
    cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
    assert cells == [str(N), "12 + 12", f"{retest['agreement']:.1%}", f"{retest['chance']:.1%}",
                     f"{retest['kappa']:.3f}", f"{retest['within_one']:.1%}",
                     f"{retest['rank_correlation']:.3f}"]
    assert doc.n_figures == 3  # retest matrix, layer choices, learning curve
    assert '"x":["2","4","6"],"y":["2","4","6"]' in page  # axes are layer numbers
    assert '"z":' + str(retest["matrix"]).replace(" ", "") in page


def test_the_cross_validated_oracle_beside_fixed_w2s_and_the_in_sample_oracle(
        unpredictable) -> None:
    page, _ = _page(unpredictable)
    block = unpredictable["methods"]["caa"]
    vres, xv = block["variants"]["base"], block["headroom"]["xv"]
    part = html.unescape(page[page.index("<h4>Cross-validated"):page.index("<h4>Learning")])
    for label, x in ((f"fixed layer {vres['fixed_layer']}", vres["fixed"]),
                     ("W2S", vres["w2s"]["logreg"]), ("in-sample oracle", vres["oracle"])):
        assert (f"<td class=\"l\">{label}</td><td>"
                f"{fmt_interval(x['steerability'], x['steerability_ci'], N, 0)}</td>") in part
    assert f"{fmt_interval(xv['xv_oracle'], None, N, 0)}</td>" in part
    assert xv["verdict"] == ("the cross-validated oracle beats the cross-validated fixed layer "
                             "beyond the noise")
    assert f'<span class="v-better">{xv["verdict"]}</span>' in part
    assert f"MDE {xv['mde']:+.3f} (80% power)" in part
    assert "for xv oracle > xv fixed" in part
    gain = vres["oracle"]["steerability"] - vres["fixed"]["steerability"]
    assert f"the cross-validated oracle keeps {xv['diff'] / gain:.0%}" in part


def test_the_learning_curve_table_has_a_row_per_size_and_router(learnable) -> None:
    page, _ = _page(learnable)
    rows = learnable["methods"]["caa"]["headroom"]["learning_curve"]["rows"]
    part = page[page.index("<h4>Learning curve"):]
    assert "<p>Learning curve: routers refitted on nested subsets.</p>" in part
    body = re.findall(r"<tr>(.*?)</tr>", part[part.index("<tbody>"):])
    assert len(body) == len(rows) == 6
    for tr, r in zip(body, rows):
        cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
        assert cells[:6] == [str(r["n_train"]), r["router"], str(r["repeats"]),
                             f"{r['accuracy']:.1%}", f"{r['majority_accuracy']:.1%}",
                             fmt_interval(r["diff"], r["ci"], N, 0)]
    last = [r for r in rows if r["n_train"] == N and r["router"] == "logreg"][0]
    assert last["accuracy"] == 1.0 and last["verdict"] == "W2S beats fixed beyond the noise"
    assert '"name":"logreg accuracy"' in part and '"name":"majority layer"' in part


def test_results_without_headroom_get_no_section(learnable) -> None:
    older = copy.deepcopy(learnable)
    del older["methods"]["caa"]["headroom"]
    assert has_headroom(EvaluationResult.from_dict(learnable))
    assert not has_headroom(EvaluationResult.from_dict(older))
    page, doc = _page(older)
    assert page == "" and doc.n_figures == 0


def test_missing_and_skipped_pieces_are_marked_not_measured(learnable) -> None:
    res = copy.deepcopy(learnable)
    res["methods"]["l2s"] = {"variants": res["methods"]["caa"]["variants"]}
    hr = res["methods"]["caa"]["headroom"]
    hr["retest"] = {"skipped": "vectors given with --vectors"}
    hr["learning_curve"] = {"rows": []}
    page, doc = _page(res)
    assert "L2S: not measured (results.json has no headroom block for it)." in page
    assert "CAA: retest not measured (vectors given with --vectors)." in page
    assert "CAA: learning curve not measured." in page
    assert doc.n_figures == 1  # the layer choices only
    hr["xv"] = {"skipped": "vectors given with --vectors"}
    page, doc = _page(res)
    assert "CAA: cross-validated oracle not measured (vectors given with --vectors)." in page
    assert doc.n_figures == 0
    # the W2S verdict of the table beats the fixed layer: learned, whatever the retest says
    assert _reading(page).endswith("learned by question")
    assert _reading(page).startswith("headroom not measured; robustness not measured")
    hr.clear()
    hr["skipped"] = "--no-retest"
    assert "CAA: not measured (--no-retest)." in _page(res)[0]


def test_a_stored_reading_and_the_router_tuning_are_shown(unpredictable) -> None:
    res = copy.deepcopy(unpredictable)
    block = res["methods"]["caa"]
    typed = EvaluationResult.from_dict(res)
    read = method_reading(typed, typed.methods["caa"])
    assert isinstance(read, Reading) and read.views["question"].reading
    block["reading"] = dataclasses.replace(read, text="stored words").to_dict()
    block["router_cv"] = {"logreg": {"n_splits": 5, "best_params": {"C": 1e-05},
                                     "grid": [1e-05, 1e-04, 1e-03], "within_one_se": 3,
                                     "at_grid_edge": True, "cv_score": -1.1,
                                     "cv_scoring": "neg_log_loss"},
                          "knn": {"n_splits": 5, "best_params": {"n_neighbors": 3},
                                  "grid": [1, 3, 5], "within_one_se": 1,
                                  "at_grid_edge": False, "cv_score": 0.4}}
    page, _ = _page(res)
    assert _reading(page) == "stored words"
    table = re.search(r"<h4>Router tuning.*?<tbody>(.*?)</tbody>", page, re.S).group(1)
    rows = [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)]
            for r in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
    assert rows[0][:5] == ["logreg", "5", "C = 1e-05", "yes",
                           "3 of 3 (flat: the data could not choose)"]
    assert rows[1][:5] == ["knn", "5", "n_neighbors = 3", "no", "1 of 3"]


def test_the_reading_table_shows_each_view_with_its_interval(unpredictable) -> None:
    """The reading made now (no stored one) names the view's W2S − fixed with its interval,
    p and MDE, as the router's comparison in the results holds them."""
    page, _ = _page(unpredictable)
    w = unpredictable["methods"]["caa"]["variants"]["base"]["w2s"]["logreg"]
    row = re.search(r'<td class="l">view: question</td><td class="l">(.*?)</td>', page).group(1)
    text = html.unescape(html.unescape(row))  # the reading's cell is escaped twice
    assert fmt_interval(w["diff_vs_fixed"], w["diff_vs_fixed_ci"]) in text
    assert f"MDE {w['diff_vs_fixed_mde']:.3f}" in text and "[–, –]" not in text


def test_a_headroom_block_skipped_as_a_whole_is_not_measured(learnable) -> None:
    res = copy.deepcopy(learnable)
    res["methods"]["caa"]["headroom"] = {"skipped": "--no-retest"}
    page, doc = _page(res)
    assert "CAA: not measured (--no-retest)." in page and doc.n_figures == 0
    with pytest.raises(AttributeError):
        headroom_section(Doc(), res)  # the section reads the typed result, not the dict


def test_the_docstring_examples_run() -> None:
    """The examples in the docstrings (typed results in, the text shown out) hold."""
    failed, attempted = doctest.testmod(importlib.import_module("w2s_lens.report.headroom_section"),
                                        optionflags=doctest.ELLIPSIS)
    assert failed == 0 and attempted > 0
