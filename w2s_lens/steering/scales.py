"""Multiplier scales: what ``λ = 1`` means at each layer.

``raw`` (the paper's scale)
    steering adds ``λ · v_l``: the CAA vector as trained. Its norm varies a lot between
    layers and models, so the same λ can be a nudge at one layer and nothing at another.
``relative``
    steering adds ``λ · c_l · v_l`` with ``c_l = fraction · r_l / ||v_l||``, where ``r_l`` is
    the typical residual-stream norm at layer l (mean over the training prompts at the answer
    position, recorded when the vectors were trained). ``λ = 1`` then adds a vector whose norm
    is ``fraction`` of the residual's norm, at every layer.

An evaluation computes the factors once, from its CAA vector, and applies them to every vector
it steers (the cross-fitting folds' vectors, the retest's half vectors, L2S's per-input
vectors): the scale is a unit per layer, not a renormalisation of each vector, so a
re-estimated vector keeps its own norm as it would under ``raw``. ``results.json`` records
``scale`` and ``fraction``; ``run.json`` the factors (``derived.layer_scale``).

Example:
    >>> layer_scales(vectors, "relative", fraction=0.25)  # doctest: +SKIP
    [3.1, 2.7, ...]
"""

from __future__ import annotations

from collections.abc import Sequence

from w2s_lens.choices import SCALES
from w2s_lens.steering.vectors import SteeringVectors

__all__ = ["DEFAULT_FRACTION", "layer_scales"]

DEFAULT_FRACTION = 0.25


def layer_scales(
    vectors: SteeringVectors,
    scale: str = "raw",
    layers: Sequence[int] | None = None,
    fraction: float = DEFAULT_FRACTION,
) -> list[float]:
    """The factor ``c_l`` for each layer so that steering adds ``λ · c_l · v_l``.

    Args:
        vectors: trained vectors (their metadata holds the residual norms).
        scale: ``"raw"`` (all 1) or ``"relative"``.
        layers: which layers (default: all stored).
        fraction: for ``"relative"``: the share of the residual norm that ``λ = 1`` adds.
    """
    layers = list(vectors.layers) if layers is None else [int(x) for x in layers]
    if scale == "raw":
        return [1.0] * len(layers)
    if scale != "relative":
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    norms = vectors.metadata.get("resid_norms")
    if not norms:
        raise ValueError("these vectors carry no residual norms (retrain them with train_caa) "
                         "so the relative scale cannot be computed")
    by_layer = dict(zip(vectors.layers, norms))
    out = []
    for layer in layers:
        vnorm = float(vectors.vector(layer).norm())
        out.append(0.0 if vnorm == 0 else fraction * by_layer[layer] / vnorm)
    return out
