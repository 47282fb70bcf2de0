"""Tests for w2s_lens.demo.reading: the reading of a mirrored sweep (one layer everywhere,
per-item layers that survive cross-validation, noise that does not, one letter order)."""

from __future__ import annotations

import numpy as np
import pytest

from w2s_lens.demo.reading import layer_counts, read_sweep
from w2s_lens.sweep.result import SweepResult


def test_layer_counts_most_frequent_first() -> None:
    assert layer_counts([7, 3, 7, 3, 5]) == "L3: 2, L7: 2, L5: 1"
    assert layer_counts([]) == ""


def _sweep(order1, order2, mults=(-1.0, 0.0, 1.0)):
    """A mirrored SweepResult whose steerability per order is ``order1`` / ``order2`` [n, L]."""
    a, b = np.asarray(order1, float), np.asarray(order2, float)
    x = np.asarray(mults)
    prop = np.stack([a, b], axis=1).reshape(-1, a.shape[1])[..., None] * x  # slope · λ
    ids = [i for u in range(len(a)) for i in (f"d:{u}", f"d:{u}~swap")]
    return SweepResult(prop, [3, 5, 7], list(mults), ids, ["A", "B"] * len(a))


def test_read_sweep_one_layer_everywhere():
    s = [[0.1, 1.0, 0.2]] * 6
    r = read_sweep(_sweep(s, s), n_boot=200)
    assert (r.fixed_layer, r.fixed_layers_xv, r.best_layers) == (5, (5, 5), (5,) * 6)
    assert r.fixed_effect == pytest.approx(1.0) and r.n == 6
    assert r.oracle_gain["diff"] == 0.0 and r.xv["diff"] == 0.0
    assert r.propensity_at == {-1.0: pytest.approx(-1.0), 0.0: 0.0, 1.0: pytest.approx(1.0)}
    text = "\n".join(r.lines())
    assert "  L5    +1.000 [+1.000,+1.000] <- best" in text
    assert "best layer per item: L5: 6" in text
    assert ("steering effect at the fixed layer 5; cross-validated across the letter orders "
            "(chosen on one, scored on the other: layers 5, 5): +1.000") in text
    assert ("what per-input routing could gain: nothing on these 6 items: every item's best "
            "layer is the fixed layer 5 (oracle − fixed = 0)") in text
    assert "no router is trained here" in text


def test_read_sweep_per_item_layers_survive_cross_validation():
    # half the items steer at layer 3, half at 7, in both letter orders: a real per-item gain
    s = [[1.0, 0.6, 0.0]] * 4 + [[0.0, 0.7, 1.0]] * 4
    r = read_sweep(_sweep(s, s), n_boot=200)
    assert r.fixed_layer == 5 and sorted(set(r.best_layers)) == [3, 7]
    assert r.oracle_gain["diff"] == pytest.approx(0.35)
    assert r.xv["diff"] == pytest.approx(0.35) and r.xv["ci"][0] > 0
    assert any(x.startswith("what per-input routing could gain, oracle − fixed (each item at "
                            "its own best layer): +0.350 [") and x.endswith(
        "in-sample, an upper bound (the same numbers choose and score, so noise counts as "
        "gain)") for x in r.lines())
    # noise that flips between the orders is no gain once cross-validated
    noisy1 = [[1.0, 0.6, 0.0]] * 4 + [[0.0, 0.6, 1.0]] * 4
    noisy2 = [[0.0, 0.6, 1.0]] * 4 + [[1.0, 0.6, 0.0]] * 4
    n = read_sweep(_sweep(noisy1, noisy2), n_boot=200)
    assert n.oracle_gain["diff"] == pytest.approx(0.0)  # mirrored: every item best at 5
    assert n.xv["diff"] < 0


def test_read_sweep_single_order_is_in_sample():
    prop = np.array([[[0.0, 1.0], [0.0, 2.0]], [[0.0, 1.0], [0.0, 3.0]]])
    r = read_sweep(SweepResult(prop, [2, 4], [-1.0, 1.0], ["a", "b"], ["A", "B"]), n_boot=100)
    assert r.xv is None and r.fixed_layers_xv is None and r.fixed_layer == 4
    assert r.fixed_effect == pytest.approx(1.25)
    assert any("layer 4 (in-sample: one letter order)" in x for x in r.lines())
