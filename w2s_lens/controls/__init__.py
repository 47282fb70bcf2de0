"""Controls: hand-built synthetic models whose per-input best layer is known.

Owns the synthetic controls (:mod:`.synthetic`: the model and :func:`~.synthetic.build_control`),
their prompt task and examples (:mod:`.synthetic_task`), the kinds as circuits
(:mod:`.synthetic_kinds`) and their explicit weights (:mod:`.weights`): the positive, null,
letter, linear-readout, L2S and continuation controls that tell "no per-input effect" from
"a bug".

May import: :mod:`w2s_lens.data`, :mod:`w2s_lens.models`, the top-level ``choices``,
``artifacts``, ``assets``, and itself; not :mod:`w2s_lens.steering` (a separate part of the
same rank).
"""
