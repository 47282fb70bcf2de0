"""Tests for w2s_lens.data.chat: chat-template rendering, the BOS rule and the variants."""

from __future__ import annotations

import pytest
from conftest import CHATML, byte_tokenizer, inst_tokenizer

from w2s_lens.data.behaviours import behaviour_sentences
from w2s_lens.data.chat import ChatRenderer, PromptError, resolve_bos, variant_turns

NO_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


def test_render_chatml_and_inst():
    chat = ChatRenderer(byte_tokenizer())
    assert chat.render("S.", "Hi?") == ("<|im_start|>system\nS.<|im_end|>\n<|im_start|>user\n"
                                        "Hi?<|im_end|>\n<|im_start|>assistant\n")
    assert chat.render(None, "Hi?") == "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
    inst = ChatRenderer(inst_tokenizer())
    assert inst.render("S.", "Hi?") == "<s>[INST] <<SYS>>\nS.\n<</SYS>>\n\nHi? [/INST]"
    assert chat.encode("Hi") == byte_tokenizer()("Hi", add_special_tokens=False)["input_ids"]


def test_a_template_without_system_role_gets_the_system_text_in_the_user_turn():
    chat = ChatRenderer(byte_tokenizer(), chat_template=NO_SYSTEM)
    assert not chat.system_in_user
    assert chat.render("S.", "Hi?") == "[user] S.\n\nHi?\n[assistant] "
    assert chat.system_in_user


def test_missing_template_fails_clearly():
    tok = byte_tokenizer()
    tok.chat_template = None
    with pytest.raises(PromptError, match="no chat template"):
        ChatRenderer(tok).render("S.", "Hi?")
    assert ChatRenderer(tok, chat_template=CHATML).render(None, "Hi?").endswith("assistant\n")


def test_resolve_bos():
    class Tok:
        bos_token, add_bos_token = "<s>", True

    assert resolve_bos(Tok(), None, "[INST] Hi") == (True, "<s>")
    assert resolve_bos(Tok(), None, "<s>[INST] Hi") == (False, "")
    assert resolve_bos(Tok(), False, "[INST] Hi") == (False, "")
    Tok.bos_token = None
    with pytest.raises(PromptError, match="no bos_token"):
        resolve_bos(Tok(), True, "Hi")


def test_variant_turns():
    pos, neg = behaviour_sentences("corrigible-neutral-HHH")
    d = "corrigible-neutral-HHH"
    assert variant_turns("S.", "Q?", d, "base") == ("S.", "Q?")
    assert variant_turns("S.", "Q?", d, "sys-pos") == (pos, "Q?")
    assert variant_turns("S.", "Q?", d, "sys-neg") == (neg, "Q?")
    assert variant_turns("S.", "Q?", d, "user-pos") == ("S.", f"{pos}\n\nQ?")
    assert variant_turns(None, "Q?", d, "user-neg", ("P.", "N.")) == (None, "N.\n\nQ?")
    with pytest.raises(ValueError, match="unknown variant"):
        variant_turns("S.", "Q?", d, "sys")
