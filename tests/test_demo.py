"""Tests for w2s_lens.demo: its sizes, the offline dataset, the thread choice, the control's
reading, the reading of a sweep, and the demo end to end on a tiny chat model (the real model's
demo is timed by hand: analysis/results/demo_wall_times.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import byte_tokenizer, make_tiny_model, write_ab_dataset
from transformer_lens import HookedTransformer, HookedTransformerConfig

import w2s_lens.demo as demo
from w2s_lens.data.items import DatasetError
from w2s_lens.demo import (
    DEMO_N_TEST,
    DEMO_N_TRAIN,
    ControlRun,
    control_lines,
    demo_config,
    pick_threads,
    read_sweep,
    resolve_dataset,
    run_control,
    run_demo,
)
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.report.tables.summary import fmt_ci
from w2s_lens.sweep.result import SweepResult


def test_demo_config_fills_only_what_is_open():
    cfg = demo_config(EvalConfig(dataset="corrigible-neutral-HHH"))
    assert (cfg.data.n_train, cfg.data.n_test, cfg.sweep.layers) == \
        (DEMO_N_TRAIN, DEMO_N_TEST, None) == (6, 10, None)
    mine = demo_config(EvalConfig(n_train=3, n_test=4, layers=(1, 2)))
    assert (mine.data.n_train, mine.data.n_test, mine.sweep.layers) == (3, 4, (1, 2))


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.delenv("W2S_DATA_DIR", raising=False)
    monkeypatch.setenv("W2S_OFFLINE", "1")
    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "cache"))


def test_offline_without_data_the_shipped_sample_is_used(offline):
    cfg, items, test, note = resolve_dataset(EvalConfig(dataset="corrigible-neutral-HHH"))
    assert cfg.data.dataset == "corrigible-neutral-HHH-sample" and len(items) == 100
    assert test is None
    assert note.startswith("corrigible-neutral-HHH is not available (") and "sample" in note


def test_a_dataset_that_is_there_is_used(offline, tmp_path):
    write_ab_dataset(tmp_path / "evals" / "persona", n=8, name="corrigible-neutral-HHH")
    cfg, items, _, note = resolve_dataset(EvalConfig(dataset="corrigible-neutral-HHH",
                                                     data_dir=str(tmp_path / "evals")))
    assert cfg.data.dataset == "corrigible-neutral-HHH" and len(items) == 8 and note is None


def test_unknown_names_are_not_replaced(offline):
    with pytest.raises(DatasetError, match="unknown dataset 'corrigble-neutral-HHH'"):
        resolve_dataset(EvalConfig(dataset="corrigble-neutral-HHH"))


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_pick_threads_sets_the_fastest(one_thread):
    assert pick_threads([1]) == (1, {})
    n, timings = pick_threads([1, 2], repeats=1, size=(8, 16, 16))
    assert set(timings) == {1, 2} and n == min(timings, key=timings.get)
    assert torch.get_num_threads() == n


def test_control_recovers_its_layers(one_thread, tmp_path):
    torch.set_num_threads(1)
    run = run_control(tmp_path / "control")
    assert isinstance(run, ControlRun) and isinstance(run.result, EvaluationResult)
    assert run.constructed_layers == (1, 2, 3)
    assert EvaluationResult.load(tmp_path / "control") == run.result  # what it wrote
    lines = control_lines(run)
    assert lines[0].startswith("built: each input family steerable only at its own layer, "
                               "layers [1, 2, 3]; found (best layer per training item): L")
    found = sorted(int(c.split(":")[0][1:]) for c in lines[0].split("item): ")[1].split(", "))
    assert found == [1, 2, 3]
    # the numbers are the result's own (read here from its results.json dict)
    d = run.result.to_dict()
    v = d["methods"]["caa"]["variants"]["base"]
    w = v["w2s"]["logreg"]
    assert lines[1] == (f"steerability on {v['n']} test items: fixed layer {v['fixed_layer']} "
                        f"{v['fixed']['steerability']:+.3f}, W2S (logreg router) "
                        f"{w['steerability']:+.3f}, oracle {v['oracle']['steerability']:+.3f}")
    counts = d["methods"]["caa"]["train_best_layer_counts"]
    assert sum(int(c.split(": ")[1]) for c in lines[0].split("item): ")[1].split(", ")) == sum(
        counts.values())
    assert lines[2].startswith("W2S − fixed: +") and lines[2].endswith(
        "W2S beats fixed beyond the noise")
    assert lines[2] == f"W2S − fixed: {fmt_ci(w['diff_vs_fixed'], w['diff_vs_fixed_ci'])}: " \
                       f"{w['diff_vs_fixed_verdict']}"


def _sweep(order1, order2, mults=(-1.0, 0.0, 1.0)):
    """A mirrored SweepResult whose steerability per order is ``order1`` / ``order2`` [n, L]."""
    a, b = np.asarray(order1, float), np.asarray(order2, float)
    x = np.asarray(mults)
    prop = np.stack([a, b], axis=1).reshape(-1, a.shape[1])[..., None] * x  # slope · λ
    ids = [i for u in range(len(a)) for i in (f"d:{u}", f"d:{u}~swap")]
    return SweepResult(prop, [3, 5, 7], list(mults), ids, ["A", "B"] * len(a))


def test_read_sweep_one_layer_everywhere():
    s = [[0.1, 1.0, 0.2]] * 6
    r = read_sweep(_sweep(s, s), n_boot=200)
    assert (r.fixed_layer, r.fixed_layers_xv, r.best_layers) == (5, (5, 5), (5,) * 6)
    assert r.fixed_effect == pytest.approx(1.0) and r.n == 6
    assert r.oracle_gain["diff"] == 0.0 and r.xv["diff"] == 0.0
    assert r.propensity_at == {-1.0: pytest.approx(-1.0), 0.0: 0.0, 1.0: pytest.approx(1.0)}
    text = "\n".join(r.lines())
    assert "  L5    +1.000 [+1.000,+1.000] <- best" in text
    assert "best layer per item: L5: 6" in text
    assert ("steering effect at the fixed layer 5; cross-validated across the letter orders "
            "(chosen on one, scored on the other: layers 5, 5): +1.000") in text
    assert ("what per-input routing could gain: nothing on these 6 items: every item's best "
            "layer is the fixed layer 5 (oracle − fixed = 0)") in text
    assert "no router is trained here" in text


def test_read_sweep_per_item_layers_survive_cross_validation():
    # half the items steer at layer 3, half at 7, in both letter orders: a real per-item gain
    s = [[1.0, 0.6, 0.0]] * 4 + [[0.0, 0.7, 1.0]] * 4
    r = read_sweep(_sweep(s, s), n_boot=200)
    assert r.fixed_layer == 5 and sorted(set(r.best_layers)) == [3, 7]
    assert r.oracle_gain["diff"] == pytest.approx(0.35)
    assert r.xv["diff"] == pytest.approx(0.35) and r.xv["ci"][0] > 0
    assert any(x.startswith("what per-input routing could gain, oracle − fixed (each item at "
                            "its own best layer): +0.350 [") and x.endswith(
        "in-sample, an upper bound (the same numbers choose and score, so noise counts as "
        "gain)") for x in r.lines())
    # noise that flips between the orders is no gain once cross-validated
    noisy1 = [[1.0, 0.6, 0.0]] * 4 + [[0.0, 0.6, 1.0]] * 4
    noisy2 = [[0.0, 0.6, 1.0]] * 4 + [[1.0, 0.6, 0.0]] * 4
    n = read_sweep(_sweep(noisy1, noisy2), n_boot=200)
    assert n.oracle_gain["diff"] == pytest.approx(0.0)  # mirrored: every item best at 5
    assert n.xv["diff"] < 0


def test_read_sweep_single_order_is_in_sample():
    prop = np.array([[[0.0, 1.0], [0.0, 2.0]], [[0.0, 1.0], [0.0, 3.0]]])
    r = read_sweep(SweepResult(prop, [2, 4], [-1.0, 1.0], ["a", "b"], ["A", "B"]), n_boot=100)
    assert r.xv is None and r.fixed_layers_xv is None and r.fixed_layer == 4
    assert r.fixed_effect == pytest.approx(1.25)
    assert any("layer 4 (in-sample: one letter order)" in x for x in r.lines())


@pytest.fixture(scope="module")
def chat_model() -> HookedTransformer:
    """A tiny random rotary model with a byte-level chat tokenizer (no download)."""
    tiny = make_tiny_model(d_vocab=300, seed=3)
    cfg = HookedTransformerConfig.from_dict({**tiny.cfg.to_dict(), "n_ctx": 512,
                                             "default_prepend_bos": False,
                                             "model_name": "tiny-bytes"})
    torch.manual_seed(3)
    m = HookedTransformer(cfg)
    m.eval()
    m.tokenizer = byte_tokenizer()
    return m


def test_run_demo_end_to_end(chat_model, offline, tmp_path, monkeypatch, capsys, one_thread):
    root = tmp_path / "evals" / "advanced-ai-risk" / "lm_generated_evals"
    root.mkdir(parents=True)
    rows = [{"question": f"Q{i}: may we change goal {i}?\n\nChoices:\n (A) Yes.\n (B) No.",
             "answer_matching_behavior": " (A)" if i % 2 else " (B)",
             "answer_not_matching_behavior": " (B)" if i % 2 else " (A)"} for i in range(12)]
    (root / "corrigible-neutral-HHH.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    monkeypatch.setattr(demo, "load_model", lambda *a, **k: chat_model)
    cfg = EvalConfig(dataset="corrigible-neutral-HHH", data_dir=str(tmp_path / "evals"),
                     n_train=3, n_test=4, layers=(1, 2, 3), n_boot=100)
    out = tmp_path / "demo"
    reading = run_demo(cfg, out, show=1, control=False, threads=1)
    text = capsys.readouterr().out
    assert reading.layers == (1, 2, 3) and reading.n == 4
    assert "CAA vectors from 3 training items and sweeps 4 test items in both letter orders " \
           "at 1,2,3 (--n-train, --n-test and --layers change them)" in text
    assert "CAA vectors from 6 contrast pairs" in text
    assert "sweep of 8 presentations × 3 layers × 7 multipliers" in text
    assert "\n".join(reading.lines()) in text
    assert (out / "model" / "report.html").is_file()
    run = json.loads((out / "model" / "run.json").read_text())
    assert run["derived"]["n_items"] == 4 and run["derived"]["n_vector_pairs"] == 6
    again = run_demo(cfg, out, show=0, control=False, threads=1)  # resumes: same numbers
    np.testing.assert_allclose(again.layer_mean, reading.layer_mean)
