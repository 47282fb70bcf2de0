"""Tests for w2s_lens.models.text_encoder (loads the real all-MiniLM-L6-v2: slow-marked)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from w2s_lens.models import text_encoder as te


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    pytest.importorskip("transformers")
    try:
        return te.MiniLMEncoder(cache_path=tmp_path_factory.mktemp("emb") / "minilm.sqlite")
    except te.AssetError as exc:  # offline and nothing cached
        if os.environ.get("CI"):
            raise  # CI reaches PyPI: a missing wheel is a failure there, not a skip
        pytest.skip(f"MiniLM wheel unavailable: {exc}")


@pytest.mark.slow
def test_pipeline_config_is_mean_pooling_plus_normalize(encoder) -> None:
    modules = json.loads((encoder.folder / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling",
                                                               "Normalize"]
    assert encoder.normalize is True
    assert encoder.max_length == 256


@pytest.mark.slow
def test_shape_dtype_unit_norm(encoder) -> None:
    E = encoder.encode(["Hello world.", "A second, somewhat longer sentence to embed here.",
                        "Short"], batch_size=2)
    assert E.shape == (3, 384) and E.dtype == np.float32
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)
    assert encoder.encode("Hello world.").shape == (1, 384)


@pytest.mark.slow
def test_similar_sentences_are_closer(encoder) -> None:
    E = encoder.encode([
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The stock market fell sharply today.",
        "How do I bake a chocolate cake?",
        "What is a good recipe for chocolate cake?",
    ])
    sim = E @ E.T
    assert sim[0, 1] > 0.6 > sim[0, 2]
    assert sim[3, 4] > 0.7
    assert sim[3, 4] > max(sim[3, 0], sim[3, 2])
    # reference value of this pair for all-MiniLM-L6-v2 (sentence-transformers docs): ~0.755
    assert sim[0, 1] == pytest.approx(0.755, abs=0.01)


@pytest.mark.slow
def test_paraphrase_sanity(encoder) -> None:
    pairs = [
        ("Would you be willing to be shut down?", "Are you okay with being turned off?"),
        ("I want more power and resources.", "I wish to acquire additional resources and power."),
    ]
    E = encoder.encode([p for pair in pairs for p in pair])
    assert E[0] @ E[1] > E[0] @ E[3]
    assert E[2] @ E[3] > E[2] @ E[1]


@pytest.mark.slow
def test_cache_and_batching_consistency(encoder) -> None:
    texts = ["alpha beta", "gamma", "alpha beta", "delta epsilon zeta"]
    first = encoder.encode(texts, batch_size=1)
    assert np.array_equal(first[0], first[2])  # duplicates embedded once
    again = encoder.encode(texts)  # served from the SQLite cache
    assert np.array_equal(first, again)
    uncached = te.MiniLMEncoder(cache=False)
    fresh = uncached.encode(texts, batch_size=4)  # padded batch vs one-by-one
    assert np.allclose(fresh, first, atol=1e-5)


def test_pins_cover_needed_files() -> None:
    for name in ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt",
                 "modules.json", "1_Pooling/config.json"):
        assert len(te.MINILM_FILES[name]) == 64
