import numpy as np
import pytest
import torch

from w2s_lens.data.examples import SteeringExample
from w2s_lens.routing.embeddings import default_layer, embed_examples, embedding_name


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
