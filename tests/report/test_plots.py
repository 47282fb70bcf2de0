"""The facade w2s_lens.report.plots: every sweep figure is importable from it (the notebooks and
analysis scripts call ``plots.<figure>``), as the very object of its home module."""

from __future__ import annotations

import numpy as np

from w2s_lens.report import plots, plots_base, plots_inputs, plots_layers


def test_every_figure_is_the_one_of_its_home_module() -> None:
    homes = {}
    for module in (plots_base, plots_inputs, plots_layers):
        for name in module.__all__:
            if callable(getattr(module, name)) and not name[0].isupper():
                homes[name] = module
    assert set(plots.__all__) == set(homes), set(plots.__all__) ^ set(homes)
    for name, module in homes.items():
        assert getattr(plots, name) is getattr(module, name), name


def test_the_facade_draws() -> None:
    fig = plots.steerability_heatmap(np.array([[0.0, 1.0], [2.0, 0.0]]), [3, 5], ["a", "b"])
    assert fig.data[0].z.tolist() == [[2.0, 0.0], [0.0, 1.0]]
    assert list(plots.layer_histograms({"x": [3, 5, 5]}, [3, 5]).data[0].customdata) == [1, 2]
