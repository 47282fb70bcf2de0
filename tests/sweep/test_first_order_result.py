"""Tests for w2s_lens.sweep.first_order_result: the cubic correction is exact for any
propensity of degree at most four on a symmetric grid, and mirroring averages the letter
orders of every field. (Its numbers against real sweeps are in test_first_order.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from w2s_lens.sweep.first_order_result import FirstOrderResult, cubic_slope


def test_cubic_slope_is_exact_up_to_degree_four():
    rng = np.random.default_rng(0)
    for grid in ([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], [-1.0, 0.5, 2.0]):
        coef = rng.normal(size=5)
        x = np.asarray(grid)
        p = np.polynomial.polynomial.polyval(x, coef)
        got = cubic_slope(coef[0], coef[1], p[0], p[-1], grid)
        ols = float(np.polyfit(x, p, 1)[0])
        if grid[0] == -grid[-1]:
            assert got == pytest.approx(ols, abs=1e-12)
        cub = coef.copy()
        cub[4] = 0.0  # any cubic, on any grid
        pc = np.polynomial.polynomial.polyval(x, cub)
        assert cubic_slope(cub[0], cub[1], pc[0], pc[-1], grid) == pytest.approx(
            float(np.polyfit(x, pc, 1)[0]), abs=1e-12)
    with pytest.raises(ValueError, match="non-zero"):
        cubic_slope(0.0, 1.0, 0.0, 1.0, [0.0, 1.0])


def test_mirrored_averages_both_orders_of_every_field():
    r = FirstOrderResult(np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 5.0]]), np.array([0.0, 2.0, 1.0]),
                         [3, 5], [-1.5, 1.5], ["a", "a~swap", "b"], ["a", "a", "b"],
                         matching_letters=["A", "B", "A"], groups=["g", "g", "h"],
                         endpoints=np.arange(12.0).reshape(3, 2, 2))
    m = r.mirrored()
    assert m.ids == ["a", "b"] and m.matching_letters == ["A", "A"] and m.groups == ["g", "h"]
    assert m.steerability.tolist() == [[2.0, 4.0], [5.0, 5.0]]
    assert m.propensity.tolist() == [1.0, 1.0]
    assert m.endpoints[0].tolist() == [[2.0, 3.0], [4.0, 5.0]]
    assert m.metadata["mirrored"] and np.allclose(m.endpoint_slope, (m.endpoints[..., 1]
                                                                    - m.endpoints[..., 0]) / 3)
    single = FirstOrderResult(np.ones((1, 1)), np.zeros(1), [3], [-1.0, 1.0], ["a"], ["a"])
    assert single.mirrored() is single
    with pytest.raises(ValueError, match="curvature=True"):
        _ = single.cubic_slope
