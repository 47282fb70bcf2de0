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
* at test time the model is steered with ``λ · g_l(h(x))``
  (:meth:`~w2s_lens.steering.l2s.steerer.L2SSteerer.apply`).

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

The parts, each name imported from its own module:

* :mod:`.config`: the hyper-parameters, :class:`~w2s_lens.steering.l2s.config.L2SConfig`;
* :mod:`.network`: the stacked per-layer MLPs (``StackedMLP``) and their files,
  ``l2s.safetensors`` + ``l2s.json`` (``write_networks``, ``read_networks``);
* :mod:`.training`: how they are trained: the split by item, the standardisation and the loop
  with per-layer early stopping;
* :mod:`.steerer`: the steerer itself, :class:`~w2s_lens.steering.l2s.steerer.L2SSteerer`
  (fit, predict, steer with, save, load), trained on a model by
  :func:`~w2s_lens.steering.l2s.steerer.train_l2s`, applied to the ``h(x)`` of
  :func:`~w2s_lens.steering.l2s.steerer.prompt_features`.

May import what :mod:`w2s_lens.steering` may (``data``, ``models``, the top-level modules) and
the rest of :mod:`w2s_lens.steering`.

Example:
    >>> import torch
    >>> from w2s_lens.steering.l2s.config import L2SConfig
    >>> from w2s_lens.steering.l2s.steerer import L2SSteerer
    >>> X = torch.randn(200, 8); W = torch.randn(2, 8, 4)
    >>> Y = torch.einsum("nd,ldm->nlm", X, W)                  # input-dependent targets
    >>> s = L2SSteerer(L2SConfig(hidden=64, epochs=50)).fit(X, Y, layers=[3, 5])
    >>> s.predict(X).shape
    torch.Size([200, 2, 4])
"""
