"""Per-input layer routers: predict, from an input's embedding, which layer to steer at.

Four kinds (``ROUTER_KINDS``; the estimators and their cross-validation are in
:mod:`w2s_lens.routing.estimators`):

* ``"logreg"``: multinomial logistic regression on standardised embeddings, the label being
  each training input's best layer (:func:`w2s_lens.routing.labels.best_layers`);
* ``"mlp"``: a small one-hidden-layer ``MLPClassifier`` on the same labels;
* ``"curve"``: a ridge regressor predicting the whole steerability curve ``[L]``; the router
  steers at the argmax of the predicted curve;
* ``"knn"``: the mean steerability curve of the k nearest training inputs by cosine distance
  (:mod:`w2s_lens.routing.knn`); no linear assumption.

Hyper-parameters are cross-validated on the training data passed to :meth:`LayerRouter.fit`
only; how, is recorded in ``cv_info_`` (the evaluation writes it into ``results.json``). If
every training input has the same best layer, a classifier router predicts that layer.

Persistence (no pickles; :mod:`w2s_lens.routing.persistence`): :meth:`LayerRouter.save` writes
``router.json`` (metadata, hyper-parameters, classes, library versions) and
``router.safetensors`` (the learned arrays). :meth:`LayerRouter.load` checks the JSON first,
refuses a router trained for another model, dataset, embedding, layer set or readout, refuses
directories of older versions (a pickled ``router.joblib``), and rebuilds the estimator from
code: loading a shared router runs no code from it. A reloaded router's predictions and scores
equal the original's exactly.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 4))
    >>> S = np.stack([X[:, 0], -X[:, 0], 0 * X[:, 0]], axis=1)  # layer 0 if x0 > 0 else 1
    >>> r = make_router("logreg").fit(X, S)
    >>> bool((r.predict(X) == S.argmax(1)).mean() > 0.9)
    True
    >>> r.scores(X).shape
    (60, 3)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from jaxtyping import Float, Int
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.provenance import ArtifactMismatch, check_format, stamp
from w2s_lens.routing.estimators import CURVE_KINDS, ESTIMATOR_KINDS, fit_estimator
from w2s_lens.routing.labels import best_layers
from w2s_lens.routing.persistence import (
    ARRAYS_FILE,
    LEGACY_FILE,
    load_estimator,
    refuse_legacy,
    save_estimator,
)

__all__ = ["LayerRouter", "RouterMismatchError", "make_router", "read_metadata"]

META_FILE = "router.json"
CHECKED_KEYS = ("model", "dataset", "embedding", "layers", "readout")


class RouterMismatchError(ArtifactMismatch):
    """A saved router was trained for another model, dataset, embedding, layer set or readout."""


def _norm(key: str, value: Any) -> Any:
    if key == "layers" and value is not None:
        return [int(x) for x in value]
    return value


class LayerRouter:
    """Predict a steering-layer index per input from its embedding.

    Args:
        kind: one of ``ROUTER_KINDS`` (``"knn"`` included).
        seed: random seed (CV shuffling, MLP initialisation).
        model, dataset, embedding, readout: names recorded in ``router.json`` and checked on
            load (readout: ``"letter"`` or ``"cloze"``).
        layers: real layer numbers of the L axis (default ``range(L)`` at fit time).
        hook: the steering hook point (e.g. ``"resid_pre"``), recorded only.
        blas_threads: BLAS/OpenMP threads while fitting (default 1: these problems are small,
            and multi-threaded BLAS on a busy machine can be 50x slower); None leaves them be.

    Attributes (after fit):
        n_layers_: L.
        classes_: layer indices seen as labels.
        constant_: the single best layer index when all training labels agree (classifier
            kinds), else None.
        cv_info_: how hyper-parameters were chosen (``n_samples``, ``n_splits``,
            ``best_params``, ``cv_score``), all on the training data.

    Example:
        >>> import numpy as np
        >>> S = np.array([[0.0, 1.0]] * 4)
        >>> r = LayerRouter("mlp").fit(np.eye(4), S)   # every input prefers layer index 1
        >>> r.predict(np.eye(4)).tolist(), r.constant_
        ([1, 1, 1, 1], 1)
    """

    def __init__(self, kind: str = "logreg", seed: int = 0, *, model: str | None = None,
                 dataset: str | None = None, embedding: str | None = None,
                 layers: Sequence[int] | None = None, hook: str | None = None,
                 readout: str | None = None, blas_threads: int | None = 1) -> None:
        if kind not in ESTIMATOR_KINDS:
            raise ValueError(f"unknown router kind {kind!r}; choose one of {ESTIMATOR_KINDS}")
        self.kind, self.seed, self.readout = kind, int(seed), readout
        self.blas_threads = blas_threads
        self.model, self.dataset, self.embedding, self.hook = model, dataset, embedding, hook
        self.layers = None if layers is None else [int(x) for x in layers]
        self.estimator_: BaseEstimator | None = None
        self.constant_: int | None = None
        self.classes_: np.ndarray | None = None
        self.n_layers_: int | None = None
        self.n_features_: int | None = None
        self.cv_info_: dict[str, Any] = {}

    def fit(self, X: Float[Any, "n d"], steerability: Float[Any, "n L"],
            layers: Sequence[int] | None = None) -> LayerRouter:
        """Fit on TRAINING embeddings ``X [n, d]`` and their steerability ``[n, L]``.

        Labels are derived here with :func:`w2s_lens.routing.labels.best_layers`;
        hyper-parameters are cross-validated on this data only. Returns ``self``.
        """
        X, S, self.layers = _training_arrays(X, steerability,
                                             self.layers if layers is None else layers)
        self.n_layers_, self.n_features_ = S.shape[1], X.shape[1]
        self.classes_ = np.unique(best_layers(S))
        with nullcontext() if self.blas_threads is None else \
                threadpool_limits(limits=self.blas_threads):
            fitted = fit_estimator(self.kind, X, S, self.seed)
        self.estimator_, self.constant_, self.cv_info_ = fitted.estimator, fitted.constant, \
            fitted.cv_info
        return self

    def scores(self, X: Float[Any, "n d"]) -> Float[np.ndarray, "n L"]:
        """``[n, L]``: class probabilities on their layer (0 where never a label), or the
        predicted steerability curve (``"curve"``, ``"knn"``)."""
        X = _inputs(X, self.n_features_, self.n_layers_)
        n, n_layers = X.shape[0], int(self.n_layers_)  # type: ignore[arg-type]
        out = np.zeros((n, n_layers))
        if self.constant_ is not None:
            out[:, self.constant_] = 1.0
            return out
        assert self.estimator_ is not None
        if self.kind in CURVE_KINDS:
            return np.asarray(self.estimator_.predict(X), dtype=float).reshape(n, n_layers)
        out[:, np.asarray(self.estimator_.classes_, dtype=int)] = self.estimator_.predict_proba(X)
        return out

    def predict(self, X: Float[Any, "n d"]) -> Int[np.ndarray, " n"]:
        """``[n]`` layer *indices* to steer at (argmax of :meth:`scores`)."""
        X = _inputs(X, self.n_features_, self.n_layers_)
        if self.constant_ is None and self.kind not in CURVE_KINDS:
            return np.asarray(self.estimator_.predict(X), dtype=int)  # type: ignore[union-attr]
        return np.argmax(self.scores(X), axis=1).astype(int)  # a constant: its one-hot

    def predict_layers(self, X: Float[Any, "n d"]) -> Int[np.ndarray, " n"]:
        """``[n]`` real layer numbers to steer at."""
        return np.asarray(self.layers, dtype=int)[self.predict(X)]

    @property
    def metadata(self) -> dict[str, Any]:
        """What :meth:`save` writes to ``router.json`` (without the estimator's description)."""
        names = ("kind", "seed", "model", "dataset", "embedding", "layers", "hook", "readout")
        return {**{k: getattr(self, k) for k in names}, "n_layers": self.n_layers_,
                "n_features": self.n_features_, "constant": self.constant_,
                "classes": None if self.classes_ is None else [int(c) for c in self.classes_],
                "cv": self.cv_info_, "sklearn_version": sklearn.__version__}

    def save(self, directory: str | Path) -> Path:
        """Write ``router.json`` and ``router.safetensors`` into ``directory``; returns it.

        >>> make_router("knn").fit(X, S).save("runs/r1/router")  # doctest: +SKIP
        """
        if self.n_layers_ is None:
            raise RuntimeError("cannot save an unfitted router")
        d = Path(directory)
        (d / LEGACY_FILE).unlink(missing_ok=True)
        meta = {**self.metadata, "estimator": None}
        if self.estimator_ is not None:
            meta["estimator"] = save_estimator(d, self.kind, self.estimator_)
        else:
            (d / ARRAYS_FILE).unlink(missing_ok=True)
        write_json(d / META_FILE, stamp(meta))
        return d

    @classmethod
    def load(cls, directory: str | Path, expect: Mapping[str, Any] | None = None) -> LayerRouter:
        """Load a router saved by :meth:`save`, refusing one made for something else.

        Args:
            directory: the folder holding ``router.json`` and ``router.safetensors``.
            expect: values to check against the metadata, among ``model``, ``dataset``,
                ``embedding``, ``layers`` and ``readout``; keys set to None are not checked.
                The check runs before the arrays are read.

        Raises :class:`RouterMismatchError`, ``ArtifactMismatch`` (see :func:`read_metadata`,
        :func:`~w2s_lens.routing.persistence.load_estimator`) or ``FileNotFoundError``.

        Example:
            >>> LayerRouter.load("runs/r1/router", expect=dict(model="qwen", dataset="x",
            ...                  embedding="minilm", layers=[4, 8]))  # doctest: +SKIP
        """
        d = Path(directory)
        meta = read_metadata(d, expect)
        r = cls(meta["kind"], seed=meta.get("seed", 0),
                **{k: meta.get(k) for k in ("model", "dataset", "embedding", "layers", "hook",
                                            "readout")})
        r.n_layers_, r.n_features_ = meta["n_layers"], meta["n_features"]
        r.constant_, r.cv_info_ = meta.get("constant"), meta.get("cv") or {}
        r.classes_ = None if meta.get("classes") is None else np.asarray(meta["classes"], int)
        if meta["estimator"] is not None:
            r.estimator_ = load_estimator(d, r.kind, meta["estimator"], r.n_features_)
        elif r.constant_ is None:
            raise ArtifactMismatch(f"{d / META_FILE} names no estimator and no constant layer")
        return r

    def __repr__(self) -> str:
        state = "unfitted" if self.n_layers_ is None else f"L={self.n_layers_}"
        return f"LayerRouter(kind={self.kind!r}, seed={self.seed}, {state})"


def _inputs(X: Any, n_features: int | None, n_layers: int | None) -> np.ndarray:
    if n_layers is None:
        raise RuntimeError("router is not fitted; call fit() first")
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"expected X [n, {n_features}], got {X.shape}")
    return X


def _training_arrays(X: Any, steerability: Any, layers: Sequence[int] | None
                     ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Checked ``X [n, d]``, ``S [n, L]`` and the L layer numbers (default ``range(L)``)."""
    X = np.asarray(X, dtype=float)
    S = np.asarray(steerability, dtype=float)
    if X.ndim != 2 or S.ndim != 2 or X.shape[0] != S.shape[0]:
        raise ValueError(f"need X [n, d] and steerability [n, L]; got {X.shape}, {S.shape}")
    if X.shape[0] == 0:
        raise ValueError("cannot fit a router on zero inputs")
    layers = list(range(S.shape[1])) if layers is None else [int(x) for x in layers]
    if len(layers) != S.shape[1]:
        raise ValueError(f"{len(layers)} layer numbers for {S.shape[1]} columns")
    return X, S, layers


def read_metadata(directory: str | Path,
                  expect: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``router.json`` of a saved router, checked before any array is read.

    Refuses another format version, a directory of an older w2s-lens (a pickled
    ``router.joblib``), and a router made for another value of an ``expect`` key (see
    :meth:`LayerRouter.load`); warns when scikit-learn's version differs.

    Example:
        >>> read_metadata("runs/r1/router", expect={"model": "qwen"})["kind"]  # doctest: +SKIP
        'logreg'
    """
    d = Path(directory)
    meta = read_json(d / META_FILE)
    check_format(meta, d / META_FILE, "refit the router: rerun `w2s-lens train-router` or "
                                      "`w2s-lens evaluate` into a new directory")
    refuse_legacy(d, meta)
    for key, want in (expect or {}).items():
        if key not in CHECKED_KEYS:
            raise ValueError(f"cannot check {key!r}; checkable keys are {CHECKED_KEYS}")
        have, want = _norm(key, meta.get(key)), _norm(key, want)
        if want is not None and have != want:
            raise RouterMismatchError(
                f"router in {d} was trained for {key}={have!r}, but {key}={want!r} was "
                f"expected; retrain the router for this {key} or point to the right one")
    if meta.get("sklearn_version") != sklearn.__version__:
        warnings.warn(f"router in {d} was saved with scikit-learn "
                      f"{meta.get('sklearn_version')}, this is {sklearn.__version__}; "
                      f"predictions may differ", stacklevel=3)
    return meta


def make_router(kind: str, seed: int = 0, **metadata: Any) -> LayerRouter:
    """Factory: ``make_router("logreg", seed=0, model=..., dataset=..., embedding=...)``.

    Example:
        >>> make_router("curve")
        LayerRouter(kind='curve', seed=0, unfitted)
    """
    return LayerRouter(kind, seed=seed, **metadata)
