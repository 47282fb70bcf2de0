"""Does a change to the measurement make the headroom vanish? Two runs' cross-validated
headroom on the same items, relative to each run's fixed effect.

An ablation changes one ingredient of the measurement (the positions steered, how the
options are scored, the multiplier scale, whether the prompt lists the options) and sweeps
the same items again. Its propensities are then in other units (a sum of log-probabilities
over 20 option tokens against one token's), so the absolute headroom of two runs cannot be
compared. The **relative headroom** can: the cross-validated oracle over the cross-validated
fixed layer, minus one — the share of the fixed layer's effect that a perfect per-input
router would add (:func:`~w2s_lens.evaluation.headroom.diagnostics.xv_scores`, on the
retest's two half-vector sweeps). :func:`headroom_shift` compares it between two runs on the
items both retested, with a paired bootstrap over items (each item keeps its four numbers:
oracle and fixed in each run), so the interval says whether the change moved the headroom
beyond the noise of which items were drawn.

The relative headroom is undefined where the fixed layer's effect is not positive (steering
that does not steer): the result then says so instead of dividing by it.

Inputs are the per-item files the pipeline writes (``items.csv``,
:mod:`w2s_lens.evaluation.results.item_table`), so no sweep runs here.

Example:
    >>> shift = headroom_shift("runs/baseline", "runs/first-token")  # doctest: +SKIP
    >>> print(shift.text)  # doctest: +SKIP
    relative headroom 0.61 → 0.05: -0.56 [-0.74, -0.41] (96 items)
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float

from w2s_lens.evaluation.headroom.diagnostics import xv_scores
from w2s_lens.evaluation.results.item_table import ITEMS_FILE
from w2s_lens.evaluation.stats.bootstrap import paired_statistic

__all__ = ["HeadroomShift", "RelativeHeadroom", "headroom_shift", "relative_headroom",
           "retest_matrices"]

#: the retest's two sweeps in ``items.csv``
RETEST_SWEEPS = ("retest-1", "retest-2")


def _ratio(oracle: np.ndarray, fixed: np.ndarray, axis: int = -1) -> np.ndarray:
    f = np.mean(fixed, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, np.mean(oracle, axis=axis) / f - 1.0, np.nan)


def _ci(lo: float, hi: float) -> tuple[float, float] | None:
    return (float(lo), float(hi)) if np.isfinite(lo) and np.isfinite(hi) else None


@dataclass(frozen=True)
class RelativeHeadroom:
    """One run's cross-validated headroom on its retested items.

    Attributes:
        n: items.
        oracle, fixed: mean steerability of the cross-validated oracle and fixed layer.
        headroom: ``oracle − fixed`` (the run's own units).
        ratio: ``oracle / fixed − 1``, the share of the fixed effect a perfect router adds;
            None where ``fixed`` is not positive.
        ratio_ci: its 95% BCa bootstrap interval over items (None with ``ratio``).
    """

    n: int
    oracle: float
    fixed: float
    headroom: float
    ratio: float | None
    ratio_ci: tuple[float, float] | None

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
        p_less: share of the bootstrap distribution at or above 0 (+1 corrected): a
            one-sided p-value for "the change lowered the relative headroom".
        text: one line that says it.
    """

    base: RelativeHeadroom
    other: RelativeHeadroom
    ids: tuple[str, ...]
    diff: float | None
    diff_ci: tuple[float, float] | None
    p_less: float | None

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
                               "p_less": self.p_less}
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
    ratio = _ratio(oracle, fixed)
    ok = bool(np.isfinite(ratio))
    ci = None
    if ok and oracle.size >= 2:
        ci = _ci(*paired_statistic((oracle, fixed), _ratio, n_boot, seed)[0])
    return RelativeHeadroom(n=int(oracle.size), oracle=float(oracle.mean()),
                            fixed=float(fixed.mean()),
                            headroom=float(oracle.mean() - fixed.mean()),
                            ratio=float(ratio) if ok else None, ratio_ci=ci)


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
    return pd.read_csv(path)


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
    parts = [rows[rows["sweep"] == s].set_index("id") for s in RETEST_SWEEPS]
    if any(p.empty for p in parts):
        raise ValueError(f"no retest rows ({', '.join(RETEST_SWEEPS)}) for method {method!r} in "
                         "the per-item data: the run had no retest, so it has no "
                         "cross-validated headroom")
    ids = [i for i in parts[0].index if i in parts[1].index]
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
    ka = [ids_a.index(i) for i in shared]
    kb = [index_b[i] for i in shared]
    oa, fa, _ = xv_scores(a1[ka], a2[ka])
    ob, fb, _ = xv_scores(b1[kb], b2[kb])
    h_a = relative_headroom(a1[ka], a2[ka], n_boot, seed)
    h_b = relative_headroom(b1[kb], b2[kb], n_boot, seed)
    diff = ci = p = None
    if h_a.ratio is not None and h_b.ratio is not None:
        diff = h_b.ratio - h_a.ratio
        if len(shared) >= 2:
            def stat(o2: Any, f2: Any, o1: Any, f1: Any, axis: int = -1) -> np.ndarray:
                return _ratio(o2, f2, axis) - _ratio(o1, f1, axis)

            (lo, hi), dist = paired_statistic((ob, fb, oa, fa), stat, n_boot, seed)
            ci = _ci(lo, hi)
            dist = dist[np.isfinite(dist)]
            p = float((1 + np.sum(dist >= 0)) / (1 + dist.size)) if dist.size else None
    return HeadroomShift(base=h_a, other=h_b, ids=tuple(shared), diff=diff, diff_ci=ci,
                         p_less=p)
