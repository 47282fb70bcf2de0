"""Tests for w2s_lens.steering.interop_layers: hook points vs decoder-block outputs."""

from __future__ import annotations

import pytest
from conftest import make_tiny_model
from helpers_interop import random_vectors

from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.steering.interop_layers import (
    LayerMappingError,
    block_to_tl,
    check_d_model,
    select_layers,
    tl_to_block,
)


def test_layer_mapping_both_ways():
    assert [tl_to_block(x, "resid_pre") for x in (1, 2, 5)] == [0, 1, 4]
    assert [tl_to_block(x, "resid_post") for x in (0, 2, 5)] == [0, 2, 5]
    for hook in ("resid_pre", "resid_post"):
        for layer in range(1, 6):
            assert block_to_tl(tl_to_block(layer, hook), hook, n_layers=7) == layer
    with pytest.raises(LayerMappingError, match="embedding output"):
        tl_to_block(0, "resid_pre")
    with pytest.raises(LayerMappingError, match="resid_mid"):
        tl_to_block(3, "resid_mid")
    with pytest.raises(LayerMappingError, match="hook='resid_post'"):
        block_to_tl(3, "resid_pre", n_layers=4)
    with pytest.raises(LayerMappingError, match="does not exist"):
        block_to_tl(4, "resid_post", n_layers=4)
    with pytest.raises(LayerMappingError, match="negative"):
        block_to_tl(-1, "resid_post")
    with pytest.raises(ValueError, match="hook must be one of"):
        tl_to_block(1, "attn_out")


def test_select_layers_and_check_d_model():
    tiny = make_tiny_model()
    vecs = random_vectors(tiny, [1, 2, 3])
    assert select_layers(vecs, None) == [1, 2, 3]
    assert select_layers(vecs, [3, 1]) == [3, 1]
    with pytest.raises(KeyError, match="stored layers"):
        select_layers(vecs, [0])
    with pytest.raises(ValueError, match="at least one layer"):
        select_layers(vecs, [])
    check_d_model(32, tiny, "v.gguf")
    check_d_model(16, None, "v.gguf")  # no model: nothing to check
    with pytest.raises(ArtifactMismatch, match="v.gguf has vectors of width 16, but the model's"):
        check_d_model(16, tiny, "v.gguf")
