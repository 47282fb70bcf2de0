"""Models: getting a ``HookedTransformer`` (and the sentence encoder) onto the machine.

Owns, in the order a first load runs through them: the shared types and errors of embedded
models (:mod:`.embedded`), their registry and cache folders (:mod:`.registry`), device and
dtype resolution (:mod:`.devices`), fetching and verifying a GGUF file (:mod:`.gguf_file`),
dequantizing and converting it (:mod:`.gguf_convert`), the cached converted model and
reference copy (:mod:`.converted`), and the public :func:`~.loading.load_model`,
:func:`~.loading.load_hf_reference` and :func:`~.loading.check_model` (:mod:`.loading`); also
the MiniLM sentence encoder read from its wheel (:mod:`.text_encoder`).

May import: :mod:`w2s_lens.data` (``check_model`` formats its prompts through the prompt owner),
the top-level :mod:`w2s_lens.choices`, :mod:`w2s_lens.artifacts`, :mod:`w2s_lens.assets`, and
itself.
"""
