import numpy as np
import pytest
import torch

from w2s_lens.artifacts import ArtifactMismatch
from w2s_lens.embeddings import embed_examples
from w2s_lens.router import LayerRouter
from w2s_lens.sweep import run_sweep
from w2s_lens.synthetic import build_control
from w2s_lens.vectors import train_caa
from w2s_lens.w2s import W2S


@pytest.fixture(scope="module")
def bundle():
    ctl = build_control("positive", n_families=3, n_layers=4, seed=0)
    train = ctl.make_examples(24, seed=1)
    vecs = train_caa(ctl.model, train + [ctl.swap(e) for e in train])
    sweep = run_sweep(ctl.model, vecs, train, progress=False)
    x = embed_examples(ctl.model, train, "resid-last", 2)
    router = LayerRouter("logreg", model=ctl.model.cfg.model_name, embedding="resid-last@2",
                         layers=sweep.layers).fit(x, sweep.steerability)
    return ctl, W2S(ctl.model, vecs, router, "resid-last", 2)


def test_routes_each_family_to_its_layer(bundle):
    ctl, w2s = bundle
    test = ctl.make_examples(9, seed=5)
    routed = w2s.route_many(test)
    want = [ctl.family_layers[ctl.family_of(e)] for e in test]
    assert routed.tolist() == want
    assert w2s.choose_layer(test[0].tokens) == want[0]


def test_steer_adds_at_routed_layer_only(bundle):
    ctl, w2s = bundle
    ex = ctl.make_examples(3, seed=7)[1]
    layer = w2s.choose_layer(ex)
    toks = torch.tensor([ex.tokens])
    base = ctl.model(toks)[0, -1].detach()
    with w2s.steer(ex, multiplier=1.0):
        steered = ctl.model(toks)[0, -1].detach()
    manual_vec = w2s.vectors.vector(layer)
    with w2s.vectors.apply(ctl.model, layer, 1.0):
        manual = ctl.model(toks)[0, -1].detach()
    assert torch.allclose(steered, manual)
    assert not torch.allclose(steered, base)
    assert float(manual_vec.norm()) > 0
    assert torch.allclose(ctl.model(toks)[0, -1].detach(), base)  # undone


def test_save_load_and_refusal(bundle, tmp_path):
    ctl, w2s = bundle
    w2s.save(tmp_path)
    back = W2S.load(tmp_path, ctl.model)
    test = ctl.make_examples(6, seed=9)
    assert np.array_equal(back.route_many(test), w2s.route_many(test))
    other = build_control("negative", n_families=3, n_layers=4, seed=0)
    with pytest.raises(ArtifactMismatch, match="model"):
        W2S.load(tmp_path, other.model)


def test_embedding_mismatch_refused(bundle):
    ctl, w2s = bundle
    with pytest.raises(ValueError, match="reads embedding"):
        W2S(ctl.model, w2s.vectors, w2s.router, "resid-mean", 2)


def test_steer_at_a_given_layer(bundle):
    ctl, w2s = bundle
    ex = ctl.make_examples(3, seed=7)[0]
    toks = torch.tensor([ex.tokens])
    with w2s.steer(ex, multiplier=1.0, layer=3):
        given = ctl.model(toks)[0, -1].detach()
    with w2s.vectors.apply(ctl.model, 3, 1.0):
        manual = ctl.model(toks)[0, -1].detach()
    assert torch.allclose(given, manual)
    with pytest.raises(ValueError, match="router can pick"):
        w2s.steer(ex, layer=9)
