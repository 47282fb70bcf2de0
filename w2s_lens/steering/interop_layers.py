"""Layer indexing across libraries: TransformerLens hook points vs decoder-block outputs.

steering-vectors and llama.cpp index a vector by a *decoder block* and add it to that block's
**output**; w2s-lens indexes by a TransformerLens hook point. The three points of the residual
stream around block l are::

    blocks.{l}.hook_resid_pre   = input of block l  = output of block l-1  (l = 0: embeddings)
    blocks.{l}.hook_resid_mid   = inside block l (after attention, before the MLP)
    blocks.{l}.hook_resid_post  = output of block l = blocks.{l+1}.hook_resid_pre

so ``resid_pre`` at layer l is block ``l - 1``, ``resid_post`` at layer l is block ``l``,
``resid_pre`` at layer 0 (the embedding output) is no block's output, and ``resid_mid`` is not
a block output at all: those two are refused (:class:`LayerMappingError`). Used by
:mod:`w2s_lens.steering.interop` (steering-vectors) and :mod:`w2s_lens.steering.interop_gguf`
(llama.cpp control vectors).

Example:
    >>> tl_to_block(14, "resid_pre"), block_to_tl(13, "resid_pre")
    (13, 14)
"""

from __future__ import annotations

from collections.abc import Sequence

from transformer_lens import HookedTransformer

from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.steering.activations import HOOKS
from w2s_lens.steering.vectors import SteeringVectors

__all__ = ["LayerMappingError", "block_to_tl", "check_d_model", "select_layers", "tl_to_block"]


class LayerMappingError(ValueError):
    """A layer/hook that has no counterpart in the other library's layer indexing."""


def tl_to_block(layer: int, hook: str) -> int:
    """The decoder block whose output is TransformerLens' ``blocks.{layer}.hook_{hook}``.

    >>> tl_to_block(14, "resid_pre"), tl_to_block(14, "resid_post")
    (13, 14)
    >>> tl_to_block(0, "resid_pre")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    w2s_lens.steering.interop_layers.LayerMappingError: blocks.0.hook_resid_pre is the ...
    """
    layer = int(layer)
    if hook == "resid_pre":
        if layer == 0:
            raise LayerMappingError(
                "blocks.0.hook_resid_pre is the embedding output, not the output of a decoder "
                "block; it cannot be expressed as a decoder-block vector")
        return layer - 1
    if hook == "resid_post":
        return layer
    if hook == "resid_mid":
        raise LayerMappingError(
            "resid_mid (between attention and MLP) is not the output of a decoder block; "
            "train the vectors at resid_pre or resid_post to export them")
    raise ValueError(f"hook must be one of {HOOKS}, got {hook!r}")


def block_to_tl(block: int, hook: str, n_layers: int | None = None) -> int:
    """The TransformerLens layer whose ``hook`` is the output of decoder block ``block``.

    Args:
        block: 0-based decoder block index.
        hook: ``"resid_pre"`` (layer ``block + 1``) or ``"resid_post"`` (layer ``block``).
        n_layers: the model's layer count, to refuse blocks it does not have.

    >>> block_to_tl(13, "resid_pre"), block_to_tl(13, "resid_post")
    (14, 13)
    """
    block = int(block)
    if block < 0:
        raise LayerMappingError(f"decoder block {block} is negative")
    if n_layers is not None and block >= n_layers:
        raise LayerMappingError(f"decoder block {block} does not exist in a model with "
                                f"{n_layers} layers")
    if hook == "resid_pre":
        if n_layers is not None and block == n_layers - 1:
            raise LayerMappingError(
                f"the output of the last block ({block}) is no layer's resid_pre; use "
                f"hook='resid_post'")
        return block + 1
    if hook == "resid_post":
        return block
    if hook == "resid_mid":
        raise LayerMappingError("a decoder-block output cannot be expressed at resid_mid")
    raise ValueError(f"hook must be one of {HOOKS}, got {hook!r}")


def select_layers(vectors: SteeringVectors, layers: Sequence[int] | None) -> list[int]:
    """The layers to export: all stored (``None``) or ``layers``, each checked to be stored.

    Example:
        >>> select_layers(vecs, None) == list(vecs.layers)  # doctest: +SKIP
        True
    """
    if layers is None:
        return list(vectors.layers)
    chosen = [int(x) for x in layers]
    if not chosen:
        raise ValueError("give at least one layer to export")
    for layer in chosen:
        vectors.vector(layer)  # KeyError naming the stored layers
    return chosen


def check_d_model(d: int, model: HookedTransformer | None, what: str) -> None:
    """Refuse vectors of width ``d`` for a ``model`` of another ``d_model`` (``what`` names
    them in the error); no check without a model.

    Example:
        >>> check_d_model(32, None, "v.gguf")  # no model: nothing to check
    """
    if model is not None and d != model.cfg.d_model:
        raise ArtifactMismatch(f"{what} has vectors of width {d}, but the model's d_model is "
                               f"{model.cfg.d_model}")
