"""Tests for w2s_lens.sweep.attention: one block over rows attending to shared contexts equals
TransformerLens's block over the whole sequence (multi-head and grouped-query, rotary and
learned positions)."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model
from transformer_lens import HookedTransformer, HookedTransformerConfig

from w2s_lens.sweep.attention import block_step, check_block_supported, unsupported_features


def gqa_model(positional: str = "rotary", seed: int = 3) -> HookedTransformer:
    """Like conftest's tiny model, with 2 key/value heads for 4 query heads (as Qwen2/Llama)."""
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=4, d_model=32, n_ctx=64, d_head=8, n_heads=4, n_key_value_heads=2, d_mlp=64,
        d_vocab=64, act_fn="silu", normalization_type="RMS",
        positional_embedding_type=positional, gated_mlp=True, seed=seed, device="cpu")
    model = HookedTransformer(cfg)
    model.eval()
    return model


@pytest.fixture(scope="module", params=["rotary-mha", "standard-mha", "rotary-gqa"])
def model(request):
    if request.param == "rotary-gqa":
        return gqa_model()
    kind = request.param.split("-")[0]
    return make_tiny_model(kind, seed=0 if kind == "rotary" else 1)


def _full_pass(model, tokens):
    """TransformerLens's own residuals entering each block, and its keys/values per block."""
    _, cache = model.run_with_cache(tokens)
    return cache


@torch.inference_mode()
def test_rows_attending_to_a_context_equal_the_full_sequence(model):
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(0, 64, (1, 11), generator=g)
    cache = _full_pass(model, seq)
    p = 7  # context: tokens[:7]; rows: tokens[7:], three copies (one per "multiplier")
    for b in range(model.cfg.n_layers):
        full_in = cache[f"blocks.{b}.hook_resid_pre"]
        # the context's keys/values from a pass over the prefix alone
        pos_p = torch.arange(p)[None]
        _, (k, v) = block_step(model, b, full_in[:, :p], pos_p, torch.ones(1, p, dtype=torch.bool),
                               want_kv=True)
        ctx = [(k[0].transpose(0, 1).contiguous(), v[0].transpose(0, 1).contiguous())]
        rows = full_in[:, p:].expand(3, -1, -1)
        pos = torch.arange(p, 11)[None].expand(3, -1)
        out, _ = block_step(model, b, rows, pos, torch.ones(3, 11 - p, dtype=torch.bool), ctx,
                            [torch.arange(3)])
        want = cache[f"blocks.{b}.hook_resid_post"][:, p:]
        assert torch.allclose(out, want.expand(3, -1, -1), atol=1e-5)
        assert want.abs().max() > 0.1  # not vacuous


@torch.inference_mode()
def test_two_contexts_padding_and_row_groups(model):
    """Rows of two prompts in one batch, in interleaved order, one of them padded: each row
    gets its own prompt's numbers."""
    g = torch.Generator().manual_seed(1)
    seqs = [torch.randint(0, 64, (1, n), generator=g) for n in (9, 6)]
    caches = [_full_pass(model, s) for s in seqs]
    cut = [6, 4]  # prompt 0: context 6, row of 3 tokens; prompt 1: context 4, row of 2 tokens
    b = 2
    ctx = []
    for c, cache in zip(cut, caches):
        x = cache[f"blocks.{b}.hook_resid_pre"][:, :c]
        _, (k, v) = block_step(model, b, x, torch.arange(c)[None],
                               torch.ones(1, c, dtype=torch.bool), want_kv=True)
        ctx.append((k[0].transpose(0, 1).contiguous(), v[0].transpose(0, 1).contiguous()))
    rows = torch.zeros(4, 3, model.cfg.d_model)
    valid = torch.zeros(4, 3, dtype=torch.bool)
    pos = torch.zeros(4, 3, dtype=torch.long)
    owner = [1, 0, 1, 0]
    for r, i in enumerate(owner):
        n = seqs[i].shape[1] - cut[i]
        rows[r, :n] = caches[i][f"blocks.{b}.hook_resid_pre"][0, cut[i]:]
        valid[r, :n] = True
        pos[r] = torch.arange(cut[i], cut[i] + 3)
    out, _ = block_step(model, b, rows, pos, valid, ctx,
                        [torch.tensor([1, 3]), torch.tensor([0, 2])])
    for r, i in enumerate(owner):
        n = seqs[i].shape[1] - cut[i]
        want = caches[i][f"blocks.{b}.hook_resid_post"][0, cut[i]:]
        assert torch.allclose(out[r, :n], want, atol=1e-5)


def test_unsupported_features_are_refused_naming_the_naive_engine():
    model = make_tiny_model()
    assert unsupported_features(model) == []
    check_block_supported(model)
    model.cfg.use_attn_in = True
    with pytest.raises(ValueError, match=r"use_attn_in=True.*engine=\"naive\""):
        check_block_supported(model)
    model.cfg.use_attn_in = False
    model.cfg.attention_dir = "bidirectional"
    assert unsupported_features(model) == ["attention_dir='bidirectional'"]
