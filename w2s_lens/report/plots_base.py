"""Shared pieces of the sweep figures (:mod:`w2s_lens.report.plots_inputs`: heatmap, layer
curves, propensity lines; :mod:`w2s_lens.report.plots_layers`: best-layer histograms): argument
checks, the palette, and the best-layer row order.

Conventions (for every figure module of the report):

* ``steerability`` is ``[n_inputs, n_layers]`` (slope of propensity vs multiplier per layer);
* ``layers`` are the model layer numbers of the columns (need not be contiguous);
* "best layer" is the argmax over layers with ties going to the earlier column (``np.argmax``,
  as :func:`w2s_lens.routing.labels.best_layers`);
* per-input layer choices (router / oracle / fixed) are given as *layer numbers*, not column
  indices, unless a function says otherwise.

Example::

    >>> best_layer_order([[0.0, 1.0], [2.0, 0.0]]).tolist()
    [1, 0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from jaxtyping import Float, Int
from plotly.colors import qualitative

__all__ = ["Propensity", "Steerability", "best_layer_order"]

#: What the figures accept as steerability: ``[n_inputs, n_layers]`` (an array or nested lists).
Steerability = Float[np.ndarray, "n_inputs n_layers"] | Sequence[Sequence[float]]
#: Propensity per input, layer and multiplier.
Propensity = Float[np.ndarray, "n_inputs n_layers n_multipliers"]

_PALETTE = qualitative.Plotly + qualitative.D3


def _as_2d(steerability: Any, name: str = "steerability") -> np.ndarray:
    arr = np.asarray(steerability, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n_inputs, n_layers]; got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one input and one layer; got {arr.shape}")
    return arr


def _layers(layers: Sequence[int] | np.ndarray, n_layers: int) -> list[int]:
    out = [int(x) for x in np.asarray(layers).reshape(-1)]
    if len(out) != n_layers:
        raise ValueError(f"layers has {len(out)} entries but the array has {n_layers} layer "
                         "columns")
    if len(set(out)) != len(out):
        raise ValueError(f"layers must be distinct; got {out}")
    return out


def _ids(ids: Sequence[Any] | None, n: int) -> list[str]:
    if ids is None:
        return [f"#{i}" for i in range(n)]
    out = [str(x) for x in ids]
    if len(out) != n:
        raise ValueError(f"ids has {len(out)} entries but there are {n} inputs")
    return out


def _layer_positions(values: Any, layers: list[int], name: str) -> np.ndarray:
    """Map layer numbers to column indices, with a clear error for unknown layers."""
    arr = np.asarray(values).reshape(-1)
    pos = {layer: i for i, layer in enumerate(layers)}
    try:
        return np.array([pos[int(v)] for v in arr], dtype=int)
    except KeyError as err:
        raise ValueError(f"{name} contains layer {err.args[0]} which is not one of the swept "
                         f"layers {layers}") from None


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def best_layer_order(steerability: Steerability) -> Int[np.ndarray, " n_inputs"]:
    """Row order that groups inputs by best layer.

    Rows are sorted by best-layer column (argmax, ties to the earlier layer), and within a best
    layer by decreasing peak steerability; remaining ties keep the input order.

    >>> best_layer_order([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0]]).tolist()
    [1, 2, 0]
    """
    s = _as_2d(steerability)
    best = np.argmax(s, axis=1)
    peak = s[np.arange(len(s)), best]
    return np.lexsort((np.arange(len(s)), -peak, best))


def _best_positions(values: Any, lay: list[int], indices: bool) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 2:
        s = _as_2d(arr)
        _layers(lay, s.shape[1])
        return np.argmax(s, axis=1)
    if arr.ndim == 1:
        if not indices:
            return _layer_positions(arr, lay, "best_layers")
        pos = arr.astype(int)
        if pos.size and (pos.min() < 0 or pos.max() >= len(lay)):
            raise ValueError(f"best-layer indices must be in [0, {len(lay)}); got {pos}")
        return pos
    raise ValueError("expected steerability [n_inputs, n_layers] or best layers [n_inputs]; "
                     f"got shape {arr.shape}")


def _check_layer_list(layers: Sequence[int]) -> list[int]:
    lay = [int(x) for x in np.asarray(layers).reshape(-1)]
    if len(set(lay)) != len(lay) or not lay:
        raise ValueError(f"layers must be non-empty and distinct; got {lay}")
    return lay

