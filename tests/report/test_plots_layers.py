"""Best-layer histograms (w2s_lens.report.plots_layers): small arrays, and run directories
written by the library (the synthetic control) for the readout comparison."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_plots import LAYERS, STEER

from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.report import plots_layers


def test_best_layer_histogram_counts() -> None:
    fig = plots_layers.best_layer_histogram(STEER, LAYERS)
    bar = fig.data[0]
    assert bar.type == "bar"
    assert list(bar.x) == ["2", "4", "6", "8"]
    assert list(bar.y) == [2, 1, 1, 0]
    # 1-D layer numbers and 1-D column indices give the same counts
    assert list(plots_layers.best_layer_histogram([2, 2, 4, 6], LAYERS).data[0].y) == [2, 1, 1, 0]
    by_index = plots_layers.best_layer_histogram([0, 0, 1, 2], LAYERS, indices=True)
    assert list(by_index.data[0].y) == [2, 1, 1, 0]
    with pytest.raises(ValueError, match="layer 5"):
        plots_layers.best_layer_histogram([2, 5], LAYERS)
    with pytest.raises(ValueError, match="shape"):
        plots_layers.best_layer_histogram(np.zeros((2, 2, 2)), LAYERS)


def test_layer_histograms_counts_and_shares() -> None:
    fig = plots_layers.layer_histograms({"train": [2, 2, 4, 6], "test": STEER}, LAYERS)
    train, test = fig.data
    assert (train.name, test.name) == ("train (n=4)", "test (n=4)")
    assert list(train.customdata) == [2, 1, 1, 0]
    np.testing.assert_allclose(train.y, [0.5, 0.25, 0.25, 0.0])
    assert list(test.customdata) == [2, 1, 1, 0]  # argmax of STEER, as best_layer_histogram
    counts = plots_layers.layer_histograms({"x": [8, 8]}, LAYERS, share=False).data[0].y
    assert list(counts) == [0, 0, 0, 2]
    assert fig.layout.barmode == "group"
    with pytest.raises(ValueError, match="empty"):
        plots_layers.layer_histograms({}, LAYERS)
    with pytest.raises(ValueError, match="layer 5"):
        plots_layers.layer_histograms({"x": [5]}, LAYERS)


def test_readout_histograms_compare_runs(runs) -> None:
    fig = plots_layers.readout_histograms(runs)
    assert [t.name.split(" (n=")[0] for t in fig.data] == list(runs)
    for trace, path in zip(fig.data, runs.values()):
        rd = RunDir(path)
        items = rd.load_sweep(rd.sweep_dir("base", "caa"))[0].mirrored()
        best = np.asarray(items.layers)[np.argmax(items.steerability, axis=1)]
        assert trace.name.endswith(f"(n={len(best)})") and len(best) == 12
        assert list(trace.x) == ["1", "2", "3"]
        assert list(trace.customdata) == [int((best == x).sum()) for x in (1, 2, 3)]
        assert float(np.sum(trace.y)) == pytest.approx(1.0)
    train = plots_layers.readout_histograms(runs, split="train")
    assert train.data[0].name.endswith("(n=24)")
    with pytest.raises(FileNotFoundError, match="method 'l2s'"):
        plots_layers.readout_histograms(runs, method="l2s")
