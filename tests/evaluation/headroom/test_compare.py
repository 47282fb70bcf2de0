"""w2s_lens.evaluation.headroom.compare: two runs' relative cross-validated headroom on the
same items, from their per-item data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from w2s_lens.evaluation.headroom.compare import (
    MAX_UNDEFINED,
    headroom_shift,
    relative_headroom,
    retest_matrices,
)
from w2s_lens.evaluation.headroom.diagnostics import cross_validated_oracle

LAYERS = (3, 7, 11)


def _items(s1: np.ndarray, s2: np.ndarray, ids=None, layers=LAYERS) -> pd.DataFrame:
    """An ``items.csv`` frame with test and retest rows (the test rows are noise: only the
    retest enters the headroom)."""
    ids = [f"d:{k}" for k in range(len(s1))] if ids is None else ids
    rows = []
    for sweep, s in (("base", s1 * 0 + 9.0), ("retest-1", s1), ("retest-2", s2)):
        for i, row in zip(ids, s):
            rows.append({"method": "caa", "split": "test", "sweep": sweep, "id": i,
                         "best_layer": layers[int(np.argmax(row))],
                         **{f"s_L{layer}": float(x) for layer, x in zip(layers, row)}})
    return pd.DataFrame(rows)


def _per_item_layer(n: int, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    """Each item steers best at its own layer (cycling): a real per-item headroom."""
    s = np.full((n, 3), 0.5) + noise * rng.standard_normal((n, 3))
    s[np.arange(n), np.arange(n) % 3] += 1.0
    return s


def _one_layer(n: int, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    """Every item steers best at the middle layer: no headroom."""
    s = np.full((n, 3), 0.5) + noise * rng.standard_normal((n, 3))
    s[:, 1] += 1.0
    return s


def test_relative_headroom_is_the_share_of_the_fixed_effect_a_perfect_router_adds():
    rng = np.random.default_rng(0)
    s1, s2 = _per_item_layer(60, rng), _per_item_layer(60, rng)
    h = relative_headroom(s1, s2, n_boot=300)
    xv = cross_validated_oracle(s1, s2, n_boot=300)
    assert h.n == 60 and h.oracle == pytest.approx(xv["xv_oracle"])
    assert h.fixed == pytest.approx(xv["xv_fixed"])
    assert h.headroom == pytest.approx(xv["diff"])
    assert h.ratio == pytest.approx(xv["xv_oracle"] / xv["xv_fixed"] - 1)
    assert h.ratio > 0.5 and h.ratio_ci[0] < h.ratio < h.ratio_ci[1]
    # scaling every propensity (other units) leaves it unchanged
    assert relative_headroom(7 * s1, 7 * s2, n_boot=300).ratio == pytest.approx(h.ratio)
    # steering that does not steer has no relative headroom to speak of
    flat = relative_headroom(-s1, -s2, n_boot=300)
    assert flat.ratio is None and flat.ratio_ci is None and flat.fixed < 0


def test_a_change_that_removes_the_per_item_layer_lowers_the_headroom_beyond_the_noise():
    rng = np.random.default_rng(1)
    base = _items(_per_item_layer(48, rng), _per_item_layer(48, rng))
    gone = _items(0.1 * _one_layer(48, rng), 0.1 * _one_layer(48, rng))
    shift = headroom_shift(base, gone, n_boot=500)
    assert shift.n == 48 and shift.base.ratio > 0.5 and abs(shift.other.ratio) < 0.1
    assert shift.diff == pytest.approx(shift.other.ratio - shift.base.ratio)
    assert shift.diff_ci[1] < 0 and shift.p_less < 0.01
    assert shift.text.startswith(f"relative headroom {shift.base.ratio:.2f} → ")
    assert "(48 items)" in shift.text and shift.to_dict()["base_n"] == 48


def test_a_change_of_units_alone_is_not_a_shift():
    rng = np.random.default_rng(2)
    s1, s2 = _per_item_layer(48, rng), _per_item_layer(48, rng)
    shift = headroom_shift(_items(s1, s2), _items(20 * s1, 20 * s2), n_boot=500)
    assert shift.diff == pytest.approx(0, abs=1e-12)
    assert max(abs(x) for x in shift.diff_ci) < 1e-9
    # other units and a little measurement noise: no shift either
    jitter = 0.01 * rng.standard_normal((2, *s1.shape))
    noisy = headroom_shift(_items(s1, s2), _items(20 * (s1 + jitter[0]), 20 * (s2 + jitter[1])),
                           n_boot=500)
    assert noisy.diff_ci[0] < 0 < noisy.diff_ci[1] and 0.025 < noisy.p_less < 0.975


def test_items_are_matched_by_id_and_only_shared_ones_count(tmp_path):
    rng = np.random.default_rng(3)
    s1, s2 = _per_item_layer(40, rng), _per_item_layer(40, rng)
    base = _items(s1, s2)
    # the other run: the same items shuffled, four dropped and two it alone has
    order = rng.permutation(40)[:36]
    ids = [f"d:{k}" for k in order] + ["d:x", "d:y"]
    extra = _one_layer(2, rng)
    other = _items(np.vstack([s1[order], extra]), np.vstack([s2[order], extra]), ids)
    folder = tmp_path / "run"
    folder.mkdir()
    other.to_csv(folder / "items.csv", index=False)
    with pytest.warns(UserWarning, match="only one of the two retest sweeps"):
        partial = retest_matrices(other[~((other.sweep == "retest-2") & (other.id == "d:x"))])
    assert len(partial[0]) == 37
    shift = headroom_shift(base, folder, n_boot=300)  # a folder holding items.csv
    assert shift.n == 36 and set(shift.ids) == {f"d:{k}" for k in order}
    # the same numbers, item by item: every resample gives the same two ratios, which only
    # pairing by id can give (a ratio of means alone ignores the order of the rows)
    assert shift.diff == pytest.approx(0, abs=1e-12)
    assert max(abs(x) for x in shift.diff_ci) < 1e-9
    ids_got, cols, a1, _ = retest_matrices(folder / "items.csv")
    assert cols == ["s_L3", "s_L7", "s_L11"] and len(ids_got) == 38
    np.testing.assert_allclose(a1[:36], s1[order])


def test_mismatches_are_refused_with_the_reason(tmp_path):
    rng = np.random.default_rng(4)
    s = _per_item_layer(10, rng)
    with pytest.raises(ValueError, match="different layers"):
        headroom_shift(_items(s, s), _items(s, s, layers=(3, 7, 15)))
    with pytest.raises(ValueError, match="no item in common"):
        headroom_shift(_items(s, s), _items(s, s, ids=[f"e:{k}" for k in range(10)]))
    no_retest = _items(s, s)
    no_retest = no_retest[no_retest.sweep == "base"]
    with pytest.raises(ValueError, match="had no retest"):
        headroom_shift(no_retest, _items(s, s))
    with pytest.raises(FileNotFoundError, match="items.csv"):
        headroom_shift(tmp_path, _items(s, s))
    twice = _items(s, s, ids=["d:0"] * 2 + [f"d:{k}" for k in range(2, 10)])
    with pytest.raises(ValueError, match="several rows for item"):
        retest_matrices(twice)


def test_ids_read_from_a_file_match_the_same_ids_given_in_a_frame(tmp_path):
    rng = np.random.default_rng(5)
    s1, s2 = _per_item_layer(12, rng), _per_item_layer(12, rng)
    ids = [f"{k:03d}" for k in range(12)]  # "007" must not become 7
    frame = _items(s1, s2, ids=ids)
    frame.to_csv(tmp_path / "items.csv", index=False)
    got = retest_matrices(tmp_path)[0]
    assert got == ids and headroom_shift(frame, tmp_path, n_boot=200).n == 12


def _fixed_only(f: np.ndarray) -> np.ndarray:
    """Three layers, the first best for every item with steerability ``f``: the
    cross-validated fixed layer and oracle are both ``f`` (a ratio of exactly 0)."""
    return np.stack([f, f - 10.0, f - 10.0], axis=1)


def test_resamples_without_a_positive_fixed_effect_are_left_out_and_counted():
    rng = np.random.default_rng(6)
    z = rng.standard_normal(30)
    z = (z - z.mean()) / z.std()
    # mean 0.5, sd 1, 30 items: a few resamples in 2000 have a mean at or below 0
    few = _fixed_only(0.5 + z)
    h = relative_headroom(few, few, n_boot=2000)
    assert h.ratio == pytest.approx(0) and 0 < h.undefined_draws <= MAX_UNDEFINED
    assert h.ratio_ci is not None and np.isfinite(h.ratio_ci).all()
    # mean 0.05: about 4 in 10 resamples undefined, too unstable to bound
    many = _fixed_only(0.05 + z)
    h = relative_headroom(many, many, n_boot=2000)
    assert h.ratio == pytest.approx(0) and h.undefined_draws > MAX_UNDEFINED
    assert h.ratio_ci is None
    # in a shift, undefined resamples count against "lowered"
    base = _items(*(2 * [_per_item_layer(30, rng)]))
    shift = headroom_shift(base, _items(many, many), n_boot=2000)
    assert shift.undefined_draws > MAX_UNDEFINED and shift.diff_ci is None
    assert shift.diff < 0 and shift.p_less >= shift.undefined_draws


def test_the_docstring_examples_run():
    import doctest

    import w2s_lens.evaluation.headroom.compare as module

    assert doctest.testmod(module).failed == 0
