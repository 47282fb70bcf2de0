"""The readable account of an :class:`~w2s_lens.evaluation.advice.Advice` (``w2s-lens advise``).

Example:
    >>> print(advice_summary(adv))  # doctest: +SKIP
    first-order layer advice: smollm2-135m-instruct on corrigible-neutral-HHH (cloze), 8 items
    ...
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["advice_summary"]

_MAX_ITEMS = 12


def _ci(pair: Any) -> str:
    lo, hi = pair
    return f"[{lo:+.3f}, {hi:+.3f}]"


def _time(t: dict[str, float] | None) -> str:
    return "-" if not t else f"{t['wall_s']:.1f} s wall, {t['cpu_s']:.1f} s CPU"


def advice_summary(adv: Any, max_items: int = _MAX_ITEMS) -> str:
    """Per-layer means with intervals, the fixed layer, the gain of per-item choice (an
    in-sample upper bound), the advised layers (the first ``max_items`` items), the
    verification's agreement and the cost, as plain text.

    Example:
        >>> text = advice_summary(adv)  # doctest: +SKIP
        >>> "recommended fixed layer" in text  # doctest: +SKIP
        True
    """
    readout = adv.readout + (f", {adv.scoring}" if adv.readout == "cloze" else "")
    unit = "items (both letter orders averaged)" if adv.mirrored else "items"
    lines = [f"first-order layer advice: {adv.model} on {adv.dataset} ({readout}, "
             f"positions {adv.positions}), {adv.n} {unit}",
             f"vectors: CAA from {adv.n_train_items} training items ({adv.n_vector_pairs} "
             "pairs)" if adv.n_vector_pairs else "vectors: given",
             "", "layer  mean first-order steerability  95% CI over items       advised"]
    best = max(adv.layer_mean)
    counts = Counter(adv.item_layers)
    for layer, mean, ci in zip(adv.layers, adv.layer_mean, adv.layer_ci):
        mark = "  <- fixed" if layer == adv.fixed_layer else ""
        bar = "#" * int(round(20 * max(mean, 0) / best)) if best > 0 else ""
        lines.append(f"{layer:5d}  {mean:+.4f} {bar:<20s}  {_ci(ci):22s}  "
                     f"{counts.get(layer, 0):3d}{mark}")
    j = adv.layers.index(adv.fixed_layer)
    lines += ["", f"recommended fixed layer: {adv.fixed_layer} (first-order steerability "
                  f"{adv.layer_mean[j]:+.4f}, 95% CI {_ci(adv.layer_ci[j])})",
              f"per-item layer choice could gain {adv.gain:+.4f} (95% CI {_ci(adv.gain_ci)}) "
              "over the fixed layer by the first-order estimate: an in-sample upper bound (the "
              "same estimates choose and score the layers, so their noise counts as gain)"]
    lines.append("advised layer per item: " + ", ".join(
        f"{i}={layer}" for i, layer in list(zip(adv.ids, adv.item_layers))[:max_items])
        + (f", ... ({adv.n - max_items} more)" if adv.n > max_items else ""))
    v = adv.verification
    if v is not None:
        rho = "n/a" if v.spearman_median is None else f"{v.spearman_median:+.3f}"
        lines += ["", f"verified against a real sweep of {v.n} items ({_time(v.timing)}):",
                  f"  median per-item Spearman across layers (first-order vs measured): {rho}",
                  f"  best-layer agreement: {v.best_layer_agreement:.2f} "
                  f"(chance {v.chance:.2f})",
                  f"  measured steerability: first-order choice {v.first_order_choice:+.4f}, "
                  f"advised fixed layer {adv.fixed_layer} {v.advised_fixed:+.4f}, measured "
                  f"fixed layer {v.measured_fixed_layer} {v.measured_fixed:+.4f}, oracle "
                  f"{v.oracle:+.4f}",
                  f"  first-order choice − measured fixed: "
                  f"{v.first_order_choice - v.measured_fixed:+.4f} "
                  f"(95% CI {_ci(v.choice_vs_fixed_ci)}; the fixed layer and oracle are "
                  "in-sample)"]
    t = adv.timing
    lines += ["", f"cost: vectors {_time(t.get('vectors'))}; first order "
                  f"{_time(t.get('first_order'))}; total {_time(t.get('total'))}"]
    return "\n".join(lines)
