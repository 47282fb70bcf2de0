import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from torch.nn.functional import cosine_similarity

from w2s_lens.artifacts import ArtifactMismatch
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.l2s import L2SConfig, L2SSteerer, prompt_features, train_l2s
from w2s_lens.steering.vectors import train_caa

D_IN, D_OUT, FAMILIES = 16, 12, 3


def _families(n: int, seed: int):
    """Inputs from 3 families; each family has its own linear map x -> P2S, per layer."""
    g = torch.Generator().manual_seed(100)
    centers = torch.randn(FAMILIES, D_IN, generator=g) * 1.5
    maps = torch.randn(FAMILIES, 2, D_IN, D_OUT, generator=g) / D_IN ** 0.5
    g = torch.Generator().manual_seed(seed)
    fam = torch.randint(0, FAMILIES, (n,), generator=g)
    x = centers[fam] + torch.randn(n, D_IN, generator=g)
    return x, torch.einsum("nd,nldm->nlm", x, maps[fam])


def _noise(n: int = 40, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D_IN, generator=g), torch.randn(n, 2, D_OUT, generator=g)


def _examples(n=6, seed=0, swaps=False):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        tokens = tuple(int(t) for t in rng.integers(2, 60, size=5 + i))
        out.append(SteeringExample(id=f"e{i}", text="", tokens=tokens,
                                   matching_token_id=60 + i % 2,
                                   non_matching_token_id=61 - i % 2,
                                   matching_letter="AB"[i % 2]))
        if swaps:
            out.append(SteeringExample(id=f"e{i}~swap", text="", tokens=tokens,
                                       matching_token_id=61 - i % 2,
                                       non_matching_token_id=60 + i % 2,
                                       matching_letter="BA"[i % 2]))
    return out


@pytest.fixture()
def named_model(tiny_model):
    tiny_model.cfg.model_name = "tiny-rotary"
    return tiny_model


@pytest.fixture(scope="module")
def fitted_families():
    X, Y = _families(300, seed=1)
    return L2SSteerer(L2SConfig(hidden=64, epochs=150)).fit(X, Y, layers=[1, 3])


@pytest.mark.parametrize("field,value", [
    ("hidden", 0), ("epochs", 0), ("batch_size", 0), ("patience", 0), ("lr", 0.0),
    ("weight_decay", -1.0), ("val_fraction", 1.0), ("val_fraction", -0.1),
    ("input_layer", -1), ("seed", 1.5), ("hidden", 2.5),
])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"L2SConfig.{field} must be"):
        L2SConfig(**{field: value})


def test_recovers_input_dependent_targets_the_mean_cannot(fitted_families):
    X, Y = _families(300, seed=1)
    X_test, Y_test = _families(200, seed=2)  # held out
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


def test_early_stopping_restores_the_best_validation_epoch():
    X, Y = _noise()  # nothing to learn: the MLPs overfit
    s = L2SSteerer(L2SConfig(hidden=64, lr=1e-2, epochs=200, patience=10)).fit(X, Y, [0, 1])
    meta = s.metadata
    va = s.val_index_
    assert len(va) == 8 and not set(va) & set(s.train_index_)
    scale = ((Y[s.train_index_] - Y[s.train_index_].mean(0)) ** 2).mean(dim=(0, 2))
    got = ((s.predict(X[va]) - Y[va]) ** 2).mean(dim=(0, 2)) / scale
    for j in range(2):
        curve = meta["val_loss"][j]
        best = meta["best_epoch"][j]
        assert best == int(np.argmin(curve))
        assert meta["epochs_run"] >= best + 10 and meta["epochs_run"] < 200
        assert len(curve) == meta["epochs_run"] + 1 == len(meta["train_loss"][j])
        assert curve[-1] > curve[best]
        assert abs(float(got[j]) - curve[best]) < 1e-4
        assert meta["train_loss"][j][-1] < meta["train_loss"][j][best]  # it did overfit


def test_each_layer_ends_as_if_trained_alone():
    """Layers stop at different epochs; the stacked fit equals one fit per layer, even for a
    layer whose validation loss dips again after it stopped (it keeps its own best)."""
    X, Y = _families(120, seed=1)
    cfg = L2SConfig(hidden=32, epochs=80, patience=2, lr=1e-2, seed=1)
    both = L2SSteerer(cfg).fit(X, Y, [1, 3])
    meta = both.metadata
    stops, bests = meta["stop_epoch"], meta["best_epoch"]
    assert stops[0] < stops[1] == meta["epochs_run"]
    assert stops[0] == bests[0] + 2
    later = meta["val_loss"][0][stops[0] + 1:]
    assert min(later) < meta["val_loss"][0][bests[0]]  # the case this test is about
    for j, layer in enumerate([1, 3]):
        alone = L2SSteerer(cfg).fit(X, Y[:, [j]], [layer])
        assert alone.metadata["best_epoch"] == [bests[j]]
        assert torch.allclose(alone.predict(X)[:, 0], both.predict_layer(X, layer), atol=1e-5)


def test_untrained_steerer_is_the_training_mean():
    X, Y = _noise()
    s = L2SSteerer(L2SConfig(epochs=1, lr=1e-12, val_fraction=0)).fit(X, Y, [0, 1])
    assert s.metadata["val_loss"] is None and s.metadata["best_epoch"] == [1, 1]
    assert torch.allclose(s.predict(X[:3]), Y.mean(0).expand(3, 2, D_OUT), atol=1e-5)


def test_fit_is_deterministic_for_a_seed():
    X, Y = _families(120, seed=1)
    cfg = L2SConfig(hidden=32, epochs=20)
    a = L2SSteerer(cfg).fit(X, Y, [1, 3]).predict(X)
    b = L2SSteerer(cfg).fit(X, Y, [1, 3]).predict(X)
    c = L2SSteerer(L2SConfig(hidden=32, epochs=20, seed=1)).fit(X, Y, [1, 3]).predict(X)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-4)


def test_groups_stay_on_one_side_of_the_split():
    X, Y = _noise(40)
    groups = [f"item{i // 2}" for i in range(40)]
    s = L2SSteerer(L2SConfig(epochs=2, val_fraction=0.25)).fit(X, Y, [0, 1], groups=groups)
    val_items = {groups[i] for i in s.val_index_}
    assert len(val_items) == 5 and not val_items & {groups[i] for i in s.train_index_}
    with pytest.raises(ValueError, match="val_fraction"):
        L2SSteerer().fit(X, Y, [0, 1], groups=["one"] * 40)


def test_fit_rejects_inconsistent_inputs():
    X, Y = _noise(10)
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


def test_train_l2s_mean_p2s_is_caa(named_model):
    exs = _examples(6, swaps=True)
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


def test_apply_adds_the_predicted_vector(named_model):
    exs = _examples(6)
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
    steerer, _ = train_l2s(named_model, _examples(6, swaps=True), layers=[0, 2],
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
    steerer, _ = train_l2s(named_model, _examples(4), layers=[1],
                           config=L2SConfig(hidden=8, epochs=1, val_fraction=0))
    steerer.save(tmp_path)
    meta = json.loads((tmp_path / "l2s.json").read_text())
    meta["format_version"] = 1
    (tmp_path / "l2s.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactMismatch, match="format_version 1"):
        L2SSteerer.load(tmp_path)


def test_prompt_features_read_the_last_token(named_model):
    seqs = [[3, 4, 5], [6, 7, 8, 9, 10]]
    got = prompt_features(named_model, seqs, input_layer=1)
    for seq, row in zip(seqs, got):
        _, cache = named_model.run_with_cache(torch.tensor([seq]))
        assert torch.allclose(row, cache["blocks.1.hook_resid_pre"][0, -1], atol=1e-5)
