"""Every file w2s-lens writes or reads in a run directory goes through this package.

One format version for every artifact, one error type for every mismatch (subclasses
allowed), and atomic writes (write to a temporary file in the same folder, then rename), so an
interrupted or refused run never leaves a half-written file behind. Files are created with the
process umask, as ``open`` would, and safetensors headers are written with sorted metadata, so
identical runs give byte-identical files. Nothing here reads or writes pickles: nothing a user
loads may run code.

The modules, one topic each:

* :mod:`~w2s_lens.artifacts.provenance`: :data:`~w2s_lens.artifacts.provenance.FORMAT_VERSION`,
  :class:`~w2s_lens.artifacts.provenance.ArtifactMismatch`; ``stamp`` adds the format version
  and library versions to metadata, ``check_format`` refuses another format with a message
  saying how to redo the artifact, ``check_metadata`` refuses an artifact made for another
  model, hook, layer set, ...;
* :mod:`~w2s_lens.artifacts.files`: ``atomic_path``, ``write_text``, and ``missing_file``
  (the error for a missing file, saying where it may be);
* :mod:`~w2s_lens.artifacts.json_files`: ``write_json`` / ``read_json`` (NaN and infinity
  written as null, with a warning), ``write_jsonl`` / ``read_jsonl``;
* :mod:`~w2s_lens.artifacts.tensors`: ``save_tensors`` / ``load_tensors`` (safetensors, torch
  or numpy, sorted header metadata);
* :mod:`~w2s_lens.artifacts.seals`: ``seal`` records, in a JSON artifact, the SHA-256 of the
  files it describes and of its own content, and ``check_seal`` refuses an artifact whose files
  or values changed since (one written before seals existed loads with an
  :class:`~w2s_lens.artifacts.seals.IntegrityWarning`). File digests: ``w2s_lens.assets.sha256_of``.

May import: :mod:`w2s_lens.assets` and itself (it sits under every other part of the
package).
"""
