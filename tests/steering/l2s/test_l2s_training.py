import numpy as np
import pytest
import torch
from helpers_l2s import D_IN, D_OUT, families, noise

from w2s_lens.steering.l2s.config import L2SConfig
from w2s_lens.steering.l2s.network import StackedMLP
from w2s_lens.steering.l2s.steerer import L2SSteerer
from w2s_lens.steering.l2s.training import split_by_group, standardisers, train_stacked


def test_early_stopping_restores_the_best_validation_epoch():
    X, Y = noise()  # nothing to learn: the MLPs overfit
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
    X, Y = families(120, seed=1)
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
    X, Y = noise()
    s = L2SSteerer(L2SConfig(epochs=1, lr=1e-12, val_fraction=0)).fit(X, Y, [0, 1])
    assert s.metadata["val_loss"] is None and s.metadata["best_epoch"] == [1, 1]
    assert torch.allclose(s.predict(X[:3]), Y.mean(0).expand(3, 2, D_OUT), atol=1e-5)


def test_fit_is_deterministic_for_a_seed():
    X, Y = families(120, seed=1)
    cfg = L2SConfig(hidden=32, epochs=20)
    a = L2SSteerer(cfg).fit(X, Y, [1, 3]).predict(X)
    b = L2SSteerer(cfg).fit(X, Y, [1, 3]).predict(X)
    c = L2SSteerer(L2SConfig(hidden=32, epochs=20, seed=1)).fit(X, Y, [1, 3]).predict(X)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-4)


def test_groups_stay_on_one_side_of_the_split():
    X, Y = noise(40)
    groups = [f"item{i // 2}" for i in range(40)]
    s = L2SSteerer(L2SConfig(epochs=2, val_fraction=0.25)).fit(X, Y, [0, 1], groups=groups)
    val_items = {groups[i] for i in s.val_index_}
    assert len(val_items) == 5 and not val_items & {groups[i] for i in s.train_index_}
    with pytest.raises(ValueError, match="val_fraction"):
        L2SSteerer().fit(X, Y, [0, 1], groups=["one"] * 40)


def test_split_by_group_sizes_and_no_validation():
    groups = [f"g{i // 3}" for i in range(30)]  # 10 groups of 3 rows
    tr, va = split_by_group(groups, 0.2, torch.Generator().manual_seed(0))
    assert len(va) == 6 and len(tr) == 24
    assert sorted(tr.tolist() + va.tolist()) == list(range(30))
    tr, va = split_by_group(groups, 0.0, torch.Generator())
    assert tr.tolist() == list(range(30)) and len(va) == 0
    with pytest.raises(ValueError, match="leaves no training item among 1 item"):
        split_by_group(["a", "a"], 0.5, torch.Generator())


def test_train_stacked_without_validation_keeps_the_last_epoch():
    X, Y = noise(20)
    net = StackedMLP([0, 1], D_IN, 8, Y.shape[2])
    rec = train_stacked(net, X, Y, X[:0], Y[:0], L2SConfig(epochs=4, lr=1e-2),
                        torch.Generator().manual_seed(0), progress=False)
    assert rec["epochs_run"] == 4 and rec["best_epoch"] == [4, 4] == rec["stop_epoch"]
    assert rec["val_loss"] is None and len(rec["train_loss"][0]) == 5
    assert rec["train_loss"][0][-1] < rec["train_loss"][0][0]


def test_standardisers():
    X = torch.randn(30, 4)
    X[:, 2] = 5.0  # a constant feature is not divided by ~0
    Y = torch.randn(30, 2, 3) * torch.tensor([1.0, 10.0])[:, None]
    st = standardisers(X, Y)
    assert st["x_std"][2] == 1.0
    ys = (Y - st["y_mean"]) / st["y_scale"][:, None]
    torch.testing.assert_close(((ys ** 2).mean(dim=(0, 2))), torch.ones(2))
