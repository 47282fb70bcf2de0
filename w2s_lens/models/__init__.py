"""Models: getting a ``HookedTransformer`` (and the sentence encoder) onto the machine.

Owns the registry of embedded models and model loading with device and dtype
(:mod:`.loading`), assembling, verifying and converting embedded GGUF files
(:mod:`.gguf_convert`), and the MiniLM sentence encoder read from its wheel
(:mod:`.text_encoder`).

May import: :mod:`w2s_lens.data` (``check_model`` formats its prompts through the prompt owner),
the top-level :mod:`w2s_lens.choices`, :mod:`w2s_lens.artifacts`, :mod:`w2s_lens.assets`, and
itself.
"""
