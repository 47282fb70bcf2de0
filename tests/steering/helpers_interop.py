"""Data shared by the interop test modules (test_interop*.py)."""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer

from w2s_lens.steering.vectors import SteeringVectors, model_name


def random_vectors(model: HookedTransformer, layers, hook="resid_pre", seed=0, scale=1.0):
    """Random vectors for ``model`` at ``layers``, with the metadata CAA would record."""
    g = torch.Generator().manual_seed(seed)
    vecs = torch.randn(len(layers), model.cfg.d_model, generator=g) * scale
    meta = {"model": model_name(model), "d_model": model.cfg.d_model, "method": "caa",
            "dataset": "toy"}
    return SteeringVectors(vecs, layers, hook, meta)
