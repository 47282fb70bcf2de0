"""Evaluation: the W2S comparison, from settings to numbers.

Owns the typed settings (:mod:`.config`), the run directory and its one reader and writer
(:mod:`.rundir`), the pipeline (vectors, cross-fitted training sweeps, routers, test sweeps;
:mod:`.pipeline`), the statistics (:mod:`.metrics`), plain-text summaries (:mod:`.summary`), the
jobs each command runs (:mod:`.jobs`) and the cross-dataset table (:mod:`.table`).

May import every package below it (:mod:`w2s_lens.data`, ``models``, ``steering``,
``controls``, ``sweep``, ``routing``), the top-level ``choices``, ``artifacts``, ``assets``, and
itself; never :mod:`w2s_lens.report` or the command line.
"""
