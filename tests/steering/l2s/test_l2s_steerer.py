import json

import pytest
import torch
from conftest import make_tiny_model
from helpers_l2s import D_IN, D_OUT, examples, families, noise
from torch.nn.functional import cosine_similarity

import w2s_lens.steering.l2s as l2s
from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.steering.l2s import config, network, steerer, training
from w2s_lens.steering.l2s.config import L2SConfig
from w2s_lens.steering.l2s.steerer import L2SSteerer, prompt_features, train_l2s
from w2s_lens.steering.vectors import train_caa


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


def test_each_name_has_one_import_home():
    assert (network.WEIGHTS_FILE, network.META_FILE) == ("l2s.safetensors", "l2s.json")
    assert set(steerer.__all__) == {"L2SSteerer", "prompt_features", "train_l2s"}
    assert config.__all__ == ["L2SConfig"] and "StackedMLP" in network.__all__
    assert "train_stacked" in training.__all__
    assert not hasattr(l2s, "__all__") and not hasattr(l2s, "L2SSteerer")  # no re-exports


def test_train_l2s_mean_p2s_is_caa(named_model):
    exs = examples(6, swaps=True)
    steerer, acts = train_l2s(named_model, exs, layers=[3, 1],
                              config=L2SConfig(hidden=16, epochs=5), dataset="toy")
    caa = train_caa(named_model, exs, layers=[1, 3])
    assert torch.allclose(acts.mean_diff(), caa.vectors, atol=1e-5)
    assert steerer.layers == [1, 3] == acts.layers
    meta = steerer.metadata
    assert meta["input_layer"] == named_model.cfg.n_layers // 2 == acts.input_layer
    assert (meta["model"], meta["hook"], meta["dataset"]) == ("tiny-rotary", "resid_pre", "toy")
    assert (meta["d_in"], meta["d_model"], meta["n_pairs"]) == (32, 32, 12)
    units = [e.id.removesuffix("~swap") for e in exs]
    assert not {units[i] for i in steerer.val_index_} & {units[i] for i in steerer.train_index_}
    X = prompt_features(named_model, [e.tokens for e in exs], acts.input_layer)
    assert torch.allclose(X, acts.prompt_resid, atol=1e-5)
    assert steerer.predict(X).shape == (12, 2, 32)


def test_prompt_features_read_the_last_token(named_model):
    seqs = [[3, 4, 5], [6, 7, 8, 9, 10]]
    got = prompt_features(named_model, seqs, input_layer=1)
    for seq, row in zip(seqs, got):
        _, cache = named_model.run_with_cache(torch.tensor([seq]))
        assert torch.allclose(row, cache["blocks.1.hook_resid_pre"][0, -1], atol=1e-5)
