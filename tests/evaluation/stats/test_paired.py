"""Tests for w2s_lens.evaluation.stats.paired: the exact sign-flip test, verdicts, BH, power, and a
null simulation at the sizes of a table (fast: a few seconds)."""

from __future__ import annotations

import functools
import itertools
import json

import numpy as np
import pytest
import scipy.stats

from w2s_lens.evaluation.stats import paired as P
from w2s_lens.evaluation.stats.bootstrap import paired_bootstrap, paired_diff_ci, paired_diff_test

AUDIT = [0.0] * 9 + [0.5, 0.3, 0.8]  # 12 items, the router picks the fixed layer on 9


def _brute_force(d: np.ndarray) -> tuple[float, float]:
    x = d[d != 0]
    obs = x.sum()
    sums = np.array([np.dot(s, np.abs(x)) for s in itertools.product([1, -1], repeat=x.size)])
    return float(np.mean(sums >= obs - 1e-12)), float(np.mean(sums <= obs + 1e-12))


def test_audit_example_exact_p_is_one_eighth_and_the_old_rule_says_beats() -> None:
    r = P.sign_flip_test(AUDIT)
    assert (r.p_greater, r.n_nonzero, r.test) == (0.125, 3, "sign-flip exact")
    assert r.p_less == 1.0  # every pattern sums to at most the all-positive one
    assert P.signflip_verdict(r.p_greater, r.p_less, r.n_nonzero) == P.VERDICT_TOO_FEW
    # the older rule on the same data: the BCa interval excludes 0 (the audit's finding)
    lo, _ = paired_diff_ci(AUDIT, np.zeros(12))
    assert lo > 0 and P.verdict([lo, 1.0]) == P.VERDICT_BETTER


@pytest.mark.parametrize("seed", range(5))
def test_exact_p_values_equal_brute_force_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = np.where(rng.random(11) < 0.3, 0.0, rng.normal(0.3, 1.0, size=11))
    d[0] = d[1] = 0.25  # a tie of absolute values: sums at the observed value count
    r = P.sign_flip_test(d)
    assert (r.p_greater, r.p_less) == pytest.approx(_brute_force(d), abs=1e-12)
    assert r.n_nonzero == int(np.sum(d != 0))


def test_zeros_drop_out_and_signs_mirror() -> None:
    d = np.array([0.4, -0.1, 0.3, 0.2, -0.05, 0.6, 0.1])
    r = P.sign_flip_test(d)
    assert P.sign_flip_test(np.concatenate([d, np.zeros(30)])) == r
    neg = P.sign_flip_test(-d)
    assert (neg.p_greater, neg.p_less) == (r.p_less, r.p_greater)
    assert P.sign_flip_test(np.zeros(12)) == (1.0, 1.0, "sign-flip exact", 0)
    with pytest.raises(ValueError, match="NaN"):
        P.sign_flip_test([0.1, float("nan")])
    with pytest.raises(ValueError, match="n_exact=30"):
        P.sign_flip_test([0.1], n_exact=30)


def test_no_p_value_is_ever_zero() -> None:
    six = P.sign_flip_test(np.full(6, 0.2))
    assert six.p_greater == 1 / 64 and six.test == "sign-flip exact"
    mc = P.sign_flip_test(np.full(20, 0.2))
    assert mc.p_greater == 1 / 20_001 and mc.test == "sign-flip Monte-Carlo (20000 draws)"
    one = P.sign_flip_test([0.7])
    assert one.p_greater == 0.5 and one.n_nonzero == 1


def test_monte_carlo_agrees_with_exact_and_is_seeded() -> None:
    rng = np.random.default_rng(7)
    d = rng.normal(0.2, 1.0, size=14)
    exact = P.sign_flip_test(d)
    mc = P.sign_flip_test(d, n_exact=10, n_draws=20_000, seed=3)
    assert mc.test == "sign-flip Monte-Carlo (20000 draws)"
    se = np.sqrt(exact.p_greater * (1 - exact.p_greater) / 20_000)
    assert abs(mc.p_greater - exact.p_greater) < 4 * se + 1e-4
    assert mc == P.sign_flip_test(d, n_exact=10, seed=3)
    assert mc != P.sign_flip_test(d, n_exact=10, seed=4)


def test_degenerate_samples_never_beat() -> None:
    # 1 item, or 2-3 all-positive items: too few to say anything, whatever the sizes
    for d in ([0.5], [0.5, 0.5], [0.2, 0.3, 0.9]):
        c = P.paired_comparison(d, np.zeros(len(d)), n_boot=200)
        assert c["verdict"] == P.VERDICT_TOO_FEW and c["p"] >= 1 / 8
    # the bootstrap's own p-value is no longer 0 on constant positive differences
    assert paired_diff_test([0.5, 0.5], [0.0, 0.0], n_boot=200)[1] == 1 / 201


def test_signflip_verdict_levels() -> None:
    assert P.signflip_verdict(0.025, 0.99, 6) == P.VERDICT_BETTER
    assert P.signflip_verdict(0.0251, 0.99, 6) == P.VERDICT_NONE
    assert P.signflip_verdict(0.99, 0.02, 9) == P.VERDICT_WORSE
    assert P.signflip_verdict(0.001, 0.99, 5) == P.VERDICT_TOO_FEW
    assert P.signflip_verdict(None, None, 12) == P.VERDICT_TOO_FEW
    assert P.MIN_NONZERO == 6 and 1 / 2**5 > P.ALPHA >= 1 / 2**6


def test_min_detectable_difference() -> None:
    z = scipy.stats.norm.ppf(0.975) + scipy.stats.norm.ppf(0.8)
    assert P.min_detectable_difference(0.1) == pytest.approx(z * 0.1)
    assert z == pytest.approx(2.8016, abs=1e-4)
    assert [P.min_detectable_difference(x) for x in (None, 0.0, float("nan"))] == [None] * 3
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=16), rng.normal(size=16)
    c = P.paired_comparison(a, b, n_boot=500, seed=2)
    se = paired_bootstrap(a, b, n_boot=500, seed=2)[2]
    assert se == pytest.approx(np.std(a - b, ddof=1) / 4, rel=0.25)  # ~ sd / sqrt(n)
    assert c["mde"] == pytest.approx(z * se)
    assert P.paired_comparison([0.3] * 8, [0.0] * 8, n_boot=100)["mde"] is None  # no spread


def test_paired_comparison_block() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=16)
    c = P.paired_comparison(base + 0.5 + 0.1 * rng.normal(size=16), base, n_boot=300)
    assert set(c) == {"diff", "ci", "p", "p_less", "test", "n_nonzero", "mde", "verdict"}
    assert c["verdict"] == P.VERDICT_BETTER and c["p"] == 1 / 2**16 and c["n_nonzero"] == 16
    assert c["ci"][0] > 0 and c["p_less"] == 1.0
    json.dumps(c, allow_nan=False)
    empty = P.paired_comparison([], [], n_boot=100)
    assert empty["verdict"] == P.VERDICT_TOO_FEW and empty["p"] is None
    named = P.paired_comparison(base - 0.5, base, n_boot=100, names=("L2S", "CAA"))
    assert named["verdict"] == "L2S is worse than CAA"


def test_verdict_of_reads_new_and_older_blocks() -> None:
    new = {"diff_vs_fixed_ci": [0.01, 0.3], "diff_vs_fixed_verdict": P.VERDICT_NONE,
           "diff_vs_fixed_test": "sign-flip exact"}
    assert P.verdict_of(new) == P.VERDICT_NONE  # the test's verdict, not the interval's
    assert P.paired_test_name(new) == "sign-flip exact"
    old = {"diff_vs_fixed_ci": [0.01, 0.3], "diff_vs_fixed_p": 0.01}
    assert P.verdict_of(old) == P.VERDICT_BETTER
    assert P.verdict_of(old, labelled=True) == f"{P.VERDICT_BETTER} (bootstrap CI (older))"
    assert P.verdict_kind(P.verdict_of(old, labelled=True)) == P.VERDICT_BETTER
    assert P.paired_test_name(old) == P.OLDER_TEST == "bootstrap CI (older)"
    assert P.verdict_of({}) == P.VERDICT_NONE


# --------------------------------------------------------------------------- one error rate


def _uncorrected(ps) -> int:
    return sum(p <= P.ALPHA for p in ps)


def test_bh_never_exceeds_the_uncorrected_count() -> None:
    just_above = [0.03, 0.04, 0.045]  # the audit's case: 0 uncorrected, 3 after BH at 0.05
    assert _uncorrected(just_above) == 0 and P.fdr_count(just_above) == 0
    below = [0.01, 0.02, 0.024]
    assert _uncorrected(below) == 3 and P.fdr_count(below) == 3
    assert P.fdr_count(below, q=0.01) == 0


def test_bh_count_property_over_random_p_values() -> None:
    rng = np.random.default_rng(0)
    for _ in range(400):
        ps = rng.uniform(0, 0.1, size=int(rng.integers(1, 14))) ** rng.uniform(0.5, 2)
        bh = P.fdr_count(ps.tolist())
        assert 0 <= bh <= _uncorrected(ps)
        rej = P.bh_rejections(ps.tolist())
        assert all(p <= P.ALPHA for p, r in zip(ps, rej) if r)


def test_bh_ignores_too_few_and_missing() -> None:
    ps = [0.001, 0.001, None, 0.02]
    verdicts = [P.VERDICT_TOO_FEW, P.VERDICT_BETTER, P.VERDICT_NONE, P.VERDICT_BETTER]
    assert P.bh_rejections(ps, verdicts=verdicts) == [False, True, False, True]
    assert P.fdr_count(ps, verdicts=verdicts) == 2
    assert P.fdr_count([None, None]) == 0


# --------------------------------------------------------------------------- null simulation

N_SIM = 2000
SETTINGS = [(n, p0) for n in (12, 16, 24) for p0 in (0.5, 0.75)]


@functools.cache
def _null(n: int, p0: float) -> np.ndarray:
    """[N_SIM, n] differences under a true null: 0 with probability p0, else N(0, 1)."""
    rng = np.random.default_rng(1000 * n + int(100 * p0))
    return np.where(rng.random((N_SIM, n)) < p0, 0.0, rng.normal(size=(N_SIM, n)))


def _bound(n_sim: int) -> float:
    return P.ALPHA + 3 * np.sqrt(P.ALPHA * (1 - P.ALPHA) / n_sim)


@pytest.mark.parametrize(("n", "p0"), SETTINGS)
def test_null_false_beats_rate_is_at_most_nominal(n: int, p0: float) -> None:
    beats = 0
    for i, d in enumerate(_null(n, p0)):
        t = P.sign_flip_test(d, seed=i)
        beats += P.signflip_verdict(t.p_greater, t.p_less, t.n_nonzero) == P.VERDICT_BETTER
    rate = beats / N_SIM
    print(f"sign-flip false 'beats' at n={n}, P(d=0)={p0}: {rate:.4f} (bound {_bound(N_SIM):.4f})")
    assert rate <= _bound(N_SIM)


def test_null_old_bootstrap_verdict_exceeds_nominal() -> None:
    """The older rule (95% BCa interval of the mean difference excludes 0) on the first 400
    datasets of the same n = 12 simulation: anti-conservative, so the check above can fail."""
    d = _null(12, 0.5)[:400]
    beats = sum(P.verdict(paired_diff_ci(x, np.zeros(12))) == P.VERDICT_BETTER for x in d)
    rate = beats / len(d)
    print(f"old bootstrap false 'beats' at n=12, P(d=0)=0.5: {rate:.4f}")
    assert rate > _bound(len(d))


def test_tiny_differences_keep_their_power() -> None:
    """The tie tolerance is relative: differences of 1e-10 are not all ties."""
    from w2s_lens.evaluation.stats.paired import sign_flip_test

    assert sign_flip_test(np.full(8, 1e-10)).p_greater == 1 / 256
    assert sign_flip_test(np.full(8, 1.0)).p_greater == 1 / 256
