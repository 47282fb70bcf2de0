"""The statistics of the comparison, pure functions of numbers: bootstrap intervals
(:mod:`.bootstrap`), the exact paired sign-flip test, verdicts, minimal detectable differences
and the Benjamini-Hochberg count (:mod:`.paired`), router accuracies (:mod:`.accuracy`) and the
per-variant block of fixed vs W2S vs oracle (:mod:`.metrics`).

May import :mod:`w2s_lens.routing` (best-layer labels) and the packages below it; within
:mod:`w2s_lens.evaluation`, only itself.
"""
