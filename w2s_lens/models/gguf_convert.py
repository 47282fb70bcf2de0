"""Embedded GGUF models, stage 2: dequantize the verified GGUF and convert it to TransformerLens.

This module works on one :class:`~w2s_lens.models.embedded.EmbeddedModel` at a time (the
registry of models that exist is :mod:`w2s_lens.models.registry`). The stages of a first
:func:`~w2s_lens.models.loading.load_model` call:

1. :func:`~w2s_lens.models.gguf_file.assemble_gguf` fetches and verifies the GGUF;
2. :func:`hf_from_gguf` dequantizes it to a float32 transformers model with transformers' GGUF
   support (no Hugging Face Hub access: the config comes from the GGUF's own metadata), and
   :func:`convert_hf_model` rearranges the weights into TransformerLens' layout with the
   config fields of :func:`tl_config_dict` (here);
3. :func:`~w2s_lens.models.converted.convert_gguf` writes the result as a cached float32
   folder, which :func:`~w2s_lens.models.converted.load_converted` loads in seconds.

No weight processing that changes the residual stream is applied (no centering, no LayerNorm
folding), so activations match the transformers model.

Example:
    >>> from w2s_lens.models.registry import EMBEDDED_MODELS
    >>> entry = EMBEDDED_MODELS["smollm2-135m-instruct"]
    >>> hf_model, tokenizer = hf_from_gguf(entry)  # doctest: +SKIP
    >>> state, cfg_dict, tied = convert_hf_model(hf_model, entry.name)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from w2s_lens.models.embedded import (
    MAX_N_CTX,
    EmbeddedModel,
    ModelLoadError,
    ModelNotSupportedError,
    fix_tokenizer,
)
from w2s_lens.models.gguf_file import assemble_gguf

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["convert_hf_model", "hf_from_gguf", "tl_config_dict"]


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
    as ``W_E.T`` by :func:`~w2s_lens.models.converted.load_converted`).

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
