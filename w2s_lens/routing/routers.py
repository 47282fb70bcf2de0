"""Per-input layer routers: predict, from an input's embedding, which layer to steer at.

Three kinds (``ROUTER_KINDS``):

* ``"logreg"``: multinomial logistic regression on standardised embeddings, the label being
  each training input's best layer (:func:`w2s_lens.routing.labels.best_layers`);
* ``"mlp"``: a small one-hidden-layer ``MLPClassifier`` on the same labels;
* ``"curve"``: a ridge regressor predicting the whole steerability curve ``[L]``; the router
  steers at the argmax of the predicted curve.

Hyper-parameters are chosen by cross-validation on the training data passed to
:meth:`LayerRouter.fit` only (``GridSearchCV`` with stratified folds for the classifiers,
efficient leave-one-out ``RidgeCV`` for the curve). The number of folds is
``min(5, smallest class count)``, so every training fold holds every class; when a class has
a single member no such folds exist, and the default hyper-parameters are used instead — said
so in ``cv_info_["note"]``, which the evaluation writes into ``results.json``. If every
training input has the same best layer, the router predicts that layer.

Persistence (through :mod:`w2s_lens.artifacts`): :meth:`LayerRouter.save` writes
``router.json`` (metadata) and ``router.joblib`` (the fitted scikit-learn estimator, a pickle).
:meth:`LayerRouter.load` reads and checks the JSON first and refuses a router trained for
another model, dataset, embedding, layer set or readout *before* unpickling anything.
**Only load routers you trust**: a pickle can run arbitrary code. The pickle's SHA-256 is
recorded in ``router.json`` and checked, which guards against corruption and accidental swaps,
not against an attacker who can rewrite both files.

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
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from w2s_lens.artifacts import (
    ArtifactMismatch,
    check_format,
    load_pickle,
    read_json,
    save_pickle,
    stamp,
    write_json,
)
from w2s_lens.choices import ROUTER_KINDS
from w2s_lens.routing.labels import best_layers

__all__ = ["ROUTER_KINDS", "LayerRouter", "RouterMismatchError", "make_router"]

META_FILE = "router.json"
ESTIMATOR_FILE = "router.joblib"
CHECKED_KEYS = ("model", "dataset", "embedding", "layers", "readout")

LOGREG_GRID = {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]}
MLP_GRID = {"mlpclassifier__alpha": [1e-3, 1e-1, 1.0]}
RIDGE_ALPHAS = tuple(np.logspace(-2, 4, 13).tolist())


class RouterMismatchError(ArtifactMismatch):
    """A saved router was trained for another model, dataset, embedding, layer set or readout."""


def _norm(key: str, value: Any) -> Any:
    if key == "layers" and value is not None:
        return [int(x) for x in value]
    return value


class LayerRouter:
    """Predict a steering-layer index per input from its embedding.

    Args:
        kind: one of ``ROUTER_KINDS``.
        seed: random seed (CV shuffling, MLP initialisation).
        model, dataset, embedding, readout: names recorded in ``router.json`` and checked on
            load (readout: ``"letter"`` or ``"cloze"``).
        layers: real layer numbers of the L axis (default ``range(L)`` at fit time).
        hook: the steering hook point (e.g. ``"resid_pre"``), recorded only.
        blas_threads: BLAS/OpenMP threads while fitting (default 1: these problems are small,
            and multi-threaded BLAS on a busy machine can be 50x slower); None leaves them be.

    Attributes (after fit):
        n_layers_: L.
        classes_: layer indices seen as labels (classifiers).
        constant_: the single best layer index when all training labels agree, else None.
        cv_info_: how hyper-parameters were chosen (``n_samples``, ``n_splits``,
            ``best_params``, ``cv_score``), all on the training data.

    Example:
        >>> import numpy as np
        >>> S = np.array([[0.0, 1.0]] * 4)
        >>> r = LayerRouter("mlp").fit(np.eye(4), S)   # every input prefers layer index 1
        >>> r.predict(np.eye(4)).tolist(), r.constant_
        ([1, 1, 1, 1], 1)
    """

    def __init__(
        self,
        kind: str = "logreg",
        seed: int = 0,
        *,
        model: str | None = None,
        dataset: str | None = None,
        embedding: str | None = None,
        layers: Sequence[int] | None = None,
        hook: str | None = None,
        readout: str | None = None,
        blas_threads: int | None = 1,
    ) -> None:
        if kind not in ROUTER_KINDS:
            raise ValueError(f"unknown router kind {kind!r}; choose one of {ROUTER_KINDS}")
        self.kind = kind
        self.seed = int(seed)
        self.model = model
        self.dataset = dataset
        self.embedding = embedding
        self.layers = None if layers is None else [int(x) for x in layers]
        self.hook = hook
        self.readout = readout
        self.blas_threads = blas_threads
        self.estimator_: BaseEstimator | None = None
        self.constant_: int | None = None
        self.classes_: np.ndarray | None = None
        self.n_layers_: int | None = None
        self.n_features_: int | None = None
        self.cv_info_: dict[str, Any] = {}

    # ------------------------------------------------------------------ fitting
    def _cv(self, y: np.ndarray) -> StratifiedKFold | None:
        """Stratified folds in which every training fold holds every class, or None."""
        _, counts = np.unique(y, return_counts=True)
        k = min(5, int(counts.min()))
        if k < 2:
            return None
        return StratifiedKFold(n_splits=k, shuffle=True, random_state=self.seed)

    def _classifier(self) -> tuple[Pipeline, dict[str, list[float]]]:
        if self.kind == "logreg":
            est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            return est, LOGREG_GRID
        est = make_pipeline(
            StandardScaler(),
            MLPClassifier(
                hidden_layer_sizes=(64,), max_iter=500, random_state=self.seed, tol=1e-4
            ),
        )
        return est, MLP_GRID

    def fit(self, X: Any, steerability: Any, layers: Sequence[int] | None = None) -> LayerRouter:
        """Fit on TRAINING embeddings ``X [n, d]`` and their steerability ``[n, L]``.

        Labels are derived here with :func:`w2s_lens.routing.labels.best_layers`; hyper-parameters
        are cross-validated on this data only. Returns ``self``.
        """
        if self.blas_threads is None:
            return self._fit(X, steerability, layers)
        with threadpool_limits(limits=self.blas_threads):
            return self._fit(X, steerability, layers)

    def _fit(self, X: Any, steerability: Any, layers: Sequence[int] | None) -> LayerRouter:
        X = np.asarray(X, dtype=float)
        S = np.asarray(steerability, dtype=float)
        if X.ndim != 2 or S.ndim != 2 or X.shape[0] != S.shape[0]:
            raise ValueError(f"need X [n, d] and steerability [n, L]; got {X.shape}, {S.shape}")
        if X.shape[0] == 0:
            raise ValueError("cannot fit a router on zero inputs")
        if layers is not None:
            self.layers = [int(x) for x in layers]
        if self.layers is None:
            self.layers = list(range(S.shape[1]))
        if len(self.layers) != S.shape[1]:
            raise ValueError(f"{len(self.layers)} layer numbers for {S.shape[1]} columns")
        self.n_layers_ = S.shape[1]
        self.n_features_ = X.shape[1]
        y = best_layers(S)
        self.classes_ = np.unique(y)
        self.constant_ = None
        self.estimator_ = None
        n = X.shape[0]

        if self.kind == "curve":
            est = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
            est.fit(X, S)
            self.estimator_ = est
            self.cv_info_ = {
                "n_samples": n,
                "n_splits": "loo",
                "best_params": {"alpha": float(est[-1].alpha_)},
                "cv_score": None,
            }
            return self

        if self.classes_.size == 1:
            self.constant_ = int(self.classes_[0])
            self.cv_info_ = {"n_samples": n, "n_splits": 0, "best_params": {}, "cv_score": None,
                             "note": "all training inputs share one best layer"}
            return self

        est, grid = self._classifier()
        cv = self._cv(y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", message=".*least populated class.*")
            warnings.filterwarnings("ignore", message=".*test scores are non-finite.*")
            if cv is None:
                est.fit(X, y)
                self.estimator_ = est
                self.cv_info_ = {"n_samples": n, "n_splits": 0, "best_params": {},
                                 "cv_score": None,
                                 "note": "a best layer is the label of a single training input, "
                                         "so no folds keep every class: no cross-validation, "
                                         "default hyper-parameters"}
                return self
            # log-loss, not accuracy: when several settings classify every fold perfectly,
            # accuracy ties and the strongest regularisation would win by list order
            search = GridSearchCV(est, grid, cv=cv, scoring="neg_log_loss", error_score=np.nan,
                                  refit=True)
            search.fit(X, y)
        score = search.best_score_
        self.estimator_ = search.best_estimator_
        self.cv_info_ = {
            "n_samples": n,
            "n_splits": int(cv.get_n_splits()),
            "best_params": {k.split("__")[-1]: v for k, v in search.best_params_.items()},
            "cv_score": None if not np.isfinite(score) else float(score),
            "cv_scoring": "neg_log_loss",
        }
        return self

    # --------------------------------------------------------------- predicting
    def _check(self, X: Any) -> np.ndarray:
        if self.n_layers_ is None:
            raise RuntimeError("router is not fitted; call fit() first")
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_features_:
            raise ValueError(f"expected X [n, {self.n_features_}], got {X.shape}")
        return X

    def scores(self, X: Any) -> np.ndarray:
        """``[n, L]`` scores: class probabilities placed on their layer (0 for layers never
        seen as a label), or the predicted steerability curve for ``"curve"``."""
        X = self._check(X)
        n, n_layers = X.shape[0], int(self.n_layers_)  # type: ignore[arg-type]
        if self.constant_ is not None:
            out = np.zeros((n, n_layers))
            out[:, self.constant_] = 1.0
            return out
        assert self.estimator_ is not None
        if self.kind == "curve":
            return np.asarray(self.estimator_.predict(X), dtype=float).reshape(n, n_layers)
        proba = self.estimator_.predict_proba(X)
        out = np.zeros((n, n_layers))
        out[:, np.asarray(self.estimator_.classes_, dtype=int)] = proba
        return out

    def predict(self, X: Any) -> np.ndarray:
        """``[n]`` layer *indices* to steer at (argmax of :meth:`scores`)."""
        X = self._check(X)
        if self.constant_ is not None:
            return np.full(X.shape[0], self.constant_, dtype=int)
        if self.kind == "curve":
            return np.argmax(self.scores(X), axis=1).astype(int)
        assert self.estimator_ is not None
        return np.asarray(self.estimator_.predict(X), dtype=int)

    def predict_layers(self, X: Any) -> np.ndarray:
        """``[n]`` real layer numbers to steer at."""
        return np.asarray(self.layers, dtype=int)[self.predict(X)]

    # -------------------------------------------------------------- persistence
    @property
    def metadata(self) -> dict[str, Any]:
        """What :meth:`save` writes to ``router.json`` (without the estimator's digest)."""
        return {
            "kind": self.kind,
            "seed": self.seed,
            "model": self.model,
            "dataset": self.dataset,
            "embedding": self.embedding,
            "layers": self.layers,
            "hook": self.hook,
            "readout": self.readout,
            "n_layers": self.n_layers_,
            "n_features": self.n_features_,
            "constant": self.constant_,
            "classes": None if self.classes_ is None else [int(c) for c in self.classes_],
            "cv": self.cv_info_,
            "sklearn_version": sklearn.__version__,
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``router.json`` and ``router.joblib`` into ``directory``; returns it."""
        if self.n_layers_ is None:
            raise RuntimeError("cannot save an unfitted router")
        d = Path(directory)
        meta = self.metadata
        meta["estimator_file"] = None
        meta["estimator_sha256"] = None
        if self.estimator_ is not None:
            meta["estimator_sha256"] = save_pickle(d / ESTIMATOR_FILE, self.estimator_)
            meta["estimator_file"] = ESTIMATOR_FILE
        else:
            (d / ESTIMATOR_FILE).unlink(missing_ok=True)
        write_json(d / META_FILE, stamp(meta))
        return d

    @classmethod
    def load(cls, directory: str | Path, expect: Mapping[str, Any] | None = None) -> LayerRouter:
        """Load a router saved by :meth:`save`, refusing one made for something else.

        Args:
            directory: the folder holding ``router.json`` and ``router.joblib``.
            expect: values to check against the metadata, among ``model``, ``dataset``,
                ``embedding``, ``layers`` and ``readout``; keys set to None are not checked.
                The check runs before the pickle is opened.

        Raises:
            RouterMismatchError: a checked value differs (the message names both values).
            ArtifactMismatch: another format version, or a pickle whose SHA-256 differs.
            FileNotFoundError: missing files.

        Security: ``router.joblib`` is a pickle; only load routers from sources you trust.

        Example:
            >>> LayerRouter.load("runs/r1/router", expect=dict(model="qwen", dataset="x",
            ...                  embedding="minilm", layers=[4, 8]))  # doctest: +SKIP
        """
        d = Path(directory)
        meta_path = d / META_FILE
        meta = read_json(meta_path)
        check_format(meta, meta_path, "refit the router (w2s-lens train-router or evaluate)")
        for key, want in (expect or {}).items():
            if key not in CHECKED_KEYS:
                raise ValueError(f"cannot check {key!r}; checkable keys are {CHECKED_KEYS}")
            if want is None:
                continue
            have, want = _norm(key, meta.get(key)), _norm(key, want)
            if have != want:
                raise RouterMismatchError(
                    f"router in {d} was trained for {key}={have!r}, but {key}={want!r} was "
                    f"expected; retrain the router for this {key} or point to the right one"
                )
        if meta.get("sklearn_version") != sklearn.__version__:
            warnings.warn(
                f"router in {d} was saved with scikit-learn {meta.get('sklearn_version')}, "
                f"this is {sklearn.__version__}; predictions may differ",
                stacklevel=2,
            )
        r = cls(meta["kind"], seed=meta.get("seed", 0), model=meta.get("model"),
                dataset=meta.get("dataset"), embedding=meta.get("embedding"),
                layers=meta.get("layers"), hook=meta.get("hook"), readout=meta.get("readout"))
        r.n_layers_ = meta["n_layers"]
        r.n_features_ = meta["n_features"]
        r.constant_ = meta.get("constant")
        r.classes_ = None if meta.get("classes") is None else np.asarray(meta["classes"], int)
        r.cv_info_ = meta.get("cv") or {}
        if meta.get("estimator_file"):
            r.estimator_ = load_pickle(d / meta["estimator_file"], meta.get("estimator_sha256"))
        elif r.constant_ is None:
            raise ArtifactMismatch(f"{meta_path} names no estimator and no constant layer")
        return r

    def __repr__(self) -> str:
        state = "unfitted" if self.n_layers_ is None else f"L={self.n_layers_}"
        return f"LayerRouter(kind={self.kind!r}, seed={self.seed}, {state})"


def make_router(kind: str, seed: int = 0, **metadata: Any) -> LayerRouter:
    """Factory: ``make_router("logreg", seed=0, model=..., dataset=..., embedding=...)``.

    Example:
        >>> make_router("curve")
        LayerRouter(kind='curve', seed=0, unfitted)
    """
    return LayerRouter(kind, seed=seed, **metadata)
