"""Tests for w2s_lens.sweep.prefix: shared-prefix contexts equal per-presentation ones, cost
fewer token passes, and match TransformerLens's own keys and values."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model
from test_attention import gqa_model

from w2s_lens.sweep.prefix import (
    build_contexts,
    common_prefix_length,
    prefix_states,
    row_positions,
)

# two "letter orders" sharing 5 tokens, a third presentation of the same unit sharing 2,
# an item alone, an empty prefix, and a unit whose prefixes are equal
PREFIXES = [(3, 9, 4, 4, 7, 1, 2), (3, 9, 4, 4, 7, 2, 1, 5), (3, 9, 8), (10, 11, 12), (),
            (6, 5), (6, 5)]
UNITS = ["a", "a", "a", "b", "c", "d", "d"]


@pytest.fixture(scope="module", params=["rotary", "standard", "gqa"])
def model(request):
    return gqa_model() if request.param == "gqa" else make_tiny_model(request.param)


def test_common_prefix_length_and_positions():
    assert common_prefix_length(PREFIXES[:2]) == 5
    assert common_prefix_length(PREFIXES[:3]) == 2
    assert common_prefix_length([(1, 2), (1, 2)]) == 2
    assert common_prefix_length([]) == 0 and common_prefix_length([(4,), (5,)]) == 0
    assert row_positions([2, 0], 3, "cpu").tolist() == [[2, 3, 4], [0, 1, 2]]


def _tokens_through_block0(model, fn):
    seen = []
    with model.hooks(fwd_hooks=[("blocks.0.hook_resid_pre",
                                 lambda act, hook: seen.append(act.shape[0] * act.shape[1]))]):
        out = fn()
    return out, sum(seen)


@torch.inference_mode()
def test_shared_contexts_equal_separate_ones_and_cost_less(model):
    shared, n_shared = _tokens_through_block0(model, lambda: build_contexts(model, PREFIXES,
                                                                            UNITS))
    alone, n_alone = _tokens_through_block0(
        model, lambda: build_contexts(model, PREFIXES, [str(i) for i in range(len(PREFIXES))]))
    assert n_shared < n_alone
    for i, p in enumerate(PREFIXES):
        assert len(shared[i]) == model.cfg.n_layers
        for (ks, vs), (ka, va) in zip(shared[i], alone[i]):
            assert ks.shape == ka.shape and ks.shape[1] == len(p)
            assert torch.allclose(ks, ka, atol=1e-5) and torch.allclose(vs, va, atol=1e-5)


@torch.inference_mode()
def test_contexts_are_transformer_lens_keys_and_values(model):
    kv = build_contexts(model, PREFIXES[:2], UNITS[:2])
    for i in range(2):
        _, cache = model.run_with_cache(torch.tensor([PREFIXES[i]]))
        for b, (k, v) in enumerate(kv[i]):
            want_v = cache[f"blocks.{b}.attn.hook_v"][0].transpose(0, 1)
            assert torch.allclose(v, want_v, atol=1e-5)
            name = "hook_rot_k" if model.cfg.positional_embedding_type == "rotary" else "hook_k"
            want_k = cache[f"blocks.{b}.attn.{name}"][0].transpose(0, 1)
            assert torch.allclose(k, want_k, atol=1e-5)


@torch.inference_mode()
def test_prefix_states_are_each_prefix_alone(model):
    """Keys and values as build_contexts gives them (no sharing), and the residual stream
    entering the grabbed blocks as TransformerLens computes it, empty prefix included."""
    kv, resid, lengths = prefix_states(model, PREFIXES, [1, 3])
    ref = build_contexts(model, PREFIXES, UNITS)
    assert lengths == [len(p) for p in PREFIXES]
    assert set(resid) == {1, 3} and resid[1].shape[:2] == (len(PREFIXES), max(lengths))
    for i, p in enumerate(PREFIXES):
        for (k, v), (kr, vr) in zip(kv[i], ref[i]):
            assert k.shape == kr.shape and k.shape[1] == len(p)
            assert torch.allclose(k, kr, atol=1e-5) and torch.allclose(v, vr, atol=1e-5)
        if p:
            _, cache = model.run_with_cache(torch.tensor([p]))
            for b in (1, 3):
                want = cache[f"blocks.{b}.hook_resid_pre"][0]
                assert torch.allclose(resid[b][i, : len(p)], want, atol=1e-5)
    _, alone, _ = prefix_states(model, [()], [1])
    assert alone[1].shape[1] == 1  # an empty prefix is one padding position, never attended
