"""Report: figures and the self-contained HTML report of a run.

Owns the plotly figures of sweeps (:mod:`.plots_inputs` and :mod:`.plots_layers` on
:mod:`.plots_base`), of results (:mod:`.plots_results`) and of the
headroom diagnostics (:mod:`.plots_headroom`) and of the powered study (:mod:`.plots_study`,
with its own page in :mod:`.study_report`), of ``w2s-lens advise`` (:mod:`.plots_advice`,
with its files), the report's pieces (:mod:`.formatting`, the
readings of results in :mod:`.readings`, the results tables in :mod:`.results_tables`, the
"Is there anything to learn?" section in :mod:`.headroom_section`, the other sections in
:mod:`.sections`) and the page itself (:mod:`.html`: ``write_report``); and the text and
markdown tables (:mod:`.tables`: the printed summary of a run, the cross-dataset table, the
powered study's table).

May import everything below it (``data`` … ``evaluation``, ``controls``) and the top-level
``choices``, ``artifacts``, ``assets``; only ``demo`` and ``cli`` sit above it.
"""
