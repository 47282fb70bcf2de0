"""The demo's reading of the real model's sweep: where the behaviour is steerable, the fixed
layer's effect, and what per-input routing could gain (in-sample and across letter orders)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from w2s_lens.evaluation.headroom.diagnostics import cross_validated_oracle
from w2s_lens.evaluation.stats.bootstrap import bootstrap_ci
from w2s_lens.evaluation.stats.paired import paired_comparison
from w2s_lens.report.tables.summary import fmt_ci
from w2s_lens.sweep.result import SweepResult

__all__ = ["ModelReading", "layer_counts", "read_sweep"]


def layer_counts(layers: Any) -> str:
    """Layers and how often each occurs, most frequent first.

    Example:
        >>> layer_counts([15, 3, 15])
        'L15: 2, L3: 1'
    """
    return ", ".join(f"L{k}: {v}" for k, v in sorted(Counter(layers).items(),
                                                     key=lambda kv: (-kv[1], kv[0])))


@dataclass(frozen=True)
class ModelReading:
    """The demo's reading of one mirrored sweep of the test items.

    Attributes:
        layers: the swept layers. n: test items (units).
        layer_mean, layer_ci: ``[L]`` mean steerability (both letter orders averaged) and
            ``[L, 2]`` 95% BCa intervals over items.
        best_layers: each item's best layer (mirrored steerability).
        fixed_layer: the best layer by the mean over every item (in-sample).
        fixed_effect, fixed_effect_ci: the fixed layer's steerability, **cross-validated**
            across letter orders where there are two (the layer chosen on one order's mean,
            scored on the other's, both directions averaged), else in-sample at
            ``fixed_layer``; ``fixed_layers_xv``: the layers chosen on each order.
        propensity_at: ``{λ: mean propensity}`` at ``fixed_layer`` for the grid's ends and 0.
        oracle_gain: in-sample oracle − fixed (the paired comparison of
            :func:`~w2s_lens.evaluation.stats.paired.paired_comparison`): each item's best layer
            chosen and scored on the same numbers, an **upper bound** (noise counts as gain).
        xv: :func:`~w2s_lens.evaluation.headroom.diagnostics.cross_validated_oracle` across
            the two letter orders (each item's layer chosen on one order and scored on the
            other), or None with one order.
    """

    layers: tuple[int, ...]
    n: int
    layer_mean: np.ndarray
    layer_ci: np.ndarray
    best_layers: tuple[int, ...]
    fixed_layer: int
    fixed_effect: float
    fixed_effect_ci: tuple[float, float]
    fixed_layers_xv: tuple[int, int] | None
    propensity_at: dict[float, float]
    oracle_gain: dict[str, Any]
    xv: dict[str, Any] | None

    def lines(self) -> list[str]:
        """The reading as the demo prints it."""
        top = int(np.argmax(self.layer_mean))
        out = ["where the behaviour is steerable: mean steerability per layer (slope of "
               "logit(matching) − logit(other) per unit λ), 95% interval over "
               f"{self.n} items:"]
        cells = [f"L{layer:<2} {fmt_ci(mu, ci):>24}{' <- best' if j == top else ''}"
                 for j, (layer, mu, ci) in enumerate(zip(self.layers, self.layer_mean,
                                                         self.layer_ci.tolist()))]
        half = (len(cells) + 1) // 2
        for i in range(half):
            right = cells[i + half] if i + half < len(cells) else ""
            out.append(f"  {cells[i]:<38}{right}")
        out.append(f"best layer per item: {layer_counts(self.best_layers)}")
        held = self.fixed_layers_xv is not None
        where = (f"layer {self.fixed_layer}; cross-validated across the letter orders (chosen "
                 f"on one, scored on the other: layers {self.fixed_layers_xv[0]}, "
                 f"{self.fixed_layers_xv[1]})" if held
                 else f"layer {self.fixed_layer} (in-sample: one letter order)")
        lo, hi = self.fixed_effect_ci
        out.append(f"steering effect at the fixed {where}: {fmt_ci(self.fixed_effect, [lo, hi])}"
                   f", the interval {'excludes' if lo > 0 or hi < 0 else 'includes'} 0")
        if self.propensity_at:
            out.append(f"  mean logit(matching) − logit(other) at layer {self.fixed_layer}: " +
                       ", ".join(f"{v:+.2f} at λ={lam:+g}"
                                 for lam, v in self.propensity_at.items()))
        g = self.oracle_gain
        if set(self.best_layers) == {self.fixed_layer}:
            out.append(f"what per-input routing could gain: nothing on these {self.n} items: "
                       f"every item's best layer is the fixed layer {self.fixed_layer} (oracle "
                       "− fixed = 0)")
        else:
            out.append(f"what per-input routing could gain, oracle − fixed (each item at its "
                       f"own best layer): {fmt_ci(g['diff'], g['ci'])} in-sample, an upper "
                       "bound (the same numbers choose and score, so noise counts as gain)")
        if self.xv is not None:
            x = self.xv
            out.append(f"  cross-validated across the letter orders: {fmt_ci(x['diff'], x['ci'])}"
                       f", p={x['p']:.3g}: {x['verdict']}" if x["p"] is not None else
                       f"  cross-validated across the letter orders: {x['verdict']}")
        out.append("  (no router is trained here; `w2s-lens evaluate` trains one and tests it)")
        return out


def _orders(result: SweepResult) -> tuple[np.ndarray, np.ndarray] | None:
    """``[n, L]`` steerability of each unit's first and second presentation, when every unit
    has exactly two (both letter orders), else None."""
    rows: dict[str, list[int]] = {}
    for i, u in enumerate(result.units):
        rows.setdefault(u, []).append(i)
    if not rows or any(len(r) != 2 for r in rows.values()):
        return None
    s = result.steerability
    return (s[[r[0] for r in rows.values()]], s[[r[1] for r in rows.values()]])


def read_sweep(result: SweepResult, n_boot: int = 2000, seed: int = 0) -> ModelReading:
    """The demo's reading (:class:`ModelReading`) of a sweep of the test items.

    Example:
        >>> r = SweepResult(np.array([[[0.0, 1.0], [0.0, 2.0]]] * 4), [3, 5], [-1.0, 1.0],
        ...                 ["a", "a~swap", "b", "b~swap"], ["A", "B", "A", "B"])
        >>> read = read_sweep(r, n_boot=200)
        >>> read.fixed_layer, read.fixed_layers_xv, read.fixed_effect, read.best_layers
        (5, (5, 5), 1.0, (5, 5))
    """
    mir = result.mirrored()
    m = np.asarray(mir.steerability, dtype=float)
    layers = tuple(int(x) for x in mir.layers)
    ci = np.array([bootstrap_ci(m[:, j], n_boot=n_boot, seed=seed) for j in range(len(layers))])
    fixed = int(np.argmax(m.mean(axis=0)))
    rows = np.arange(len(m))
    gain = paired_comparison(m[rows, m.argmax(axis=1)], m[:, fixed], n_boot=n_boot, seed=seed,
                             names=("the oracle", "the fixed layer"))
    orders = _orders(result)
    xv = None
    xv_layers = None
    per_item = m[:, fixed]
    if orders is not None:
        a, b = orders
        xv = cross_validated_oracle(a, b, n_boot=n_boot, seed=seed)
        f1, f2 = xv["xv_fixed_layers"]
        xv_layers = (layers[f1], layers[f2])
        per_item = 0.5 * (b[:, f1] + a[:, f2])
    lo, hi = bootstrap_ci(per_item, n_boot=n_boot, seed=seed)
    mults = list(mir.multipliers)
    show = sorted({min(mults), max(mults), *([0.0] if 0.0 in mults else [])})
    prop = np.asarray(mir.propensity)[:, fixed, :].mean(axis=0)
    return ModelReading(
        layers=layers, n=len(m), layer_mean=m.mean(axis=0), layer_ci=ci,
        best_layers=tuple(layers[i] for i in m.argmax(axis=1)), fixed_layer=layers[fixed],
        fixed_effect=float(per_item.mean()), fixed_effect_ci=(float(lo), float(hi)),
        fixed_layers_xv=xv_layers,
        propensity_at={float(x): float(prop[mults.index(x)]) for x in show},
        oracle_gain=gain, xv=xv)
