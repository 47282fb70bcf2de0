"""CPU smoke test of analysis/gpu_check.py: its shapes, and its check on a tiny bf16 model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import w2s_lens.sweep.runner as sweep_mod

_PATH = Path(__file__).resolve().parents[1] / "analysis" / "gpu_check.py"
_spec = importlib.util.spec_from_file_location("gpu_check", _PATH)
gc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gc)


@pytest.mark.parametrize("shape", gc.BIG)
def test_shapes_have_the_published_parameter_counts(shape):
    """The architecture table reproduces each released model's size (within 1%: the
    TransformerLens biases the real models lack are all that differ)."""
    published = gc.SHAPES[shape]["published_params"]
    assert gc.count_params(shape) == pytest.approx(published, rel=0.01)


def test_built_model_follows_its_shape():
    model = gc.build_model("tiny", "cpu", torch.bfloat16)
    s = gc.SHAPES["tiny"]
    assert (model.cfg.n_layers, model.cfg.d_model, model.cfg.n_key_value_heads) == (
        s["n_layers"], s["d_model"], s["n_key_value_heads"])
    assert model.blocks[0].attn._W_K.shape[0] == s["n_key_value_heads"]  # grouped-query
    assert model.W_E.dtype == torch.bfloat16 and model.cfg.gated_mlp
    exs = gc.random_examples(model, 3, 20, "cloze")
    assert all(ex.readout == "cloze" and 4 <= len(ex.tokens) <= 36 for ex in exs)
    vecs = gc.random_vectors(model, exs, scale=0.25)
    assert vecs.vectors.shape == (s["n_layers"], s["d_model"]) and vecs.norms().min() > 0


@pytest.fixture(scope="module")
def tiny_results():
    return gc.check_shape("tiny", "cpu", "bfloat16", readouts=("letter", "cloze"),
                          time_inputs=2, repeats=1, max_rows=64, log=lambda s: None)


@pytest.mark.parametrize("readout", ["letter", "cloze"])
def test_tiny_check_passes(tiny_results, readout):
    r = tiny_results[readout]
    assert r["ok"] and r["conclusive"]
    assert r["fp32_max_diff"] <= r["fp32_tol"] and r["err_fast"] <= r["tol"] < r["effect"] / 4
    assert r["max_diff"] > 0  # bf16 does round the two engines differently
    assert r["speedup"] > 0 and r["sweep_in_forwards"] > 0 and r["fast_rows_per_il_s"] > 0


def test_check_catches_a_wrong_engine(monkeypatch):
    """A fast engine that steers with half the vector must fail the check."""
    real = sweep_mod.fast_chunk

    def half(model, vectors, *a, **k):
        return real(model, vectors * 0.5, *a, **k)

    monkeypatch.setattr(sweep_mod, "fast_chunk", half)
    res = gc.check_shape("tiny", "cpu", "bfloat16", readouts=("letter",), time_inputs=1,
                         repeats=1, max_rows=None, log=lambda s: None)
    assert not res["letter"]["ok"] and gc._verdict(res["letter"]) == "FAIL"


def test_main_writes_json(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    code = gc.main(["--device", "cpu", "--shapes", "tiny", "--readouts", "letter",
                    "--time-inputs", "1", "--repeats", "1", "--max-rows", "0",
                    "--out", str(out)])
    assert code == 0 and "ALL OK" in capsys.readouterr().out
    saved = json.loads(out.read_text())["results"]["tiny"]["letter"]
    assert saved["ok"] and saved["fast_rows_per_il_s"] is None
    assert np.isfinite(saved["speedup"])
