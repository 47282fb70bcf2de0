"""Tests of w2s_lens.models.converted: the cached converted model and reference copy (tiny)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_gguf_convert import TOKENS, tiny_entry, tiny_hf_model, tiny_tokenizer, write_tiny_model

from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.models import converted


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_load_converted_casts_weights_and_config(tmp_path, dtype: torch.dtype) -> None:
    write_tiny_model(tmp_path / "m")
    full = converted.load_converted(tmp_path / "m", tiny_entry())
    half = converted.load_converted(tmp_path / "m", tiny_entry(), device="cpu", dtype=dtype)
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
    with pytest.raises(converted.ModelLoadError, match=r"do not fit.*blocks\.2"):
        converted.load_converted(tmp_path / "m", tiny_entry())


def test_converted_is_valid(tmp_path) -> None:
    assert not converted.converted_is_valid(tmp_path / "missing")
    write_tiny_model(tmp_path / "m")
    assert converted.converted_is_valid(tmp_path / "m")
    meta = read_json(tmp_path / "m" / "cfg.json")
    stale = {**meta, "w2s_lens_format": converted.CACHE_VERSION + 1}
    write_json(tmp_path / "m" / "cfg.json", stale)
    assert not converted.converted_is_valid(tmp_path / "m")
    write_json(tmp_path / "m" / "cfg.json", meta)
    (tmp_path / "m" / "model.safetensors").unlink()
    assert not converted.converted_is_valid(tmp_path / "m")
    assert not (tmp_path / "m.partial").exists()


def test_in_place_edits_do_not_reach_the_cache(tmp_path) -> None:
    write_tiny_model(tmp_path / "m")
    model = converted.load_converted(tmp_path / "m", tiny_entry())
    before = model.W_E.detach().clone()
    with torch.no_grad():
        model.W_E.add_(1.0)  # the cached weights may be memory-mapped: edits must stay private
        model.blocks[0].attn.W_Q.zero_()
    again = converted.load_converted(tmp_path / "m", tiny_entry())
    assert torch.equal(again.W_E, before)
    assert again.blocks[0].attn.W_Q.abs().sum() > 0


@pytest.fixture
def fake_gguf(monkeypatch):
    """``hf_from_gguf`` replaced by a tiny random Qwen2 model; the calls are recorded."""
    calls = []

    def fake_hf_from_gguf(entry, download=True):
        calls.append(entry.name)
        return tiny_hf_model(), tiny_tokenizer()

    monkeypatch.setattr(converted, "hf_from_gguf", fake_hf_from_gguf)
    return calls


def test_convert_gguf_writes_the_folder_with_provenance(tmp_path, fake_gguf) -> None:
    rope = tiny_hf_model().config.rope_parameters["rope_theta"]
    entry = dataclasses.replace(tiny_entry(), sha256="ab" * 32, rotary_base=float(rope))
    converted.convert_gguf(entry, tmp_path / "m")
    assert fake_gguf == ["tiny"] and converted.converted_is_valid(tmp_path / "m")
    meta = read_json(tmp_path / "m" / "cfg.json")
    assert meta["w2s_lens_format"] == converted.CACHE_VERSION
    assert (meta["name"], meta["hf_id"], meta["gguf_sha256"]) == ("tiny", "org/tiny", "ab" * 32)
    assert meta["tied_unembed"] is True and meta["cfg"]["rotary_base"] == rope
    assert meta["tokenizer_fixes"] == {"add_bos_token": False}
    model = converted.load_converted(tmp_path / "m", entry)
    assert model.cfg.model_name == "tiny" and model.tokenizer.add_bos_token is False


def test_convert_gguf_refuses_another_rope_base(tmp_path, fake_gguf) -> None:
    entry = dataclasses.replace(tiny_entry(), rotary_base=123.0)
    with pytest.raises(converted.ModelLoadError, match="tiny: GGUF says rope_theta=.*123.0"):
        converted.convert_gguf(entry, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_load_reference_is_cached_once(tmp_path, fake_gguf) -> None:
    entry = dataclasses.replace(tiny_entry(), sha256="cd" * 32)
    first, tok = converted.load_reference(entry, tmp_path / "ref")
    marker = read_json(tmp_path / "ref" / "w2s_lens.json")
    assert marker == {"w2s_lens_format": converted.CACHE_VERSION, "gguf_sha256": "cd" * 32}
    again, tok2 = converted.load_reference(entry, tmp_path / "ref")
    assert fake_gguf == ["tiny"]  # the second load came from the cache
    assert not again.training and tok2.add_bos_token is False
    with torch.no_grad():
        assert torch.equal(again(TOKENS).logits, first(TOKENS).logits)
    converted.load_reference(dataclasses.replace(entry, sha256="ef" * 32), tmp_path / "ref")
    assert fake_gguf == ["tiny", "tiny"]  # another GGUF: the stale copy is not used
    converted.load_reference(entry, tmp_path / "other", cache=False)
    assert not (tmp_path / "other").exists()
