"""Tests for w2s_lens.demo.walkthrough: the demo's sizes, the offline dataset, the thread
choice, and the demo end to end on a tiny chat model (the real model's demo is timed by hand:
analysis/results/demo_wall_times.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_chat_model, write_ab_dataset
from transformer_lens import HookedTransformer

import w2s_lens.demo.walkthrough as walkthrough
from w2s_lens.data.items import DatasetError
from w2s_lens.demo.walkthrough import (
    DEMO_N_TEST,
    DEMO_N_TRAIN,
    demo_config,
    pick_threads,
    resolve_dataset,
    run_demo,
)
from w2s_lens.evaluation.config import EvalConfig


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


@pytest.fixture(scope="module")
def chat_model() -> HookedTransformer:
    return make_chat_model()


def test_run_demo_end_to_end(chat_model, offline, tmp_path, monkeypatch, capsys, one_thread):
    root = tmp_path / "evals" / "advanced-ai-risk" / "lm_generated_evals"
    root.mkdir(parents=True)
    rows = [{"question": f"Q{i}: may we change goal {i}?\n\nChoices:\n (A) Yes.\n (B) No.",
             "answer_matching_behavior": " (A)" if i % 2 else " (B)",
             "answer_not_matching_behavior": " (B)" if i % 2 else " (A)"} for i in range(12)]
    (root / "corrigible-neutral-HHH.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    monkeypatch.setattr(walkthrough, "load_model", lambda *a, **k: chat_model)
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
