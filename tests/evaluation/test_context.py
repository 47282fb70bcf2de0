"""The evaluation context: layers, folds, and given vectors reduced to the swept layers (or
refused, before any sweep, when a swept layer is not stored)."""

import pytest
import torch

import w2s_lens.evaluation.context as context
from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.config_parts import ConfigError
from w2s_lens.evaluation.context import EvalContext, folds, resolve_layers, swept_vectors, unique
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.steering.vectors import SteeringVectors, train_caa

CFG = dict(dataset="synthetic", variants=("base",), routers=("logreg",), n_boot=100,
           cross_fit=3)


@pytest.fixture(scope="module")
def control():
    return build_control("positive", n_families=3, n_layers=4, seed=0)


@pytest.fixture(scope="module")
def split(control):
    train = control.make_examples(12, seed=1, both_orders=True)
    return SplitExamples(train, train, {"base": control.make_examples(6, seed=2,
                                                                      both_orders=True)})


def test_layers_folds_and_order():
    units = [f"u{i}" for i in range(7)]
    f = folds(units, 3, seed=0)
    assert sorted(f) == sorted(units) and sorted(set(f.values())) == [0, 1, 2]
    assert max(list(f.values()).count(k) for k in range(3)) == 3  # balanced: 3, 2, 2
    assert folds(units, 3, seed=0) == f and folds(units, 0, seed=0) == dict.fromkeys(units, -1)
    with pytest.raises(ConfigError, match="at least 3 training items"):
        folds(units[:2], 3, seed=0)
    assert unique(["b", "a", "b", "c"]) == ["b", "a", "c"]


def test_resolve_layers(control):
    assert resolve_layers(control.model, EvalConfig()) == [1, 2, 3]
    assert resolve_layers(control.model, EvalConfig(layers=(3, 0))) == [0, 3]
    with pytest.raises(ConfigError, match=r"\[7\] are outside this model's 0..3"):
        resolve_layers(control.model, EvalConfig(layers=(1, 7)))


def test_swept_vectors_select_by_layer_number():
    vecs = SteeringVectors(torch.arange(12.0).reshape(4, 3), [0, 1, 2, 3],
                           metadata={"resid_norms": [10.0, 11.0, 12.0, 13.0]})
    sub = swept_vectors(vecs, [1, 3])
    assert sub.layers == [1, 3] and torch.equal(sub.vectors, vecs.vectors[[1, 3]])
    assert sub.metadata["resid_norms"] == [11.0, 13.0]
    assert sub.metadata["stored_layers"] == [0, 1, 2, 3]
    assert swept_vectors(vecs, [0, 1, 2, 3]) is vecs
    with pytest.raises(ConfigError, match=r"the vectors in v/ lack layers \[5\]"):
        swept_vectors(vecs, [1, 5], "v/")


def test_given_vectors_for_more_layers_than_are_swept(control, split, tmp_path):
    """The audit's crash: vectors stored at layers 0-3, layers 1-3 swept (and a relative
    scale, whose unit is per layer) ran every sweep, then failed on [1, 4] x [3]."""
    stored = train_caa(control.model, split.vector_train, layers=[0, 1, 2, 3], progress=False)
    stored.save(tmp_path / "v")
    cfg = EvalConfig(**CFG, vectors=str(tmp_path / "v"), layers=(1, 2, 3), scale="relative")
    res = evaluate_examples(control.model, split, cfg, tmp_path / "run", progress=False).to_dict()
    caa = res["methods"]["caa"]
    assert res["layers"] == [1, 2, 3] and len(caa["vector_norms"]) == 3
    derived = RunDir(tmp_path / "run").read_run()["derived"]
    assert derived["vector_norms"] == pytest.approx(stored.norms()[1:].tolist())
    # the relative scale: lambda = 1 adds a quarter of each swept layer's residual norm
    assert caa["vector_norms"] == pytest.approx(
        [0.25 * r for r in stored.metadata["resid_norms"][1:]], rel=1e-5)
    ctx = EvalContext(control.model, split, cfg, None, False)
    assert ctx.caa.layers == [1, 2, 3] and torch.equal(ctx.caa.vectors, stored.vectors[1:])


def test_given_vectors_lacking_a_swept_layer_are_refused_before_any_sweep(
        control, split, tmp_path, monkeypatch):
    train_caa(control.model, split.vector_train, layers=[1, 2],
              progress=False).save(tmp_path / "v")

    def no_sweep(*a, **k):
        raise AssertionError("a sweep ran before the vectors were checked")

    monkeypatch.setattr(context, "run_sweep", no_sweep)
    cfg = EvalConfig(**CFG, vectors=str(tmp_path / "v"), layers=(1, 2, 3))
    with pytest.raises(ConfigError, match=r"lack layers \[3\] \(stored: \[1, 2\]\)"):
        evaluate_examples(control.model, split, cfg, progress=False)
