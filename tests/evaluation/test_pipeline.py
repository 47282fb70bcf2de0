"""The evaluation pipeline on the synthetic control: run directory, resuming, both methods,
the diagnostics each readout allows, and the no-leakage guarantee (cross-fitting itself:
test_method_vectors.py)."""

import csv
import shutil
from dataclasses import replace

import numpy as np
import pytest

import w2s_lens.evaluation.pipeline as ev
import w2s_lens.evaluation.storage.contrast_cache as contrast_cache
import w2s_lens.routing.views as views_mod
import w2s_lens.sweep.runner as sweep_mod
from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.config_parts import ConfigError
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.results.evidence import RULES_VERSION
from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.evaluation.storage.rundir import RunDir

CFG = dict(dataset="synthetic", variants=("base",), routers=("logreg", "curve"), n_boot=300,
           cross_fit=3)


@pytest.fixture(scope="module")
def control():
    return build_control("positive", n_families=3, n_layers=4, seed=0)


def _split(control, n_train=24, n_test=12, test_seed=2):
    train = control.make_examples(n_train, seed=1, both_orders=True)
    test = control.make_examples(n_test, seed=test_seed, both_orders=True)
    return SplitExamples(vector_train=train, sweep_train=train, test={"base": test})


def test_run_directory_and_results(control, tmp_path):
    res = evaluate_examples(control.model, _split(control), EvalConfig(**CFG), tmp_path,
                            progress=False)
    assert isinstance(res, EvaluationResult) and res.path == tmp_path / "results.json"
    caa = res.methods["caa"]
    base = caa.variants["base"]
    assert res.layers == (1, 2, 3)  # layer 0 (a ~zero balanced vector) is not a choice
    assert res.n_train == 24 and res.n_test == 12  # items: both orders are one unit
    assert base.n == 12 and base.n_presentations == 24
    assert res.mirror and base.single_order.n == 24
    # the positive control: routing beats the fixed layer beyond the noise
    w2s = res.comparison("caa", "base", "logreg")
    assert w2s is base.routers["logreg"] and w2s.diff_ci[0] > 0 and w2s.p < 0.05
    for name in ("run.json", "results.json", "caa/vectors/vectors.safetensors",
                 "caa/train/sweep.safetensors", "caa/train/examples.jsonl",
                 "caa/base/sweep.safetensors", "caa/base/routing.json",
                 "caa/routers/logreg/w2s.json", "caa/routers/curve/router/router.json"):
        assert (tmp_path / name).exists(), name
    derived = RunDir(tmp_path).read_run()["derived"]
    assert derived["layer_scale"] == [1.0] * 3 and derived["n_train_items"] == 24
    # results.json names the settings a reader needs to tell ablation rows apart
    assert (res.scale, res.fraction, res.positions) == ("raw", None, "from_last")
    assert caa.w2s_over_fixed == pytest.approx(
        base.routers["logreg"].steerability / base.fixed.steerability)
    # the object is results.json: same dict, and save -> load gives it back
    assert res.to_dict() == RunDir(tmp_path).read_results()
    again = EvaluationResult.load(res.save(tmp_path / "copy"))
    assert again == res and again.to_dict() == res.to_dict()
    assert "caa" in repr(res) and "logreg" in res.summary()
    assert set(res.to_pandas()["router"]) >= {"logreg"}


def test_without_a_run_directory_the_result_is_typed_too(control):
    res = evaluate_examples(control.model, _split(control, n_train=12, n_test=6),
                            EvalConfig(**{**CFG, "retest": False, "scale": "relative",
                                          "fraction": 0.5}), progress=False)
    assert isinstance(res, EvaluationResult) and res.path is None
    assert (res.scale, res.fraction) == ("relative", 0.5)
    assert "relative scale: λ = 1 adds 0.5 of the residual norm" in res.summary()
    assert EvaluationResult.from_dict(res.to_dict()) == res


def test_rerun_resumes_sweeps(control, tmp_path, monkeypatch):
    first = evaluate_examples(control.model, _split(control), EvalConfig(**CFG), tmp_path,
                              progress=False).to_dict()

    def no_compute(*a, **k):
        raise AssertionError("a finished sweep chunk was recomputed")

    monkeypatch.setattr(sweep_mod, "fast_chunk", no_compute)
    again = evaluate_examples(control.model, _split(control), EvalConfig(**CFG), tmp_path,
                              progress=False).to_dict()
    assert again["methods"]["caa"]["variants"]["base"]["fixed"] == \
        first["methods"]["caa"]["variants"]["base"]["fixed"]


def test_views_tuning_reading_and_items(control, tmp_path, monkeypatch):
    cfg = EvalConfig(**{**CFG, "routers": ("logreg", "knn"),
                        "router_inputs": ("question", "options")})
    res = evaluate_examples(control.model, _split(control), cfg, tmp_path, progress=False).to_dict()
    caa = res["methods"]["caa"]
    names = ["logreg", "knn", "logreg@options", "knn@options"]
    assert list(caa["variants"]["base"]["w2s"]) == names
    assert res["router_inputs"] == ["question", "options"]
    for name in names:  # every router tuned: splits, a chosen value, its grid
        cv = caa["router_cv"][name]
        assert cv.get("constant") or (cv["n_splits"] > 0 and cv["best_params"] and cv["grid"])
    reading = caa["reading"]
    assert set(reading["views"]) == {"question", "options"}
    assert reading["text"].startswith(reading["headroom"]["reading"])
    # only question-view routers become bundles: new prompts come without options
    assert (tmp_path / "caa/routers/logreg/w2s.json").is_file()
    assert not (tmp_path / "caa/routers/logreg@options").exists()
    with open(tmp_path / "items.csv") as f:
        rows = list(csv.DictReader(f))
    sweeps = {r["sweep"] for r in rows}
    assert sweeps == {"train", "base", "retest-1", "retest-2"}
    train = [r for r in rows if r["sweep"] == "train"]
    test = [r for r in rows if r["sweep"] == "base"]
    assert len(train) == 24 and len(test) == 12
    routing = RunDir(tmp_path).read_routing(tmp_path / "caa" / "base")
    assert [int(r["route_logreg@options"]) for r in test] == \
        routing["router_layer"]["logreg@options"]
    assert all(r["route_logreg"] == "" for r in train)
    best = [max(res["layers"], key=lambda layer: float(r[f"s_L{layer}"])) for r in test]
    assert best == [int(r["best_layer"]) for r in test]
    # what the views cost, per sweep: the question captured by the sweep, the options measured
    costs = {(c["split"], c["features"]): c for c in res["view_costs"]}
    assert set(costs) == {(s, f) for s in ("train", "base") for f in ("question", "options")}
    assert costs["train", "options"]["cpu_s"] > 0 and costs["train", "options"]["wall_s"] > 0
    assert costs["train", "options"]["n_presentations"] == len(_split(control).sweep_train)
    assert "captured by the sweep" in costs["base", "question"]["note"]

    # other views on the same run directory: every sweep is reused, only routers refitted
    def no_compute(*a, **k):
        raise AssertionError("a finished sweep chunk was recomputed")

    monkeypatch.setattr(sweep_mod, "fast_chunk", no_compute)
    # ... and the options features are read back from the run directory, not recomputed
    assert list((tmp_path / "features").glob("*.safetensors"))
    monkeypatch.setattr(views_mod, "option_features", no_compute)
    again = evaluate_examples(control.model, _split(control),
                              cfg.replace(router_inputs=("question", "question+options")),
                              tmp_path, progress=False).to_dict()
    assert "logreg@question+options" in again["methods"]["caa"]["variants"]["base"]["w2s"]
    # ... and the features read back report what they cost when they were computed
    back = {(c["split"], c["features"]): c for c in again["view_costs"]}
    for split in ("train", "base"):
        assert back[split, "options"]["cpu_s"] == costs[split, "options"]["cpu_s"]
        assert back[split, "options"]["note"] == "read back from the run directory"
    assert again["methods"]["caa"]["reading"]["rules"]["version"] == RULES_VERSION

    # a sweep folder an earlier run left (another variant) is not read into items.csv
    shutil.copytree(tmp_path / "caa" / "base", tmp_path / "caa" / "sys-neg")
    evaluate_examples(control.model, _split(control), cfg, tmp_path, progress=False)
    with open(tmp_path / "items.csv") as f:
        assert {r["sweep"] for r in csv.DictReader(f)} == {"train", "base", "retest-1",
                                                            "retest-2"}


def test_mirror_off_scores_each_presentation(control):
    res = evaluate_examples(control.model, _split(control, n_train=12, n_test=6),
                            EvalConfig(**{**CFG, "mirror": False, "routers": ("logreg",)}),
                            progress=False).to_dict()
    base = res["methods"]["caa"]["variants"]["base"]
    assert res["mirror"] is False and base["n"] == base["n_presentations"] == 12
    assert base["single_order"] is None


def _cloze(examples, longer_every=2):
    """The letter examples as cloze ones: the answer tokens become continuations, and every
    ``longer_every``-th item's matching answer is two tokens long."""
    return [replace(ex, matching_token_id=None, non_matching_token_id=None,
                    matching_continuation=(ex.matching_token_id,) * (1 + (i % longer_every == 0)),
                    non_matching_continuation=(ex.non_matching_token_id,))
            for i, ex in enumerate(examples)]


def test_each_readout_gets_its_own_diagnostics(control):
    """Mirrored letter rows: no letter oracle (a row has both letters), but the single-order
    block keeps one; single-order letter rows: a letter oracle; cloze rows: no letter oracle,
    an answer-form oracle. Every block carries the training majority-layer accuracy."""
    cfg = EvalConfig(**{**CFG, "routers": ("logreg",)})
    mirrored = evaluate_examples(control.model, _split(control, n_train=12, n_test=6), cfg,
                                 progress=False).to_dict()["methods"]["caa"]["variants"]["base"]
    assert mirrored["letter_oracle"] is None and mirrored["by_letter"] == {}
    assert mirrored["single_order"]["letter_oracle"] is not None
    assert set(mirrored["single_order"]["by_letter"]) == {"A", "B"}
    single = evaluate_examples(control.model, _split(control, n_train=12, n_test=6),
                               EvalConfig(**{**CFG, "routers": ("logreg",), "mirror": False}),
                               progress=False).to_dict()["methods"]["caa"]["variants"]["base"]
    assert single["letter_oracle"] is not None and set(single["by_letter"]) == {"A", "B"}
    train = control.make_examples(12, seed=1)
    test = _cloze(control.make_examples(8, seed=2))
    cloze_cfg = EvalConfig(**{**CFG, "routers": ("logreg",), "readout": "cloze"})
    cloze = evaluate_examples(control.model, SplitExamples(train, _cloze(train), {"base": test}),
                              cloze_cfg, progress=False).to_dict()
    cloze = cloze["methods"]["caa"]["variants"]["base"]
    assert cloze["letter_oracle"] is None and cloze["by_letter"] == {}
    assert cloze["form_oracle"]["group_sizes"] == {"match-longer": 4, "same-length": 4}
    for block in (mirrored, mirrored["single_order"], single, cloze):
        assert (block["form_oracle"] is not None) == (block is cloze)
        assert 0.0 <= block["w2s"]["logreg"]["majority_accuracy"] <= 1.0


def test_in_sample_option_and_too_many_folds(control):
    split = _split(control, n_train=6, n_test=6)
    res = evaluate_examples(control.model, split, EvalConfig(**{**CFG, "cross_fit": 0}),
                            progress=False).to_dict()
    assert res["cross_fit"] == 0
    with pytest.raises(ConfigError, match="at least 8 training items"):
        evaluate_examples(control.model, split, EvalConfig(**{**CFG, "cross_fit": 8}),
                          progress=False)


def test_both_methods_side_by_side(control, tmp_path):
    res = evaluate_examples(control.model, _split(control),  # L2S retest: test_headroom_run
                            EvalConfig(**{**CFG, "method": "both", "retest": False}), tmp_path,
                            progress=False).to_dict()
    assert set(res["methods"]) == {"caa", "l2s"}
    l2s = res["methods"]["l2s"]["variants"]["base"]
    assert l2s["n"] == 12 and set(l2s["w2s"]) == {"logreg", "curve"}
    # the L2S vectors differ per input, the CAA ones do not
    sweep, _ = RunDir(tmp_path).load_sweep("l2s/base")
    assert sweep.metadata["vector_kind"] == "per-input"
    for name in ("l2s/l2s/l2s.safetensors", "l2s/routers/logreg/l2s/l2s.json",
                 "l2s/train/sweep.safetensors"):
        assert (tmp_path / name).exists(), name


def test_test_split_never_reaches_fitting(control, monkeypatch):
    """Vectors, L2S, fixed layer and routers must not depend on the test split.

    Two runs share the training split but have completely different test inputs. Every
    fitting step is spied on: no test id may reach it, and what it fits must be identical.
    """
    seen = {"contrast": [], "l2s": [], "router": []}
    real_contrast, real_router = contrast_cache.contrast_residuals, ev.LayerRouter.fit
    real_l2s = ev.L2SSteerer.fit

    def spy_contrast(model, examples, *a, **k):
        seen["contrast"].append([e.id for e in examples])
        return real_contrast(model, examples, *a, **k)

    def spy_l2s(self, X, Y, *a, **k):
        seen["l2s"].append((np.array(X), np.array(Y), list(k.get("groups") or [])))
        return real_l2s(self, X, Y, *a, **k)

    def spy_router(self, X, S, *a, **k):
        seen["router"].append((self.kind, np.array(X, copy=True), np.array(S, copy=True)))
        return real_router(self, X, S, *a, **k)

    monkeypatch.setattr(contrast_cache, "contrast_residuals", spy_contrast)
    monkeypatch.setattr(ev.L2SSteerer, "fit", spy_l2s)
    monkeypatch.setattr(ev.LayerRouter, "fit", spy_router)
    cfg = EvalConfig(**{**CFG, "method": "both", "routers": ("logreg",)})
    runs = [evaluate_examples(control.model, _split(control, test_seed=s), cfg,
                              progress=False).to_dict()
            for s in (2, 3)]
    test_ids = {ex.id for s in (2, 3) for ex in _split(control, test_seed=s).test["base"]}
    n = len(seen["router"]) // 2
    assert n and len(seen["contrast"]) == 2
    # each run fits L2S at least once, always with its training units as groups
    assert len(seen["l2s"]) >= 2 and len(seen["l2s"]) % 2 == 0
    assert all(len(groups) for *_, groups in seen["l2s"])
    for ids in seen["contrast"]:
        assert not test_ids & set(ids)
    for _, _, groups in seen["l2s"]:
        assert not test_ids & set(groups)
    for (ka, xa, sa), (kb, xb, sb) in zip(seen["router"][:n], seen["router"][n:]):
        assert ka == kb and np.array_equal(xa, xb) and np.array_equal(sa, sb)
    for (xa, ya, _), (xb, yb, _) in zip(seen["l2s"][: len(seen["l2s"]) // 2],
                                       seen["l2s"][len(seen["l2s"]) // 2:]):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    for m in ("caa", "l2s"):
        assert runs[0]["methods"][m]["fixed_layer"] == runs[1]["methods"][m]["fixed_layer"]
        assert runs[0]["methods"][m]["router_cv"] == runs[1]["methods"][m]["router_cv"]


def test_evaluate_labels_the_run_with_the_items_dataset(monkeypatch):
    """``EvalConfig()`` without ``dataset=``: the run is named after its items' dataset."""
    from w2s_lens.data.items import ABItem
    from w2s_lens.data.samples import DEFAULT_DATASET_NAME

    seen = []
    monkeypatch.setattr(ev, "prepare_examples", lambda model, items, config, test: None)
    monkeypatch.setattr(ev, "evaluate_examples",
                        lambda model, exs, config, out, progress: seen.append(config.data.dataset))

    def items(name):
        return [ABItem(f"{name}:{i}", name, "Q?", ("yes", "no"), "AB"[i % 2]) for i in range(4)]

    ev.evaluate(None, items("mine"), EvalConfig())
    ev.evaluate(None, items("mine"), EvalConfig(dataset="given"))
    ev.evaluate(None, items("mine") + items("other"), EvalConfig())
    ev.evaluate(None, items(DEFAULT_DATASET_NAME), EvalConfig())  # the built-in "default"
    ev.evaluate(None, items("mine"), EvalConfig(), test_items=items("theirs"))
    assert seen == ["mine", "given", "default", "default", "default"]
