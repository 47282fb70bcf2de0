"""The router views: one features function per RouterView, with the width its member states."""

import numpy as np
import pytest
import torch

from w2s_lens.choices import ROUTER_INPUTS, RouterView
from w2s_lens.data.examples import SteeringExample
from w2s_lens.routing import views
from w2s_lens.routing.views import (
    option_features,
    router_name,
    router_view,
    split_router_name,
    view_embedding_name,
    view_features,
)

D_TEXT = 384


def _cloze(i, tokens, matching, other):
    return SteeringExample(id=f"c{i}", text=f"prompt {i}", tokens=tuple(tokens),
                           matching_continuation=tuple(matching),
                           non_matching_continuation=tuple(other))


EXAMPLES = [_cloze(0, [3, 4, 5], [10, 11], [12]), _cloze(1, [6, 7], [13], [14, 15, 16])]


class FakeEncoder:
    """Stands in for the MiniLM encoder: one deterministic row per text."""

    def encode(self, texts):
        return np.stack([np.random.default_rng(sum(map(ord, t))).normal(size=D_TEXT)
                         for t in texts]).astype(np.float32)


class FakeTokenizer:
    padding_side = "right"

    def decode(self, ids):
        return "".join(chr(97 + i % 26) for i in ids)


@pytest.fixture()
def minilm_ready(tiny_model, monkeypatch):
    import w2s_lens.models.text_encoder as text_encoder

    monkeypatch.setattr(text_encoder, "MiniLMEncoder", FakeEncoder)
    monkeypatch.setattr(tiny_model, "tokenizer", FakeTokenizer())
    return tiny_model


def test_every_view_has_one_features_function():
    assert set(views._FEATURES) == set(RouterView)
    assert tuple(v.value for v in views._FEATURES) == ROUTER_INPUTS
    with pytest.raises(ValueError, match=r"router input must be one of \('question'"):
        router_view("answers")
    with pytest.raises(ValueError, match="router input must be one of"):
        view_features("answers", None, None, EXAMPLES, 1)


@pytest.mark.parametrize("view", list(RouterView))
def test_each_view_has_the_width_and_needs_its_member_states(minilm_ready, view):
    model, d_question = minilm_ready, 5
    question = np.arange(2 * d_question, dtype=np.float32).reshape(2, d_question)
    x = view_features(view, question, model, EXAMPLES, layer=1)
    assert x.shape == (2, view.width(model.cfg.d_model, d_question, D_TEXT))
    if view.needs_question:
        assert np.array_equal(x[:, :d_question], question)
        with pytest.raises(ValueError, match="needs the prompt embeddings"):
            view_features(view, None, model, EXAMPLES, layer=1)
    else:
        assert np.array_equal(view_features(view, None, model, EXAMPLES, layer=1), x)


def test_the_options_features_are_computed_once_per_cache(tiny_model, monkeypatch):
    calls = []
    real = views.option_features
    monkeypatch.setattr(views, "option_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache: dict[str, np.ndarray] = {}
    question = np.zeros((2, 3), dtype=np.float32)
    opts = view_features("options", question, tiny_model, EXAMPLES, 1, cache=cache)
    both = view_features("question+options", question, tiny_model, EXAMPLES, 1, cache=cache)
    assert len(calls) == 1 and np.array_equal(both[:, 3:], opts)


def test_option_features_average_the_residual_over_each_option(tiny_model):
    x = option_features(tiny_model, EXAMPLES, layer=2)
    for row, ex in zip(x, EXAMPLES):
        means = []
        for cont in ex.continuations:
            _, cache = tiny_model.run_with_cache(torch.tensor([list(ex.tokens) + list(cont)]))
            act = cache["blocks.2.hook_resid_pre"][0, len(ex.tokens):]
            means.append(act.mean(0).numpy())
        m, n = means
        d = tiny_model.cfg.d_model
        assert np.allclose(row[:d], m - n, atol=1e-5)
        assert np.allclose(row[d:2 * d], (m + n) / 2, atol=1e-5)
        assert np.allclose(row[2 * d:], np.log([len(c) for c in ex.continuations]))


@pytest.mark.parametrize("view", list(RouterView))
def test_router_names_round_trip_and_record_the_views_embedding(view):
    name = router_name("curve", view)
    assert split_router_name(name) == ("curve", view.value)
    assert ("@" in name) == (view is not RouterView.QUESTION)
    assert view_embedding_name(view, "resid-last@3") == view.embedding_name("resid-last@3")
    assert router_name("logreg") == "logreg" and split_router_name("logreg")[1] == "question"
