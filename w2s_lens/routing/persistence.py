"""A fitted router estimator as arrays (safetensors) plus JSON, and back: no pickles.

Saving writes each step's learned arrays into ``router.safetensors`` and returns a JSON-able
description: the step classes, their hyper-parameters (``get_params``), their learned scalars,
the names of their arrays, the file's SHA-256, the library versions and ``digest``, the SHA-256
of the description itself (so an edited value is refused). Loading rebuilds the estimator of
the router kind from code (:func:`w2s_lens.routing.estimators.build_estimator`:
the file chooses no class and holds no code), sets the hyper-parameters and the learned
values (refusing non-finite learned arrays), and checks that the result predicts. A ``knn``
router is rebuilt by refitting its stored training embeddings and curves with its stored k
(fitting a nearest-neighbour model only stores them). Predictions and scores of the rebuilt
estimator equal the original's exactly.

Directories written by w2s-lens before this format (a pickled ``router.joblib``) are refused
by :func:`refuse_legacy`, with a message saying how to refit.

Example:
    >>> import numpy as np, tempfile
    >>> from w2s_lens.routing.estimators import fit_estimator
    >>> X = np.random.default_rng(0).normal(size=(20, 3))
    >>> est = fit_estimator("curve", X, np.stack([X[:, 0], -X[:, 0]], 1)).estimator
    >>> d = tempfile.mkdtemp()
    >>> spec = save_estimator(d, "curve", est)
    >>> again = load_estimator(d, "curve", spec)
    >>> bool((again.predict(X) == est.predict(X)).all())
    True
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelBinarizer, StandardScaler

from w2s_lens.artifacts.provenance import ArtifactMismatch, library_versions
from w2s_lens.artifacts.seals import IntegrityWarning, json_digest
from w2s_lens.artifacts.tensors import save_tensors
from w2s_lens.assets import sha256_of
from w2s_lens.routing.estimators import build_estimator

__all__ = ["ARRAYS_FILE", "ESTIMATOR_FORMAT", "LEGACY_FILE", "load_estimator", "refuse_legacy",
           "save_estimator"]

ARRAYS_FILE = "router.safetensors"
#: The pickle that w2s-lens 0.1 wrote; never opened.
LEGACY_FILE = "router.joblib"
#: Version of the description written by :func:`save_estimator`.
ESTIMATOR_FORMAT = "arrays-1"
REFIT = ("refit it: rerun `w2s-lens train-router --sweep SWEEP_DIR --out NEW_DIR`, or "
         "`w2s-lens evaluate` into a new run directory")

#: The learned attributes each step needs to predict (hyper-parameters travel separately).
LEARNED: dict[type, tuple[str, ...]] = {
    StandardScaler: ("mean_", "scale_", "var_", "n_features_in_", "n_samples_seen_"),
    LogisticRegression: ("classes_", "coef_", "intercept_", "n_iter_", "n_features_in_"),
    RidgeCV: ("coef_", "intercept_", "alpha_", "best_score_", "n_features_in_"),
    MLPClassifier: ("classes_", "coefs_", "intercepts_", "n_layers_", "n_outputs_",
                    "out_activation_", "n_features_in_", "n_iter_", "t_", "loss_", "best_loss_",
                    "loss_curve_", "validation_scores_", "best_validation_score_"),
}
_SCALARS = (type(None), bool, int, float, str)


def _steps(est: BaseEstimator) -> list[tuple[str, BaseEstimator]]:
    return list(est.steps) if isinstance(est, Pipeline) else [("estimator", est)]


def _encode(key: str, value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """A JSON value for ``value``; arrays go into ``arrays`` under ``key``."""
    if isinstance(value, np.ndarray):
        if value.ndim > 1 and value.flags.f_contiguous and not value.flags.c_contiguous:
            # kept in its memory order: BLAS sums in another order on a C-ordered copy, and
            # the reloaded scores would differ in the last bits
            arrays[key] = value.T
            return {"array": key, "order": "F"}
        arrays[key] = value
        return {"array": key}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
        return {"arrays": [_encode(f"{key}.{i}", v, arrays) for i, v in enumerate(value)]}
    if isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS + (np.generic,))
                                                for v in value):
        return [v.item() if isinstance(v, np.generic) else v for v in value]
    if isinstance(value, _SCALARS):
        return value
    raise TypeError(f"{key}: cannot store a {type(value).__name__} without pickling")


def _decode(value: Any, arrays: dict[str, np.ndarray], path: Path) -> Any:
    """The value that :func:`_encode` described (arrays looked up in ``arrays``)."""
    if isinstance(value, dict) and set(value) == {"arrays"} and isinstance(value["arrays"], list):
        return [_decode(v, arrays, path) for v in value["arrays"]]
    if isinstance(value, dict) and "array" in value and set(value) <= {"array", "order"} \
            and value.get("order", "C") in ("C", "F"):
        if value["array"] not in arrays:
            raise ArtifactMismatch(f"{path} lacks the array {value['array']!r}; {REFIT}")
        arr = arrays[value["array"]]
        return arr.T if value.get("order") == "F" else arr
    if isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value):
        return value
    if isinstance(value, _SCALARS):
        return value
    raise ArtifactMismatch(f"{path}: unexpected entry {value!r} in router.json; {REFIT}")


def save_estimator(directory: str | os.PathLike, kind: str,
                   estimator: BaseEstimator) -> dict[str, Any]:
    """Write ``router.safetensors`` into ``directory``; returns the JSON description.

    Example:
        >>> spec = save_estimator("runs/r/router", "logreg", est)  # doctest: +SKIP
        >>> spec["steps"][1]["class"]  # doctest: +SKIP
        'LogisticRegression'
    """
    arrays: dict[str, np.ndarray] = {}
    steps = []
    if kind == "knn":
        # fitting k-NN only stores the data; what it stored is what it needs
        learned = {"fit_X": estimator._fit_X, "fit_y": estimator._y}
        steps.append({"name": "estimator", "class": type(estimator).__name__,
                      "params": _params(estimator),
                      "learned": {k: _encode(f"estimator.{k}", np.asarray(v), arrays)
                                  for k, v in learned.items()}})
    else:
        for name, step in _steps(estimator):
            attrs = LEARNED[type(step)]
            steps.append({"name": name, "class": type(step).__name__, "params": _params(step),
                          "learned": {a: _encode(f"{name}.{a}", getattr(step, a, None), arrays)
                                      for a in attrs}})
    path = Path(directory) / ARRAYS_FILE
    save_tensors(path, arrays, metadata={"kind": kind, "format": ESTIMATOR_FORMAT})
    spec = {"format": ESTIMATOR_FORMAT, "kind": kind, "file": ARRAYS_FILE,
            "sha256": sha256_of(path), "steps": steps, "libraries": library_versions()}
    spec["digest"] = _spec_digest(spec)
    return spec


def _spec_digest(spec: dict[str, Any]) -> str:
    """SHA-256 of the description without its ``digest`` (as JSON stores it)."""
    return json_digest({k: v for k, v in spec.items() if k != "digest"})


def _check_spec(spec: dict[str, Any], d: Path) -> None:
    """Refuse an edited description; warn about one written before digests were recorded."""
    if "digest" not in spec:
        warnings.warn(f"{d / 'router.json'}: the router's description records no digest "
                      "(written by an older w2s-lens); its values are loaded unchecked",
                      IntegrityWarning, stacklevel=3)
    elif spec["digest"] != _spec_digest(spec):
        raise ArtifactMismatch(f"{d / 'router.json'} was changed after it was written: the "
                               f"router's description does not match its digest; {REFIT}")


def _check_finite(arrays: dict[str, np.ndarray], path: Path) -> None:
    bad = [k for k, v in arrays.items()
           if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all()]
    if bad:
        raise ArtifactMismatch(f"{path} holds non-finite values (NaN or inf) in {bad}; {REFIT}")


def _params(step: BaseEstimator) -> dict[str, Any]:
    return {k: _encode(k, v, {}) for k, v in step.get_params(deep=False).items()}


def load_estimator(directory: str | os.PathLike, kind: str, spec: dict[str, Any],
                   n_features: int | None = None) -> BaseEstimator:
    """Rebuild the estimator described by ``spec`` (from :func:`save_estimator`).

    ``n_features``, when given, is the embedding width the result must accept.

    Raises:
        ArtifactMismatch: another description format, an edited description, a SHA-256 that
            differs, non-finite arrays, steps or classes other than the kind's, or a result that
            cannot predict.

    Example:
        >>> est = load_estimator("runs/r/router", "logreg", meta["estimator"])  # doctest: +SKIP
    """
    d = Path(directory)
    if spec.get("format") != ESTIMATOR_FORMAT or spec.get("kind") != kind:
        raise ArtifactMismatch(f"{d}: router estimator format {spec.get('format')!r} for kind "
                               f"{spec.get('kind')!r}; this w2s-lens reads {ESTIMATOR_FORMAT!r} "
                               f"for {kind!r}; {REFIT}")
    _check_spec(spec, d)
    path = d / str(spec.get("file"))
    if Path(str(spec.get("file"))).name != spec.get("file") or not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; {REFIT}")
    data = path.read_bytes()  # one read: the bytes checked are the bytes loaded
    if hashlib.sha256(data).hexdigest() != spec.get("sha256"):
        raise ArtifactMismatch(f"{path} does not match the SHA-256 recorded for it in "
                               f"{d / 'router.json'}; {REFIT}")
    try:
        arrays = safetensors.numpy.load(data)
    except Exception as err:  # noqa: BLE001 - any parse failure is a damaged file
        raise ArtifactMismatch(f"{path} is not a readable safetensors file ({err}); "
                               f"{REFIT}") from err
    _check_finite(arrays, path)
    est = build_estimator(kind, 0)
    steps = _steps(est)
    described = spec.get("steps") or []
    if [(s.get("name"), s.get("class")) for s in described] != \
            [(n, type(s).__name__) for n, s in steps]:
        raise ArtifactMismatch(f"{d}: the stored steps {[s.get('class') for s in described]} "
                               f"are not those of a {kind!r} router; {REFIT}")
    for (_, step), desc in zip(steps, described):
        _set_params(step, desc.get("params") or {}, arrays, path)
        learned = {a: _decode(v, arrays, path) for a, v in (desc.get("learned") or {}).items()}
        needed = ("fit_X", "fit_y") if isinstance(step, KNeighborsRegressor) \
            else LEARNED[type(step)]
        missing = set(needed) - set(learned)
        if missing:
            raise ArtifactMismatch(f"{path}: {type(step).__name__} lacks {sorted(missing)}; "
                                   f"{REFIT}")
        if isinstance(step, KNeighborsRegressor):
            step.fit(learned["fit_X"], learned["fit_y"])
            continue
        for attr in LEARNED[type(step)]:
            setattr(step, attr, learned[attr])
        if isinstance(step, MLPClassifier):
            step._label_binarizer = LabelBinarizer().fit(step.classes_)
    _smoke_test(est, kind, d, n_features)
    return est


def _set_params(step: BaseEstimator, params: dict[str, Any], arrays: dict[str, np.ndarray],
                path: Path) -> None:
    defaults = step.get_params(deep=False)
    if set(params) != set(defaults):
        raise ArtifactMismatch(f"{path}: {type(step).__name__} hyper-parameters "
                               f"{sorted(set(params) ^ set(defaults))} differ from this "
                               f"scikit-learn's; {REFIT}")
    values = {}
    for k, v in params.items():
        v = _decode(v, arrays, path)
        values[k] = tuple(v) if isinstance(v, list) and isinstance(defaults[k], tuple) else v
    step.set_params(**values)


def _smoke_test(est: BaseEstimator, kind: str, d: Path, n_features: int | None) -> None:
    if n_features is None:
        n_features = int(getattr(_steps(est)[0][1], "n_features_in_", 0))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.predict(np.zeros((1, n_features)))
    except Exception as exc:  # the rebuilt estimator is inconsistent
        raise ArtifactMismatch(f"{d}: the stored {kind!r} router cannot be rebuilt ({exc}); "
                               f"{REFIT}") from exc


def refuse_legacy(directory: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Refuse a router directory written before routers were stored without pickles.

    Example:
        >>> refuse_legacy("runs/old/router", {"estimator_file": "router.joblib"})
        Traceback (most recent call last):
        ...
        w2s_lens.artifacts.provenance.ArtifactMismatch: runs/old/router holds a router ...
    """
    d = Path(directory)
    legacy = (d / LEGACY_FILE).exists() or "estimator_file" in meta or "estimator" not in meta
    if legacy:
        raise ArtifactMismatch(
            f"{d} holds a router pickled by an older w2s-lens ({LEGACY_FILE}); w2s-lens no "
            f"longer loads pickles, since opening one can run code. {REFIT[0].upper()}"
            f"{REFIT[1:]}")
