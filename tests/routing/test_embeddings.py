import numpy as np
import pytest
import torch

from w2s_lens.choices import Embedding
from w2s_lens.data.examples import SteeringExample
from w2s_lens.routing import embeddings
from w2s_lens.routing.embeddings import (
    default_layer,
    embed_examples,
    embed_prompts,
    embedding_kind,
    embedding_name,
)


def _ex(tokens, i=0):
    return SteeringExample(id=f"e{i}", text="t", tokens=tuple(tokens), matching_token_id=60,
                           non_matching_token_id=61, matching_letter="A")


def test_names_and_default_layer(tiny_model):
    assert embedding_name("resid-last", 2) == "resid-last@2"
    assert embedding_name("minilm", 5) == "minilm"
    assert default_layer(tiny_model) == 2
    with pytest.raises(ValueError, match="embedding must be one of"):
        embedding_name("bag-of-words")


def test_resid_last_and_mean_match_run_with_cache(tiny_model):
    seqs = [[3, 4, 5, 6], [7, 8]]
    exs = [_ex(s, i) for i, s in enumerate(seqs)]
    last = embed_examples(tiny_model, exs, "resid-last", layer=1)
    mean = embed_examples(tiny_model, exs, "resid-mean", layer=1)
    for i, s in enumerate(seqs):
        _, cache = tiny_model.run_with_cache(torch.tensor([s]))
        act = cache["blocks.1.hook_resid_pre"][0]
        assert np.allclose(last[i], act[-1].numpy(), atol=1e-5)
        assert np.allclose(mean[i], act.mean(0).numpy(), atol=1e-5)
    assert last.dtype == np.float32 and last.shape == (2, tiny_model.cfg.d_model)


def test_errors(tiny_model):
    with pytest.raises(ValueError, match="no examples"):
        embed_examples(tiny_model, [], "resid-last")
    with pytest.raises(ValueError, match="needs the model"):
        embed_examples(None, [_ex([1, 2])], "resid-last")


class FakeEncoder:
    """Stands in for the MiniLM encoder: one deterministic 384-wide row per text."""

    calls: list[list[str]] = []

    def encode(self, texts):
        FakeEncoder.calls.append(list(texts))
        return np.stack([np.random.default_rng(sum(map(ord, t))).normal(size=384)
                         for t in texts]).astype(np.float32)


@pytest.fixture()
def fake_minilm(monkeypatch):
    import w2s_lens.models.text_encoder as text_encoder

    FakeEncoder.calls = []
    monkeypatch.setattr(text_encoder, "MiniLMEncoder", FakeEncoder)
    return FakeEncoder


def test_every_embedding_has_one_embedder():
    assert set(embeddings._EMBEDDERS) == set(Embedding)
    with pytest.raises(ValueError, match=r"embedding must be one of \('resid-last'"):
        embedding_kind("bag-of-words")
    assert embedding_kind("resid-mean") is Embedding.RESID_MEAN


@pytest.mark.parametrize("kind", list(Embedding))
def test_each_embedding_needs_what_its_member_says_and_has_its_width(tiny_model, fake_minilm,
                                                                      kind):
    exs = [_ex([3, 4, 5], 0), _ex([6, 7], 1)]
    x = embed_examples(tiny_model, exs, kind, layer=1)
    assert x.dtype == np.float32
    assert x.shape == (2, kind.width(tiny_model.cfg.d_model, 384))
    assert bool(fake_minilm.calls) == kind.needs_text_encoder
    if kind.reads_residual:
        with pytest.raises(ValueError, match="needs the model"):
            embed_examples(None, exs, kind)
    else:  # the text encoder needs no model, but each prompt's text
        assert np.array_equal(embed_examples(None, exs, kind), x)
        with pytest.raises(ValueError, match="needs each prompt's text"):
            embed_prompts(None, [[1, 2]], [""], kind)
