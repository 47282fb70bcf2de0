"""The headroom diagnostics inside the pipeline: retest sweeps from two halves of the training
items, the cross-validated oracle, the learning curve and the answer-form router (the three
cases on the controls: tests/controls/test_synthetic.py)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

import w2s_lens.evaluation.storage.contrast_cache as contrast_cache
from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.headroom.run import (
    LEARNING_NOTE,
    RETEST_SPLITS,
    retest_units,
    training_halves,
    unit_strata,
)
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.steering.activations import contrast_residuals
from w2s_lens.steering.l2s.steerer import L2SSteerer
from w2s_lens.steering.vectors import SteeringVectors
from w2s_lens.sweep.runner import run_sweep

CFG = dict(dataset="synthetic", variants=("base",), routers=("logreg", "knn"), n_boot=200,
           cross_fit=3)
RETEST_KEYS = {"agreement", "chance", "kappa", "within_one", "rank_correlation", "matrix",
               "layers", "n_items", "half_sizes"}
XV_KEYS = {"xv_oracle", "xv_fixed", "xv_fixed_layers", "diff", "ci", "p", "p_less", "test",
           "n_nonzero", "mde", "verdict"}
ROW_KEYS = {"n_train", "router", "repeats", "accuracy", "majority_accuracy", "diff", "ci", "p",
            "mde", "verdict"}


@pytest.fixture(scope="module")
def control():
    return build_control("positive", n_families=3, n_layers=4, seed=0)


def _split(control, n_train=24, n_test=12):
    train = control.make_examples(n_train, seed=1, both_orders=True)
    test = control.make_examples(n_test, seed=2, both_orders=True)
    return SplitExamples(vector_train=train, sweep_train=train, test={"base": test})


def test_helpers_split_seeded_and_balanced(control):
    exs = control.make_examples(12, seed=2, both_orders=True)
    units = list(dict.fromkeys(ex.unit for ex in exs))
    strata = unit_strata(exs, units)
    assert strata.count("A") == strata.count("B") == 6
    picked = retest_units(exs, 4, seed=0)
    assert len(picked) == 4 and sorted(unit_strata(exs, picked)) == ["A", "A", "B", "B"]
    assert picked == retest_units(exs, 4, seed=0) != retest_units(exs, 4, seed=1)
    assert retest_units(exs, 64, seed=0) == units
    a, b = training_halves(units, strata, seed=0)
    assert sorted(a + b) == sorted(units) and not set(a) & set(b) and len(a) == len(b) == 6
    assert sorted(unit_strata(exs, a)) == ["A"] * 3 + ["B"] * 3


def test_every_evaluation_carries_the_headroom(control, tmp_path, monkeypatch):
    calls = []
    real = contrast_cache.contrast_residuals

    def count(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(contrast_cache, "contrast_residuals", count)
    res = evaluate_examples(control.model, _split(control),
                            EvalConfig(**CFG, retest_max_items=8), tmp_path,
                            progress=False).to_dict()
    assert len(calls) == 1  # the halves' CAA vectors reuse the training contrasts
    h = res["methods"]["caa"]["headroom"]
    retest, xv, curve = h["retest"], h["xv"], h["learning_curve"]
    assert RETEST_KEYS <= set(retest) and XV_KEYS <= set(xv)
    assert retest["n_items"] == 8 and retest["half_sizes"] == [12, 12]
    assert retest["layers"] == res["layers"] == [1, 2, 3]
    assert np.array(retest["matrix"]).sum() == 8 and retest["kappa"] > 0.8
    assert set(xv["xv_fixed_layers"]) <= set(res["layers"])  # layer numbers, not indices
    assert curve["note"] == LEARNING_NOTE and "no extra forward pass" in curve["note"]
    assert [(r["n_train"], r["router"]) for r in curve["rows"]] == [
        (12, "logreg"), (12, "knn"), (24, "logreg"), (24, "knn")]
    assert all(ROW_KEYS <= set(r) for r in curve["rows"])
    assert [r["repeats"] for r in curve["rows"]] == [3, 3, 1, 1]
    full = curve["rows"][2]  # the full training set: the main W2S block's comparison
    main = res["methods"]["caa"]["variants"]["base"]["w2s"]["logreg"]
    assert full["diff"] == pytest.approx(main["diff_vs_fixed"])
    # the retest sweeps are run-directory sweeps of the capped base test items
    rd = RunDir(tmp_path)
    for where in RETEST_SPLITS:
        sweep, exs = rd.load_sweep(f"caa/{where}")
        assert len({ex.unit for ex in exs}) == 8 and sweep.metadata["split"] == where
        assert {ex.unit for ex in exs} <= {ex.unit for ex in _split(control).test["base"]}
    s1 = rd.load_sweep("caa/retest-1")[0].mirrored().steerability
    s2 = rd.load_sweep("caa/retest-2")[0].mirrored().steerability
    assert not np.allclose(s1, s2)  # two different vector estimates
    assert res["methods"]["caa"]["variants"]["base"].get("form_router") is None  # letter run


def test_half_vectors_are_the_halves_mean_contrasts(control, tmp_path):
    evaluate_examples(control.model, _split(control), EvalConfig(**CFG), tmp_path,
                      progress=False)
    rd = RunDir(tmp_path)
    train = _split(control).vector_train
    units = list(dict.fromkeys(ex.unit for ex in train))
    halves = training_halves(units, unit_strata(train, units), seed=0)
    acts = contrast_residuals(control.model, train, [1, 2, 3], progress=False)
    means = [acts.diffs[torch.tensor([u in set(h) for u in acts.units])].mean(0)
             for h in halves]
    full = SteeringVectors.load(rd.vectors_dir("caa")).vectors
    torch.testing.assert_close((means[0] + means[1]) / 2, full, atol=1e-5, rtol=0)
    for mean, where in zip(means, RETEST_SPLITS):  # each retest sweep steers with its half
        stored, exs = rd.load_sweep(f"caa/{where}")
        vecs = SteeringVectors(mean, [1, 2, 3], metadata={
            "model": control.model.cfg.model_name, "d_model": control.model.cfg.d_model})
        again = run_sweep(control.model, vecs, exs, progress=False)
        np.testing.assert_allclose(again.steerability, stored.steerability, atol=1e-5)
    assert float((means[0] - means[1]).norm()) > 1e-4


def test_retest_off_and_given_vectors_are_skipped_with_a_reason(control, tmp_path):
    off = evaluate_examples(control.model, _split(control, 12, 6),
                            EvalConfig(**CFG, retest=False), tmp_path / "off",
                            progress=False).to_dict()
    h = off["methods"]["caa"]["headroom"]
    assert "retest" in h["retest"]["skipped"] and "skipped" in h["xv"]
    assert h["learning_curve"]["rows"]  # the learning curve needs no extra sweep
    assert not (tmp_path / "off" / "caa" / "retest-1").exists()
    vec_dir = tmp_path / "v"
    rd = RunDir(tmp_path / "off")
    SteeringVectors.load(rd.vectors_dir("caa")).save(vec_dir)
    given = evaluate_examples(control.model, _split(control, 12, 6),
                              EvalConfig(**{**CFG, "vectors": str(vec_dir), "cross_fit": 0}),
                              progress=False).to_dict()
    assert "given vectors" in given["methods"]["caa"]["headroom"]["retest"]["skipped"]


def test_l2s_retest_fits_one_steerer_per_half(control, tmp_path, monkeypatch):
    fits: list[list[str]] = []  # the training units of every L2S fit, in order
    real_fit = L2SSteerer.fit

    def spy(self, X, Y, *a, **k):
        fits.append(list(k.get("groups") or []))
        return real_fit(self, X, Y, *a, **k)

    monkeypatch.setattr(L2SSteerer, "fit", spy)
    split = _split(control, 12, 6)
    res = evaluate_examples(control.model, split,
                            EvalConfig(**{**CFG, "method": "l2s", "routers": ("logreg",)}),
                            tmp_path, progress=False).to_dict()
    retest = res["methods"]["l2s"]["headroom"]["retest"]
    assert retest["half_sizes"] == [6, 6] and retest["n_items"] == 6
    # the last two fits are the retest's: two steerers on disjoint halves of the training units
    train_units = {u for g in fits[:-2] for u in g}
    first, second = (set(g) for g in fits[-2:])
    assert len(fits) >= 3 and first and second and not first & second
    assert first | second <= train_units
    sweeps = [RunDir(tmp_path).load_sweep(f"l2s/retest-{i}")[0] for i in (1, 2)]
    assert all(s.metadata["vector_kind"] == "per-input" for s in sweeps)
    assert not np.allclose(sweeps[0].propensity, sweeps[1].propensity)


def _cloze(examples):
    """Every other item's matching answer two tokens long: two answer forms."""
    return [replace(ex, matching_token_id=None, non_matching_token_id=None,
                    matching_continuation=(ex.matching_token_id,) * (1 + (i % 2 == 0)),
                    non_matching_continuation=(ex.non_matching_token_id,))
            for i, ex in enumerate(examples)]


def test_cloze_runs_score_an_answer_form_router(control):
    train = control.make_examples(12, seed=1)
    test = _cloze(control.make_examples(8, seed=2))
    ood = _cloze(control.make_examples(8, seed=3))
    cfg = EvalConfig(**{**CFG, "routers": ("logreg",), "readout": "cloze",
                        "variants": ("base", "sys-neg")})
    res = evaluate_examples(control.model, SplitExamples(train, _cloze(train),
                                                         {"base": test, "sys-neg": ood}),
                            cfg, progress=False).to_dict()
    base = res["methods"]["caa"]["variants"]["base"]
    form = base["form_router"]
    # an OOD variant is routed by the same form → layer map, learned on BASE training items
    other = res["methods"]["caa"]["variants"]["sys-neg"]["form_router"]
    assert other["groups"] == form["groups"] and other["diff_vs_fixed"] is not None
    assert set(form["groups"]) == {"match-longer", "same-length"} and form["fallback"] == []
    assert set(form["groups"].values()) <= set(res["layers"])
    for key in ("diff_vs_fixed", "diff_vs_fixed_ci", "diff_vs_fixed_p", "diff_vs_fixed_mde",
                "diff_vs_fixed_verdict", "accuracy", "majority_accuracy"):
        assert key in form, key
    # a constant per form: its slope is the test slope at that form's training layer
    fixed = base["fixed"]["steerability"]
    assert form["diff_vs_fixed"] == pytest.approx(form["steerability"] - fixed)
