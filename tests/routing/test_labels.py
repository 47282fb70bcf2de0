"""Training labels: each input's best layer."""

import numpy as np

from w2s_lens.routing.labels import best_layers


def test_best_layers_ties_go_to_earlier_layer() -> None:
    S = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [-1.0, -2.0, -0.5]])
    assert best_layers(S).tolist() == [0, 1, 2]
