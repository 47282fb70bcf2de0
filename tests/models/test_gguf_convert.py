"""Tests of w2s_lens.models.gguf_convert on tiny random transformers models (no downloads).

Also the tiny-model helpers the other tests of w2s_lens.models import.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, pre_tokenizers
from tokenizers import models as tok_models
from transformers import (
    GPT2Config,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from w2s_lens.artifacts.tensors import load_tensors
from w2s_lens.models import converted, embedded
from w2s_lens.models import gguf_convert as gc

VOCAB = 64


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer over ``w0`` ... ``w60`` plus ``<unk>``, ``<|im_end|>``, ``<pad>``."""
    vocab = {f"w{i}": i for i in range(VOCAB - 3)}
    vocab.update({"<unk>": VOCAB - 3, "<|im_end|>": VOCAB - 2, "<pad>": VOCAB - 1})
    tok = Tokenizer(tok_models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", unk_token="<unk>")


def tiny_hf_model(arch: str = "qwen2", tied: bool = True, seed: int = 0, vocab: int = VOCAB):
    """A 2-layer, 32-wide random Qwen2 or Llama model with grouped-query attention."""
    torch.manual_seed(seed)
    config_cls, model_cls = {
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "llama": (LlamaConfig, LlamaForCausalLM),
    }[arch]
    config = config_cls(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=64,
        tie_word_embeddings=tied, rms_norm_eps=1e-6,
    )
    model = model_cls(config).eval()
    with torch.no_grad():  # make the random model's distributions less flat
        for p in model.parameters():
            p.mul_(3.0)
    return model


def tiny_entry(name: str = "tiny") -> embedded.EmbeddedModel:
    return embedded.EmbeddedModel(name, (), sha256="", size=0, hf_id="org/tiny",
                            tokenizer_fixes={"add_bos_token": False})


def write_tiny_model(out_dir: Path, arch: str = "qwen2", tied: bool = True, name: str = "tiny"):
    """Convert a tiny random model into ``out_dir`` as :func:`converted.convert_gguf` would."""
    hf_model = tiny_hf_model(arch, tied)
    state, cfg_dict, is_tied = gc.convert_hf_model(hf_model, name)
    converted.write_converted(out_dir, state, tiny_tokenizer(),
                       {"name": name, "cfg": cfg_dict, "tied_unembed": is_tied})
    return hf_model


TOKENS = torch.tensor([[3, 17, 5, 42, 9, 0, 33, 8], [11, 2, 60, 7, 19, 25, 4, 1]])


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
@pytest.mark.parametrize("tied", [True, False])
def test_converted_model_matches_transformers(tmp_path, arch: str, tied: bool) -> None:
    hf_model = write_tiny_model(tmp_path / "m", arch, tied)
    assert converted.converted_is_valid(tmp_path / "m")
    stored = load_tensors(tmp_path / "m" / "model.safetensors")
    assert ("unembed.W_U" in stored) is not tied  # a tied unembedding is stored once
    model = converted.load_converted(tmp_path / "m", tiny_entry())
    with torch.no_grad():
        ref = hf_model(TOKENS).logits.log_softmax(-1)
        ours = model(TOKENS).log_softmax(-1)
    assert (ours - ref).abs().max().item() < 1e-4
    assert ref.std() > 0.5  # not a flat distribution that would match anything
    assert torch.equal(model.W_U, model.W_E.T) is tied
    assert model.cfg.model_name == "tiny" and model.cfg.default_prepend_bos is False
    assert model.cfg.n_key_value_heads == 2 and not model.training


def test_tl_config_dict_refuses_other_architectures() -> None:
    with pytest.raises(gc.ModelNotSupportedError, match="'gpt2'.*llama, qwen2"):
        gc.tl_config_dict(GPT2Config(), "x")
    cfg = tiny_hf_model("llama").config
    cfg.rope_parameters = {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}
    with pytest.raises(gc.ModelNotSupportedError, match="RoPE scaling"):
        gc.tl_config_dict(cfg, "x")


def test_tl_config_dict_fields_and_context_cap() -> None:
    hf_model = tiny_hf_model("llama", tied=False)
    cfg = gc.tl_config_dict(hf_model.config, "tiny")
    assert cfg["original_architecture"] == "LlamaForCausalLM"
    assert (cfg["d_model"], cfg["d_head"], cfg["n_heads"], cfg["n_layers"]) == (32, 8, 4, 2)
    assert cfg["n_key_value_heads"] == 2 and cfg["n_ctx"] == 64
    assert cfg["default_prepend_bos"] is False and cfg["normalization_type"] == "RMS"
    hf_model.config.max_position_embeddings = 32_768
    assert gc.tl_config_dict(hf_model.config, "tiny")["n_ctx"] == embedded.MAX_N_CTX


def test_convert_hf_model_gives_float32_own_storage() -> None:
    hf_model = tiny_hf_model(tied=True)
    state, cfg_dict, tied = gc.convert_hf_model(hf_model, "tiny")
    assert tied and "unembed.W_U" not in state
    assert {t.dtype for t in state.values()} == {torch.float32}
    assert state["embed.W_E"].shape == (cfg_dict["d_vocab"], cfg_dict["d_model"]) == (VOCAB, 32)
    assert state["embed.W_E"].data_ptr() != hf_model.model.embed_tokens.weight.data_ptr()
