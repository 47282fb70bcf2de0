"""W2S bundles: the training prompt format travels with them, routing at inference sees what
the router was fitted on, and steering hooks stay in TransformerLens's bookkeeping."""

import numpy as np
import pytest
import torch
from conftest import write_ab_dataset

import w2s_lens.evaluation.pipeline as ev
from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.controls.synthetic import build_control
from w2s_lens.data.datasets import load_dataset
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.pipeline import evaluate, evaluate_examples
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.routing.bundle import W2S

SMOL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    control = build_control("positive", n_families=3, n_layers=4, seed=0)
    train = control.make_examples(18, seed=1, both_orders=True)
    test = control.make_examples(6, seed=2, both_orders=True)
    out = tmp_path_factory.mktemp("run")
    cfg = EvalConfig(dataset="synthetic", variants=("base",), routers=("logreg",), n_boot=100,
                     cross_fit=3, method="both")
    evaluate_examples(control.model, SplitExamples(train, train, {"base": test}), cfg, out,
                      progress=False)
    return control, out, test


@pytest.mark.parametrize("method", ["caa", "l2s"])
def test_bundle_round_trip_and_routing(synthetic_run, method):
    control, out, test = synthetic_run
    w2s = W2S.load(RunDir(out).router_dir(method, "logreg"), control.model)
    assert w2s.method == method and w2s.fixed_layer in (1, 2, 3)
    routing = RunDir(out).read_routing(RunDir(out).sweep_dir("base", method))
    sweep, examples = RunDir(out).load_sweep(f"{method}/base")
    # a unit's routed layer is the router's choice on the mean of its presentations' embeddings
    for unit, layer in zip(routing["ids"], routing["router_layer"]["logreg"]):
        pres = [ex for ex in examples if ex.unit == unit]
        x = np.mean([w2s.embed(ex) for ex in pres], axis=0)
        assert int(w2s.router.predict_layers(x[None])[0]) == layer
    # each family is routed to its constructed layer (numbers, not indices)
    for ex in test:
        assert w2s.choose_layer(ex) == control.family_layers[control.family_of(ex)]


def test_steering_at_the_routed_layer_moves_the_answer(synthetic_run):
    control, out, test = synthetic_run
    w2s = W2S.load(RunDir(out).router_dir("l2s", "logreg"), control.model)
    ex = test[0]
    toks = torch.tensor([ex.tokens])

    def prop():
        logits = control.model(toks)[0, -1].detach()
        return float(logits[ex.matching_token_id] - logits[ex.non_matching_token_id])

    base = prop()
    with w2s.steer(ex, multiplier=1.0):
        up = prop()
    with w2s.steer(ex, multiplier=-1.0):
        down = prop()
    assert up > base > down
    assert prop() == pytest.approx(base)


def test_reset_hooks_removes_a_leaked_steering_hook(synthetic_run):
    control, out, test = synthetic_run
    w2s = W2S.load(RunDir(out).router_dir("caa", "logreg"), control.model)
    toks = torch.tensor([test[0].tokens])
    clean = control.model(toks).detach()
    handle = w2s.steer(test[0], multiplier=3.0)  # never undone
    assert not torch.allclose(control.model(toks), clean)
    control.model.reset_hooks()
    assert not handle.active
    assert torch.allclose(control.model(toks).detach(), clean)


def test_bundle_refuses_another_model(synthetic_run):
    control, out, _ = synthetic_run
    other = build_control("positive", n_families=3, n_layers=4, seed=0).model
    other.cfg.model_name = "another-model"
    with pytest.raises(ArtifactMismatch, match="model"):
        W2S.load(RunDir(out).router_dir("caa", "logreg"), other)


@pytest.mark.slow
@pytest.mark.parametrize("embedding", ["resid-last", "resid-mean", "minilm"])
def test_inference_embeds_a_training_prompt_as_training_did(tmp_path, monkeypatch, embedding):
    from w2s_lens.models.loading import load_model

    model = load_model(SMOL)
    items = load_dataset(write_ab_dataset(tmp_path / "data", 8))
    fitted = {}
    real_fit = ev.LayerRouter.fit

    def spy(self, X, S, *a, **k):
        fitted["X"] = np.array(X)
        return real_fit(self, X, S, *a, **k)

    monkeypatch.setattr(ev.LayerRouter, "fit", spy)
    cfg = EvalConfig(dataset="toy", n_train=4, n_test=2, layers=(3, 15), variants=("base",),
                     routers=("logreg",), embedding=embedding, cross_fit=0, n_boot=50,
                     multipliers=(-1.0, 0.0, 1.0))
    evaluate(model, items, cfg, tmp_path / "run", progress=False)
    w2s = W2S.load(RunDir(tmp_path / "run").router_dir("caa", "logreg"), model)
    _, train_exs = RunDir(tmp_path / "run").load_sweep("caa/train")
    units = list(dict.fromkeys(ex.unit for ex in train_exs))
    by_id = {it.id: it for it in items}
    for row, unit in enumerate(units):
        # an ABItem is shown in both letter orders and their embeddings averaged, as in training
        assert np.allclose(w2s.embed(by_id[unit]), fitted["X"][row], atol=1e-4)
        # a plain string is formatted exactly as the training prompt of that item
        text, tokens = w2s.presentations(by_id[unit].question)[0]
        original = next(ex for ex in train_exs if ex.id == unit)
        assert text == original.text and tokens == original.tokens


@pytest.mark.slow
def test_compare_gives_three_continuations(tmp_path):
    from w2s_lens.models.loading import load_model

    model = load_model(SMOL)
    items = load_dataset(write_ab_dataset(tmp_path / "data", 8))
    cfg = EvalConfig(dataset="toy", n_train=4, n_test=2, layers=(3, 15), variants=("base",),
                     routers=("logreg",), cross_fit=0, n_boot=50, generations=1)
    evaluate(model, items, cfg, tmp_path / "run", progress=False)
    rows = RunDir(tmp_path / "run").read_generations("caa")
    assert len(rows) == 1
    row = rows[0]
    assert row["fixed_layer"] in (3, 15) and row["routed_layer"] in (3, 15)
    assert all(isinstance(row[k], str) and row[k] for k in ("unsteered", "fixed", "routed"))
    w2s = W2S.load(RunDir(tmp_path / "run").router_dir("caa", "logreg"), model)
    strong = w2s.compare(row["prompt"], multiplier=40.0, max_new_tokens=8)
    assert row["unsteered"].startswith(strong["unsteered"].rstrip())  # greedy: a prefix
    assert strong["fixed"] != strong["unsteered"]  # a strong push changes the text


def test_steering_at_a_near_zero_layer_warns(synthetic_run):
    import warnings

    from w2s_lens.routing.bundle import WeakLayerWarning

    control, out, test = synthetic_run
    w2s = W2S.load(RunDir(out).router_dir("caa", "logreg"), control.model)
    layers = w2s.router.layers
    with warnings.catch_warnings():
        warnings.simplefilter("error", WeakLayerWarning)  # the planted layers all steer
        for layer in layers:
            with w2s.steer(test[0], 1.0, layer=layer):
                pass
    row = w2s.steerer.layers.index(layers[0])
    w2s.steerer.vectors[row] *= 0.01
    norms = w2s.layer_norms(test[0])
    assert list(norms) == layers and norms[layers[0]] < 0.1 * np.median(list(norms.values()))
    with pytest.warns(WeakLayerWarning, match=f"layer {layers[0]} with a vector of norm"):
        with w2s.steer(test[0], 1.0, layer=layers[0]):
            pass
    l2s = W2S.load(RunDir(out).router_dir("l2s", "logreg"), control.model)
    assert all(n > 0 for n in l2s.layer_norms(test[0]).values())


def test_w2s_is_built_with_keywords_only() -> None:
    with pytest.raises(TypeError, match="positional"):
        W2S(object(), object(), object(), "resid-last")  # type: ignore[misc]
