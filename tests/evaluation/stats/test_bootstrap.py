"""Tests for w2s_lens.evaluation.stats.bootstrap (BCa intervals over inputs; pure numpy, fast)."""

from __future__ import annotations

import numpy as np
import pytest

from w2s_lens.evaluation.stats import bootstrap as B
from w2s_lens.evaluation.stats import metrics as M
from w2s_lens.evaluation.stats.bootstrap import paired_diff_ci


def test_bootstrap_ci_contains_mean_and_is_deterministic() -> None:
    v = np.random.default_rng(1).normal(0.3, 1.0, size=200)
    lo, hi = M.bootstrap_ci(v, n_boot=1000, seed=3)
    assert lo < v.mean() < hi
    assert (lo, hi) == M.bootstrap_ci(v, n_boot=1000, seed=3)
    assert (lo, hi) != M.bootstrap_ci(v, n_boot=1000, seed=4)
    # width close to the normal approximation 2 * 1.96 * sd / sqrt(n)
    assert hi - lo == pytest.approx(2 * 1.96 * v.std() / np.sqrt(v.size), rel=0.2)


def test_bootstrap_ci_custom_stat_and_empty() -> None:
    v = np.arange(11, dtype=float)
    lo, hi = M.bootstrap_ci(v, n_boot=300, stat=lambda x: float(np.median(x)))
    assert lo <= 5 <= hi
    assert all(np.isnan(M.bootstrap_ci([], n_boot=10)))


def test_paired_diff_ci() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=100)
    assert paired_diff_ci(a, a.copy(), n_boot=500) == (0.0, 0.0)
    lo, hi = paired_diff_ci(a + 0.5 + 0.05 * rng.normal(size=100), a, n_boot=500)
    assert 0 < lo < 0.5 < hi
    # pairing matters: a large shared component would swamp an unpaired comparison
    noisy = rng.normal(scale=10, size=100)
    lo, hi = paired_diff_ci(noisy + 0.2, noisy, n_boot=500)
    assert lo > 0
    with pytest.raises(ValueError):
        paired_diff_ci([1.0, 2.0], [1.0])


def test_paired_bootstrap_p_and_standard_error() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.3, 1.0, size=40), np.zeros(40)
    ci, p, se = B.paired_bootstrap(a, b, n_boot=1000, seed=1)
    assert (ci, p) == B.paired_diff_test(a, b, n_boot=1000, seed=1)
    assert ci == B.paired_diff_ci(a, b, n_boot=1000, seed=1)
    assert se == pytest.approx(a.std(ddof=1) / np.sqrt(40), rel=0.15)
    assert 0 < p < 0.5
    assert B.paired_bootstrap([1.0], [0.0], n_boot=99) == ((1.0, 1.0), 0.01, None)
    assert B.paired_bootstrap([0.0, 0.0], [1.0, 1.0], n_boot=99) == ((-1.0, -1.0), 1.0, None)
    assert B.paired_bootstrap([], [], n_boot=10)[1:] == (None, None)


def test_paired_statistic_resamples_inputs_together():
    rng = np.random.default_rng(0)
    a = rng.normal(size=80)
    b = a + 0.01 * rng.normal(size=80)  # b tracks a input by input

    def diff(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    (lo, hi), dist = B.paired_statistic((a, b), diff, n_boot=500)
    assert dist.shape == (500,) and hi - lo < 0.01  # paired: a's spread cancels
    (ulo, uhi), _ = B.paired_statistic((a, rng.permutation(b)), diff, n_boot=500)
    assert uhi - ulo > 10 * (hi - lo)  # the pairing broken: the spread is back
    with pytest.raises(ValueError, match="differ in length"):
        B.paired_statistic((a, b[:-1]), diff)
    with pytest.raises(ValueError, match="at least two"):
        B.paired_statistic(([1.0], [2.0]), diff)
