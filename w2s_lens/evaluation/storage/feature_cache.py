"""The router views' features, kept in the run directory so a resume does not recompute them.

The ``options`` view (:func:`~w2s_lens.routing.views.option_features`: one unsteered pass per
option, up to the embedding layer) and the ``minilm`` view (MiniLM over question + option
texts) cost minutes on a CPU for a few hundred items, once per sweep (training split, each
test variant, each resume). :func:`cached_view_features` keeps them under
``RUN/features/<digest>.safetensors`` with a ``.json`` beside it recording the key they were
made for (the model, the embedding layer, the batch size and a digest of the presentations'
ids, prompt tokens and option tokens) and the SHA-256 of the tensor file. A later call with the
same key reads them back, bit for bit what was computed; another key, or a missing or damaged
file, is computed again (with one warning when a file was there but failed its check). The
record also keeps what each feature cost to compute (``seconds``: CPU and wall seconds, as
measured when it was computed), so a run that reads them back still reports their real cost
(:func:`load_view_seconds`). The question view is not stored: the sweep captures it for free.

Example:
    >>> cache = load_view_features(rd, key)  # doctest: +SKIP
    >>> X = view_features("options", Xq, model, exs, 12, 8, cache)  # doctest: +SKIP
    >>> save_view_features(rd, key, cache)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformer_lens import HookedTransformer

from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.provenance import stamp
from w2s_lens.artifacts.tensors import load_tensors, save_tensors
from w2s_lens.assets import sha256_of
from w2s_lens.data.examples import SteeringExample
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.steering.vectors import model_name
from w2s_lens.sweep.chunks import short_digest

__all__ = ["FEATURES_DIR", "features_key", "load_view_features", "load_view_seconds",
           "save_view_features"]

log = logging.getLogger(__name__)

FEATURES_DIR = "features"
#: bumped when the views' features are computed differently, so older files are not read
FEATURES_VERSION = 1


def features_key(model: HookedTransformer, examples: Sequence[SteeringExample], layer: int,
                 batch_size: int) -> dict[str, Any]:
    """What the views' features depend on (the batch size too: padding changes the last float
    bits).

    Example:
        >>> features_key(model, exs, 12, 8)["layer"]  # doctest: +SKIP
        12
    """
    return {"version": FEATURES_VERSION, "model": model_name(model), "layer": int(layer),
            "batch_size": int(batch_size),
            "examples": short_digest([[ex.id, list(ex.tokens), *map(list, ex.continuations)]
                                      for ex in examples])}


def _paths(rd: RunDir, key: Mapping[str, Any]) -> tuple[Path, Path]:
    stem = rd.path / FEATURES_DIR / short_digest(dict(key))
    return stem.with_suffix(".json"), stem.with_suffix(".safetensors")


def load_view_features(rd: RunDir | None, key: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The features stored in ``rd`` for ``key`` (``{}`` when there are none, or ``rd`` is
    None), as a cache for :func:`~w2s_lens.routing.views.view_features`.

    Example:
        >>> load_view_features(None, {})
        {}
    """
    if rd is None:
        return {}
    meta_path, path = _paths(rd, key)
    if not meta_path.is_file():
        return {}
    try:
        meta = read_json(meta_path)
        if meta.get("key") != dict(key):
            return {}
        if not path.is_file() or sha256_of(path) != meta.get("sha256"):
            raise ValueError(f"{path} is missing or does not match its recorded SHA-256")
        got = load_tensors(path, framework="np")
        log.info("router view features (%s) read from %s", ", ".join(sorted(got)), path)
        return {k: np.asarray(v) for k, v in got.items()}
    except Exception as exc:  # any damage: recompute, and say so once
        warnings.warn(f"the cached router features in {path} failed their check ({exc}); "
                      "recomputing them", stacklevel=2)
        return {}


def load_view_seconds(rd: RunDir | None, key: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """What each stored feature of ``key`` cost when it was computed: ``{name: {"cpu_s",
    "wall_s"}}`` (``{}`` without a record, or for files written before costs were kept).

    Example:
        >>> load_view_seconds(None, {})
        {}
    """
    if rd is None:
        return {}
    meta_path, _ = _paths(rd, key)
    try:
        meta = read_json(meta_path) if meta_path.is_file() else {}
    except Exception:  # noqa: BLE001 - a damaged record holds no costs
        return {}
    if meta.get("key") != dict(key):
        return {}
    return {k: dict(v) for k, v in (meta.get("seconds") or {}).items()}


def save_view_features(rd: RunDir | None, key: Mapping[str, Any],
                       cache: Mapping[str, np.ndarray],
                       seconds: Mapping[str, Mapping[str, float]] | None = None) -> Path | None:
    """Write ``cache`` (the views' features computed for ``key``) into ``rd``, with what each
    cost to compute (``seconds``: ``{name: {"cpu_s", "wall_s"}}``, merged with the costs
    already recorded); nothing when ``rd`` is None or the cache is empty. Returns the tensor
    file.

    Example:
        >>> save_view_features(None, {}, {"options": np.zeros((2, 3))}) is None
        True
    """
    if rd is None or not cache:
        return None
    meta_path, path = _paths(rd, key)
    recorded = load_view_seconds(rd, key)
    costs = {**recorded, **{k: dict(v) for k, v in (seconds or {}).items() if k in cache}}
    if meta_path.is_file():
        try:
            meta = read_json(meta_path)
            if (meta.get("key") == dict(key) and set(meta.get("views", [])) >= set(cache)
                    and set(recorded) >= set(costs)):
                return path  # already there
        except Exception:  # noqa: BLE001 - a damaged record is rewritten
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    save_tensors(path, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in cache.items()})
    write_json(meta_path, stamp({"key": dict(key), "views": sorted(cache),
                                 "sha256": sha256_of(path), "seconds": costs}))
    return path
