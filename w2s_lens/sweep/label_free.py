"""Label-free first-order scores: every layer's effect on the behaviour without answer options.

Routing a new open-ended prompt cannot use answer options or which one matches. The label-free
score of layer l is ``∂(x_final · û)/∂λ_l`` at λ = 0: ``x_final`` the final residual (after the
last block, before the final norm) at the last prompt token, ``û`` the unit **behaviour
direction read at the last layer**: the mean difference of that same final residual between the
matching and the non-matching answers of the training contrast pairs
(:func:`behaviour_direction`, CAA's recipe at ``blocks.{n_layers-1}.hook_resid_post``). This
direction rather than the CAA vector of the last swept layer because (1) it lives in the
residual the readout reads (the unembedding sees the final residual); (2) it does not depend on
the layer grid, so a layer's score is the same whether 7 or all layers are candidates; (3) with
the last swept layer's own vector as the direction, that layer's score would be dominated by
its direct term ``v_l · û = |v_l|``, the same for every input. It costs one pass over the
training pairs, once. The final norm is left out: at λ = 0 it divides every layer's derivative
of one input by the same ``rms(x_final)``, so the per-input ranking of layers changes only
through its radial term. Same ``[n, L]`` output, same engines (the rows are the prompt from the
steering start; no continuation rows). A caveat the validation
(``analysis/first_order_validation.py``) measures: every layer's score includes the direct term
``c_l v_l · û``, the same for every input and growing with the vector's norm, so where it
dominates the label-free argmax is one late layer for all inputs (on SmolLM2-135M with toy CAA
vectors it rises steadily with depth).

Example:
    >>> u = behaviour_direction(model, vector_train)  # doctest: +SKIP
    >>> lf = label_free(model, caa_vectors, test_examples, u)  # doctest: +SKIP
    >>> lf.mirrored().steerability.argmax(axis=1)  # each item's best layer  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from w2s_lens.choices import DEFAULT_MULTIPLIERS, POSITIONS, PositionsName
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.vectors import InputVectors, SteeringVectors, train_caa
from w2s_lens.sweep.first_order import FirstOrderEngine, first_order_chunk, plan_batches
from w2s_lens.sweep.first_order_result import FirstOrderResult
from w2s_lens.sweep.runner import check_examples, steer_vectors, sweep_grid

__all__ = ["behaviour_direction", "label_free"]


def behaviour_direction(model: HookedTransformer, pairs: Sequence[SteeringExample],
                        batch_size: int = 8, progress: bool = False) -> Tensor:
    """The unit behaviour direction read at the last layer: the mean difference of the final
    residual (``blocks.{n_layers-1}.hook_resid_post``, before the final norm) between the
    matching and the non-matching answer of the contrast ``pairs`` (CAA's recipe, at the
    residual the readout reads), normalised to norm 1. One forward pass over the pairs.

    Example:
        >>> u = behaviour_direction(model, exs.vector_train)  # doctest: +SKIP
        >>> u.shape, float(u.norm())  # doctest: +SKIP
        (torch.Size([896]), 1.0)
    """
    last = model.cfg.n_layers - 1
    vec = train_caa(model, pairs, layers=[last], hook="resid_post", batch_size=batch_size,
                    progress=progress).vectors[0].float()
    norm = float(vec.norm())
    if not norm > 0:
        raise ValueError("the contrast pairs' final residuals do not differ: no direction")
    return vec / norm


def label_free(
    model: HookedTransformer,
    vectors: SteeringVectors | InputVectors,
    examples: Sequence[SteeringExample],
    direction: Float[Tensor, " d_model"],
    layers: Sequence[int] | None = None,
    positions: PositionsName = "from_last",
    layer_scale: Sequence[float] | None = None,
    engine: FirstOrderEngine = "fast",
    chunk_size: int = 8,
    max_tokens: int = 1024,
) -> FirstOrderResult:
    """Label-free first-order steerability: ``∂(x_final · û)/∂λ_l`` at λ = 0 for every
    example and layer, needing neither answer options nor which one matches.

    ``x_final`` is the final residual (after the last block, before the final norm) at the
    last prompt token, ``û = direction / |direction|`` (typically :func:`behaviour_direction`;
    the module docstring says why this direction). Steered as the sweep steers
    (``positions``: from the last prompt token on, or the whole prompt; the two give the same
    numbers here since nothing after the prompt is read). Only ``example.tokens`` is used, so
    letter and cloze examples alike; both letter orders of an item average in
    :meth:`FirstOrderResult.mirrored`.

    The other arguments (``model``, ``vectors``, ``examples``, ``layers``, ``positions``,
    ``layer_scale``, ``engine``, ``chunk_size``, ``max_tokens``) are as in
    :func:`~w2s_lens.sweep.first_order.first_order`.

    Args:
        direction: ``[d_model]`` the behaviour direction at the final residual.

    Returns:
        :class:`FirstOrderResult`: ``gradient`` ``[n_examples, n_layers]`` the label-free
        score (as a sweep's steerability, columns in ascending layer order), ``propensity``
        the unsteered projection ``x_final · û``; ``metadata["readout"] = "label-free"``.

    Example:
        >>> u = behaviour_direction(model, vector_train)  # doctest: +SKIP
        >>> lf = label_free(model, caa_vectors, test_examples, u).mirrored()  # doctest: +SKIP
        >>> lf.steerability.shape  # [n_items, n_layers]  # doctest: +SKIP
        >>> lf.steerability.argmax(axis=1)  # each item's label-free best layer  # doctest: +SKIP
    """
    check_examples(examples)
    if positions not in POSITIONS:
        raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
    vectors.check_model(model)
    u = torch.as_tensor(direction, dtype=torch.float32).flatten()
    if u.numel() != model.cfg.d_model or not float(u.norm()) > 0:
        raise ValueError(f"direction must be a non-zero [d_model={model.cfg.d_model}] vector, "
                         f"got shape {tuple(direction.shape)}")
    u = u / u.norm()
    per_input = isinstance(vectors, InputVectors)
    if per_input and vectors.ids != [ex.id for ex in examples]:
        raise ValueError("InputVectors.ids must be the examples' ids, in order")
    layers, scales = sweep_grid(vectors, layers, layer_scale)
    vecs = steer_vectors(vectors, layers, scales, len(examples))
    grads, props = [], []
    for lo, hi in plan_batches(examples, positions, None, chunk_size, max_tokens):
        g, p = first_order_chunk(model, vecs[lo:hi], layers, examples[lo:hi], positions,
                                 engine=engine, hook=vectors.hook, direction=u)
        grads.append(g)
        props.append(p)
    meta = {"model": vectors.metadata.get("model"), "hook": vectors.hook, "layers": layers,
            "positions": positions, "readout": "label-free", "layer_scale": scales,
            "engine": engine, "vector_kind": "per-input" if per_input else "per-layer",
            "read_at": f"blocks.{model.cfg.n_layers - 1}.hook_resid_post",
            "dtype": str(model.cfg.dtype).replace("torch.", "")}
    return FirstOrderResult(
        gradient=np.concatenate(grads), propensity=np.concatenate(props), layers=layers,
        multipliers=list(DEFAULT_MULTIPLIERS), ids=[ex.id for ex in examples],
        units=[ex.unit for ex in examples],
        matching_letters=[ex.matching_letter for ex in examples],
        groups=[ex.group for ex in examples], metadata=meta)
