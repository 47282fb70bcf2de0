"""Controls: hand-built synthetic models whose per-input best layer is known.

Owns the synthetic tasks and their examples (:mod:`.synthetic`) and their explicit weights
(:mod:`.weights`): the positive, null, letter, linear-readout and L2S controls that tell "no
per-input effect" from "a bug".

May import: :mod:`w2s_lens.data`, :mod:`w2s_lens.models`, :mod:`w2s_lens.steering`, the
top-level ``choices``, ``artifacts``, ``assets``, and itself.
"""
