import json

import pytest
import torch
from conftest import make_tiny_model
from helpers_l2s import D_IN, D_OUT, examples, families, noise
from torch.nn.functional import cosine_similarity

from w2s_lens.artifacts import ArtifactMismatch, IntegrityWarning
from w2s_lens.steering.l2s import prompt_features, train_l2s
from w2s_lens.steering.l2s_config import L2SConfig
from w2s_lens.steering.l2s_steerer import L2SSteerer


@pytest.fixture()
def named_model(tiny_model):
    tiny_model.cfg.model_name = "tiny-rotary"
    return tiny_model


@pytest.fixture(scope="module")
def fitted_families():
    X, Y = families(300, seed=1)
    return L2SSteerer(L2SConfig(hidden=64, epochs=150)).fit(X, Y, layers=[1, 3])


def test_recovers_input_dependent_targets_the_mean_cannot(fitted_families):
    X, Y = families(300, seed=1)
    X_test, Y_test = families(200, seed=2)  # held out
    pred = fitted_families.predict(X_test)
    assert pred.shape == (200, 2, D_OUT)
    cos = cosine_similarity(pred, Y_test, dim=-1)
    mean_cos = cosine_similarity(Y.mean(0).expand_as(Y_test), Y_test, dim=-1)
    assert float(cos.mean()) > 0.9 and float(cos.min()) > 0.5
    assert float(mean_cos.mean()) < 0.7
    assert torch.equal(fitted_families.predict_layer(X_test, 3), pred[:, 1])
    with pytest.raises(KeyError, match="fitted layers"):
        fitted_families.predict_layer(X_test, 2)
    val = fitted_families.metadata["val_loss"]
    assert all(v[0] > 0.5 and min(v) < 0.1 for v in val)  # from the CAA mean to near 0


def test_fit_rejects_inconsistent_inputs():
    X, Y = noise(10)
    with pytest.raises(ValueError, match="same number"):
        L2SSteerer().fit(X[:5], Y, [0, 1])
    with pytest.raises(ValueError, match="layer columns"):
        L2SSteerer().fit(X, Y, [0, 1, 2])
    with pytest.raises(ValueError, match="NaN"):
        L2SSteerer().fit(X * float("nan"), Y, [0, 1])
    with pytest.raises(RuntimeError, match="not fitted"):
        L2SSteerer().predict(X)
    s = L2SSteerer(L2SConfig(epochs=1)).fit(X, Y, [0, 1])
    with pytest.raises(ValueError, match="fitted on 16"):
        s.predict(X[:, :3])


def test_constructor_checks_the_hook_and_records_the_config():
    with pytest.raises(ValueError, match="hook must be one of"):
        L2SSteerer(hook="attn_out")
    s = L2SSteerer(L2SConfig(hidden=7), model_name="m", hook="resid_post", dataset="d")
    assert s.get_params()["hidden"] == 7 and s.hook == "resid_post"
    assert repr(s) == "L2SSteerer(model='m', hook='resid_post', layers=[], input_layer=None)"


def test_apply_adds_the_predicted_vector(named_model):
    exs = examples(6)
    steerer, _ = train_l2s(named_model, exs, layers=[2],
                           config=L2SConfig(hidden=16, epochs=3, val_fraction=0))
    x = prompt_features(named_model, [exs[0].tokens], steerer.metadata["input_layer"])[0]
    tokens = torch.tensor([exs[0].tokens])
    point = named_model.hook_dict["blocks.2.hook_resid_pre"]

    def run() -> torch.Tensor:
        got = []
        h = point.register_forward_hook(lambda m, i, out: got.append(out.detach().clone()))
        named_model(tokens)
        h.remove()
        return got[0][0]

    base = run()
    with steerer.apply(named_model, x, layer=2, multiplier=-1.5):
        steered = run()
    want = -1.5 * steerer.predict_layer(x[None], 2)[0]
    assert torch.allclose(steered[-1] - base[-1], want, atol=1e-5)
    assert torch.allclose(steered[:-1], base[:-1])
    other = make_tiny_model(seed=3)
    other.cfg.model_name = "other"
    with pytest.raises(ArtifactMismatch, match="'tiny-rotary'.*'other'"):
        steerer.apply(other, x, layer=2, multiplier=1.0)


def test_save_load_round_trip_and_refusals(named_model, fitted_families, tmp_path):
    steerer, _ = train_l2s(named_model, examples(6, swaps=True), layers=[0, 2],
                           config=L2SConfig(hidden=16, epochs=4))
    steerer.save(tmp_path / "s")
    meta = json.loads((tmp_path / "s" / "l2s.json").read_text())
    assert meta["format_version"] >= 2 and "torch" in meta["versions"]
    assert len(meta["val_loss"][0]) == meta["epochs_run"] + 1
    back = L2SSteerer.load(tmp_path / "s", model=named_model, hook="resid_pre", layers=[2, 0])
    X = torch.randn(5, 32)
    assert torch.equal(back.predict(X), steerer.predict(X))
    assert back.layers == [0, 2] and back.config == steerer.config
    assert back.metadata["best_epoch"] == steerer.metadata["best_epoch"]

    other = make_tiny_model(seed=3)
    other.cfg.model_name = "other-model"
    with pytest.raises(ArtifactMismatch, match="model='tiny-rotary'.*model='other-model'"):
        L2SSteerer.load(tmp_path / "s", model=other)
    with pytest.raises(ArtifactMismatch, match="hook='resid_pre'.*hook='resid_post'"):
        L2SSteerer.load(tmp_path / "s", hook="resid_post")
    with pytest.raises(ArtifactMismatch, match=r"layers=\[0, 2\].*layers=\[0, 1\]"):
        L2SSteerer.load(tmp_path / "s", layers=[0, 1])

    # a steerer fitted without a model name (synthetic X/Y) still round-trips
    fitted_families.save(tmp_path / "f")
    again = L2SSteerer.load(tmp_path / "f", layers=[1, 3])
    X = torch.randn(4, D_IN)
    assert torch.equal(again.predict(X), fitted_families.predict(X))


def test_load_refuses_an_old_format(named_model, tmp_path):
    steerer, _ = train_l2s(named_model, examples(4), layers=[1],
                           config=L2SConfig(hidden=8, epochs=1, val_fraction=0))
    steerer.save(tmp_path)
    meta = json.loads((tmp_path / "l2s.json").read_text())
    meta["format_version"] = 1
    (tmp_path / "l2s.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactMismatch, match="format_version 1"):
        L2SSteerer.load(tmp_path)


def test_load_refuses_missing_tensors(fitted_families, tmp_path):
    from safetensors.torch import load_file, save_file

    fitted_families.save(tmp_path)
    tensors = load_file(tmp_path / "l2s.safetensors")
    del tensors["y_scale"]
    save_file(tensors, tmp_path / "l2s.safetensors")
    with pytest.raises(ArtifactMismatch, match=r"l2s.safetensors is damaged.*l2s.json"):
        L2SSteerer.load(tmp_path)
    meta = json.loads((tmp_path / "l2s.json").read_text())
    del meta["integrity"]  # as written before seals: the tensors are still checked
    (tmp_path / "l2s.json").write_text(json.dumps(meta))
    with pytest.warns(IntegrityWarning), \
            pytest.raises(ArtifactMismatch, match=r"l2s.safetensors lacks tensors \['y_scale'\]"):
        L2SSteerer.load(tmp_path)
