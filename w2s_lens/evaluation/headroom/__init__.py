"""Is there anything to learn? The headroom diagnostics: retest agreement of the best layers,
the cross-validated oracle and the learning curve, as statistics (:mod:`.diagnostics`) and as
run by the pipeline, with their extra sweeps (:mod:`.run`); and two runs' headroom compared on
the same items, relative to each one's fixed effect (:mod:`.compare`, from their per-item
data: the ablations' question).

May import the packages below :mod:`w2s_lens.evaluation` and every part of it but
:mod:`w2s_lens.evaluation.pipeline` and :mod:`w2s_lens.evaluation.advice`.
"""
