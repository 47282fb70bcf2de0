"""Sweep: how each input's answer moves when it is steered at every layer with every multiplier.

Owns the readouts (letter and cloze propensities, steerability slopes; :mod:`.readouts`), the
fast and naive engines (:mod:`.engines`; the fast engine's steered batches:
:mod:`.steered_rows`), the resumable sweep (:mod:`.runner`: ``run_sweep``),
its checked, self-healing chunk files (:mod:`.chunks`), its result (:mod:`.result`:
``SweepResult``, also importable from :mod:`.runner`) and the first-order steerability
(:mod:`.first_order`: every layer's slope from one forward and one backward pass; its
result :mod:`.first_order_result`) with
its label-free score for prompts without answer options (:mod:`.label_free`).

May import: :mod:`w2s_lens.data`, :mod:`w2s_lens.models`, :mod:`w2s_lens.steering`, the
top-level modules (``choices``, ``artifacts``, ``assets``) and itself.
"""
