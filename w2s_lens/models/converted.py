"""Embedded GGUF models, stage 3: the cached converted model and the cached reference copy.

:func:`convert_gguf` runs the earlier stages (:mod:`w2s_lens.models.gguf_file`,
:mod:`w2s_lens.models.gguf_convert`) once and :func:`write_converted` caches the result as a
folder (``model.safetensors``, ``cfg.json``, ``tokenizer/``), always in float32;
:func:`converted_is_valid` tells whether such a folder is complete and current,
:func:`converted_problem` whether it is also intact (``cfg.json`` is sealed with
:func:`w2s_lens.artifacts.seals.seal`: the SHA-256 of every file of the folder and of its
own content, written at conversion; a damaged folder is converted again with one
:class:`CacheWarning`), and
:func:`load_converted` builds the :class:`~transformer_lens.HookedTransformer` from it in the
requested dtype and device, in seconds. :func:`load_reference` keeps the dequantized
transformers model (for :func:`~w2s_lens.models.loading.check_model`) the same way. Nothing
here executes code from a file: weights are safetensors, configs JSON.

Example:
    >>> from w2s_lens.models.registry import EMBEDDED_MODELS, model_cache_dir
    >>> entry = EMBEDDED_MODELS["smollm2-135m-instruct"]
    >>> convert_gguf(entry, model_cache_dir(entry.name))  # doctest: +SKIP
    >>> model = load_converted(model_cache_dir(entry.name), entry)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import gc
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.artifacts.seals import INTEGRITY_KEY, check_seal, seal
from w2s_lens.artifacts.tensors import load_tensors, save_tensors
from w2s_lens.models.embedded import CACHE_VERSION, EmbeddedModel, ModelLoadError, fix_tokenizer
from w2s_lens.models.gguf_convert import convert_hf_model, hf_from_gguf

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "CacheWarning",
    "convert_gguf",
    "converted_is_valid",
    "converted_problem",
    "load_converted",
    "load_reference",
    "write_converted",
]

logger = logging.getLogger(__name__)


#: How :func:`converted_problem` describes a folder of an older cache format (not damage).
STALE = "is of another cache format"


class CacheWarning(UserWarning):
    """A cached converted model failed its integrity check and is converted again."""


def _folder_files(folder: Path) -> list[str]:
    """The files of a converted folder that ``cfg.json`` seals (relative POSIX paths)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name != "cfg.json" and not p.name.startswith("."))


def write_converted(
    out_dir: Path,
    state: dict[str, torch.Tensor],
    tokenizer: PreTrainedTokenizerBase,
    meta: dict[str, Any],
) -> None:
    """Write a converted model folder atomically (built in ``<out_dir>.partial``, then renamed).

    ``meta`` must hold ``name``, ``cfg`` (from
    :func:`~w2s_lens.models.gguf_convert.tl_config_dict`) and ``tied_unembed``;
    ``w2s_lens_format`` and the seal (digests of every file, see :func:`converted_problem`) are
    added.

    Example:
        >>> meta = {"name": "tiny", "cfg": cfg_dict, "tied_unembed": tied}  # doctest: +SKIP
        >>> write_converted(out_dir, state, tokenizer, meta)  # doctest: +SKIP
    """
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_tensors(
        tmp / "model.safetensors", state, metadata={"w2s_lens_format": str(CACHE_VERSION)}
    )
    tokenizer.save_pretrained(str(tmp / "tokenizer"))
    write_json(tmp / "cfg.json",
               seal({"w2s_lens_format": CACHE_VERSION, **meta}, tmp, _folder_files(tmp)))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.replace(out_dir)


def convert_gguf(entry: EmbeddedModel, out_dir: Path, download: bool = True) -> None:
    """Dequantize ``entry``'s GGUF and write the converted float32 folder ``out_dir``.

    Raises:
        AssetError: the GGUF cannot be had or is not the pinned file.
        ModelLoadError: the GGUF's RoPE base differs from the registry's.

    Example:
        >>> convert_gguf(entry, model_cache_dir(entry.name))  # doctest: +SKIP
    """
    t0 = time.time()
    logger.info("converting %s (one-time): fetching and verifying its GGUF, dequantizing it "
                "to float32 with transformers", entry.name)
    hf_model, tokenizer = hf_from_gguf(entry, download=download)
    state, cfg_dict, tied = convert_hf_model(hf_model, entry.name)
    del hf_model
    gc.collect()
    if entry.rotary_base is not None and cfg_dict["rotary_base"] != entry.rotary_base:
        raise ModelLoadError(
            f"{entry.name}: GGUF says rope_theta={cfg_dict['rotary_base']}, "
            f"registry expects {entry.rotary_base}"
        )
    meta = {
        "name": entry.name,
        "hf_id": entry.hf_id,
        "gguf_sha256": entry.sha256,
        "tied_unembed": tied,
        "tokenizer_fixes": entry.tokenizer_fixes,
        "cfg": cfg_dict,
    }
    write_converted(out_dir, state, tokenizer, meta)
    logger.info("converted %s in %.0fs; cached in %s", entry.name, time.time() - t0, out_dir)


def converted_is_valid(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds a complete converted model of the current format.

    Example:
        >>> converted_is_valid(Path("/nonexistent"))
        False
    """
    try:
        meta = read_json(model_dir / "cfg.json")
    except (OSError, ValueError):
        return False
    return (
        isinstance(meta, dict)
        and meta.get("w2s_lens_format") == CACHE_VERSION
        and (model_dir / "model.safetensors").is_file()
        and (model_dir / "tokenizer").is_dir()
    )


def converted_problem(model_dir: Path) -> str | None:
    """Why ``model_dir`` cannot be loaded as it is, or None when it is complete and intact.

    A complete folder whose ``cfg.json`` records no digests (converted by an older w2s-lens)
    has its digests recorded now (once, trusting the folder as it is: converting again would
    take minutes and race with other processes using it) and counts as intact.

    Example:
        >>> converted_problem(Path("/nonexistent"))
        '/nonexistent/cfg.json does not exist'
    """
    cfg_file = model_dir / "cfg.json"
    try:
        meta = read_json(cfg_file)
    except (OSError, ValueError) as err:
        return str(err)
    if not isinstance(meta, dict) or meta.get("w2s_lens_format") != CACHE_VERSION:
        return f"{cfg_file} {STALE}"
    if not converted_is_valid(model_dir):
        return f"{model_dir} is incomplete (model.safetensors or tokenizer/ is missing)"
    if INTEGRITY_KEY not in meta:
        try:
            write_json(cfg_file, seal(meta, model_dir, _folder_files(model_dir)))
            logger.info("recorded the digests of the converted model in %s", model_dir)
        except OSError as err:  # a read-only cache still loads
            logger.info("could not record digests in %s (%s)", cfg_file, err)
        return None
    try:
        check_seal(meta, cfg_file)
    except ArtifactMismatch as err:
        return str(err)
    return None


def warn_damaged(model_dir: Path, problem: str) -> None:
    """The one :class:`CacheWarning` for a damaged converted folder that is converted again.

    Example:
        >>> warn_damaged(Path("cache/models/m"), "cfg.json is not valid JSON")  # doctest: +SKIP
    """
    warnings.warn(f"the converted model in {model_dir} failed its integrity check ({problem}); "
                  "converting it again", CacheWarning, stacklevel=3)


def load_converted(
    model_dir: Path,
    entry: EmbeddedModel,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> HookedTransformer:
    """Build the HookedTransformer cached in ``model_dir``, cast to ``dtype`` on ``device``.

    The float32 weights are cast tensor by tensor (so the float32 copy is freed as it goes);
    the rotary tables are computed in ``dtype`` as TransformerLens does for its own loads.
    ``model.cfg.dtype`` is ``dtype`` and ``model.cfg.device`` is ``str(device)``.

    Raises:
        ModelLoadError: the cached weights do not fit the cached config.

    Example:
        >>> model = load_converted(model_cache_dir("smollm2-135m-instruct"),
        ...                        EMBEDDED_MODELS["smollm2-135m-instruct"],
        ...                        dtype=torch.bfloat16)  # doctest: +SKIP
        >>> model.W_E.dtype  # doctest: +SKIP
        torch.bfloat16
    """
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformers import AutoTokenizer

    device = torch.device(device)
    meta = read_json(model_dir / "cfg.json")
    cfg = HookedTransformerConfig.from_dict(
        {**meta["cfg"], "dtype": dtype, "device": str(device)}
    )
    state = load_tensors(model_dir / "model.safetensors")
    for key in list(state):
        state[key] = state.pop(key).to(device=device, dtype=dtype)
    if meta.get("tied_unembed"):
        state["unembed.W_U"] = state["embed.W_E"].T.contiguous()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir / "tokenizer"))
    fix_tokenizer(tokenizer, entry.tokenizer_fixes)

    model = HookedTransformer(cfg, move_to_device=False)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    del state
    buffers = {n for n, _ in model.named_buffers()}
    if unexpected or set(missing) - buffers:
        raise ModelLoadError(
            f"cached weights of {entry.name} in {model_dir} do not fit the model "
            f"(missing {sorted(set(missing) - buffers)[:5]}, unexpected {unexpected[:5]}); "
            "delete the folder to re-convert"
        )
    # TransformerLens' set_tokenizer would swap in a BOS-adding copy of the tokenizer (and
    # look it up by name); install ours as is instead.
    model.tokenizer = tokenizer
    model.tokenizer.padding_side = tokenizer.padding_side or "right"
    model.cfg.tokenizer_prepends_bos = len(tokenizer.encode("")) > 0
    model.cfg.default_prepend_bos = False
    model.cfg.model_name = entry.name
    # Buffers (rotary tables, masks) follow the weights; a str keeps the index in cfg.device
    # (TransformerLens stores only the type of a torch.device).
    model.to(str(device), print_details=False)
    model.eval()
    return model


def load_reference(
    entry: EmbeddedModel, ref_dir: Path, cache: bool = True
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The dequantized float32 transformers model of ``entry`` (eval) and its tokenizer.

    With ``cache=True`` it is saved once in ``ref_dir`` (as large as the float32 model) so that
    later checks load it in seconds.

    Example:
        >>> hf_model, tok = load_reference(entry, hf_reference_dir(entry.name))  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    marker = ref_dir / "w2s_lens.json"
    if cache and marker.is_file():
        meta = read_json(marker)
        fresh = meta.get("w2s_lens_format") == CACHE_VERSION
        if fresh and meta.get("gguf_sha256") == entry.sha256:
            model = AutoModelForCausalLM.from_pretrained(str(ref_dir), dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(str(ref_dir))
            fix_tokenizer(tokenizer, entry.tokenizer_fixes)
            return model.eval(), tokenizer
    model, tokenizer = hf_from_gguf(entry)
    if cache:
        logger.info("caching the dequantized transformers model of %s in %s", entry.name, ref_dir)
        tmp = ref_dir.with_name(ref_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        # save_pretrained refuses GGUF-loaded models: write plain float32 weights + config.
        from safetensors.torch import save_model

        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = copy.deepcopy(model.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        write_json(tmp / "w2s_lens.json",
                   {"w2s_lens_format": CACHE_VERSION, "gguf_sha256": entry.sha256})
        shutil.rmtree(ref_dir, ignore_errors=True)
        tmp.replace(ref_dir)
    return model, tokenizer
