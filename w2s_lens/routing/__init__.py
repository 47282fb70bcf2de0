"""Routing: from an input's embedding to the layer to steer it at.

Owns the training labels (each input's best layer; :mod:`.labels`), prompt embeddings
(:mod:`.embeddings`), the routers (:mod:`.routers`: ``LayerRouter``; their estimators and
cross-validation in :mod:`.estimators` and :mod:`.knn`; their pickle-free storage in
:mod:`.persistence`) and the W2S inference bundle that routes and steers a new prompt
(:mod:`.bundle`: ``W2S``).

May import: :mod:`w2s_lens.data`, :mod:`w2s_lens.models`, :mod:`w2s_lens.steering`,
:mod:`w2s_lens.sweep`, the top-level modules (``choices``, ``artifacts``, ``assets``) and itself.
"""
