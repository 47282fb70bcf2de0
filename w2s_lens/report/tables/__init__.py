"""Text and markdown tables from results: the printed summary of one run (:mod:`.summary`), the
cross-dataset table (:mod:`.cross_dataset`, its headroom columns in :mod:`.headroom_cells`) and
the powered study's table (:mod:`.study` gathers its rows, :mod:`.study_text` writes them).

May import :mod:`w2s_lens.evaluation` and the packages below it; never the command line.
"""
