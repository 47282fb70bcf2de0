import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from helpers_l2s import D_IN

from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.artifacts.seals import IntegrityWarning
from w2s_lens.steering.l2s.network import (
    META_FILE,
    STAT_KEYS,
    TENSOR_KEYS,
    WEIGHTS_FILE,
    StackedMLP,
    as_tensor,
    check_model_matches,
    read_networks,
    write_networks,
)


def test_stacked_mlp_starts_at_zero_and_round_trips_its_tensors():
    net = StackedMLP([2, 7], D_IN, hidden=8, d_out=5, seed=3)
    x = torch.randn(4, D_IN)
    assert torch.equal(net(x), torch.zeros(4, 2, 5))
    with torch.no_grad():
        net.fc2_weight.normal_()
    back = StackedMLP.from_tensors({k: v.detach() for k, v in net.tensors().items()})
    with torch.no_grad():
        assert torch.equal(back(x), net(x)) and float(net(x).abs().max()) > 0
    # layer 7's first layer is the same alone as next to layer 2 (seeded by layer number)
    alone = StackedMLP([7], D_IN, hidden=8, d_out=5, seed=3)
    assert torch.equal(alone.fc1_weight[0], net.fc1_weight[1])


def test_as_tensor():
    assert as_tensor(np.ones((2, 3)), "X", 2).dtype == torch.float32
    with pytest.raises(ValueError, match="Y must have 3 dimensions, got shape \\(2, 3\\)"):
        as_tensor(torch.ones(2, 3), "Y", 3)
    with pytest.raises(ValueError, match="X contains NaN"):
        as_tensor(torch.tensor([[float("inf")]]), "X", 2)


def _networks(d_out: int = 32) -> tuple[StackedMLP, dict[str, torch.Tensor], dict]:
    net = StackedMLP([0, 2], D_IN, hidden=8, d_out=d_out, seed=1)
    with torch.no_grad():
        net.fc2_weight.normal_()
    stats = {"x_mean": torch.randn(D_IN), "x_std": torch.rand(D_IN) + 0.5,
             "y_mean": torch.randn(2, d_out), "y_scale": torch.rand(2) + 0.5}
    meta = {"model": "tiny-rotary", "hook": "resid_pre", "layers": [0, 2], "d_model": d_out,
            "config": {"hidden": 8}}
    return net, stats, meta


def test_write_read_round_trip_records_no_module_path(tmp_path):
    net, stats, meta = _networks()
    assert write_networks(tmp_path, net, stats, meta) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == [META_FILE, WEIGHTS_FILE]
    back_meta, back, back_stats = read_networks(tmp_path, hook="resid_pre", layers=[2, 0])
    x = torch.randn(3, D_IN)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
    assert set(back_stats) == set(STAT_KEYS) and set(TENSOR_KEYS) > set(STAT_KEYS)
    assert all(torch.equal(back_stats[k], stats[k]) for k in STAT_KEYS)
    assert {k: back_meta[k] for k in meta} == meta and "format_version" in back_meta
    # saved files load wherever the classes live: neither names a module or class
    text = (tmp_path / META_FILE).read_text()
    assert "w2s_lens." not in text and "StackedMLP" not in text and "L2SSteerer" not in text


def test_check_model_matches_refuses_another_model_or_width():
    model = make_tiny_model(seed=3)
    model.cfg.model_name = "tiny-rotary"
    check_model_matches({"model": "tiny-rotary", "d_model": 32}, model)
    check_model_matches({"model": None, "d_model": 32}, model)  # no name recorded
    with pytest.raises(ArtifactMismatch, match="model='other'.*model='tiny-rotary'"):
        check_model_matches({"model": "other", "d_model": 32}, model)
    with pytest.raises(ArtifactMismatch, match="d_model=16"):
        check_model_matches({"model": None, "d_model": 16}, model)


def test_read_refuses_an_old_format(tmp_path):
    write_networks(tmp_path, *_networks())
    meta = json.loads((tmp_path / META_FILE).read_text())
    meta["format_version"] = 1
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ArtifactMismatch, match="format_version 1"):
        read_networks(tmp_path)


def test_read_refuses_missing_tensors(tmp_path):
    from safetensors.torch import load_file, save_file

    write_networks(tmp_path, *_networks())
    tensors = load_file(tmp_path / WEIGHTS_FILE)
    del tensors["y_scale"]
    save_file(tensors, tmp_path / WEIGHTS_FILE)
    with pytest.raises(ArtifactMismatch, match=r"l2s.safetensors is damaged.*l2s.json"):
        read_networks(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    del meta["integrity"]  # as written before seals: the tensors are still checked
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.warns(IntegrityWarning), \
            pytest.raises(ArtifactMismatch, match=r"l2s.safetensors lacks tensors \['y_scale'\]"):
        read_networks(tmp_path)
