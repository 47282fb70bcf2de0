"""Evaluation: the W2S comparison, from settings to numbers.

Owns the typed settings (:mod:`.config`), the run directory and its one reader and writer
(:mod:`.rundir`, its sweep files in :mod:`.sweepfiles`), the pipeline (:mod:`.pipeline` on
:mod:`.context` and :mod:`.method_vectors`: vectors, cross-fitted training sweeps, routers,
test sweeps), the statistics (:mod:`.metrics` for the per-variant block, :mod:`.bootstrap`
for intervals, :mod:`.paired` for the exact sign-flip test, verdicts, minimal detectable
differences and the Benjamini-Hochberg count, :mod:`.accuracy` for router accuracies), the
answers' form for the cloze diagnostic (:mod:`.forms`), the headroom diagnostics (retest,
cross-validated oracle, learning curve; :mod:`.headroom`), plain-text summaries
(:mod:`.summary`), the jobs each command runs (:mod:`.jobs`) and the cross-dataset table
(:mod:`.table_rows` builds it, :mod:`.table` runs it, serially or on Ray), and the powered
study's table over its planned rows (:mod:`.study`: planned against used sizes, "not run"
rows, Benjamini-Hochberg per study row); layer advice without a sweep from first-order
steerability, verified against a real sweep on request (:mod:`.advice`, its text in
:mod:`.advice_text`).

May import every package below it (:mod:`w2s_lens.data`, ``models``, ``steering``,
``controls``, ``sweep``, ``routing``), the top-level ``choices``, ``artifacts``, ``assets``, and
itself; never :mod:`w2s_lens.report` or the command line.
"""
