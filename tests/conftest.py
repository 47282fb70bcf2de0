"""Shared fixtures: tiny randomly initialised HookedTransformers (fast, no downloads)."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig


def make_tiny_model(
    positional: str = "rotary", n_layers: int = 4, seed: int = 0, d_vocab: int = 64
) -> HookedTransformer:
    """A 4-layer, 32-wide model with random weights; ``positional`` as in TransformerLens."""
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=32,
        n_ctx=64,
        d_head=8,
        n_heads=4,
        d_mlp=64,
        d_vocab=d_vocab,
        act_fn="silu",
        normalization_type="RMS",
        positional_embedding_type=positional,
        gated_mlp=True,
        seed=seed,
        device="cpu",
    )
    model = HookedTransformer(cfg)
    model.eval()
    return model


@pytest.fixture(scope="session")
def tiny_model() -> HookedTransformer:
    """Rotary, RMSNorm, gated-MLP: the same shape of architecture as Qwen2 and Llama."""
    return make_tiny_model()


@pytest.fixture(scope="session")
def tiny_model_standard() -> HookedTransformer:
    """Learned absolute positions (GPT-2 style)."""
    return make_tiny_model(positional="standard", seed=1)
