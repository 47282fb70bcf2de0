"""Input embeddings a router learns from: one embedder per
:class:`~w2s_lens.choices.Embedding` (the kinds and what distinguishes them are stated there).

Kinds:
    ``resid-last``  the model's own residual stream (``hook_resid_pre``) at a chosen layer, at
                    the last prompt token of the unsteered prompt.
    ``resid-mean``  the same, averaged over all prompt tokens.
    ``minilm``      all-MiniLM-L6-v2 sentence embedding of the prompt text (offline, from a
                    wheel; see :mod:`w2s_lens.models.text_encoder`).

The name of an embedding (``embedding_name``) records its kind and layer; routers store it
and refuse embeddings of another kind on load.

Example:
    >>> X = embed_examples(model, examples, kind="resid-last", layer=12)  # doctest: +SKIP
    >>> X.shape  # [n_examples, d_model]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from jaxtyping import Float
from transformer_lens import HookedTransformer

from w2s_lens.choices import EMBEDDINGS, Embedding
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.activations import batches, cache_residuals, hook_name, pad_right

__all__ = ["default_layer", "embedding_kind", "embedding_name", "embed_examples",
           "embed_prompts"]


def default_layer(model: HookedTransformer) -> int:
    """The middle layer: where behaviour features are usually readable."""
    return model.cfg.n_layers // 2


def embedding_kind(kind: str) -> Embedding:
    """The :class:`~w2s_lens.choices.Embedding` named ``kind``; a ValueError naming the
    choices for any other name.

    Example:
        >>> embedding_kind("minilm").reads_residual
        False
    """
    try:
        return Embedding(kind)
    except ValueError:
        raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {kind!r}") from None


def embedding_name(kind: str, layer: int | None = None) -> str:
    """A stable name, e.g. ``"resid-last@12"`` or ``"minilm"``
    (:meth:`~w2s_lens.choices.Embedding.name_at`)."""
    return embedding_kind(kind).name_at(layer)


@torch.inference_mode()
def _mean_residuals(model: HookedTransformer, seqs: Sequence[Sequence[int]],
                    texts: Sequence[str], layer: int, batch_size: int) -> np.ndarray:
    out = np.empty((len(seqs), model.cfg.d_model), dtype=np.float32)
    name = hook_name(layer)
    for idx in batches(len(seqs), batch_size):
        tokens, mask, lengths = pad_right([seqs[i] for i in idx])
        got = {}

        def grab(act, hook, mask=mask, lengths=lengths, got=got):
            m = mask.to(act.device, act.dtype)[..., None]
            got["x"] = ((act * m).sum(1) / lengths.to(act.device)[:, None]).float().cpu()

        stop = layer + 1 if layer + 1 < model.cfg.n_layers else None
        with model.hooks(fwd_hooks=[(name, grab)]):
            model(tokens.to(model.cfg.device), attention_mask=mask.to(model.cfg.device),
                  stop_at_layer=stop, return_type=None)
        out[idx.start : idx.stop] = got["x"].numpy()
    return out


def _last_residuals(model: HookedTransformer, seqs: Sequence[Sequence[int]],
                    texts: Sequence[str], layer: int, batch_size: int) -> np.ndarray:
    res = cache_residuals(model, seqs, [layer], [-1] * len(seqs), batch_size=batch_size)
    return res[:, 0].numpy().astype(np.float32)


def _minilm(model: HookedTransformer | None, seqs: Sequence[Sequence[int]],
            texts: Sequence[str], layer: int | None, batch_size: int) -> np.ndarray:
    from w2s_lens.models.text_encoder import MiniLMEncoder

    if any(not t for t in texts):
        raise ValueError("the minilm embedding needs each prompt's text; an empty text "
                         "would route as the empty string")
    return np.asarray(MiniLMEncoder().encode(list(texts)), dtype=np.float32)


#: One embedder per :class:`~w2s_lens.choices.Embedding`: ``(model, token_seqs, texts, layer,
#: batch_size) -> float32 [n, dim]`` (the residual kinds get the model and a layer).
_EMBEDDERS: dict[Embedding, Callable[..., np.ndarray]] = {
    Embedding.RESID_LAST: _last_residuals,
    Embedding.RESID_MEAN: _mean_residuals,
    Embedding.MINILM: _minilm,
}
assert set(_EMBEDDERS) == set(Embedding), "every embedding has one embedder"


def embed_prompts(
    model: HookedTransformer | None,
    token_seqs: Sequence[Sequence[int]],
    texts: Sequence[str],
    kind: str = "resid-last",
    layer: int | None = None,
    batch_size: int = 8,
) -> Float[np.ndarray, "n dim"]:
    """Embed prompts given as token ids (``resid-*`` kinds) and texts (``minilm``).

    Args:
        model: the HookedTransformer (unused for ``minilm``).
        token_seqs: each prompt's tokens, exactly as the model sees them.
        texts: each prompt's full text (chat template included), for ``minilm``.
        kind: one of :data:`~w2s_lens.choices.EMBEDDINGS`.
        layer: residual layer for the ``resid-*`` kinds (default: :func:`default_layer`).
        batch_size: prompts per forward pass.

    Returns:
        float32 array ``[n_prompts, dim]``.

    Example:
        >>> X = embed_prompts(model, [ex.tokens], [ex.text], "minilm")  # doctest: +SKIP
    """
    member = embedding_kind(kind)
    if len(token_seqs) == 0 or len(token_seqs) != len(texts):
        raise ValueError(f"need one text per prompt and at least one prompt, got "
                         f"{len(token_seqs)} token sequences and {len(texts)} texts")
    if member.reads_residual:
        if model is None:
            raise ValueError(f"embedding {kind!r} needs the model")
        layer = default_layer(model) if layer is None else int(layer)
    return _EMBEDDERS[member](model, token_seqs, texts, layer, batch_size)


def embed_examples(
    model: HookedTransformer | None,
    examples: Sequence[SteeringExample],
    kind: str = "resid-last",
    layer: int | None = None,
    batch_size: int = 8,
) -> Float[np.ndarray, "n dim"]:
    """Embed each example's prompt (unsteered): :func:`embed_prompts` on its tokens and text.

    Example:
        >>> X = embed_examples(model, examples, kind="resid-last", layer=12)  # doctest: +SKIP
    """
    if len(examples) == 0:
        raise ValueError("no examples to embed")
    return embed_prompts(model, [ex.tokens for ex in examples], [ex.text for ex in examples],
                         kind, layer, batch_size)
