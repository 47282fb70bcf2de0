"""The result of a first-order steerability run (:mod:`w2s_lens.sweep.first_order`):
:class:`FirstOrderResult`, every (example, layer)'s derivative at λ = 0 with its curvature
check, shaped as :class:`~w2s_lens.sweep.result.SweepResult`; and :func:`cubic_slope`, the
curvature correction from the grid's two end points.

Example:
    >>> r = FirstOrderResult(np.ones((2, 1)), np.zeros(2), [3], [-1.0, 1.0], ["a", "a~swap"],
    ...                      ["a", "a"])
    >>> r.mirrored().steerability.tolist()
    [[1.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from w2s_lens.sweep.readouts import slopes

__all__ = ["FirstOrderResult", "cubic_slope"]


@dataclass
class FirstOrderResult:
    """First-order steerability of every (example, layer), and its curvature check.

    Attributes:
        gradient: ``[n_examples, n_layers]`` ``∂propensity/∂λ`` at λ = 0.
        propensity: ``[n_examples]`` the unsteered propensity ``p(0)``.
        layers, multipliers: the layers, and the λ grid whose OLS slope this estimates.
        ids, units, matching_letters, groups: one per example (as :class:`SweepResult`).
        endpoints: ``[n_examples, n_layers, 2]`` propensity at ``min(multipliers)`` and
            ``max(multipliers)`` (``curvature=True``), else None.
        metadata: the configuration.

    Example:
        >>> r = FirstOrderResult(np.ones((2, 1)), np.zeros(2), [3], [-1.0, 1.0], ["a", "a~swap"],
        ...                      ["a", "a"])
        >>> r.steerability.shape, r.mirrored().steerability.shape
        ((2, 1), (1, 1))
    """

    gradient: np.ndarray
    propensity: np.ndarray
    layers: list[int]
    multipliers: list[float]
    ids: list[str]
    units: list[str]
    matching_letters: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    endpoints: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def steerability(self) -> np.ndarray:
        """The first-order slopes ``[n_examples, n_layers]`` (``gradient``)."""
        return self.gradient

    @property
    def endpoint_slope(self) -> np.ndarray:
        """``(p(hi) − p(lo)) / (hi − lo)`` per (example, layer); needs ``curvature=True``."""
        lo, hi = min(self.multipliers), max(self.multipliers)
        return (self._ends()[..., 1] - self._ends()[..., 0]) / (hi - lo)

    @property
    def cubic_slope(self) -> np.ndarray:
        """OLS slope over ``multipliers`` of the cubic matching ``p(0)``, ``p'(0)``, ``p(lo)``,
        ``p(hi)`` (:func:`cubic_slope`); needs ``curvature=True``."""
        ends = self._ends()
        return cubic_slope(self.propensity[:, None], self.gradient, ends[..., 0], ends[..., 1],
                           self.multipliers)

    def _ends(self) -> np.ndarray:
        if self.endpoints is None:
            raise ValueError("no end-point propensities: run first_order(..., curvature=True)")
        return self.endpoints

    def mirrored(self) -> FirstOrderResult:
        """One row per unit (both letter orders averaged), in :meth:`SweepResult.mirrored`'s
        order: every field is linear in the propensities, so this is the first-order form of
        the mirrored sweep."""
        order: dict[str, list[int]] = {}
        for i, u in enumerate(self.units):
            order.setdefault(u, []).append(i)
        if all(len(v) == 1 for v in order.values()):
            return self
        idx = list(order.values())

        def avg(a):
            return None if a is None else np.stack([a[r].mean(axis=0) for r in idx])

        def first(values: list[str]) -> list[str]:
            return [values[r[0]] for r in idx] if values else []

        return replace(self, gradient=avg(self.gradient), propensity=avg(self.propensity),
                       endpoints=avg(self.endpoints), ids=list(order), units=list(order),
                       matching_letters=first(self.matching_letters),
                       groups=first(self.groups), metadata={**self.metadata, "mirrored": True})


def cubic_slope(p0: np.ndarray, grad: np.ndarray, p_lo: np.ndarray, p_hi: np.ndarray,
                multipliers: Sequence[float]) -> np.ndarray:
    """OLS slope over ``multipliers`` of ``a + bλ + cλ² + dλ³`` with ``a = p0``, ``b = grad``
    and ``c, d`` fitted to ``p(lo) = p_lo``, ``p(hi) = p_hi`` (lo, hi: the grid's ends).

    Example:
        >>> f = lambda x: 1 + 2 * x - x ** 2 + 0.5 * x ** 3 + 0.1 * x ** 4
        >>> g = [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
        >>> float(cubic_slope(f(0.0), 2.0, f(-1.5), f(1.5), g)), float(slopes(f(np.array(g)), g))
        (2.875, 2.875)
    """
    x = np.asarray(multipliers, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if lo == 0 or hi == 0 or lo == hi:
        raise ValueError(f"the grid's ends must be non-zero and distinct, got {lo} and {hi}")
    r_lo = np.asarray(p_lo) - p0 - grad * lo
    r_hi = np.asarray(p_hi) - p0 - grad * hi
    det = lo * lo * hi * hi * (hi - lo)
    c = (r_lo * hi ** 3 - r_hi * lo ** 3) / det
    d = (lo * lo * r_hi - hi * hi * r_lo) / det
    return grad + c * float(slopes(x ** 2, x)) + d * float(slopes(x ** 3, x))
