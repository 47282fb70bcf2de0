"""The training pairs' contrasts, kept in the run directory so a resume does not recompute them.

The one forward pass over the training contrast pairs (:func:`~w2s_lens.steering.activations.
contrast_residuals`: the CAA vectors and L2S's targets) is written to
``RUN/contrasts.safetensors`` with ``RUN/contrasts.json``, which records the key it was made
for (a digest of the pairs' ids and tokens, the layers, the input layer, the hook, the batch
size and the model) and the SHA-256 of the tensor file. A resume with the same key reads the
tensors back, bit for bit what the pass computed, so the vectors and every sweep's fingerprint
stay the same; a different key, a missing or damaged file is recomputed (with one warning when
a file was there but failed its check).

The pass itself resumes too: every finished batch of sequences is kept in
``RUN/contrasts.parts/<key digest>/`` (:class:`ContrastParts`), so a run stopped inside the pass
(the 1.5B model's takes about half an hour of one core) starts again at the first batch it had
not finished, and the result is bit for bit the uninterrupted one (each batch is the same
prompts with the same padding). The parts are removed once ``contrasts.safetensors`` is written.

Example:
    >>> acts = cached_contrasts(rd, model, exs.vector_train, [3, 7], 12, 8)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors import safe_open
from torch import Tensor
from transformer_lens import HookedTransformer

from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.provenance import stamp
from w2s_lens.artifacts.tensors import load_tensors, save_tensors
from w2s_lens.assets import sha256_of
from w2s_lens.data.examples import SteeringExample
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.steering.activations import ContrastActivations, contrast_residuals
from w2s_lens.steering.vectors import model_name
from w2s_lens.sweep.chunks import short_digest

__all__ = ["CONTRASTS_FILE", "CONTRASTS_META", "CONTRASTS_PARTS", "ContrastParts",
           "cached_contrasts", "contrasts_key"]

log = logging.getLogger(__name__)

CONTRASTS_FILE = "contrasts.safetensors"
CONTRASTS_META = "contrasts.json"
#: the folder of an unfinished pass's batches (:class:`ContrastParts`)
CONTRASTS_PARTS = "contrasts.parts"


def _digest(value: Tensor) -> str:
    """SHA-256 of a tensor's bytes."""
    return hashlib.sha256(value.contiguous().numpy().tobytes()).hexdigest()


class ContrastParts:
    """The finished batches of one contrast pass, one safetensors file each
    (a :class:`~w2s_lens.steering.activations.BatchStore`).

    The folder is named by the digest of the pass's key (:func:`contrasts_key`), so batches of
    other pairs or settings are never read back; each file records its tensor's SHA-256, and a
    batch file that does not read, does not match its digest or has the wrong shape is run
    again.

    Example:
        >>> parts = ContrastParts(rd.path, key)  # doctest: +SKIP
        >>> acts = contrast_residuals(model, exs, [3], store=parts)  # doctest: +SKIP
    """

    def __init__(self, run_path: Path, key: dict[str, Any]) -> None:
        self.root = Path(run_path) / CONTRASTS_PARTS
        self.path = self.root / short_digest(key)
        self.read = 0

    def _file(self, index: int) -> Path:
        return self.path / f"batch-{index:05d}.safetensors"

    def load(self, index: int, shape: tuple[int, ...]) -> Tensor | None:
        """Batch ``index`` if it was kept with this shape and its recorded SHA-256 (else
        ``None``)."""
        f = self._file(index)
        if not f.is_file():
            return None
        try:
            with safe_open(str(f), framework="pt") as handle:
                digest = (handle.metadata() or {}).get("sha256")
                value = handle.get_tensor("resid")
        except Exception as exc:  # safetensors raises its own error types
            log.info("%s does not read (%s): running the batch again", f, exc)
            return None
        if digest != _digest(value):
            log.info("%s does not match its recorded SHA-256: running the batch again", f)
            return None
        if tuple(value.shape) != tuple(shape):
            log.info("%s holds shape %s, not %s: running the batch again", f,
                     tuple(value.shape), tuple(shape))
            return None
        self.read += 1
        return value

    def save(self, index: int, value: Tensor) -> None:
        """Keep batch ``index`` (atomically)."""
        self.path.mkdir(parents=True, exist_ok=True)
        value = value.detach().cpu().contiguous()
        save_tensors(self._file(index), {"resid": value}, metadata={"sha256": _digest(value)})

    def clear(self) -> None:
        """Remove every kept batch (of any key): the whole pass is written elsewhere now."""
        shutil.rmtree(self.root, ignore_errors=True)


def contrasts_key(model: HookedTransformer, examples: Sequence[SteeringExample],
                  layers: Sequence[int], input_layer: int, batch_size: int,
                  hook: str = "resid_pre") -> dict[str, Any]:
    """What the contrasts depend on (the batch size too: padding changes the last float bits).

    Example:
        >>> contrasts_key(model, exs, [3], 12, 8)["layers"]  # doctest: +SKIP
        [3]
    """
    return {"model": model_name(model), "layers": [int(x) for x in layers],
            "input_layer": int(input_layer), "hook": hook, "batch_size": int(batch_size),
            "pairs_digest": short_digest([[ex.id, list(ex.tokens), *map(list, ex.continuations)]
                                          for ex in examples])}


def _load(rd: RunDir, key: dict[str, Any]) -> ContrastActivations | None:
    meta_path, path = rd.path / CONTRASTS_META, rd.path / CONTRASTS_FILE
    if not meta_path.is_file():
        return None
    try:
        meta = read_json(meta_path)
        if meta.get("key") != key:
            log.info("%s was made for other pairs or settings: recomputing", meta_path)
            return None
        if not path.is_file() or sha256_of(path) != meta.get("sha256"):
            raise ValueError(f"{path} is missing or does not match its recorded SHA-256")
        t = load_tensors(path)
        return ContrastActivations(diffs=t["diffs"], prompt_resid=t["prompt_resid"],
                                   layers=list(meta["layers"]),
                                   input_layer=int(meta["input_layer"]), hook=meta["hook"],
                                   answer_resid_norms=t["answer_resid_norms"],
                                   ids=list(meta["ids"]), units=list(meta["units"]))
    except Exception as exc:  # any damage: recompute, and say so once
        warnings.warn(f"the cached training contrasts in {rd.path} failed their check ({exc}); "
                      "recomputing them", stacklevel=3)
        return None


def cached_contrasts(rd: RunDir | None, model: HookedTransformer,
                     examples: Sequence[SteeringExample], layers: Sequence[int],
                     input_layer: int, batch_size: int, progress: bool = False
                     ) -> ContrastActivations:
    """The contrasts of ``examples``: read from ``rd`` when it holds them for the same key,
    else computed (and written there when ``rd`` is given, resuming from the batches an
    interrupted pass kept there: :class:`ContrastParts`).

    Example:
        >>> acts = cached_contrasts(None, model, exs, [3, 7], 12, 8)  # doctest: +SKIP
    """
    key = contrasts_key(model, examples, layers, input_layer, batch_size)
    if rd is not None:
        found = _load(rd, key)
        if found is not None:
            log.info("training contrasts read from %s", rd.path / CONTRASTS_FILE)
            return found
    parts = None if rd is None else ContrastParts(rd.path, key)
    acts = contrast_residuals(model, examples, layers, input_layer=input_layer,
                              batch_size=batch_size, progress=progress, store=parts)
    if parts is not None and parts.read:
        log.info("training contrasts: %d batches read back from %s", parts.read, parts.path)
    if rd is not None:
        rd.path.mkdir(parents=True, exist_ok=True)
        save_tensors(rd.path / CONTRASTS_FILE, {
            "diffs": acts.diffs, "prompt_resid": acts.prompt_resid,
            "answer_resid_norms": acts.answer_resid_norms})
        write_json(rd.path / CONTRASTS_META, stamp({
            "key": key, "sha256": sha256_of(rd.path / CONTRASTS_FILE), "layers": acts.layers,
            "input_layer": acts.input_layer, "hook": acts.hook, "ids": acts.ids,
            "units": acts.units}))
        parts.clear()
    return acts
