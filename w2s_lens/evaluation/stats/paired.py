"""Paired comparisons on a handful of test items: an exact sign-flip test, verdicts, power.

A table's datasets have 12–24 test items, and where the router picks the fixed layer the paired
difference W2S − fixed is exactly 0. A bootstrap interval of the mean difference is
anti-conservative there (with ``d = [0]*9 + [0.5, 0.3, 0.8]`` its 95% BCa interval excludes 0,
while only 1 of the 8 equally likely sign patterns of the three informative items is as
extreme). So a verdict comes from the paired **sign-flip permutation test**: under "no
difference" each non-zero difference is as likely positive as negative (zeros carry no
information and drop out), and the p-value is the share of the ``2^m`` sign patterns of the
``m`` non-zero differences whose sum is at least as extreme as the observed one. Enumerated
exactly for ``m <= 16``; above that ``20,000`` seeded Monte-Carlo draws with the +1 correction.
No p-value is ever 0. The test is exact for any distribution symmetric about 0, zeros included.

Every count and correction uses one one-sided level, :data:`ALPHA` = 0.025 (what a two-sided
95% interval excluding 0 on one side corresponds to): a row "beats" when ``p_greater <= ALPHA``
and Benjamini-Hochberg runs at ``q = ALPHA`` over the same rows, so the corrected count never
exceeds the uncorrected one. With fewer than :data:`MIN_NONZERO` non-zero differences (6:
``1/2^5 > 0.025``, so five cannot reach the level) the verdict is :data:`VERDICT_TOO_FEW`.

Example:
    >>> r = sign_flip_test([0.0] * 9 + [0.5, 0.3, 0.8])
    >>> r.p_greater, r.n_nonzero, r.test
    (0.125, 3, 'sign-flip exact')
    >>> signflip_verdict(r.p_greater, r.p_less, r.n_nonzero)
    'too few informative items'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import scipy.stats
from jaxtyping import Float

from w2s_lens.evaluation.stats.bootstrap import paired_bootstrap

__all__ = [
    "ALPHA", "MIN_NONZERO", "N_DRAWS", "N_EXACT", "OLDER_TEST", "POWER", "SignFlipResult",
    "VERDICT_BETTER", "VERDICT_NONE", "VERDICT_TOO_FEW", "VERDICT_WORSE", "bh_rejections",
    "fdr_count", "min_detectable_difference", "paired_comparison", "sign_flip_test",
    "paired_test_name", "signflip_verdict", "verdict", "verdict_kind", "verdict_of",
]

#: one-sided level of every verdict, uncorrected count and BH correction
ALPHA = 0.025
#: the power at which the minimal detectable difference is stated
POWER = 0.80
#: fewest non-zero paired differences that can give a verdict (1/2^6 <= ALPHA < 1/2^5)
MIN_NONZERO = 6
#: enumerate all 2^m sign patterns up to this many non-zero differences
N_EXACT = 16
#: Monte-Carlo sign patterns above N_EXACT
N_DRAWS = 20_000
#: how rows of results written before the sign-flip test are labelled
OLDER_TEST = "bootstrap CI (older)"

VERDICT_BETTER = "W2S beats fixed beyond the noise"
VERDICT_NONE = "no detectable difference"
VERDICT_WORSE = "W2S is worse than fixed"
VERDICT_TOO_FEW = "too few informative items"
_OLDER_SUFFIX = f" ({OLDER_TEST})"


class SignFlipResult(NamedTuple):
    """One paired sign-flip test: one-sided p-values, the test's name, informative items."""

    p_greater: float
    p_less: float
    test: str
    n_nonzero: int


def _sign_sums(x: np.ndarray) -> np.ndarray:
    """All ``2^m`` signed sums ``sum(±x_i)`` (vectorised doubling)."""
    sums = np.zeros(1)
    for v in x:
        sums = np.concatenate([sums + v, sums - v])
    return sums


def sign_flip_test(
    d: Float[Any, " n"],
    n_exact: int = N_EXACT,
    n_draws: int = N_DRAWS,
    seed: int = 0,
) -> SignFlipResult:
    """Paired sign-flip permutation test of ``mean(d) = 0`` against ``> 0`` and ``< 0``.

    The statistic is the sum of the differences; zeros contribute nothing to any sign pattern,
    so only the ``m`` non-zero ones are flipped. For ``m <= n_exact`` all ``2^m`` patterns are
    enumerated (the observed one among them, so ``p >= 2^-m``): ``test = "sign-flip exact"``.
    Above, ``n_draws`` patterns are drawn with ``numpy.random.default_rng(seed)`` and
    ``p = (1 + #{as extreme}) / (1 + n_draws)``: ``"sign-flip Monte-Carlo (20000 draws)"``.
    Sums within a relative 1e-9 of the observed one count as ties (as extreme).

    Args:
        d: ``[n]`` paired differences (e.g. W2S − fixed per test item).
        n_exact: largest ``m`` enumerated exactly.
        n_draws: Monte-Carlo draws above it.
        seed: seed of the Monte-Carlo draws.

    Returns:
        a :class:`SignFlipResult`; ``p_greater`` tests ``> 0``, ``p_less`` tests ``< 0``.
        With no non-zero difference both are 1.0.

    Example:
        >>> sign_flip_test([0.2, 0.1, 0.4, 0.3, 0.0, 0.5]).p_greater  # 1 of 32 patterns
        0.03125
        >>> sign_flip_test(np.ones(20)).test
        'sign-flip Monte-Carlo (20000 draws)'
    """
    if not 0 <= n_exact <= 24:
        raise ValueError(f"n_exact={n_exact}: exact enumeration is limited to 24 (2^24 sums)")
    v = np.asarray(d, dtype=float).ravel()
    if not np.all(np.isfinite(v)):
        raise ValueError("sign_flip_test: the differences contain NaN or infinity")
    x = np.abs(v[v != 0])
    m = int(x.size)
    observed = float(v[v != 0].sum())
    tol = 1e-9 * max(float(x.sum()), np.finfo(float).tiny)  # relative: ties up to rounding
    if m <= n_exact:
        sums = _sign_sums(x)
        return SignFlipResult(float(np.mean(sums >= observed - tol)),
                              float(np.mean(sums <= observed + tol)), "sign-flip exact", m)
    rng = np.random.default_rng(seed)
    ge = le = 0
    for start in range(0, n_draws, 2000):
        signs = rng.integers(0, 2, size=(min(2000, n_draws - start), m)) * 2.0 - 1.0
        sums = signs @ x
        ge += int(np.sum(sums >= observed - tol))
        le += int(np.sum(sums <= observed + tol))
    return SignFlipResult((1 + ge) / (1 + n_draws), (1 + le) / (1 + n_draws),
                          f"sign-flip Monte-Carlo ({n_draws} draws)", m)


def signflip_verdict(p_greater: float | None, p_less: float | None, n_nonzero: int,
                     alpha: float = ALPHA, names: tuple[str, str] = ("W2S", "fixed")) -> str:
    """The plain-words verdict of a one-sided sign-flip test pair at level ``alpha``.

    ``"<a> beats <b> beyond the noise"`` iff ``p_greater <= alpha``, ``"<a> is worse than <b>"``
    iff ``p_less <= alpha``, else ``"no detectable difference"``; with fewer than
    :data:`MIN_NONZERO` non-zero differences (or no p-values) ``"too few informative items"``.

    Example:
        >>> signflip_verdict(0.01, 0.99, 12), signflip_verdict(0.01, 0.99, 5)
        ('W2S beats fixed beyond the noise', 'too few informative items')
        >>> signflip_verdict(0.99, 0.02, 8, names=("L2S", "CAA"))
        'L2S is worse than CAA'
    """
    if n_nonzero < MIN_NONZERO or p_greater is None or p_less is None:
        return VERDICT_TOO_FEW
    a, b = names
    if p_greater <= alpha:
        return f"{a} beats {b} beyond the noise"
    if p_less <= alpha:
        return f"{a} is worse than {b}"
    return VERDICT_NONE


def min_detectable_difference(se: float | None, alpha: float = ALPHA,
                              power: float = POWER) -> float | None:
    """Minimal detectable difference: ``(z_{1-alpha} + z_{power}) * se``.

    The normal-approximation size of a true mean difference that a one-sided level-``alpha``
    test detects with probability ``power``, for the standard error ``se`` of the mean
    difference (here the bootstrap standard error: the standard deviation of the paired
    bootstrap means). With ``alpha = 0.025`` and ``power = 0.8``: ``(1.960 + 0.842) * se``.
    None when ``se`` is undefined (None, NaN or 0: no spread to estimate the noise from).

    Example:
        >>> round(min_detectable_difference(0.1), 4)
        0.2802
    """
    if se is None or not np.isfinite(se) or se <= 0:
        return None
    z = scipy.stats.norm.ppf(1 - alpha) + scipy.stats.norm.ppf(power)
    return float(z * se)


def _f(x: Any) -> float | None:
    """JSON-safe float: NaN and None become None."""
    return None if x is None or np.isnan(float(x)) else float(x)


def paired_comparison(
    a: Float[Any, " n"],
    b: Float[Any, " n"],
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = ALPHA,
    names: tuple[str, str] = ("W2S", "fixed"),
) -> dict[str, Any]:
    """Everything a table reports about one paired comparison ``a − b`` over items.

    Returns:
        ``{"diff", "ci", "p", "p_less", "test", "n_nonzero", "mde", "verdict"}``: the mean
        difference, its 95% paired BCa bootstrap interval, the sign-flip one-sided p-values
        for ``> 0`` and ``< 0`` (:func:`sign_flip_test`, seeded with ``seed``), the test's
        name, the number of non-zero differences, the minimal detectable difference at 80%
        power and one-sided ``alpha`` from the bootstrap standard error
        (:func:`min_detectable_difference`) and :func:`signflip_verdict`. JSON-safe; empty
        input gives None numbers and the verdict "too few informative items".

    Example:
        >>> c = paired_comparison([0.5, 0.2, 0.3, 0.4, 0.6, 0.1, 0.2], [0.0] * 7, n_boot=300)
        >>> c["p"], c["n_nonzero"], c["verdict"]
        (0.0078125, 7, 'W2S beats fixed beyond the noise')
    """
    x = np.asarray(a, dtype=float).ravel()
    y = np.asarray(b, dtype=float).ravel()
    ci, _, se = paired_bootstrap(x, y, n_boot=n_boot, seed=seed)
    if x.size == 0:
        return {"diff": None, "ci": [None, None], "p": None, "p_less": None, "test": None,
                "n_nonzero": 0, "mde": None, "verdict": VERDICT_TOO_FEW}
    t = sign_flip_test(x - y, seed=seed)
    return {"diff": float(np.mean(x - y)), "ci": [_f(c) for c in ci], "p": t.p_greater,
            "p_less": t.p_less, "test": t.test, "n_nonzero": t.n_nonzero,
            "mde": min_detectable_difference(se, alpha),
            "verdict": signflip_verdict(t.p_greater, t.p_less, t.n_nonzero, alpha, names)}


# --------------------------------------------------------------------------- verdicts


def verdict(diff_ci: Sequence[float | None] | None) -> str:
    """The OLDER plain-words reading of the paired CI of mean(W2S - fixed) (beats when the
    interval's lower end is above 0). Kept for results written before the sign-flip test;
    new code reads :func:`verdict_of`.

    Example:
        >>> verdict([0.01, 0.2]), verdict([-0.1, 0.05]), verdict([-0.3, -0.01])
        ('W2S beats fixed beyond the noise', 'no detectable difference', 'W2S is worse than fixed')
    """
    if diff_ci is None or len(diff_ci) != 2 or any(x is None for x in diff_ci):
        return VERDICT_NONE
    lo, hi = float(diff_ci[0]), float(diff_ci[1])  # type: ignore[arg-type]
    if np.isnan(lo) or np.isnan(hi):
        return VERDICT_NONE
    if lo > 0:
        return VERDICT_BETTER
    if hi < 0:
        return VERDICT_WORSE
    return VERDICT_NONE


def verdict_of(block: Mapping[str, Any], labelled: bool = False) -> str:
    """The verdict of a router block of ``results.json`` (``r["w2s"][router]``): one of the
    ``VERDICT_*`` strings.

    Its ``diff_vs_fixed_verdict`` (the sign-flip verdict) when present; for results written by
    older versions, which lack it, the old interval rule (:func:`verdict`), whose test
    :func:`paired_test_name` names ``"bootstrap CI (older)"``. ``labelled=True`` appends that
    label to such an older verdict (``"... (bootstrap CI (older))"``; :func:`verdict_kind`
    strips it again).

    Example:
        >>> verdict_of({"diff_vs_fixed_verdict": "too few informative items"})
        'too few informative items'
        >>> verdict_of({"diff_vs_fixed_ci": [0.01, 0.2]})
        'W2S beats fixed beyond the noise'
        >>> verdict_of({"diff_vs_fixed_ci": [0.01, 0.2]}, labelled=True)
        'W2S beats fixed beyond the noise (bootstrap CI (older))'
    """
    new = block.get("diff_vs_fixed_verdict")
    if new is not None:
        return str(new)
    return verdict(block.get("diff_vs_fixed_ci")) + (_OLDER_SUFFIX if labelled else "")


def verdict_kind(text: str) -> str:
    """A verdict without the older-results label (one of the ``VERDICT_*`` strings).

    Example:
        >>> verdict_kind("W2S beats fixed beyond the noise (bootstrap CI (older))")
        'W2S beats fixed beyond the noise'
    """
    return text[: -len(_OLDER_SUFFIX)] if text.endswith(_OLDER_SUFFIX) else text


def paired_test_name(block: Mapping[str, Any]) -> str:
    """The name of the test behind :func:`verdict_of` (``"bootstrap CI (older)"`` for results
    of older versions).

    Example:
        >>> paired_test_name({"diff_vs_fixed_test": "sign-flip exact"}), paired_test_name({})
        ('sign-flip exact', 'bootstrap CI (older)')
    """
    return str(block.get("diff_vs_fixed_test") or OLDER_TEST)



# --------------------------------------------------------------------------- counts


def bh_rejections(p_values: Sequence[float | None], q: float = ALPHA,
                  verdicts: Sequence[str] | None = None) -> list[bool]:
    """Which one-sided tests Benjamini-Hochberg rejects at ``q``
    (``scipy.stats.false_discovery_control``), in input order.

    ``None`` p-values, and entries whose verdict is "too few informative items", are not tests
    (never rejected, and not counted in the family), as in the uncorrected count.

    Example:
        >>> bh_rejections([0.001, None, 0.02, 0.5], q=0.05)
        [True, False, True, False]
    """
    keep = [p is not None and (verdicts is None or verdict_kind(verdicts[i]) != VERDICT_TOO_FEW)
            for i, p in enumerate(p_values)]
    ps = np.asarray([p for p, k in zip(p_values, keep) if k], dtype=float)
    if ps.size == 0:
        return [False] * len(keep)
    adjusted = iter(scipy.stats.false_discovery_control(ps, method="bh") <= q)
    return [bool(next(adjusted)) if k else False for k in keep]


def fdr_count(p_values: Sequence[float | None], q: float = ALPHA,
              verdicts: Sequence[str] | None = None) -> int:
    """How many one-sided tests stay significant after Benjamini-Hochberg at ``q``
    (default :data:`ALPHA`, the level of the uncorrected count, so this never exceeds it);
    see :func:`bh_rejections` for what is not a test.

    Example:
        >>> fdr_count([0.01, 0.02, 0.024]), fdr_count([0.03, 0.04, 0.045])
        (3, 0)
    """
    return sum(bh_rejections(p_values, q, verdicts))
