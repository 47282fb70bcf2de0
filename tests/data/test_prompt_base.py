"""Tests for w2s_lens.data.prompt_base: settings and prompts from plain strings."""

from __future__ import annotations

from conftest import byte_tokenizer, inst_tokenizer

from w2s_lens.choices import DEFAULT_SYSTEM_PROMPT
from w2s_lens.data.prompt_base import PromptBase
from w2s_lens.data.prompts import PromptFormatter


def test_render_user_is_the_generation_prompt():
    tok = byte_tokenizer()
    fmt = PromptFormatter(tok)
    text = fmt.render_user("Tell me about yourself.")
    assert text == (f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n"
                    "Tell me about yourself.<|im_end|>\n<|im_start|>assistant\n")
    assert fmt.generation_prompt("Tell me about yourself.") == (
        text, tok(text, add_special_tokens=False)["input_ids"])
    assert "Choices:" not in text and not text.endswith("(")


def test_render_user_follows_the_formatter_settings():
    no_sys = PromptBase(byte_tokenizer(), system_prompt=None)
    assert no_sys.render_user("Hi") == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    inst = PromptBase(inst_tokenizer(), system_prompt="Be brief.")
    assert inst.render_user("Hi") == "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]"


def test_from_settings_keeps_the_class():
    fmt = PromptFormatter(byte_tokenizer(), system_prompt="Be brief.")
    back = PromptFormatter.from_settings(byte_tokenizer(), fmt.settings())
    assert type(back) is PromptFormatter and back.settings() == fmt.settings()
    assert type(PromptBase.from_settings(byte_tokenizer(), fmt.settings())) is PromptBase
