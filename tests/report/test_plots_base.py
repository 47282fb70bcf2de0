"""The shared pieces of the sweep figures (w2s_lens.report.plots_base): the best-layer row order
and the argument checks every figure uses."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_plots import LAYERS, STEER

from w2s_lens.report import plots_base


def test_best_layer_order_groups_by_best_then_peak() -> None:
    # best cols: a->2, b->0, c->1 (tie goes to the earlier column), d->0; b (0.5) < d (0.8)
    assert plots_base.best_layer_order(STEER).tolist() == [3, 1, 2, 0]



def test_checks_name_what_is_wrong() -> None:
    assert plots_base._layer_positions([4, 8], [2, 4, 8], "router").tolist() == [1, 2]
    with pytest.raises(ValueError, match="router contains layer 5"):
        plots_base._layer_positions([5], [2, 4], "router")
    with pytest.raises(ValueError, match="non-empty and distinct"):
        plots_base._check_layer_list([2, 2])
    with pytest.raises(ValueError, match="at least one input"):
        plots_base._as_2d(np.zeros((0, 3)))
    assert plots_base._best_positions(STEER, LAYERS, indices=False).tolist() == [2, 0, 1, 0]
    with pytest.raises(ValueError, match=r"indices must be in \[0, 4\)"):
        plots_base._best_positions([0, 4], LAYERS, indices=True)
