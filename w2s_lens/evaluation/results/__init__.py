"""The typed result of an evaluation: :class:`EvaluationResult` (:mod:`.typed`) over the
``results.json`` schema (its nodes in :mod:`.nodes`, the headroom part in :mod:`.headroom`),
its long tables and text (:mod:`.frames`), the stored headroom reading (:mod:`.evidence`) and
the per-item table written beside it (:mod:`.item_table`).

May import the packages below :mod:`w2s_lens.evaluation` and, within it, ``config``,
:mod:`~w2s_lens.evaluation.stats` and :mod:`~w2s_lens.evaluation.storage`.
"""

from w2s_lens.evaluation.results.headroom import Headroom, Reading
from w2s_lens.evaluation.results.nodes import RouterComparison, Summary
from w2s_lens.evaluation.results.typed import (
    SCHEMA_VERSION,
    EvaluationResult,
    MethodResult,
    VariantResult,
    as_result,
    results_dict,
)

__all__ = ["SCHEMA_VERSION", "EvaluationResult", "Headroom", "MethodResult", "Reading",
           "RouterComparison", "Summary", "VariantResult", "as_result", "results_dict"]
