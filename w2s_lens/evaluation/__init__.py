"""Evaluation: the W2S comparison, from settings to numbers.

Split by concern:

* the pipeline, at this level: the typed settings (:mod:`.config`, its parts in
  :mod:`.config_parts`), what a run evaluates on
  (:mod:`.split`: items, the train / test split, the formatted examples), the shared state of
  one run (:mod:`.context`), the vectors each method sweeps with (:mod:`.method_vectors`), the
  answers' form for the cloze diagnostic (:mod:`.forms`), the cost line before a long run
  (:mod:`.cost`), the pipeline itself (:mod:`.pipeline`: vectors, cross-fitted training
  sweeps, routers, test sweeps) and layer advice without a sweep from first-order
  steerability (:mod:`.advice`, its text in :mod:`.advice_text`), and a finished run's
  routers tuned again from its per-item data without a sweep (:mod:`.refit`);
* :mod:`.stats`: bootstrap intervals, the exact paired sign-flip test, verdicts, minimal
  detectable differences, Benjamini-Hochberg, router accuracies, the per-variant block;
* :mod:`.storage`: the run directory, its sweep files, its lock and the contrast cache;
* :mod:`.results`: the typed result (:class:`~w2s_lens.evaluation.results.EvaluationResult`),
  its long tables, the stored headroom reading and the per-item table;
* :mod:`.headroom`: the headroom diagnostics (retest, cross-validated oracle, learning curve),
  their run, and two runs' relative headroom compared on the same items.

Rendering (the printed tables, the cross-dataset and study tables) lives in
:mod:`w2s_lens.report`, the jobs each command runs in :mod:`w2s_lens.cli`.

May import every package below it (:mod:`w2s_lens.data`, ``models``, ``steering``,
``controls``, ``sweep``, ``routing``), the top-level ``choices``, ``artifacts``, ``assets``, and
itself (``config_parts``, ``config`` and ``stats`` → ``storage`` → ``results`` → the pipeline
and ``headroom``); never :mod:`w2s_lens.report` or the command line.
"""
