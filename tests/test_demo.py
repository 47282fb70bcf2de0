"""Tests for w2s_lens.demo: its sizes, the offline dataset, and its reading of a run (on the
synthetic runs of conftest; the real model's demo is run by hand, see the README)."""

from __future__ import annotations

import pytest
from conftest import write_ab_dataset

from w2s_lens.data.items import DatasetError
from w2s_lens.demo import (
    DEMO_LAYERS,
    demo_config,
    model_summary,
    resolve_dataset,
)
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.storage.rundir import RunDir


def test_demo_config_fills_only_what_is_open():
    cfg = demo_config(EvalConfig(dataset="corrigible-neutral-HHH"))
    assert (cfg.n_train, cfg.n_test, cfg.layers) == (24, 24, DEMO_LAYERS)
    assert DEMO_LAYERS == (3, 7, 11, 13, 15, 17, 19, 23)
    mine = demo_config(EvalConfig(n_train=6, n_test=4, layers=(1, 2)))
    assert (mine.n_train, mine.n_test, mine.layers) == (6, 4, (1, 2))
    other = demo_config(EvalConfig(model="smollm2-135m-instruct"))
    assert other.layers is None  # the grid is for the default model's 24 layers


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.delenv("W2S_DATA_DIR", raising=False)
    monkeypatch.setenv("W2S_OFFLINE", "1")
    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "cache"))


def test_offline_without_data_the_shipped_sample_is_used(offline):
    cfg, items, test, note = resolve_dataset(EvalConfig(dataset="corrigible-neutral-HHH"))
    assert cfg.dataset == "corrigible-neutral-HHH-sample" and len(items) == 100
    assert test is None
    assert note.startswith("corrigible-neutral-HHH is not available (") and "sample" in note


def test_a_dataset_that_is_there_is_used(offline, tmp_path):
    write_ab_dataset(tmp_path / "evals" / "persona", n=8, name="corrigible-neutral-HHH")
    cfg, items, _, note = resolve_dataset(EvalConfig(dataset="corrigible-neutral-HHH",
                                                     data_dir=str(tmp_path / "evals")))
    assert cfg.dataset == "corrigible-neutral-HHH" and len(items) == 8 and note is None


def test_unknown_names_are_not_replaced(offline):
    with pytest.raises(DatasetError, match="unknown dataset 'corrigble-neutral-HHH'"):
        resolve_dataset(EvalConfig(dataset="corrigble-neutral-HHH"))


def test_model_summary_reads_the_run(runs):
    rd = RunDir(runs["letter mirrored"])
    results = rd.read_results()
    routing = {m: rd.read_routing(rd.sweep_dir("base", m)) for m in results["methods"]}
    lines = model_summary(results, routing)
    primary = results["primary_router"]
    for method, block in results["methods"].items():
        r = block["variants"]["base"]
        head = next(i for i, x in enumerate(lines) if x.startswith(f"{method}: fixed layer "))
        assert f"fixed layer {r['fixed_layer']} " in lines[head]
        assert f"on {r['n']} test items" in lines[head]
        lo, hi = r["fixed"]["steerability_ci"]
        assert lines[head].endswith("excludes 0" if lo > 0 or hi < 0 else "includes 0")
        enc = lines[head + 1]
        counts = [int(x.split(": ")[1]) for x in enc.split("items): ")[1].split(", ")]
        assert sum(counts) == len(routing[method]["oracle_layer"]) == r["n"]
        w = r["w2s"][primary]
        verdict_line = next(x for x in lines[head:] if x.startswith(f"  W2S ({primary} router)"))
        if w.get("diff_vs_fixed_verdict"):
            assert w["diff_vs_fixed_verdict"] in verdict_line
        assert ("minimal detectable difference" in verdict_line) == \
            (w.get("diff_vs_fixed_mde") is not None)


def test_model_summary_prints_the_mde_when_present():
    w = {"diff_vs_fixed": 0.02, "diff_vs_fixed_ci": [-0.01, 0.05], "diff_vs_fixed_mde": 0.04}
    res = {"primary_router": "logreg", "methods": {"caa": {
        "train_best_layer_counts": {"15": 3, "13": 1},
        "variants": {"base": {"fixed_layer": 15, "n": 4, "w2s": {"logreg": w},
                              "fixed": {"steerability": 0.5, "steerability_ci": [0.3, 0.7]}}}}}}
    lines = model_summary(res, {"caa": {"oracle_layer": [15, 15, 13, 17]}})
    assert lines[0].endswith("+0.500 [+0.300,+0.700] on 4 test items; the 95% interval "
                             "excludes 0")
    assert lines[1].endswith("4 items): layer 15: 2, layer 13: 1, layer 17: 1")
    assert lines[2].endswith("layer 15: 3, layer 13: 1")
    assert lines[3] == ("  W2S (logreg router) − fixed: +0.020 [-0.010,+0.050]: the interval "
                        "includes 0; minimal detectable difference 0.040")
    del w["diff_vs_fixed_mde"]
    assert "minimal detectable" not in model_summary(res)[-1]
