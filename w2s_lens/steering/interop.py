"""Vectors in and out: steering-vectors' ``SteeringVector`` (llama.cpp control vectors
are in :mod:`w2s_lens.steering.interop_gguf`).

Both formats index a vector by a *decoder block* and add it to that block's **output**;
w2s-lens indexes by a TransformerLens hook point: ``resid_pre`` at layer l is block ``l - 1``,
``resid_post`` at layer l is block ``l`` (:mod:`w2s_lens.steering.interop_layers`:
:func:`tl_to_block`, :func:`block_to_tl`).

steering-vectors (``SteeringVector(layer_activations={block: vector},
layer_type="decoder_block")``): ``patch_activations``/``apply`` register a forward hook on
the block module (``model.model.layers[block]`` for Llama/Qwen2) that adds
``multiplier * vector`` to the block's output tensor in place, at the token indices of *each
forward call* selected by ``min_token_index`` (``slice(min_token_index, None)``) or
``token_indices``. For one forward pass over a prompt of n tokens, ``min_token_index=n-1``
steers the same positions as w2s-lens' ``positions="from_last"``; ``min_token_index=0`` (the
default of ``apply``) steers every position, like ``positions="all"``. In a cached
generation each call sees one token at index 0, so ``min_token_index > 0`` steers no
generated token there, unlike ``"from_last"``.

Example:
    >>> sv = to_steering_vector(vecs, layers=[14])  # doctest: +SKIP
    >>> with sv.apply(hf_model, multiplier=1.0, min_token_index=len(ids) - 1):  # doctest: +SKIP
    ...     logits = hf_model(torch.tensor([ids])).logits
    >>> to_control_vector_gguf(vecs, "syc.gguf", layers=[14], multiplier=2.0)  # doctest: +SKIP
    >>> back = from_control_vector_gguf("syc.gguf", model=model)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from transformer_lens import HookedTransformer

from w2s_lens.artifacts.provenance import library_versions
from w2s_lens.steering.interop_layers import (
    LayerMappingError,
    block_to_tl,
    check_d_model,
    select_layers,
    tl_to_block,
)
from w2s_lens.steering.vectors import SteeringVectors, model_name

if TYPE_CHECKING:  # pragma: no cover
    from steering_vectors import SteeringVector

__all__ = ["from_steering_vector", "to_steering_vector"]


def to_steering_vector(
    vectors: SteeringVectors, layers: Sequence[int] | None = None
) -> SteeringVector:
    """A steering-vectors ``SteeringVector`` adding the same vectors at the same places.

    ``resid_pre`` layer l becomes decoder block ``l - 1``, ``resid_post`` layer l block l
    (module docstring). Apply it with ``sv.apply(hf_model, multiplier=m,
    min_token_index=len(prompt) - 1)`` for w2s-lens' ``positions="from_last"`` on one forward
    pass. All chosen layers are added at once when applied; export one layer for one-layer
    steering.

    Args:
        vectors: w2s-lens vectors at ``resid_pre`` or ``resid_post``.
        layers: the layers to export (default: all stored).

    Raises:
        LayerMappingError: ``resid_pre`` layer 0, or ``resid_mid`` vectors.
        ImportError: steering-vectors is not installed.

    Example:
        >>> sv = to_steering_vector(vecs, layers=[14])  # doctest: +SKIP
        >>> sorted(sv.layer_activations)  # doctest: +SKIP
        [13]
    """
    try:
        from steering_vectors import SteeringVector
    except ImportError as exc:
        raise ImportError(
            "to_steering_vector needs the steering-vectors package: pip install --no-deps "
            "steering-vectors==0.12.2 (its metadata asks for transformers<5, so a plain "
            "install would downgrade transformers)") from exc

    acts = {tl_to_block(layer, vectors.hook): vectors.vector(layer).clone()
            for layer in select_layers(vectors, layers)}
    return SteeringVector(layer_activations=acts, layer_type="decoder_block")


def from_steering_vector(
    sv: SteeringVector, model: HookedTransformer, hook: str = "resid_pre"
) -> SteeringVectors:
    """w2s-lens vectors adding what ``sv`` adds, at ``hook`` of ``model``.

    Args:
        sv: a steering-vectors ``SteeringVector`` with ``layer_type="decoder_block"``;
            negative block indices count from the end, as steering-vectors resolves them.
        model: the HookedTransformer of the same model (its d_model and layer count are
            checked, and its name is recorded).
        hook: ``"resid_pre"`` (block b becomes layer b + 1; the last block is refused) or
            ``"resid_post"`` (block b becomes layer b).

    Example:
        >>> vecs = from_steering_vector(sv, model)  # doctest: +SKIP
        >>> with vecs.apply(model, layer=14, multiplier=1.0):  # doctest: +SKIP
        ...     logits = model(tokens)
    """
    if sv.layer_type != "decoder_block":
        raise LayerMappingError(f"only decoder_block steering vectors can be imported, got "
                                f"layer_type={sv.layer_type!r}")
    if not sv.layer_activations:
        raise ValueError("the steering vector has no layer activations")
    n_layers = int(model.cfg.n_layers)
    rows: dict[int, torch.Tensor] = {}
    for block, act in sv.layer_activations.items():
        b = int(block) + n_layers if int(block) < 0 else int(block)
        vec = act.detach().float().cpu().reshape(-1)
        check_d_model(vec.shape[0], model, f"steering vector block {block}")
        layer = block_to_tl(b, hook, n_layers)
        if layer in rows:
            raise LayerMappingError(f"blocks {block} and another key both map to layer {layer}")
        rows[layer] = vec
    layers = sorted(rows)
    meta = {"model": model_name(model), "d_model": model.cfg.d_model,
            "method": "steering-vectors", "source": "steering_vectors.SteeringVector",
            "versions": library_versions()}
    return SteeringVectors(torch.stack([rows[x] for x in layers]), layers, hook, meta)
