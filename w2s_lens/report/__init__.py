"""Report: figures and the self-contained HTML report of a run.

Owns the plotly figures of sweeps (:mod:`.plots`) and of results (:mod:`.plots_results`), the
report's sections (:mod:`.sections`) and the page itself (:mod:`.html`: ``write_report``).

May import everything below it (``data`` … ``evaluation``, ``controls``) and the top-level
``choices``, ``artifacts``, ``assets``; only ``demo`` and ``cli`` sit above it.
"""
