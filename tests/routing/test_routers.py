"""Tests for w2s_lens.routing.routers (small synthetic data, fast)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.routing.estimators import CLASSIFIER_KINDS, ESTIMATOR_KINDS, LOGREG_GRID
from w2s_lens.routing.labels import best_layers
from w2s_lens.routing.routers import (
    LayerRouter,
    RouterMismatchError,
    make_router,
)

LOGREG_C = LOGREG_GRID["logisticregression__C"]
META = dict(model="tiny-model", dataset="toy", embedding="minilm", layers=[2, 4, 6, 8])


def synthetic(n: int, seed: int, L: int = 4, d: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Clustered embeddings, one cluster per best layer; curves peak at that layer."""
    rng = np.random.default_rng(seed)
    centers = 2.0 * np.random.default_rng(123).normal(size=(L, d))  # same across splits
    label = rng.integers(0, L, size=n)
    X = centers[label] + rng.normal(size=(n, d))
    grid = np.arange(L)
    S = 1.0 - 0.3 * np.abs(grid[None, :] - label[:, None]) + 0.02 * rng.normal(size=(n, L))
    return X, S


@pytest.mark.parametrize("kind", ESTIMATOR_KINDS)
def test_learns_separable_mapping(kind: str) -> None:
    X, S = synthetic(400, seed=0)
    Xt, St = synthetic(200, seed=1)
    r = make_router(kind, seed=0, **META).fit(X, S)
    acc = float(np.mean(r.predict(Xt) == best_layers(St)))
    assert acc > 0.9, (kind, acc, r.cv_info_)
    sc = r.scores(Xt)
    assert sc.shape == (200, 4)
    assert np.array_equal(np.argmax(sc, 1), r.predict(Xt))
    assert r.predict_layers(Xt[:3]).tolist() == [META["layers"][i] for i in r.predict(Xt[:3])]
    if kind in CLASSIFIER_KINDS:
        assert np.allclose(sc.sum(1), 1.0)
    if kind != "curve":
        assert r.cv_info_["n_splits"] == 5


@pytest.mark.parametrize("kind", ESTIMATOR_KINDS)
def test_degenerate_single_best_layer(kind: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 5))
    S = np.tile([0.1, 0.2, 0.9], (12, 1)) + 0.01 * rng.normal(size=(12, 3))
    r = make_router(kind).fit(X, S)
    assert r.predict(rng.normal(size=(7, 5))).tolist() == [2] * 7
    if kind in CLASSIFIER_KINDS:
        assert r.constant_ == 2
        assert r.scores(X[:2]).tolist() == [[0, 0, 1.0], [0, 0, 1.0]]


@pytest.mark.parametrize("kind", ["logreg", "mlp"])
def test_tiny_data_and_singleton_class(kind: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 3))
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])  # layer 2 is best for one input only
    S = np.eye(3)[labels]
    r = make_router(kind).fit(X, S)
    assert r.predict(X).shape == (9,)
    assert r.scores(X).shape == (9, 3)
    assert r.cv_info_["n_samples"] == 9
    assert r.cv_info_["n_splits"] == 5  # the one-input class does not disable tuning
    # two inputs, two classes: two folds, each training fold one input (a constant router)
    r2 = make_router(kind).fit(X[[0, 8]], S[[0, 8]])
    assert r2.cv_info_["n_splits"] == 2
    assert set(r2.predict(X).tolist()) <= {0, 2}


def test_unseen_layers_get_zero_probability() -> None:
    X, S = synthetic(80, seed=0, L=4)
    S = np.concatenate([S[:, :1] - 5, S, S[:, :1] - 5], axis=1)  # 6 columns, labels only in 1..4
    r = make_router("logreg").fit(X, S)
    sc = r.scores(X)
    assert sc.shape == (80, 6)
    assert np.all(sc[:, 0] == 0) and np.all(sc[:, 5] == 0)


@pytest.mark.parametrize("kind", ESTIMATOR_KINDS)
def test_save_load_roundtrip(kind: str, tmp_path) -> None:
    X, S = synthetic(120, seed=0)
    Xt, _ = synthetic(50, seed=1)
    r = make_router(kind, seed=0, hook="resid_pre", **META).fit(X, S)
    r.save(tmp_path / "router")
    meta = json.loads((tmp_path / "router" / "router.json").read_text())
    for key in (
        "kind",
        "model",
        "dataset",
        "embedding",
        "layers",
        "hook",
        "readout",
        "format_version",
        "versions",
        "sklearn_version",
    ):
        assert key in meta
    assert meta["versions"]["w2s-lens"]
    assert meta["kind"] == kind and meta["layers"] == META["layers"]
    assert sorted(p.name for p in (tmp_path / "router").iterdir()) == [
        "router.json", "router.safetensors"]
    loaded = LayerRouter.load(tmp_path / "router", expect=META)
    assert np.array_equal(loaded.predict(Xt), r.predict(Xt))
    assert np.array_equal(loaded.scores(Xt), r.scores(Xt))  # exactly, not approximately
    assert loaded.layers == META["layers"] and loaded.cv_info_ == r.cv_info_


def test_save_load_constant_router(tmp_path) -> None:
    X = np.random.default_rng(0).normal(size=(6, 3))
    r = make_router("logreg", **META).fit(X, np.tile([0.0, 0.0, 0.0, 1.0], (6, 1)))
    r.save(tmp_path)
    loaded = LayerRouter.load(tmp_path, expect=META)
    assert loaded.predict(X).tolist() == [3] * 6


@pytest.mark.parametrize(
    "key,value",
    [
        ("model", "other-model"),
        ("dataset", "other"),
        ("embedding", "residual"),
        ("layers", [2, 4, 6, 9]),
    ],
)
def test_load_refuses_mismatch(key: str, value, tmp_path) -> None:
    X, S = synthetic(60, seed=0)
    make_router("logreg", **META).fit(X, S).save(tmp_path)
    with pytest.raises(RouterMismatchError) as err:
        LayerRouter.load(tmp_path, expect={**META, key: value})
    msg = str(err.value)
    assert key in msg and repr(META[key]) in msg and repr(value) in msg


def test_load_checks_metadata_before_reading_arrays(tmp_path) -> None:
    X, S = synthetic(60, seed=0)
    make_router("logreg", **META).fit(X, S).save(tmp_path)
    (tmp_path / "router.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RouterMismatchError):
        LayerRouter.load(tmp_path, expect={**META, "model": "x"})
    with pytest.raises(ValueError, match="SHA-256"):
        LayerRouter.load(tmp_path, expect=META)


@pytest.mark.parametrize("kind", CLASSIFIER_KINDS)
def test_binary_classifier_round_trip(kind: str, tmp_path) -> None:
    """Two classes: a single logistic column and a logistic MLP output; still exact."""
    X, S = synthetic(80, seed=0, L=2)
    Xt, _ = synthetic(30, seed=1, L=2)
    r = make_router(kind, **{**META, "layers": [3, 7]}).fit(X, S)
    loaded = LayerRouter.load(r.save(tmp_path))
    assert r.classes_.tolist() == [0, 1]
    assert np.array_equal(loaded.scores(Xt), r.scores(Xt))
    assert np.array_equal(loaded.predict_layers(Xt), r.predict_layers(Xt))


def test_saving_again_replaces_an_old_pickle(tmp_path) -> None:
    (tmp_path / "router.joblib").write_bytes(b"old")
    make_router("logreg", **META).fit(*synthetic(40, seed=0)).save(tmp_path)
    assert not (tmp_path / "router.joblib").exists()
    LayerRouter.load(tmp_path, expect=META)


def test_older_directories_are_refused_with_a_refit_hint(tmp_path) -> None:
    X, S = synthetic(40, seed=0)
    make_router("logreg", **META).fit(X, S).save(tmp_path)
    (tmp_path / "router.joblib").write_bytes(b"\x80\x04 pretend pickle")
    with pytest.raises(ArtifactMismatch, match=r"router\.joblib.*train-router.*evaluate"):
        LayerRouter.load(tmp_path, expect=META)
    (tmp_path / "router.joblib").unlink()
    meta = read_json(tmp_path / "router.json")
    # a router.json of 0.1-style layout: the estimator named as a pickle file and digest
    old = {**{k: v for k, v in meta.items() if k != "estimator"},
           "estimator_file": "router.joblib", "estimator_sha256": "0" * 64}
    write_json(tmp_path / "router.json", old)
    with pytest.raises(ArtifactMismatch, match="pickled by an older w2s-lens"):
        LayerRouter.load(tmp_path)
    write_json(tmp_path / "router.json", {**meta, "format_version": 1})
    with pytest.raises(ArtifactMismatch, match="format_version 1.*train-router"):
        LayerRouter.load(tmp_path)


def test_cv_uses_training_data_only() -> None:
    X, S = synthetic(150, seed=0)
    Xt, _ = synthetic(100, seed=1)
    r = make_router("logreg").fit(X, S)
    assert r.cv_info_["n_samples"] == 150
    assert r.cv_info_["cv_scoring"] == "neg_log_loss" and r.cv_info_["cv_score"] <= 0.0
    before = pickle.dumps(r.estimator_)
    r.predict(Xt)
    r.scores(Xt)
    assert pickle.dumps(r.estimator_) == before  # predicting never refits or tunes
    # same training data -> same model, whatever test data is around
    r2 = make_router("logreg").fit(X, S)
    assert np.array_equal(r2.predict(Xt), r.predict(Xt))
    assert r2.cv_info_ == r.cv_info_


def test_perfectly_separable_labels_do_not_pick_the_strongest_penalty() -> None:
    """With accuracy every C ties at 1.0 and the first (strongest) penalty won; log-loss
    prefers the confident fit."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-3, 0.3, (20, 2)), rng.normal(3, 0.3, (20, 2))])
    S = np.zeros((40, 2))
    S[:20, 0], S[20:, 1] = 1.0, 1.0
    r = make_router("logreg").fit(X, S)
    assert r.cv_info_["best_params"]["C"] == max(LOGREG_C)


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown router kind 'forest'"):
        make_router("forest")
    r = make_router("logreg")
    with pytest.raises(RuntimeError, match="not fitted"):
        r.predict(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"need X \[n, d\] and steerability \[n, L\]"):
        r.fit(np.zeros((3, 2)), np.zeros((4, 2)))
    r.fit(*synthetic(40, seed=0))
    with pytest.raises(ValueError, match=r"expected X \[n, 16\], got \(2, 3\)"):
        r.predict(np.zeros((2, 3)))
