"""Run storage: the run directory and its one reader and writer (:mod:`.rundir`: ``run.json``,
``results.json``, the sweeps), its sweep files (:mod:`.sweepfiles`), the lock that keeps a
second process out (:mod:`.runlock`), the cached training contrasts (:mod:`.contrast_cache`)
and the cached router-view features (:mod:`.feature_cache`).
The on-disk formats are stable: existing run directories resume.

May import the packages below :mod:`w2s_lens.evaluation` and, within it,
:mod:`w2s_lens.evaluation.config` and :mod:`w2s_lens.evaluation.stats`.
"""
