"""Steering: adding vectors to the residual stream, and making the vectors.

Owns the steering hook as a context manager (:mod:`.hooks`), residual caching
(:mod:`.activations`), CAA vectors and per-input vectors (:mod:`.vectors`), vectors from custom
contrast pairs (:mod:`.pairs`), L2S steerers (the package :mod:`.l2s`: their
hyper-parameters in :mod:`.l2s.config`, the stacked MLPs and their files in :mod:`.l2s.network`,
their training in :mod:`.l2s.training` and the steerer in :mod:`.l2s.steerer`), multiplier
scales (:mod:`.scales`) and the exchange with steering-vectors (:mod:`.interop`) and llama.cpp
control vectors (:mod:`.interop_gguf`), over the layer mapping of :mod:`.interop_layers`.

May import: :mod:`w2s_lens.data`, :mod:`w2s_lens.models`, the top-level modules
(``choices``, ``artifacts``, ``assets``) and itself.
"""
