"""Does a change to the measurement make the headroom vanish? Two runs' cross-validated
headroom on the same items, relative to each run's fixed effect.

An ablation changes one ingredient of the measurement (the positions steered, how the
options are scored, the multiplier scale, whether the prompt lists the options) and sweeps
the same items again. Its propensities are then on another scale (a sum of log-probabilities
over 20 option tokens against one token's), so the absolute headroom of two runs is not
comparable. The **relative headroom** is a better common ground: the cross-validated oracle
over the cross-validated fixed layer, minus one — the share of the fixed layer's effect that a
perfect per-input router would add (:func:`~w2s_lens.evaluation.headroom.diagnostics.
xv_scores`, on the retest's two half-vector sweeps). It is unchanged by a rescaling common to
every layer and item, and only by that: a change that reweights layers (the relative
multiplier scale) or tokens (one option token scored instead of all) changes it for real,
which is what an ablation asks about. :func:`headroom_shift` compares it between two runs on
the items both retested, with a paired bootstrap over items (each item keeps its four numbers:
oracle and fixed in each run; each run's layers are chosen once, on the shared items, and held
across resamples, as :func:`~w2s_lens.evaluation.headroom.diagnostics.cross_validated_oracle`
holds them), so the interval says whether the change moved the headroom beyond the noise of
which items were drawn. Its ``diff`` can differ from the difference of the two runs'
separately computed relative headroom where they retested different items.

The relative headroom is undefined where the fixed layer's effect is not positive (steering
that does not steer): the result then says so instead of dividing by it. Where only some
bootstrap resamples have a non-positive fixed effect, the interval is the percentile interval
of the others and ``undefined_draws`` says what share was left out (above
:data:`MAX_UNDEFINED` no interval is given: the ratio is too unstable to bound); the
one-sided p counts those resamples against the claim.

Inputs are the per-item files the pipeline writes (``items.csv``,
:mod:`w2s_lens.evaluation.results.item_table`), so no sweep runs here.

Example:
    >>> shift = headroom_shift("runs/baseline", "runs/first-token")  # doctest: +SKIP
    >>> print(shift.text)  # doctest: +SKIP
    relative headroom 0.61 → 0.05: -0.56 [-0.74, -0.41] (96 items)
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float

from w2s_lens.evaluation.headroom.diagnostics import xv_scores
from w2s_lens.evaluation.results.item_table import ITEMS_FILE
from w2s_lens.evaluation.stats.bootstrap import paired_statistic

__all__ = ["MAX_UNDEFINED", "HeadroomShift", "RelativeHeadroom", "headroom_shift",
           "relative_headroom", "retest_matrices"]

#: the retest's two sweeps in ``items.csv``
RETEST_SWEEPS = ("retest-1", "retest-2")
#: the largest share of bootstrap resamples with an undefined ratio that still gets an interval
MAX_UNDEFINED = 0.05


def _ratio(oracle: np.ndarray, fixed: np.ndarray, axis: int = -1) -> np.ndarray:
    f = np.mean(fixed, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, np.mean(oracle, axis=axis) / f - 1.0, np.nan)


def _interval(data: tuple[np.ndarray, ...], stat: Any, n_boot: int, seed: int
              ) -> tuple[tuple[float, float] | None, np.ndarray, float]:
    """BCa interval of ``stat``; where some resamples are undefined (NaN), the percentile
    interval of the others, or None when more than :data:`MAX_UNDEFINED` are. Returns the
    interval, the whole bootstrap distribution and the undefined share."""
    (lo, hi), dist = paired_statistic(data, stat, n_boot, seed)
    bad = float(np.mean(~np.isfinite(dist))) if dist.size else 0.0
    if bad == 0.0 and np.isfinite(lo) and np.isfinite(hi):
        return (float(lo), float(hi)), dist, bad
    if bad > MAX_UNDEFINED or bad == 1.0:
        return None, dist, bad
    lo, hi = np.nanquantile(dist, [0.025, 0.975])
    return (float(lo), float(hi)), dist, bad


@dataclass(frozen=True)
class RelativeHeadroom:
    """One run's cross-validated headroom on its retested items.

    Attributes:
        n: items.
        oracle, fixed: mean steerability of the cross-validated oracle and fixed layer.
        headroom: ``oracle − fixed`` (the run's own units).
        ratio: ``oracle / fixed − 1``, the share of the fixed effect a perfect router adds;
            None where ``fixed`` is not positive.
        ratio_ci: its 95% BCa bootstrap interval over items (None with ``ratio``, or when
            more than :data:`MAX_UNDEFINED` of the resamples have no positive fixed effect).
        undefined_draws: the share of bootstrap resamples whose fixed effect was not positive
            (their ratio is undefined; see the module docstring).
    """

    n: int
    oracle: float
    fixed: float
    headroom: float
    ratio: float | None
    ratio_ci: tuple[float, float] | None
    undefined_draws: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready)."""
        return asdict(self)


@dataclass(frozen=True)
class HeadroomShift:
    """How a change moved the relative headroom, on the items both runs retested.

    Attributes:
        base, other: each run's :class:`RelativeHeadroom` on the shared items.
        ids: the shared item ids, in order.
        diff: ``other.ratio − base.ratio`` (None where either ratio is undefined).
        diff_ci: its 95% paired BCa bootstrap interval over items.
        p_less: share of the bootstrap resamples at or above 0 or undefined (+1 corrected):
            a one-sided p-value for "the change lowered the relative headroom" (a percentile
            share, so near 0 it need not agree exactly with the BCa interval).
        undefined_draws: share of resamples where either run's fixed effect was not positive.
        text: one line that says it.
    """

    base: RelativeHeadroom
    other: RelativeHeadroom
    ids: tuple[str, ...]
    diff: float | None
    diff_ci: tuple[float, float] | None
    p_less: float | None
    undefined_draws: float = 0.0

    @property
    def n(self) -> int:
        """The number of shared items."""
        return len(self.ids)

    @property
    def text(self) -> str:
        """``relative headroom 0.61 → 0.05: -0.56 [-0.74, -0.41] (96 items)``, or why not."""
        def r(x: float | None) -> str:
            return "undefined (the fixed effect is not positive)" if x is None else f"{x:.2f}"

        head = f"relative headroom {r(self.base.ratio)} → {r(self.other.ratio)}"
        if self.diff is None:
            return f"{head} ({self.n} items)"
        ci = "" if self.diff_ci is None else f" [{self.diff_ci[0]:+.2f}, {self.diff_ci[1]:+.2f}]"
        return f"{head}: {self.diff:+.2f}{ci} ({self.n} items)"

    def to_dict(self) -> dict[str, Any]:
        """A flat, JSON-ready dict (``base_*`` and ``other_*`` for the two runs)."""
        out: dict[str, Any] = {"n": self.n, "diff": self.diff, "diff_ci": self.diff_ci,
                               "p_less": self.p_less, "undefined_draws": self.undefined_draws}
        for side in ("base", "other"):
            out.update({f"{side}_{k}": v for k, v in getattr(self, side).to_dict().items()})
        return out


def relative_headroom(
    s1: Float[Any, "n layer"], s2: Float[Any, "n layer"], n_boot: int = 2000, seed: int = 0
) -> RelativeHeadroom:
    """The relative cross-validated headroom of one run from its two retest sweeps.

    Args:
        s1, s2: ``[n, L]`` steerability of the same items under the two half vectors.

    Example:
        >>> s = [[1.0, 0.5], [0.5, 1.0]] * 4
        >>> h = relative_headroom(s, s, n_boot=200)
        >>> h.oracle, h.fixed, h.headroom, round(h.ratio, 4)
        (1.0, 0.75, 0.25, 0.3333)
    """
    oracle, fixed, _ = xv_scores(s1, s2)
    return _relative(oracle, fixed, n_boot, seed)


def _relative(oracle: np.ndarray, fixed: np.ndarray, n_boot: int, seed: int
              ) -> RelativeHeadroom:
    ratio = _ratio(oracle, fixed)
    ok = bool(np.isfinite(ratio))
    ci, bad = None, 0.0
    if ok and oracle.size >= 2:
        ci, _, bad = _interval((oracle, fixed), _ratio, n_boot, seed)
    return RelativeHeadroom(n=int(oracle.size), oracle=float(oracle.mean()),
                            fixed=float(fixed.mean()),
                            headroom=float(oracle.mean() - fixed.mean()),
                            ratio=float(ratio) if ok else None, ratio_ci=ci,
                            undefined_draws=bad)


def _frame(items: Any) -> Any:
    import pandas as pd

    if isinstance(items, pd.DataFrame):
        return items
    path = Path(os.fspath(items))
    if path.is_dir():
        path = path / ITEMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no per-item file at {path} (the pipeline writes {ITEMS_FILE} "
                                "beside results.json)")
    return pd.read_csv(path, dtype={"id": str})


def retest_matrices(
    items: Any, method: str = "caa"
) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """The retest's two sweeps from a run's per-item data, aligned by item id.

    Args:
        items: a ``pandas.DataFrame`` of ``items.csv``, its path, or the folder holding it.
        method: the method's rows (``caa`` or ``l2s``).

    Returns:
        ``(ids, columns, s1, s2)``: the ids present in both sweeps (in the first's order), the
        ``s_L<l>`` columns and the two ``[n, L]`` matrices.

    Raises:
        ValueError: the file has no retest rows for ``method`` (a run with ``retest=False``).
    """
    df = _frame(items)
    cols = [c for c in df.columns if c.startswith("s_L")]
    rows = df[df["method"] == method]
    rows = rows.assign(id=rows["id"].astype(str))
    parts = [rows[rows["sweep"] == s].set_index("id") for s in RETEST_SWEEPS]
    if any(p.empty for p in parts):
        raise ValueError(f"no retest rows ({', '.join(RETEST_SWEEPS)}) for method {method!r} in "
                         "the per-item data: the run had no retest, so it has no "
                         "cross-validated headroom")
    for name, part in zip(RETEST_SWEEPS, parts):
        twice = part.index[part.index.duplicated()].unique()
        if len(twice):
            raise ValueError(f"the {name} sweep has several rows for item(s) "
                             f"{', '.join(map(str, twice[:5]))}: one row per item is expected")
    ids = [i for i in parts[0].index if i in parts[1].index]
    alone = len(parts[0]) + len(parts[1]) - 2 * len(ids)
    if alone:
        warnings.warn(f"{alone} item(s) are in only one of the two retest sweeps and are left "
                      "out (an interrupted retest?)", stacklevel=2)
    return ([str(i) for i in ids], cols, parts[0].loc[ids, cols].to_numpy(float),
            parts[1].loc[ids, cols].to_numpy(float))


def headroom_shift(
    base: Any, other: Any, method: str = "caa", n_boot: int = 2000, seed: int = 0
) -> HeadroomShift:
    """The relative headroom of ``other`` against ``base`` on the items both retested.

    Args:
        base, other: per-item data of two runs (a ``DataFrame`` of ``items.csv``, its path,
            or the folder holding it); both on one layer grid.
        method: the method compared.
        n_boot, seed: the paired bootstrap over items.

    Raises:
        ValueError: the runs swept different layers, or share no retested item.

    Example:
        >>> shift = headroom_shift("analysis/results/ablation/baseline/corrigible-neutral-HHH",
        ...                        "analysis/results/ablation/first-token/corrigible-neutral-HHH")
        ...                        # doctest: +SKIP
        >>> shift.diff, shift.diff_ci  # doctest: +SKIP
    """
    ids_a, cols_a, a1, a2 = retest_matrices(base, method)
    ids_b, cols_b, b1, b2 = retest_matrices(other, method)
    if cols_a != cols_b:
        raise ValueError(f"the two runs swept different layers ({', '.join(cols_a)} against "
                         f"{', '.join(cols_b)}): their headroom is over different choices")
    index_b = {i: k for k, i in enumerate(ids_b)}
    shared = [i for i in ids_a if i in index_b]
    if not shared:
        raise ValueError("the two runs retested no item in common")
    index_a = {i: k for k, i in enumerate(ids_a)}
    ka = [index_a[i] for i in shared]
    kb = [index_b[i] for i in shared]
    oa, fa, _ = xv_scores(a1[ka], a2[ka])
    ob, fb, _ = xv_scores(b1[kb], b2[kb])
    h_a = _relative(oa, fa, n_boot, seed)
    h_b = _relative(ob, fb, n_boot, seed)
    diff = ci = p = None
    bad = 0.0
    if h_a.ratio is not None and h_b.ratio is not None:
        diff = h_b.ratio - h_a.ratio
        if len(shared) >= 2:
            def stat(o2: Any, f2: Any, o1: Any, f1: Any, axis: int = -1) -> np.ndarray:
                return _ratio(o2, f2, axis) - _ratio(o1, f1, axis)

            ci, dist, bad = _interval((ob, fb, oa, fa), stat, n_boot, seed)
            # an undefined resample counts against "lowered" (the cautious side)
            p = float((1 + np.sum(~(dist < 0))) / (1 + dist.size))
    return HeadroomShift(base=h_a, other=h_b, ids=tuple(shared), diff=diff, diff_ci=ci,
                         p_less=p, undefined_draws=bad)
