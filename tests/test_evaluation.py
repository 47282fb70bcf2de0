"""The evaluation pipeline on the synthetic control, and the no-leakage guarantee."""

import json

import numpy as np
import pytest

import w2s_lens.evaluation as ev
from w2s_lens.evaluation import EvalConfig, SplitExamples, evaluate_examples
from w2s_lens.synthetic import build_control

CFG = dict(dataset="synthetic", variants=("base",), routers=("logreg", "curve"), n_boot=300)


@pytest.fixture(scope="module")
def control():
    return build_control("positive", n_families=3, n_layers=4, seed=0)


def _split(control, n_train=24, n_test=12, test_seed=2):
    train = control.make_examples(n_train, seed=1)
    test = control.make_examples(n_test, seed=test_seed)
    both = train + [control.swap(e) for e in train]
    return SplitExamples(vector_train=both, sweep_train=train, test={"base": test})


def test_run_directory_and_results(control, tmp_path):
    res = evaluate_examples(control.model, _split(control), EvalConfig(**CFG), tmp_path,
                            progress=False)
    base = res["variants"]["base"]
    assert res["layers"] == [0, 1, 2, 3] and res["primary_router"] == "logreg"
    # the positive control: routing beats the fixed layer beyond the noise
    assert base["w2s"]["logreg"]["diff_vs_fixed_ci"][0] > 0
    assert base["oracle"]["steerability"] >= base["w2s"]["logreg"]["steerability"] - 1e-9
    for name in ("run.json", "results.json", "vectors.safetensors", "vectors.json",
                 "train/sweep.safetensors", "base/sweep.safetensors", "base/routing.json",
                 "routers/logreg/w2s.json", "routers/curve/router.json"):
        assert (tmp_path / name).exists(), name
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["hook_names"][1] == "blocks.1.hook_resid_pre"
    assert run["layer_scale"] == [1.0] * 4 and "versions" in run
    routing = json.loads((tmp_path / "base/routing.json").read_text())
    assert len(routing["router_layer"]["logreg"]) == 12
    assert res["w2s_over_fixed"] == pytest.approx(
        base["w2s"]["logreg"]["steerability"] / base["fixed"]["steerability"])


def test_rerun_resumes_sweeps(control, tmp_path, monkeypatch):
    first = evaluate_examples(control.model, _split(control), EvalConfig(**CFG), tmp_path,
                              progress=False)
    import w2s_lens.sweep as sweep_mod

    def no_compute(*a, **k):
        raise AssertionError("a finished sweep chunk was recomputed")

    monkeypatch.setattr(sweep_mod, "_fast_chunk", no_compute)
    again = evaluate_examples(control.model, _split(control), EvalConfig(**CFG), tmp_path,
                              progress=False)
    assert again["variants"]["base"]["fixed"] == first["variants"]["base"]["fixed"]


def test_test_split_never_reaches_fitting(control, monkeypatch):
    """Vectors, fixed layer and routers must not depend on the test split.

    Two runs share the training split but have completely different test inputs. Every
    fitting step is spied on: no test id may reach it, and what it fits must be identical.
    """
    seen = {"caa": [], "fit": []}
    real_caa, real_fit = ev.train_caa, ev.LayerRouter.fit

    def spy_caa(model, examples, *a, **k):
        seen["caa"].append([e.id for e in examples])
        return real_caa(model, examples, *a, **k)

    def spy_fit(self, X, S, *a, **k):
        seen["fit"].append((self.kind, np.array(X, copy=True), np.array(S, copy=True)))
        return real_fit(self, X, S, *a, **k)

    monkeypatch.setattr(ev, "train_caa", spy_caa)
    monkeypatch.setattr(ev.LayerRouter, "fit", spy_fit)
    runs = []
    for test_seed in (2, 3):
        split = _split(control, test_seed=test_seed)
        runs.append(evaluate_examples(control.model, split, EvalConfig(**CFG), None,
                                      progress=False))
        test_ids = {e.id for e in split.test["base"]}
        train_ids = {e.id for e in split.vector_train}
        assert not test_ids & train_ids
        assert not test_ids & set(seen["caa"][-1])
    assert seen["caa"][0] == seen["caa"][1]
    for (k0, x0, s0), (k1, x1, s1) in zip(seen["fit"][:2], seen["fit"][2:]):
        assert k0 == k1 and np.array_equal(x0, x1) and np.array_equal(s0, s1)
    assert runs[0]["variants"]["base"]["fixed_layer"] == runs[1]["variants"]["base"][
        "fixed_layer"]
    assert runs[0]["train_best_layer_counts"] == runs[1]["train_best_layer_counts"]


def test_config_validation():
    with pytest.raises(ValueError, match="unknown variant"):
        EvalConfig(variants=("base", "sideways"))
    with pytest.raises(ValueError, match="include 'base'"):
        EvalConfig(variants=("sys-pos",))
    with pytest.raises(ValueError, match="unknown router"):
        EvalConfig(routers=("forest",))
    with pytest.raises(ValueError, match="primary_router"):
        EvalConfig(routers=("mlp",))
