import pytest
import torch
from helpers_l2s import examples

import w2s_lens.steering.l2s as l2s
from w2s_lens.steering import l2s_config, l2s_steerer
from w2s_lens.steering.l2s import prompt_features, train_l2s
from w2s_lens.steering.l2s_config import L2SConfig
from w2s_lens.steering.vectors import train_caa


@pytest.fixture()
def named_model(tiny_model):
    tiny_model.cfg.model_name = "tiny-rotary"
    return tiny_model


def test_each_name_has_one_import_home():
    assert (l2s_steerer.WEIGHTS_FILE, l2s_steerer.META_FILE) == ("l2s.safetensors", "l2s.json")
    assert {"prompt_features", "train_l2s"} <= set(l2s.__all__)
    assert not {"L2SConfig", "L2SSteerer"} & set(l2s.__all__)
    assert "L2SConfig" in l2s_config.__all__ and "L2SSteerer" in l2s_steerer.__all__


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
