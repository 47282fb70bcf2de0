"""Tests of w2s_lens.models.loading: fast loading and error tests; slow ones on SmolLM2."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
from conftest import byte_tokenizer
from test_gguf_convert import tiny_entry, tiny_hf_model, write_tiny_model

from w2s_lens.artifacts.tensors import load_tensors
from w2s_lens.models import devices, gguf_convert
from w2s_lens.models import loading as models
from w2s_lens.models.converted import load_converted, write_converted

SMOL = "smollm2-135m-instruct"
QWEN_1_5B = "qwen2.5-coder-1.5b-instruct"


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
    monkeypatch.setattr(devices, "_bf16_supported", lambda device: True)
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


# --------------------------------------------------------------------------- check_model


def test_check_prompts_come_from_the_prompt_owner() -> None:
    tok = byte_tokenizer()
    text = models._user_turn_renderer(tok)("Is 2 > 1?")
    bare = tok.apply_chat_template([{"role": "user", "content": "Is 2 > 1?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text == bare == "<|im_start|>user\nIs 2 > 1?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture
def tiny_check(monkeypatch, tmp_path):
    """A tiny random Qwen2 on the byte tokenizer, converted; its reference is the original."""
    tok = byte_tokenizer()
    hf_model = tiny_hf_model(vocab=len(tok))
    state, cfg_dict, tied = gguf_convert.convert_hf_model(hf_model, "tiny-check")
    write_converted(tmp_path / "m", state, tok,
                    {"name": "tiny-check", "cfg": cfg_dict, "tied_unembed": tied})
    model = load_converted(tmp_path / "m", tiny_entry("tiny-check"))
    monkeypatch.setattr(models, "load_hf_reference", lambda name: (hf_model, tok))
    return model, tok


def test_check_model_compares_on_formatted_prompts(tiny_check, monkeypatch) -> None:
    model, tok = tiny_check
    seen = []
    render = models._user_turn_renderer

    def recording(tokenizer):
        inner = render(tokenizer)

        def rendered(text: str) -> str:
            seen.append(inner(text))
            return seen[-1]

        return rendered

    monkeypatch.setattr(models, "_user_turn_renderer", recording)
    diff = models.check_model("tiny-check", prompts=["Is 2 > 1?", "Hi"], model=model)
    assert seen == [render(tok)("Is 2 > 1?"), render(tok)("Hi")]
    assert 0 <= diff < 1e-4  # float32 on both sides: the conversion is exact up to rounding
    with torch.no_grad():  # a changed model is caught
        model.blocks[0].mlp.W_out.mul_(1.5)
    assert models.check_model("tiny-check", prompts=["Hi"], model=model) > 1e-2


def test_check_model_refuses_disagreeing_tokenizers(tiny_check, monkeypatch) -> None:
    model, tok = tiny_check
    other = byte_tokenizer()
    other.add_tokens(["Hi"])  # the reference now reads "Hi" as one token
    monkeypatch.setattr(models, "load_hf_reference", lambda name: (None, other))
    with pytest.raises(models.ModelLoadError, match="tiny-check: tokenizers disagree on prompt 0"):
        models.check_model("tiny-check", prompts=["Hi"], model=model)


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
