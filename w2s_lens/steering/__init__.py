"""Steering: adding vectors to the residual stream, and making the vectors.

Owns the steering hook as a context manager (:mod:`.hooks`), residual caching
(:mod:`.activations`), CAA vectors and per-input vectors (:mod:`.vectors`), vectors from custom
contrast pairs (:mod:`.pairs`), L2S steerers (:mod:`.l2s`), multiplier scales (:mod:`.scales`)
and the exchange with steering-vectors and llama.cpp control vectors (:mod:`.interop`).

May import: :mod:`w2s_lens.data`, :mod:`w2s_lens.models`, the top-level modules
(``choices``, ``artifacts``, ``assets``) and itself.
"""
