"""Data shared by the plot test modules (test_plots*.py): a small steerability matrix."""

from __future__ import annotations

import numpy as np

LAYERS = [2, 4, 6, 8]
# best columns: row0 -> 2 (layer 6), row1 -> 0 (layer 2), row2 -> 1 (tie 1/3 -> 1), row3 -> 0
STEER = np.array(
    [
        [0.0, 0.1, 0.9, 0.2],
        [0.5, 0.1, -0.2, 0.0],
        [0.1, 0.7, 0.3, 0.7],
        [0.8, 0.2, 0.1, 0.0],
    ]
)
IDS = ["a", "b", "c", "d"]
