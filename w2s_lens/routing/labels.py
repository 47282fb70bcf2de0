"""Training labels for routers: each input's best layer.

The one definition of "best layer" (argmax of the steerability slope, ties to the earlier
layer), used by the routers, the metrics and the figures.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["best_layers"]


def best_layers(steerability: Any) -> np.ndarray:
    """Index of each input's most steerable layer (argmax; ties go to the earlier layer).

    Args:
        steerability: ``[n, L]`` slopes.

    Returns:
        ``[n]`` integer layer *indices* (positions along the L axis, not layer numbers).

    Example:
        >>> best_layers([[1.0, 1.0, 0.0], [0.0, 2.0, 3.0]]).tolist()
        [0, 2]
    """
    return np.argmax(_as_2d(steerability), axis=1).astype(int)


def _as_2d(steerability: Any) -> np.ndarray:
    s = np.asarray(steerability, dtype=float)
    if s.ndim != 2:
        raise ValueError(f"steerability must be [n, L], got shape {s.shape}")
    return s
