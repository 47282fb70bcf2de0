"""Routers are stored as arrays + JSON and rebuilt from code: exact, and no pickle anywhere."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import pickle
import pickletools
import zipfile
import zlib
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import load_file

import w2s_lens.evaluation.pipeline as ev
from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.artifacts.seals import IntegrityWarning
from w2s_lens.artifacts.tensors import save_tensors
from w2s_lens.assets import sha256_of
from w2s_lens.choices import ROUTER_KINDS
from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.report.html import write_report
from w2s_lens.routing.bundle import W2S
from w2s_lens.routing.estimators import ESTIMATOR_KINDS, fit_estimator
from w2s_lens.routing.persistence import ARRAYS_FILE, _spec_digest, load_estimator, save_estimator
from w2s_lens.routing.routers import LayerRouter

KINDS = ESTIMATOR_KINDS
TEXT_SUFFIXES = {".html", ".md", ".txt", ".csv"}


def clusters(n: int, seed: int, L: int = 3, d: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = 2.0 * np.random.default_rng(99).normal(size=(L, d))
    label = rng.integers(0, L, size=n)
    X = centers[label] + rng.normal(size=(n, d))
    S = 1.0 - 0.3 * np.abs(np.arange(L)[None] - label[:, None]) + 0.05 * rng.normal(size=(n, L))
    return X, S


def outputs(est, X: np.ndarray) -> list[np.ndarray]:
    out = [est.predict(X)]
    if hasattr(est, "predict_proba"):
        out.append(est.predict_proba(X))
    return out


@pytest.mark.parametrize("L", [2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_reloaded_estimator_is_exact(kind: str, L: int, tmp_path) -> None:
    X, S = clusters(90, seed=0, L=L)
    Xt, _ = clusters(40, seed=1, L=L)
    est = fit_estimator(kind, X, S, seed=0).estimator
    spec = save_estimator(tmp_path, kind, est)
    json.dumps(spec)  # the description is plain JSON
    again = load_estimator(tmp_path, kind, json.loads(json.dumps(spec)))
    assert again is not est
    for a, b in zip(outputs(est, Xt), outputs(again, Xt)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert spec["libraries"]["scikit-learn"] and spec["sha256"]


def _saved(tmp_path: Path, kind: str = "logreg") -> dict:
    X, S = clusters(60, seed=0)
    return save_estimator(tmp_path, kind, fit_estimator(kind, X, S).estimator)


def _resealed(spec: dict) -> dict:
    """``spec`` with its digest recomputed: an edit made to look intact, so the checks behind
    the digest are exercised too."""
    return {**spec, "digest": _spec_digest(spec)}


def test_an_edited_description_or_non_finite_arrays_are_refused(tmp_path) -> None:
    spec = _saved(tmp_path)
    steps = [dict(s) for s in spec["steps"]]
    steps[1]["params"] = {**steps[1]["params"], "C": 1000.0}
    with pytest.raises(ArtifactMismatch, match="router.json was changed after it was written"):
        load_estimator(tmp_path, "logreg", {**spec, "steps": steps})
    arrays = load_file(str(tmp_path / ARRAYS_FILE))
    arrays["logisticregression.coef_"][0, 0] = np.nan
    save_tensors(tmp_path / ARRAYS_FILE, arrays)
    with pytest.raises(ArtifactMismatch, match="non-finite values.*coef_"):
        load_estimator(tmp_path, "logreg",
                       _resealed({**spec, "sha256": sha256_of(tmp_path / ARRAYS_FILE)}))
    legacy = {k: v for k, v in spec.items() if k != "digest"}
    with pytest.warns(IntegrityWarning, match="records no digest"), \
            pytest.raises(ArtifactMismatch, match="SHA-256"):  # the arrays are still checked
        load_estimator(tmp_path, "logreg", legacy)


def test_tampered_files_are_refused(tmp_path) -> None:
    spec = _saved(tmp_path)
    good = (tmp_path / ARRAYS_FILE).read_bytes()
    (tmp_path / ARRAYS_FILE).write_bytes(good[:-8] + b"\0" * 8)
    with pytest.raises(ArtifactMismatch, match="SHA-256"):
        load_estimator(tmp_path, "logreg", spec)
    (tmp_path / ARRAYS_FILE).write_bytes(good)
    with pytest.raises(ArtifactMismatch, match="'mlp'"):
        load_estimator(tmp_path, "mlp", spec)  # described as logreg
    steps = [dict(s) for s in spec["steps"]]
    steps[1] = {**steps[1], "class": "MLPClassifier"}
    with pytest.raises(ArtifactMismatch, match="not those of a 'logreg' router"):
        load_estimator(tmp_path, "logreg", _resealed({**spec, "steps": steps}))
    steps = [dict(s) for s in spec["steps"]]
    steps[1]["params"] = {**steps[1]["params"], "C": {"py/object": "os.system"}}
    with pytest.raises(ArtifactMismatch, match="unexpected entry"):
        load_estimator(tmp_path, "logreg", _resealed({**spec, "steps": steps}))
    steps = [dict(s) for s in spec["steps"]]
    steps[1]["params"] = {**steps[1]["params"], "evil": 1}
    with pytest.raises(ArtifactMismatch, match="evil"):
        load_estimator(tmp_path, "logreg", _resealed({**spec, "steps": steps}))
    with pytest.raises(FileNotFoundError):
        load_estimator(tmp_path, "logreg", _resealed({**spec, "file": "../elsewhere.safetensors"}))


def test_missing_or_inconsistent_arrays_are_refused(tmp_path) -> None:
    spec = _saved(tmp_path)
    arrays = load_file(str(tmp_path / ARRAYS_FILE))
    coef = arrays.pop("logisticregression.coef_")
    save_tensors(tmp_path / ARRAYS_FILE, arrays)
    spec = _resealed({**spec, "sha256": sha256_of(tmp_path / ARRAYS_FILE)})
    with pytest.raises(ArtifactMismatch, match="lacks the array"):
        load_estimator(tmp_path, "logreg", spec)
    save_tensors(tmp_path / ARRAYS_FILE, {**arrays, "logisticregression.coef_": coef[:5]})
    spec = _resealed({**spec, "sha256": sha256_of(tmp_path / ARRAYS_FILE)})
    with pytest.raises(ArtifactMismatch, match="cannot be rebuilt.*train-router"):
        load_estimator(tmp_path, "logreg", spec)  # 5 coefficients for 8 features
    save_tensors(tmp_path / ARRAYS_FILE, {**arrays, "logisticregression.coef_": coef})
    spec = _resealed({**spec, "sha256": sha256_of(tmp_path / ARRAYS_FILE)})
    load_estimator(tmp_path, "logreg", spec, n_features=8)
    with pytest.raises(ArtifactMismatch, match="cannot be rebuilt"):
        load_estimator(tmp_path, "logreg", spec, n_features=6)  # not the router's width


def test_a_knn_spec_without_its_training_points_is_refused(tmp_path) -> None:
    """A kNN description missing ``fit_X`` is an ArtifactMismatch naming it, not a KeyError."""
    spec = _saved(tmp_path, "knn")
    steps = [dict(s) for s in spec["steps"]]
    knn = next(i for i, s in enumerate(steps) if s["class"] == "KNeighborsRegressor")
    steps[knn]["learned"] = {k: v for k, v in steps[knn]["learned"].items() if k != "fit_X"}
    with pytest.raises(ArtifactMismatch, match=r"KNeighborsRegressor lacks \['fit_X'\]"):
        load_estimator(tmp_path, "knn", _resealed({**spec, "steps": steps}))


# ------------------------------------------------------------------------- no pickles


def pickle_form(data: bytes) -> str | None:
    """How ``data`` holds a pickle (``None`` if it does not); never unpickles anything."""
    if data[:1] == b"\x80":
        return "pickle (protocol 2+)"
    if data[:4] == b"PK\x03\x04":
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        return f"zip archive ({'pickle inside' if any('.pkl' in n for n in names) else names})"
    for magic, open_ in ((b"\x1f\x8b", gzip.decompress), (b"BZh", bz2.decompress),
                         (b"\xfd7zXZ", lzma.decompress), (b"\x78", zlib.decompress)):
        if data.startswith(magic):
            try:
                inner = open_(data)
            except Exception:
                continue
            return f"compressed ({pickle_form(inner) or 'unknown content'})"
    try:  # protocol 0/1 pickles are text: a full parse ending in STOP is a pickle
        ops = list(pickletools.genops(data))
    except Exception:
        return None
    return "pickle (protocol 0/1)" if ops and ops[-1][0].name == "STOP" else None


def file_type(path: Path) -> str:
    """The one allowed type of a run-directory file; fails on anything else."""
    data = path.read_bytes()
    form = pickle_form(data)
    assert form is None, f"{path} is a {form}"
    if path.suffix == ".json":
        json.loads(data.decode("utf-8"))
        return "json"
    if path.suffix == ".jsonl":
        for line in data.decode("utf-8").splitlines():
            if line.strip():
                json.loads(line)
        return "jsonl"
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="np") as f:
            for key in f.keys():
                f.get_tensor(key)
        return "safetensors"
    if path.suffix in TEXT_SUFFIXES:
        data.decode("utf-8")
        return "text"
    raise AssertionError(f"{path}: unexpected kind of file {path.suffix!r}")


def test_the_pickle_check_catches_every_form(tmp_path) -> None:
    obj = {"a": np.arange(3), "b": [1, 2]}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle_form(pickle.dumps(obj, protocol=protocol)), protocol
    for compress in (0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3)):
        path = tmp_path / f"x{hash(str(compress))}.joblib"
        joblib.dump(obj, path, compress=compress)
        assert pickle_form(path.read_bytes()), compress
    torch.save({"w": torch.zeros(2)}, tmp_path / "t.pt")
    assert "pickle inside" in pickle_form((tmp_path / "t.pt").read_bytes())
    disguised = tmp_path / "router.json"
    disguised.write_bytes(pickle.dumps(obj))
    with pytest.raises(AssertionError, match="pickle"):
        file_type(disguised)
    for text in (b'{"a": [1, 2]}\n', b"<html><body>hi</body></html>", b"| a | b |\n"):
        assert pickle_form(text) is None


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    control = build_control("positive", n_families=3, n_layers=4, seed=0)
    train = control.make_examples(18, seed=1, both_orders=True)
    test = control.make_examples(6, seed=2, both_orders=True)
    out = tmp_path_factory.mktemp("run")
    saved: dict[Path, LayerRouter] = {}
    seen: dict[int, np.ndarray] = {}
    real_fit, real_save = LayerRouter.fit, LayerRouter.save

    def spy_fit(self, X, S, *a, **k):
        seen[id(self)] = np.array(X)
        return real_fit(self, X, S, *a, **k)

    def spy_save(self, directory):
        saved[Path(directory)] = self
        return real_save(self, directory)

    cfg = EvalConfig(dataset="synthetic", variants=("base",), routers=ROUTER_KINDS,
                     n_boot=50, cross_fit=3, method="both")
    mp = pytest.MonkeyPatch()
    mp.setattr(ev.LayerRouter, "fit", spy_fit)
    mp.setattr(ev.LayerRouter, "save", spy_save)
    try:
        evaluate_examples(control.model, SplitExamples(train, train, {"base": test}), cfg, out,
                          progress=False)
    finally:
        mp.undo()
    write_report(out)  # as `w2s-lens evaluate` does: the HTML report lives in the run too
    return control, out, saved, seen


def test_a_run_directory_holds_no_pickle(run) -> None:
    _, out, _, _ = run
    files = [p for p in sorted(out.rglob("*")) if p.is_file()]
    types = {p.relative_to(out).as_posix(): file_type(p) for p in files}
    assert not [n for n in types if n.endswith((".joblib", ".pkl", ".pickle", ".pt"))]
    for method in ("caa", "l2s"):
        for kind in ROUTER_KINDS:
            assert types[f"{method}/routers/{kind}/router/router.json"] == "json"
    assert {"json", "jsonl", "safetensors", "text"} <= set(types.values())
    assert types["report.html"] == "text"


def test_routers_reloaded_from_a_run_predict_exactly_as_fitted(run) -> None:
    control, out, saved, seen = run
    assert {d.parent.name for d in saved} == set(ROUTER_KINDS) and len(saved) == \
        2 * len(ROUTER_KINDS)
    rng = np.random.default_rng(0)
    for directory, fitted in saved.items():
        X = seen[id(fitted)]
        X = np.concatenate([X, X + 0.1 * rng.normal(size=X.shape)])
        loaded = LayerRouter.load(directory)
        assert np.array_equal(loaded.predict(X), fitted.predict(X)), directory
        assert np.array_equal(loaded.scores(X), fitted.scores(X)), directory
        bundle = W2S.load(directory.parent, control.model)
        assert np.array_equal(bundle.router.scores(X), fitted.scores(X)), directory
    meta = read_json(next(iter(saved)) / "router.json")
    assert meta["estimator"] is None or meta["estimator"]["file"] == ARRAYS_FILE
    write_json(out / "scratch.json", {})  # a written file is scanned like any other
    assert file_type(out / "scratch.json") == "json"
