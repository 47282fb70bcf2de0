"""llama.cpp control vectors: w2s-lens vectors to and from a control-vector GGUF.

The format (the GGUF repeng and ``llama-cvector-generator`` write):
``general.architecture = "controlvector"``, ``controlvector.model_hint``,
``controlvector.layer_count`` and one F32 1-D tensor ``direction.N`` per layer. What
llama.cpp does with them (ggml-org/llama.cpp):

* ``common/common.cpp``, ``common_control_vector_load_one``: parses ``N`` from
  ``direction.N``, rejects ``N < 0`` and ``N == 0`` ("invalid (zero) direction tensor layer
  index"), requires F32, 1-D and one common length, and stores the tensor at
  ``data[n_embd * (N - 1)]`` ("layer 1 at [0]"), scaled by the file's strength. The loader
  reads no metadata key.
* ``src/llama-adapter.cpp``, ``llama_adapter_cvec::apply``: copies ``data[n_embd * (il - 1)]``
  into ``tensors[il]`` for ``il = 1 .. n_layer - 1`` ("buffer doesn't have data for layer 0");
  ``tensor_for(il)`` returns nothing for ``il`` outside ``[layer_start, layer_end]`` or
  ``>= n_layer``; ``apply_to(ctx, cur, il)`` adds ``tensors[il]`` to ``cur``.
* ``src/llama-graph.cpp``, ``llm_graph_context::build_cvec(cur, il)`` calls ``apply_to``, and
  each model graph (e.g. ``src/models/llama.cpp``) calls it at the end of block ``il`` (0-based),
  after the FFN residual add: ``cur = ggml_add(ctx0, cur, ffn_inp); cur = build_cvec(cur, il);
  cb(cur, "l_out", il);``. It is added at every position, prompt included.

So ``direction.N`` is added to the output of block ``N`` (0-based), ``N`` in
``1 .. n_layers - 1``: TransformerLens ``resid_post`` at layer N, or ``resid_pre`` at layer
N + 1. The output of block 0 (``resid_pre`` 1, ``resid_post`` 0) cannot be steered by
llama.cpp and is refused on export. Steering there equals w2s-lens' ``positions="all"``.
Files written here also carry ``w2s_lens.metadata`` (JSON: hook, layers, multiplier and the
vectors' metadata), which llama.cpp ignores and :func:`from_control_vector_gguf` restores.

Layer indexing: :mod:`w2s_lens.steering.interop_layers`.

Example:
    >>> to_control_vector_gguf(vecs, "syc.gguf", layers=[14], multiplier=2.0)  # doctest: +SKIP
    >>> back = from_control_vector_gguf("syc.gguf", model=model)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformer_lens import HookedTransformer

from w2s_lens.artifacts.files import atomic_path
from w2s_lens.artifacts.provenance import ArtifactMismatch, library_versions
from w2s_lens.steering.interop_layers import (
    LayerMappingError,
    block_to_tl,
    check_d_model,
    select_layers,
    tl_to_block,
)
from w2s_lens.steering.vectors import SteeringVectors, model_name

__all__ = ["DIRECTION_PREFIX", "GGUF_ARCH", "META_KEY", "from_control_vector_gguf",
           "to_control_vector_gguf"]

logger = logging.getLogger(__name__)

#: ``general.architecture`` of a llama.cpp control-vector file.
GGUF_ARCH = "controlvector"
#: The extra metadata key written by w2s-lens (ignored by llama.cpp).
META_KEY = "w2s_lens.metadata"
DIRECTION_PREFIX = "direction."


def to_control_vector_gguf(
    vectors: SteeringVectors,
    path: str | os.PathLike,
    layers: Sequence[int] | None = None,
    model_hint: str | None = None,
    multiplier: float = 1.0,
) -> Path:
    """Write a llama.cpp control vector (``--control-vector FILE``), atomically.

    Each chosen layer's ``multiplier * v`` becomes ``direction.N`` with N the decoder block
    whose output it is added to (module docstring): ``resid_pre`` layer l -> ``direction.{l-1}``,
    ``resid_post`` layer l -> ``direction.{l}``. llama.cpp adds every direction of the file at
    once, at every token; export one layer (``layers=[best]``) for a fixed or routed layer.

    Args:
        vectors: w2s-lens vectors at ``resid_pre`` or ``resid_post``.
        path: the ``.gguf`` file to write.
        layers: the layers to export (default: all stored that llama.cpp can steer).
            Naming a layer it cannot steer (``resid_pre`` 0 or 1, ``resid_post`` 0) is an
            error; with ``layers=None`` those are skipped with a warning.
        model_hint: ``controlvector.model_hint`` (cosmetic for llama.cpp); default: the
            vectors' model name.
        multiplier: baked into the written vectors (recorded in ``w2s_lens.metadata``).

    Returns:
        ``path``.

    Example:
        >>> to_control_vector_gguf(vecs, "v.gguf", layers=[14], multiplier=1.5)  # doctest: +SKIP
        PosixPath('v.gguf')
    """
    import gguf

    chosen = select_layers(vectors, layers)
    blocks: dict[int, int] = {}
    for layer in chosen:
        try:
            block = tl_to_block(layer, vectors.hook)
            if block == 0:
                raise LayerMappingError(
                    f"layer {layer} at {vectors.hook} is the output of decoder block 0, which "
                    f"llama.cpp never steers (it rejects direction.0)")
        except LayerMappingError:
            if layers is None and vectors.hook != "resid_mid":
                logger.warning("skipping layer %d: llama.cpp cannot steer it", layer)
                continue
            raise
        blocks[layer] = block
    if not blocks:
        raise LayerMappingError("none of the chosen layers can be steered by llama.cpp")
    hint = model_hint if model_hint is not None else str(vectors.metadata.get("model"))
    meta = {**vectors.metadata, "hook": vectors.hook, "layers": list(blocks),
            "multiplier": float(multiplier)}
    with atomic_path(path) as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch=GGUF_ARCH)
        writer.add_string(f"{GGUF_ARCH}.model_hint", hint)
        writer.add_int32(f"{GGUF_ARCH}.layer_count", len(blocks))
        writer.add_string(META_KEY, json.dumps(meta, default=str))
        for layer, block in sorted(blocks.items(), key=lambda kv: kv[1]):
            vec = (vectors.vector(layer) * float(multiplier)).numpy().astype(np.float32)
            writer.add_tensor(f"{DIRECTION_PREFIX}{block}", vec)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return Path(path)


def _field_str(reader: Any, key: str) -> str | None:
    field = reader.fields.get(key)
    return None if field is None else str(field.contents())


def _read_directions(path: Path) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # gguf raises ValueError / struct errors on bad files
        raise ArtifactMismatch(f"{path} is not a readable GGUF file ({exc})") from exc
    arch = _field_str(reader, "general.architecture")
    if arch is not None and arch != GGUF_ARCH:
        raise ArtifactMismatch(f"{path} has general.architecture={arch!r}, not a control "
                               f"vector ({GGUF_ARCH!r})")
    directions: dict[int, np.ndarray] = {}
    width = None
    for t in reader.tensors:
        prefix, _, suffix = t.name.partition(".")
        if prefix != "direction" or not suffix.isdigit():
            raise ArtifactMismatch(f"{path}: tensor {t.name!r} is not named direction.<layer>")
        block = int(suffix)
        if block == 0:
            raise ArtifactMismatch(f"{path}: tensor {t.name!r} has layer index 0, which "
                                   f"llama.cpp rejects (directions start at 1)")
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise ArtifactMismatch(f"{path}: tensor {t.name!r} is {t.tensor_type.name}, "
                                   f"not F32")
        if len(t.shape) != 1:
            raise ArtifactMismatch(f"{path}: tensor {t.name!r} is not one-dimensional")
        n = int(t.n_elements)
        if width is not None and n != width:
            raise ArtifactMismatch(f"{path}: tensor {t.name!r} has {n} elements, the others "
                                   f"{width}")
        width = n
        directions[block] = np.array(t.data, dtype=np.float32).reshape(-1)
    if not directions:
        raise ArtifactMismatch(f"{path} holds no direction tensors")
    info: dict[str, Any] = {"model_hint": _field_str(reader, f"{GGUF_ARCH}.model_hint")}
    raw = _field_str(reader, META_KEY)
    if raw is not None:
        try:
            info["w2s_lens"] = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ArtifactMismatch(f"{path}: {META_KEY} is not valid JSON") from exc
    return directions, info


def from_control_vector_gguf(
    path: str | os.PathLike,
    model: HookedTransformer | None = None,
    hook: str = "resid_pre",
) -> SteeringVectors:
    """Read a llama.cpp control-vector GGUF as w2s-lens vectors at ``hook``.

    ``direction.N`` (added by llama.cpp to the output of block N) becomes ``resid_post``
    layer N or ``resid_pre`` layer N + 1. Vectors are read as stored (any multiplier baked
    in at export stays in; the metadata records it).

    Args:
        path: the ``.gguf`` file (repeng, llama-cvector-generator or
            :func:`to_control_vector_gguf`).
        model: the HookedTransformer to use them with: the width and layer indices are
            checked against it, a file written by w2s-lens for another model is refused, and
            its name is recorded (needed by :meth:`SteeringVectors.apply`).
        hook: ``"resid_pre"`` (default) or ``"resid_post"``.

    Raises:
        ArtifactMismatch: not a control-vector GGUF, a tensor that is not ``direction.N``
            with N >= 1 and F32 1-D, unequal widths, a width other than the model's d_model,
            or a file made by w2s-lens for another model.
        LayerMappingError: a direction index the model does not have (N >= n_layers), or
            the last block at ``resid_pre``.

    Example:
        >>> vecs = from_control_vector_gguf("h.gguf", model, "resid_post")  # doctest: +SKIP
        >>> vecs.layers  # doctest: +SKIP
        [1, 2, ..., 29]
    """
    if hook not in ("resid_pre", "resid_post"):
        raise LayerMappingError(f"control vectors can be read at resid_pre or resid_post, not "
                                f"{hook!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    directions, info = _read_directions(path)
    width = next(iter(directions.values())).shape[0]
    check_d_model(width, model, str(path))
    n_layers = None if model is None else int(model.cfg.n_layers)
    rows = {}
    for block, vec in directions.items():
        try:
            rows[block_to_tl(block, hook, n_layers)] = torch.from_numpy(vec.copy())
        except LayerMappingError as exc:
            raise LayerMappingError(f"{path}: direction.{block}: {exc}") from exc
    layers = sorted(rows)
    saved = dict(info.get("w2s_lens") or {})
    meta: dict[str, Any] = {k: v for k, v in saved.items()
                            if k not in ("hook", "layers", "multiplier")}
    if model is not None and saved.get("model") not in (None, model_name(model)):
        raise ArtifactMismatch(f"{path} was written by w2s-lens for model={saved['model']!r}, "
                               f"but model={model_name(model)!r} was given")
    meta.update({
        "model": model_name(model) if model is not None else saved.get("model"),
        "d_model": width,
        "model_hint": info["model_hint"],
        "source": f"llama.cpp control vector {path.name}",
        "multiplier_baked_in": float(saved.get("multiplier", 1.0)),
    })
    meta.setdefault("method", "control-vector")
    meta.setdefault("versions", library_versions())
    return SteeringVectors(torch.stack([rows[x] for x in layers]), layers, hook, meta)
