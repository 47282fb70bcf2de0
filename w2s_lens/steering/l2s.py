"""L2S (Learn-to-Steer): predict an input-specific steering vector from the input itself.

Parekh et al. 2025 ("Learning to Steer: Input-dependent Steering for Multimodal LLMs",
arXiv 2508.12815), here for A/B contrast pairs:

* the **prompt-to-steer (P2S)** vector of a training input x at layer l is
  ``resid_l(x + matching answer) - resid_l(x + non-matching answer)`` at the answer position
  (:func:`w2s_lens.steering.activations.contrast_residuals`, ``.diffs``);
* **CAA is the mean P2S vector**: ``mean_x P2S_l(x)`` is exactly what
  :func:`w2s_lens.steering.vectors.train_caa` returns (the tests check this to 1e-5);
* a small 2-layer MLP ``g_l`` per steered layer learns ``h(x) -> P2S_l(x)``, where ``h(x)`` is
  the residual at the prompt's last token at ``input_layer`` (the input without its answer);
* at test time the model is steered with ``λ · g_l(h(x))`` (:meth:`L2SSteerer.apply`).

Design. Inputs are standardised with the training statistics. Each ``g_l`` predicts the
deviation from the training mean of the P2S vectors, in units of their spread:
``g_l(h) = mean_l + scale_l · MLP_l(standardise(h))`` with the MLP's output layer initialised
to zero, so the untrained steerer *is* CAA (fitted on the training part). Losses are therefore
"fraction of P2S variance unexplained" (1.0 = the CAA mean). The MLPs of all layers are trained
together as one stacked network, but they do not interact: the loss is a sum of per-layer
terms, AdamW acts per parameter, each MLP's initialisation is seeded by its layer number, and a
layer that has stopped no longer updates its best weights, so each MLP ends as it would if
trained alone (a test checks this). Early stopping is per layer, on a validation part of the
training data (split by item, so both letter orders of an item fall on the same side); each
layer keeps its best validation epoch (epoch 0, the CAA mean, included).

The parts: the hyper-parameters (:mod:`w2s_lens.steering.l2s_config`), the stacked MLPs and
their training loop (:mod:`w2s_lens.steering.l2s_training`), the steerer artifact with its
``l2s.safetensors`` + ``l2s.json`` files (:mod:`w2s_lens.steering.l2s_steerer`); this module
extracts the features and targets from a model (:func:`prompt_features`, :func:`train_l2s`) (import
the others' names from their own modules).

Example:
    >>> import torch
    >>> X = torch.randn(200, 8); W = torch.randn(2, 8, 4)
    >>> Y = torch.einsum("nd,ldm->nlm", X, W)                  # input-dependent targets
    >>> s = L2SSteerer(L2SConfig(hidden=64, epochs=50)).fit(X, Y, layers=[3, 5])
    >>> s.predict(X).shape
    torch.Size([200, 2, 4])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.activations import ContrastActivations, cache_residuals, contrast_residuals
from w2s_lens.steering.l2s_config import L2SConfig
from w2s_lens.steering.l2s_steerer import L2SSteerer
from w2s_lens.steering.vectors import model_name

__all__ = ["prompt_features", "train_l2s"]


def prompt_features(
    model: HookedTransformer,
    token_seqs: Sequence[Sequence[int]],
    input_layer: int,
    hook: str = "resid_pre",
    batch_size: int = 8,
) -> Float[Tensor, "n d_model"]:
    """``h(x)``: the residual at ``input_layer`` at each prompt's last token.

    Use it for prompts of any format (e.g. a cloze prompt of a test item).

    Example:
        >>> X = prompt_features(model, [ex.tokens for ex in test], input_layer=12)  # doctest: +SKIP
    """
    return cache_residuals(model, token_seqs, [input_layer], [-1] * len(token_seqs), hook=hook,
                           batch_size=batch_size)[:, 0]


def train_l2s(
    model: HookedTransformer,
    examples: Sequence[SteeringExample],
    layers: Sequence[int] | None = None,
    config: L2SConfig | None = None,
    hook: str = "resid_pre",
    dataset: str | None = None,
    progress: bool = False,
    batch_size: int = 8,
) -> tuple[L2SSteerer, ContrastActivations]:
    """Compute P2S targets and ``h(x)`` in one pass per sequence, then fit an L2S steerer.

    Rows of one item (both letter orders) stay on one side of the validation split. The
    returned activations give the CAA vectors too: ``acts.mean_diff()``.

    Args:
        model: the HookedTransformer.
        examples: training contrast pairs (both letter orders recommended, as for CAA).
        layers: steered layers (default: all), ascending.
        config: :class:`L2SConfig`; ``input_layer=None`` becomes ``n_layers // 2``.
        hook: residual hook of the targets, of ``h(x)`` and of steering.
        dataset: recorded in the metadata.
        progress: progress bars.
        batch_size: sequences per forward pass.

    Example:
        >>> steerer, acts = train_l2s(model, fmt.format_many(balanced(train)))  # doctest: +SKIP
        >>> steerer.save("runs/l2s")  # doctest: +SKIP
    """
    config = config or L2SConfig()
    acts = contrast_residuals(model, examples, layers=layers, hook=hook,
                              input_layer=config.input_layer, batch_size=batch_size,
                              progress=progress)
    config = replace(config, input_layer=acts.input_layer)
    steerer = L2SSteerer(config, model_name=model_name(model), hook=hook, dataset=dataset)
    steerer.fit(acts.prompt_resid, acts.diffs, acts.layers, groups=acts.units, progress=progress)
    steerer.metadata["n_pairs"] = len(examples)
    return steerer, acts
