"""Steering: adding vectors to the residual stream, and making the vectors.

Owns the steering hook as a context manager (:mod:`.hooks`), residual caching
(:mod:`.activations`), CAA vectors and per-input vectors (:mod:`.vectors`), vectors from custom
contrast pairs (:mod:`.pairs`), L2S steerers (:mod:`.l2s`, with their hyper-parameters in
:mod:`.l2s_config`, the stacked MLPs and training loop in :mod:`.l2s_training` and the steerer
artifact in :mod:`.l2s_steerer`), multiplier scales (:mod:`.scales`) and the exchange with
steering-vectors (:mod:`.interop`) and llama.cpp control vectors (:mod:`.interop_gguf`), over
the layer mapping of :mod:`.interop_layers`.

May import: :mod:`w2s_lens.data`, :mod:`w2s_lens.models`, the top-level modules
(``choices``, ``artifacts``, ``assets``) and itself.
"""
