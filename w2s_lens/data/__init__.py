"""Data: everything about the inputs before a model sees them.

Owns A/B and open-ended items (:mod:`.items`), the file layouts they are read from
(:mod:`.formats`), finding and loading datasets (:mod:`.datasets`), the datasets that come with
w2s-lens (:mod:`.samples`: the embedded sycophancy set and the shipped corrigible-neutral-HHH
sample under ``samples/``), deduplication and splits (:mod:`.splits`), the out-of-distribution
behaviour sentences (:mod:`.behaviours`), chat-formatted prompts (:mod:`.prompts`, the one owner
of prompt text, built from :mod:`.chat`, :mod:`.letters`, :mod:`.cloze` and
:mod:`.prompt_base`) and the tokenised unit every later stage works on,
:class:`~w2s_lens.data.examples.SteeringExample` (:mod:`.examples`).

May import: :mod:`w2s_lens.choices`, :mod:`w2s_lens.artifacts`, :mod:`w2s_lens.assets` and
itself. Nothing else of w2s-lens.
"""
