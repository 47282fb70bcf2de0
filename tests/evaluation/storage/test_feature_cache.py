"""The router views' features kept in the run directory (w2s_lens.evaluation.storage.
feature_cache): read back bit for bit under the same key, never under another, recomputed
when damaged."""

from __future__ import annotations

import numpy as np
import pytest

from w2s_lens.evaluation.storage.feature_cache import (
    FEATURES_DIR,
    load_view_features,
    load_view_seconds,
    save_view_features,
)
from w2s_lens.evaluation.storage.rundir import RunDir

KEY = {"version": 1, "model": "m", "layer": 3, "batch_size": 8, "examples": "abc"}


def _cache() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"options": rng.normal(size=(4, 7)).astype(np.float32),
            "minilm": rng.normal(size=(4, 5)).astype(np.float32)}


def test_read_back_bit_for_bit_under_the_same_key_only(tmp_path) -> None:
    rd = RunDir(tmp_path)
    cache = _cache()
    path = save_view_features(rd, KEY, cache)
    assert path is not None and path.parent == tmp_path / FEATURES_DIR
    got = load_view_features(rd, KEY)
    assert set(got) == {"options", "minilm"}
    for k, v in cache.items():
        assert got[k].dtype == np.float32 and np.array_equal(got[k], v)
    assert load_view_features(rd, {**KEY, "examples": "other"}) == {}
    assert load_view_features(rd, {**KEY, "batch_size": 4}) == {}
    assert load_view_features(None, KEY) == {}
    assert save_view_features(None, KEY, cache) is None
    assert save_view_features(rd, KEY, {}) is None


def test_a_damaged_file_is_recomputed_with_a_warning(tmp_path) -> None:
    rd = RunDir(tmp_path)
    path = save_view_features(rd, KEY, _cache())
    path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)
    with pytest.warns(UserWarning, match="failed their check"):
        assert load_view_features(rd, KEY) == {}


def test_a_new_view_is_added_to_the_stored_ones(tmp_path) -> None:
    rd = RunDir(tmp_path)
    first = {"options": _cache()["options"]}
    save_view_features(rd, KEY, first)
    cache = load_view_features(rd, KEY)
    cache["minilm"] = _cache()["minilm"]
    save_view_features(rd, KEY, cache)
    assert set(load_view_features(rd, KEY)) == {"options", "minilm"}


def test_what_each_feature_cost_is_kept_and_merged(tmp_path) -> None:
    rd = RunDir(tmp_path)
    first = {"options": _cache()["options"]}
    save_view_features(rd, KEY, first, {"options": {"cpu_s": 2.5, "wall_s": 2.6}})
    assert load_view_seconds(rd, KEY) == {"options": {"cpu_s": 2.5, "wall_s": 2.6}}
    assert load_view_seconds(rd, {**KEY, "examples": "other"}) == {}
    assert load_view_seconds(None, KEY) == {}
    cache = load_view_features(rd, KEY)
    cache["minilm"] = _cache()["minilm"]
    save_view_features(rd, KEY, cache, {"minilm": {"cpu_s": 0.5, "wall_s": 0.4},
                                        "question": {"cpu_s": 9.0, "wall_s": 9.0}})
    assert load_view_seconds(rd, KEY) == {"options": {"cpu_s": 2.5, "wall_s": 2.6},
                                          "minilm": {"cpu_s": 0.5, "wall_s": 0.4}}
